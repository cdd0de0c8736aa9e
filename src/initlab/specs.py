"""Readable specs such as ``RandomNormal(stddev=1.0)``, parsed with ``ast`` (nothing is evaluated).

A spec is a name, optionally called with literal arguments. Names are matched without regard to
case or underscores, so ``HeNormal()``, ``he_normal`` and ``henormal`` are the same thing.

Example:
    >>> parse_spec("RandomNormal(stddev=1.0)")
    Spec(name='RandomNormal', args=(), kwargs=(('stddev', 1.0),))
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from typing import Any

from initlab.errors import InitlabError, shown


@dataclass(frozen=True)
class Spec:
    """A parsed spec: the name as written and its literal arguments."""

    name: str
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()


def _dotted_name(node: ast.expr, text: str) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted_name(node.value, text)}.{node.attr}"
    raise InitlabError(
        f"malformed spec '{shown(text)}': expected a name such as glorot_uniform or RandomNormal(stddev=1.0)"
    )


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, complex):
        return False
    if isinstance(value, (tuple, list, set, frozenset)):
        return all(_finite(item) for item in value)
    if isinstance(value, dict):
        return all(_finite(item) for item in (*value.keys(), *value.values()))
    return True


def _literal(node: ast.expr, text: str) -> Any:
    argument = ast.get_source_segment(text, node) or "?"
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, RecursionError, MemoryError):
        raise InitlabError(
            f"malformed spec '{shown(text)}': argument '{shown(argument)}' is not a literal "
            "(numbers, strings, booleans only)"
        ) from None
    if not _finite(value):  # 1e400 is inf to Python; 1j is complex
        raise InitlabError(f"spec '{shown(text)}': argument '{shown(argument)}' is not a finite real number")
    return value


def parse_spec(text: str) -> Spec:
    """Parse ``name`` or ``name(literal, key=literal, ...)`` into a :class:`Spec`.

    Raises:
        InitlabError: the text is not a name or a call with literal arguments.
    """
    if not isinstance(text, str) or not text.strip():
        raise InitlabError(f"malformed spec {shown(repr(text))}: expected a name such as glorot_uniform")
    text = text.strip()
    if len(text) > 10_000:
        raise InitlabError(f"malformed spec '{shown(text, 40)}': longer than 10000 characters")
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError as error:
        raise InitlabError(f"malformed spec '{shown(text)}': {error.msg}") from None
    except (RecursionError, MemoryError, ValueError):
        raise InitlabError(f"malformed spec '{shown(text, 40)}': too deeply nested") from None
    if isinstance(tree, ast.Call):
        if any(isinstance(a, ast.Starred) for a in tree.args) or any(k.arg is None for k in tree.keywords):
            raise InitlabError(f"malformed spec '{shown(text)}': * and ** arguments are not allowed")
        return Spec(
            name=_dotted_name(tree.func, text),
            args=tuple(_literal(a, text) for a in tree.args),
            kwargs=tuple((k.arg, _literal(k.value, text)) for k in tree.keywords),
        )
    return Spec(name=_dotted_name(tree, text))


def canonical_key(name: str) -> str:
    """The lookup key of a name: lower case, underscores removed (``HeNormal`` -> ``henormal``)."""
    return name.replace("_", "").lower()


def format_value(value: Any) -> str:
    return repr(value)


def format_spec(name: str, kwargs: dict[str, Any]) -> str:
    """The canonical text of a spec, e.g. ``random_normal(mean=0.0, stddev=1.0)``."""
    if not kwargs:
        return name
    return f"{name}({', '.join(f'{k}={format_value(v)}' for k, v in kwargs.items())})"
