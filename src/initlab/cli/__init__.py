"""The ``initlab`` command line: thin over the Python API, one function per command.

Nothing heavy is imported at module level: ``initlab --help`` and ``initlab list`` answer
without importing JAX. A user's mistake ends in one line on stderr and exit status 2.
"""

from __future__ import annotations

# Each module registers its commands; this order is the order of ``initlab --help``.
# isort: off
from initlab.cli import basics  # noqa: F401
from initlab.cli import stores  # noqa: F401
from initlab.cli import inspection  # noqa: F401
from initlab.cli import results  # noqa: F401
from initlab.cli import scaling  # noqa: F401
from initlab.cli import diagnose  # noqa: F401
# isort: on
from initlab.cli._app import app, parse_seeds
from initlab.cli.basics import FAMILIES

__all__ = ["FAMILIES", "app", "main", "parse_seeds"]


def main() -> None:
    app()
