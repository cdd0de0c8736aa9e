"""One registry type for every named family: initializers, activations, optimizers, losses, data.

A registry maps a canonical name to a *builder*: a plain function whose keyword parameters are
the hyperparameters (with their defaults) and whose result is the built object. The registry
parses specs, checks argument names and types against the builder's signature, and lists every
entry with its defaults, without importing anything heavy.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from initlab.errors import InitlabError, closest, shown, unknown
from initlab.specs import Spec, canonical_key, format_spec, parse_spec

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered builder."""

    name: str
    builder: Callable[..., T]
    aliases: tuple[str, ...] = ()
    family: str = ""

    @property
    def summary(self) -> str:
        doc = inspect.getdoc(self.builder) or ""
        return doc.splitlines()[0] if doc else ""

    @property
    def parameters(self) -> dict[str, inspect.Parameter]:
        return dict(inspect.signature(self.builder).parameters)

    @property
    def defaults(self) -> dict[str, Any]:
        return {n: p.default for n, p in self.parameters.items() if p.default is not inspect.Parameter.empty}

    @property
    def signature_text(self) -> str:
        parts = []
        for name, parameter in self.parameters.items():
            if parameter.default is inspect.Parameter.empty:
                parts.append(name)
            else:
                parts.append(f"{name}={parameter.default!r}")
        return f"{self.name}({', '.join(parts)})"


def _accepts(expected: Any, value: Any) -> tuple[bool, Any]:
    """Whether ``value`` fits the annotation ``expected``, and the value converted to it."""
    if expected is Any or expected is inspect.Parameter.empty:
        return True, value
    origin = typing.get_origin(expected)
    if origin is typing.Union or origin is types.UnionType:
        for option in typing.get_args(expected):
            ok, converted = _accepts(option, value)
            if ok:
                return True, converted
        return False, value
    if origin is typing.Literal:
        return value in typing.get_args(expected), value
    if expected is type(None):
        return value is None, value
    if expected is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, float(value)
        return False, value
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if expected is tuple:
        return isinstance(value, (tuple, list)), tuple(value) if isinstance(value, (tuple, list)) else value
    if isinstance(expected, type):
        return isinstance(value, expected), value
    return True, value


def _type_name(expected: Any) -> str:
    if isinstance(expected, type):
        return expected.__name__
    return str(expected).replace("typing.", "")


class Registry(Generic[T]):
    """Named builders of one kind (``kind`` is used in messages, e.g. "initializer")."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._lookup: dict[str, str] = {}

    def register(
        self, name: str, *, aliases: tuple[str, ...] = (), family: str = ""
    ) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator registering ``builder`` under ``name`` (and ``aliases``)."""

        def decorate(builder: Callable[..., T]) -> Callable[..., T]:
            self.add(name, builder, aliases=aliases, family=family)
            return builder

        return decorate

    def add(self, name: str, builder: Callable[..., T], *, aliases: tuple[str, ...] = (), family: str = "") -> None:
        for key in (name, *aliases):
            canonical = canonical_key(key)
            if canonical in self._lookup:
                raise RuntimeError(f"{self.kind} '{key}' registered twice")
            self._lookup[canonical] = name
        self._entries[name] = Entry(name=name, builder=builder, aliases=aliases, family=family)

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: str) -> bool:
        return canonical_key(name) in self._lookup

    @property
    def names(self) -> list[str]:
        return list(self._entries)

    def entry(self, name: str) -> Entry[T]:
        """The entry called ``name`` (any case, with or without underscores)."""
        try:
            return self._entries[self._lookup[canonical_key(name)]]
        except KeyError:
            raise unknown(self.kind, name, self.names) from None

    def resolve(self, spec: str | Spec) -> tuple[Entry[T], dict[str, Any]]:
        """Parse ``spec`` and bind its arguments to the builder: (entry, full keyword arguments)."""
        text = shown(spec if isinstance(spec, str) else spec.name)
        parsed = parse_spec(spec) if isinstance(spec, str) else spec
        entry = self.entry(parsed.name)
        parameters = entry.parameters
        names = list(parameters)
        if len(parsed.args) > len(names):
            raise InitlabError(
                f"{self.kind} spec '{text}': {entry.name} takes at most {len(names)} positional "
                f"argument(s), got {len(parsed.args)} (signature: {entry.signature_text})"
            )
        given: dict[str, Any] = dict(zip(names, parsed.args))
        for key, value in parsed.kwargs:
            if key not in parameters:
                hint = closest(key, names)
                suggestion = f"; did you mean '{hint}'?" if hint else ""
                valid = ", ".join(names) if names else "none"
                raise InitlabError(
                    f"{self.kind} spec '{text}': unknown argument '{shown(key)}' for {entry.name}{suggestion} (valid: {valid})"
                )
            if key in given:
                raise InitlabError(f"{self.kind} spec '{text}': argument '{key}' given twice")
            given[key] = value
        hints = typing.get_type_hints(entry.builder)
        bound: dict[str, Any] = {}
        for name, parameter in parameters.items():
            if name in given:
                expected = hints.get(name, Any)
                ok, converted = _accepts(expected, given[name])
                if not ok:
                    raise InitlabError(
                        f"{self.kind} spec '{text}': argument '{name}' of {entry.name} must be "
                        f"{_type_name(expected)}, got {shown(repr(given[name]))}"
                    )
                bound[name] = converted
            elif parameter.default is inspect.Parameter.empty:
                raise InitlabError(
                    f"{self.kind} spec '{text}': {entry.name} needs argument '{name}' (signature: {entry.signature_text})"
                )
            else:
                bound[name] = parameter.default
        return entry, bound

    def canonical(self, spec: str | Spec, *, always: tuple[str, ...] = ()) -> str:
        """The canonical text of ``spec``: registered name with every non-default argument.

        Equivalent spellings (``he_normal``, ``HeNormal()``, ``HE_NORMAL``) give the same text.
        Arguments named in ``always`` are written even at their default (an optimizer's
        learning rate, which a reader wants to see).
        """
        entry, kwargs = self.resolve(spec)
        changed = {
            k: v for k, v in kwargs.items() if k in always or entry.defaults.get(k, inspect.Parameter.empty) != v
        }
        return format_spec(entry.name, changed)

    def build(self, spec: str | Spec) -> T:
        """Parse ``spec`` and call its builder with the bound arguments."""
        entry, kwargs = self.resolve(spec)
        return entry.builder(**kwargs)
