"""User-facing errors: one line that names the problem and, where possible, the fix."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class InitlabError(ValueError):
    """A mistake in what the user asked for (a name, a spec, a size, a file).

    The CLI prints its message on one line and exits with status 2; the Python API lets it
    propagate like any ``ValueError``.
    """


def shown(text: str, limit: int = 60) -> str:
    """A user's text as it goes into a message: one line, at most ``limit`` characters."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def closest(name: str, choices: Iterable[str]) -> str | None:
    """The valid choice nearest to ``name``, or ``None`` when nothing is close."""
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    matches = difflib.get_close_matches(name[:100].lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[matches[0]] if matches else None


def unknown(kind: str, name: str, choices: Iterable[str]) -> InitlabError:
    """An error for an unknown ``kind`` called ``name``, suggesting the closest valid choice."""
    choices = sorted(choices)
    hint = closest(str(name), choices)
    suggestion = f"; did you mean '{hint}'?" if hint else ""
    return InitlabError(f"unknown {kind} '{shown(name)}'{suggestion} (valid: {', '.join(choices)})")
