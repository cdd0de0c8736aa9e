"""The ``initlab`` typer app and what every command shares: consoles, one-line errors, JSON, progress."""

from __future__ import annotations

import functools
import sys
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from initlab.checks import parse_seeds  # noqa: F401  (the CLI's --seeds)
from initlab.errors import InitlabError

# What an option's value is, by option name, where its type alone would say only "str" or "int".
METAVARS = {
    "init": "SPEC", "bias_init": "SPEC", "output_init": "SPEC", "activation": "SPEC", "output_activation": "SPEC",
    "optimizer": "SPEC", "loss": "SPEC", "inputs": "SPEC", "model": "SPEC", "layer_init": "N=SPEC",
    "init_rule": "PATTERN=SPEC", "dataset": "NAME", "data_file": "FILE", "notes": "FILE", "theory": "FILE",
    "plot": "FILE", "histograms": "FILE", "store": "FILE", "hidden": "SIZES", "seeds": "SEEDS", "seed": "SEED",
    "memory_budget": "MIB", "executor": "local|ray", "address": "ADDRESS", "status": "STATUS",
    "format": "csv|json|parquet|tensorboard|mlflow", "histogram": "KIND", "label": "LABEL", "title": "TEXT", "defaults": "FRAMEWORK",
    "matmul": "auto|xla|sparse", "file": "FILE", "kind": "KIND", "family": "FAMILY", "what": "NAME",
}
_TYPE_METAVARS = {"int": "N", "float": "X", "str": "TEXT", "Path": "PATH"}


def _tidy(command: Any) -> None:
    """Help that reads well: a value metavar that says what is expected, none on flags, "(repeatable)"."""
    for param in command.params:
        name = param.name or ""
        if getattr(param, "param_type_name", "") == "argument":  # named by itself (STORE, FILE): no type column
            param.display_type_rich = lambda ctx: ""
            param.metavar = param.metavar or name.upper()
            continue
        if getattr(param, "is_flag", False):
            param.metavar = ""
            continue
        if param.metavar is None or param.metavar.startswith("<"):
            bare = param.bare_type().removeprefix("list[").removesuffix("]") if hasattr(param, "bare_type") else ""
            if name == "out":
                param.metavar = "FILE" if command.name == "plot" else "DIR"
            else:
                param.metavar = METAVARS.get(name) or _TYPE_METAVARS.get(bare, "VALUE")
        if getattr(param, "multiple", False) and "repeatable" not in (param.help or ""):
            param.help = f"{(param.help or '').rstrip()} (repeatable)".strip()
    original = command.get_help_option

    def get_help_option(ctx: Any) -> Any:
        option = original(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = get_help_option


class _Group(TyperGroup):
    """initlab's command group: every command's help tidied once, when the CLI is built."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        _tidy(self)
        for command in self.commands.values():
            _tidy(command)


app = typer.Typer(
    cls=_Group,
    help="initlab: a laboratory for neural-network weight initialization.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


console = Console()


err_console = Console(stderr=True)


MAX_ERROR_LENGTH = 1000


def one_line(message: str, limit: int = MAX_ERROR_LENGTH) -> str:
    """``message`` as one short line: control characters shown escaped, the middle of a long one cut."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)
    if len(text) > limit:
        text = f"{text[: limit - 80]} [...] {text[-70:]}"
    return text


def written(path: object, label: str = "written") -> None:
    """``written PATH``, the path on one line whatever the terminal's width (to copy it whole) and never read as markup."""
    console.print(f"{label} {escape(str(path))}", highlight=False, soft_wrap=True)


def fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {escape(one_line(message))}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def user_errors(command: Any) -> Any:
    """Turn a user's mistake into one short line on stderr and exit status 2.

    An :class:`InitlabError` (a bad name, value or file), an ``OSError`` (a full disk, a
    missing permission) and a damaged SQLite store are the user's to fix: no traceback.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import sqlite3

        try:
            return command(*args, **kwargs)
        except InitlabError as error:
            fail(str(error))
        except OSError as error:
            where = f" {error.filename}" if getattr(error, "filename", None) else ""
            fail(f"cannot complete the command:{where} {error.strerror or error}")
        except sqlite3.DatabaseError as error:
            fail(f"the results store is damaged or was edited by hand: {error}")
        except MemoryError:
            fail("out of memory: ask for less (fewer models, draws or units; a smaller --memory-budget)")

    return wrapper


def configure_process() -> None:
    """What the CLI asks of the process before its first computation (:func:`initlab.configure`)."""
    from initlab.runtime import configure

    configure(compilation_cache=True)


def new_table(title: str, columns: list[tuple[str, str]]) -> Any:
    """A table that fits a narrow terminal: text columns wrap (never cut to "…"), numbers stay whole."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for name, justify in columns:
        if justify == "right":
            table.add_column(name, justify="right", no_wrap=True, overflow="fold")
        else:
            table.add_column(name, overflow="fold")
    return table


def emit_json(payload: Any) -> None:
    """``payload`` on stdout as standard JSON: non-finite numbers are ``null``."""
    from initlab.files import json_text

    sys.stdout.write(json_text(payload) + "\n")


def progress_bar(label: str, unit: str, disable: bool) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TextColumn(unit),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=err_console, transient=True,
        disable=disable,
    )
