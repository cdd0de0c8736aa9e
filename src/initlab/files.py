"""Outputs written whole or not at all, and output paths checked before any work is done.

Every file initlab writes goes first to a temporary file beside its destination, which is
renamed over the destination only once it is complete: a write that fails half-way (a full
disk, a killed process) leaves the previous file as it was, and the error is one line. Several
files that belong together (an export's ``runs.csv`` and ``metrics.csv``) are staged together
and renamed only when every one of them is written.

Example:
    >>> with replacing("figure.png") as temporary:  # doctest: +SKIP
    ...     figure.savefig(temporary, format="png")
"""

from __future__ import annotations

import json
import math
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from initlab.errors import InitlabError


def finite_json(value: Any) -> Any:
    """``value`` with every non-finite float (and NumPy scalar or array) made JSON's ``null``.

    Standard JSON has no ``NaN`` or ``Infinity``; a diverged run's loss is stored and shown as
    ``null`` (its status says it diverged).
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(key) if not isinstance(key, str) else key: finite_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(item) for item in value]
    if hasattr(value, "tolist"):  # NumPy and JAX scalars and arrays
        return finite_json(value.tolist())
    if isinstance(value, Path):
        return str(value)
    return value


def json_text(value: Any, *, indent: int | None = 2) -> str:
    """``value`` as standard JSON (non-finite numbers as ``null``; see :func:`finite_json`)."""
    return json.dumps(finite_json(value), indent=indent, allow_nan=False)


def _cannot(action: str, path: Path, error: OSError) -> InitlabError:
    reason = error.strerror or str(error) or type(error).__name__
    return InitlabError(f"cannot {action} {path}: {reason}")


def output_file(path: str | os.PathLike[str], *, extensions: Iterable[str] | None = None, what: str = "output") -> Path:
    """Check that a file can be written at ``path`` (before any work), and return it.

    Args:
        path: the destination.
        extensions: the accepted suffixes without dots (``("png", "svg", "pdf")``), if any.
        what: what the file is, for messages ("figure", "report").

    Raises:
        InitlabError: a folder is there, a file is where a parent folder should be, or the
            extension is not one of ``extensions``.
    """
    path = Path(path)
    if extensions is not None:
        extensions = tuple(extensions)
        if path.suffix.lower().lstrip(".") not in extensions:
            given = f"'{path.suffix}'" if path.suffix else "no extension"
            raise InitlabError(
                f"cannot write a {what} as {path.name[:60]!r} ({given}): use {', '.join('.' + e for e in extensions)}"
            )
    if path.is_dir():
        raise InitlabError(f"{path} is a folder; give a file path for the {what}")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise InitlabError(f"cannot write {path}: {parent} is a file, not a folder")
    return path


def output_folder(path: str | os.PathLike[str], *, what: str = "output") -> Path:
    """Check that ``path`` is a folder or can become one (before any work), and return it."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InitlabError(f"{path} is a file; give a folder for the {what}")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise InitlabError(f"cannot write {path}: {parent} is a file, not a folder")
    return path


def read_text(path: str | os.PathLike[str], *, what: str = "file", limit: int = 10 * 2**20) -> str:
    """A user's text file (notes, JSON), as a one-line error if missing, binary or too large."""
    path = Path(path)
    if not path.is_file():
        raise InitlabError(f"{what} not found: {path}" if not path.exists() else f"{what} {path} is not a file")
    try:
        if path.stat().st_size > limit:
            raise InitlabError(f"{what} {path} is larger than {limit // 2**20} MiB")
        data = path.read_bytes()
    except OSError as error:
        raise _cannot("read", path, error) from None
    if b"\x00" in data:
        raise InitlabError(f"{what} {path} is a binary file, not UTF-8 text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InitlabError(f"{what} {path} is not UTF-8 text") from None


def make_folder(path: str | os.PathLike[str]) -> Path:
    """``mkdir -p``, as a one-line :class:`InitlabError` on failure."""
    path = output_folder(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _cannot("create the folder", path, error) from None
    return path


def _process_umask() -> int:
    mask = os.umask(0o022)  # (read by setting it: done once, at import, before any thread writes)
    os.umask(mask)
    return mask


_UMASK = _process_umask()


def _temporary_beside(path: Path) -> Path:
    """An empty file beside ``path``, with the permissions ``path`` has (or a new file would get).

    ``mkstemp`` creates files readable by their owner only; a report or figure renamed from one
    would keep that mode, unlike any file the user writes.
    """
    make_folder(path.parent)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        mode = 0o666 & ~_UMASK
    try:
        descriptor, name = tempfile.mkstemp(
            prefix=f".{path.stem[:80]}.", suffix=f".part{path.suffix}", dir=path.parent
        )
    except OSError as error:
        raise _cannot("write", path, error) from None
    try:
        os.fchmod(descriptor, mode)
    finally:
        os.close(descriptor)
    return Path(name)


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


@contextmanager
def replacing(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path to write ``path``'s new content to; renamed over ``path`` on success.

    On any exception the temporary file is removed and ``path`` is left as it was; an
    ``OSError`` (a full disk, no permission) becomes a one-line :class:`InitlabError`.
    """
    path = output_file(path)
    temporary = _temporary_beside(path)
    try:
        yield temporary
        os.replace(temporary, path)
    except OSError as error:
        _remove(temporary)
        raise _cannot("write", path, error) from None
    except BaseException:
        _remove(temporary)
        raise


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with replacing(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(path)


class Staging:
    """Files of one output folder, written to temporary paths and renamed together at the end."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._staged: dict[Path, Path] = {}

    def path(self, name: str) -> Path:
        """The temporary path to write the folder's file ``name`` to."""
        destination = output_file(self.folder / name)
        if destination in self._staged:
            return self._staged[destination]
        temporary = _temporary_beside(destination)
        self._staged[destination] = temporary
        return temporary

    def _commit(self) -> None:
        for destination, temporary in self._staged.items():
            os.replace(temporary, destination)
        self._staged.clear()

    def _discard(self) -> None:
        for temporary in self._staged.values():
            _remove(temporary)
        self._staged.clear()


@contextmanager
def staged_folder(folder: str | os.PathLike[str]) -> Iterator[Staging]:
    """Write several files of ``folder``; none replaces its old version unless all were written.

    Example:
        >>> with staged_folder("export") as stage:  # doctest: +SKIP
        ...     stage.path("runs.csv").write_text(...)
        ...     stage.path("metrics.csv").write_text(...)
    """
    folder = make_folder(folder)
    stage = Staging(folder)
    try:
        yield stage
        stage._commit()
    except OSError as error:
        stage._discard()
        raise _cannot("write into", folder, error) from None
    except BaseException:
        stage._discard()
        raise


__all__ = [
    "Staging", "finite_json", "json_text", "make_folder", "read_text", "output_file", "output_folder", "replacing", "staged_folder",
    "write_text",
]
