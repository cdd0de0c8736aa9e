"""The ``initlab`` typer app and what every command shares: consoles, one-line errors, JSON, progress."""

from __future__ import annotations

import functools
import json
import sys
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

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


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` -> [0, 1, 2, 3, 4]; ``"0,3,7"`` -> [0, 3, 7]; ranges and lists may mix."""
    seeds: list[int] = []
    try:
        for part in (p.strip() for p in text.split(",") if p.strip()):
            low, sep, high = part.partition("-")
            if sep and int(high) < int(low):
                raise ValueError(part)
            seeds.extend(range(int(low), int(high) + 1) if sep else [int(low)])
    except ValueError:
        raise InitlabError(f"--seeds expects integers and ranges such as 0-4 or 0,2,5, got '{text}'") from None
    if not seeds or any(s < 0 for s in seeds):
        raise InitlabError(f"--seeds expects non-negative integers such as 0-4, got '{text}'")
    return list(dict.fromkeys(seeds))


def progress_bar(label: str, unit: str, disable: bool) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TextColumn(unit),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=err_console, transient=True,
        disable=disable,
    )
