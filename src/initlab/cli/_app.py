"""The ``initlab`` typer app and what every command shares: consoles, one-line errors, JSON, progress."""

from __future__ import annotations

import functools
import json
import sys
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from initlab.checks import parse_seeds  # noqa: F401  (the CLI's --seeds)
from initlab.errors import InitlabError

app = typer.Typer(
    help="initlab: a laboratory for neural-network weight initialization.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


console = Console()


err_console = Console(stderr=True)


def user_errors(command: Any) -> Any:
    """Turn an :class:`InitlabError` into one line on stderr and exit status 2."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except InitlabError as error:
            err_console.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


def configure_process() -> None:
    """What the CLI asks of the process before its first computation (:func:`initlab.configure`)."""
    from initlab.runtime import configure

    configure(compilation_cache=True)


def emit_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, default=float) + "\n")


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
