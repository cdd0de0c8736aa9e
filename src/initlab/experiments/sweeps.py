"""Sweep files: a TOML description of many training runs, expanded into ``TrainConfig``s.

A sweep has a ``[base]`` configuration, a ``[grid]`` whose fields are crossed with each other,
and any number of ``[[zip]]`` tables whose fields vary together::

    name = "initializers"          # optional; defaults to the file's stem
    [base]                         # any TrainConfig field; defaults are TrainConfig's
    epochs = 20
    hidden_units = [64]
    [grid]                         # product over every listed field
    kernel_initializer = ["RandomNormal()", "glorot_uniform", "he_normal"]
    seed = "0-4"                   # same as [0, 1, 2, 3, 4]; only seed takes a range
    [[zip]]                        # fields that vary together (equal lengths)
    loss = ["mean_squared_error", "categorical_crossentropy"]
    optimizer = ["sgd(learning_rate=0.01)", "sgd(learning_rate=0.1)"]

This one expands to 3 x 5 x 2 = 30 runs. The order is that of ``itertools.product`` over the
grid fields in file order, then the zips in file order: the last one listed varies fastest.
A grid over a list-valued field takes a list of lists (``hidden_units = [[64], [128, 64]]``).
Each field may be given in one place only. ``load_sweep`` builds every run once, so a sweep
that loads expands without error; every mistake is an ``InitlabError`` of one line that names
the file and the key (a value that is wrong only next to another is blamed on the one whose
value, over the defaults, fails the same way).

Runs that can share one compiled program (``group``) differ only in their initializers, seed
and learning rate: these are data to a vmapped training step, the rest is its structure.

Example:
    >>> sweep = load_sweep("initializers.toml")  # doctest: +SKIP
    >>> for runs in group(sweep.expand()):  # doctest: +SKIP
    ...     train_together(runs)
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from initlab.checks import parse_seeds
from initlab.errors import InitlabError, shown, unknown
from initlab.training.config import TrainConfig

__all__ = ["Sweep", "group", "group_key", "load_sweep"]

_FIELDS = tuple(field.name for field in dataclasses.fields(TrainConfig))
_INT_FIELDS = frozenset(field.name for field in dataclasses.fields(TrainConfig) if field.type in ("int", "int | None"))
_LIST_FIELDS = ("hidden_units", "layer_kernel_initializers", "init_rules")
_TOP_LEVEL = ("name", "base", "grid", "zip")


def _convert(key: str, value: Any) -> Any:
    """A TOML value as the ``TrainConfig`` field ``key`` holds it (TrainConfig checks the rest)."""
    if key == "hidden_units":
        if not isinstance(value, list):
            raise InitlabError(f"must be a list of layer sizes such as [64, 32], got {shown(repr(value))}")
        return tuple(value)
    if key == "layer_kernel_initializers":
        pairs_ok = isinstance(value, list) and all(
            isinstance(pair, list)
            and len(pair) == 2
            and isinstance(pair[0], int)
            and not isinstance(pair[0], bool)
            and isinstance(pair[1], str)
            for pair in value
        )
        if not pairs_ok:
            raise InitlabError(
                f'must be a list of [layer_number, spec] pairs such as [[1, "he_normal"]], got {shown(repr(value))}'
            )
        return tuple((number, spec) for number, spec in value)
    if key == "init_rules":
        if not isinstance(value, list) or not all(isinstance(rule, str) for rule in value):
            raise InitlabError(f'must be a list of "PATTERN=SPEC" strings such as ["*/bias=zeros"], got {shown(repr(value))}')
        return tuple(value)
    if key not in _INT_FIELDS and not isinstance(value, str):
        raise InitlabError(f"must be a string, got {shown(repr(value))}")
    return value


@dataclass(frozen=True, kw_only=True)
class Sweep:
    """A parsed, validated sweep file.

    Attributes:
        name: the sweep's name (the file's stem unless the file sets ``name``).
        base: fields shared by every run, already converted (lists of sizes are tuples).
        grid: field -> values, crossed with each other and with the zips.
        zips: tables of fields that vary together, each list of the same length.
        source: the file it was read from (named in every error).
    """

    name: str
    base: dict[str, Any]
    grid: dict[str, list[Any]]
    zips: list[dict[str, list[Any]]]
    source: Path

    def expand(self) -> list[TrainConfig]:
        """Every run of the sweep, in the order described in the module docstring."""
        return list(self._runs)

    @functools.cached_property
    def _runs(self) -> tuple[TrainConfig, ...]:
        axes = [[{key: value} for value in values] for key, values in self.grid.items()]
        axes += [[dict(zip(table, row)) for row in zip(*table.values())] for table in self.zips]
        runs = []
        for combination in itertools.product(*axes):
            varying = {key: value for part in combination for key, value in part.items()}
            runs.append(self._build(varying))
        return tuple(runs)

    def _location(self, key: str) -> str:
        if key in self.grid:
            return "[grid]"
        for number, table in enumerate(self.zips, start=1):
            if key in table:
                return f"[[zip]] #{number}"
        return "[base]"

    def _build(self, varying: dict[str, Any]) -> TrainConfig:
        """One run; on failure, blame the key whose value alone (over the defaults) fails alike."""
        fields = {**varying, **self.base}
        try:
            return TrainConfig(**fields)
        except InitlabError as error:
            for key, value in fields.items():
                try:
                    TrainConfig(**{key: value})
                except InitlabError as alone:
                    if str(alone) == str(error):
                        raise InitlabError(f"{self.source}: {self._location(key)} '{key}': {error}") from None
            together = ", ".join(f"{key}={value!r}" for key, value in varying.items())
            raise InitlabError(f"{self.source}: the run with {together or 'the [base] values'}: {error}") from None


def load_sweep(path: str | os.PathLike[str]) -> Sweep:
    """Read and validate the sweep file at ``path`` (format in the module docstring)."""
    source = Path(path)
    try:
        with source.open("rb") as file:
            data = tomllib.load(file)
    except OSError as error:
        raise InitlabError(f"{source}: cannot read sweep file: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise InitlabError(f"{source}: not a text file (TOML must be UTF-8)") from None
    except tomllib.TOMLDecodeError as error:
        raise InitlabError(f"{source}: TOML syntax error: {error}") from None
    return _parse(data, source)


def _parse(data: dict[str, Any], source: Path) -> Sweep:
    for key in data:
        if key not in _TOP_LEVEL:
            raise InitlabError(f"{source}: {unknown('top-level key', key, _TOP_LEVEL)}")
    name = data.get("name", source.stem)
    if not isinstance(name, str):
        raise InitlabError(f"{source}: 'name' must be a string, got {name!r}")
    for table in ("base", "grid"):
        if not isinstance(data.get(table, {}), dict):
            raise InitlabError(f"{source}: '{table}' must be a table: write [{table}] on its own line")
    zip_tables = data.get("zip", [])
    if not isinstance(zip_tables, list) or not all(isinstance(table, dict) for table in zip_tables):
        raise InitlabError(f"{source}: 'zip' must be an array of tables: write each one as [[zip]]")

    given_in: dict[str, str] = {}

    def claim(where: str, key: str) -> None:
        if key not in _FIELDS:
            raise InitlabError(f"{source}: {where}: {unknown('config key', key, _FIELDS)}")
        if key in given_in:
            raise InitlabError(
                f"{source}: {where} '{key}': already given in {given_in[key]}; give each field in one place"
            )
        given_in[key] = where

    def convert(where: str, key: str, value: Any) -> Any:
        try:
            return _convert(key, value)
        except InitlabError as error:
            raise InitlabError(f"{source}: {where} '{key}': {error}") from None

    def value_list(where: str, key: str, values: Any) -> list[Any]:
        if where == "[grid]" and key == "seed" and isinstance(values, str):
            try:
                values = parse_seeds(values, name="a seed range")
            except InitlabError as error:
                raise InitlabError(f"{source}: {where} '{key}': {error}") from None
        if not isinstance(values, list) or not values:
            raise InitlabError(f"{source}: {where} '{key}': must be a non-empty list of values, got {values!r}")
        if key in _LIST_FIELDS and not all(isinstance(v, list) for v in values):
            raise InitlabError(f"{source}: {where} '{key}': takes a list of lists, such as [[64], [128, 64]]")
        return [convert(where, key, value) for value in values]

    base = {}
    for key, value in data.get("base", {}).items():
        claim("[base]", key)
        base[key] = convert("[base]", key, value)
    grid = {}
    for key, values in data.get("grid", {}).items():
        claim("[grid]", key)
        grid[key] = value_list("[grid]", key, values)
    zips = []
    for number, table in enumerate(zip_tables, start=1):
        where = f"[[zip]] #{number}"
        if not table:
            raise InitlabError(f"{source}: {where}: empty; list at least one field")
        for key in table:
            claim(where, key)
        converted = {key: value_list(where, key, values) for key, values in table.items()}
        if len({len(values) for values in converted.values()}) > 1:
            lengths = ", ".join(f"{key}: {len(values)}" for key, values in converted.items())
            raise InitlabError(f"{source}: {where}: lists must have equal lengths, got {lengths}")
        zips.append(converted)

    sweep = Sweep(name=name, base=base, grid=grid, zips=zips, source=source)
    sweep.expand()  # builds every run once: a sweep that loads is valid throughout
    return sweep


def group_key(config: TrainConfig) -> tuple[Any, ...]:
    """What must be equal for runs to share one compiled program (see ``ensembles.compatibility_key``).

    Every field except the initializers, the seed and the optimizer's learning rate; the
    optimizer's kind and other arguments count, with defaults filled in.
    """
    from initlab.training.ensembles import compatibility_key

    return compatibility_key(config)


def group(configs: Iterable[TrainConfig]) -> list[list[TrainConfig]]:
    """``configs`` split by ``group_key``: groups in order of first appearance, runs in input order."""
    from initlab.training.ensembles import group_indices

    configs = list(configs)
    return [[configs[i] for i in indices] for indices in group_indices(configs)]
