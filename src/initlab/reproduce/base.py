"""What a reproduction is: a paper, its claim, a scaled-down set-up, and checks with bands fixed before the run.

A :class:`Reproduction` is registered under a short name (``he2015``) with the paper it
reproduces, the claim, the set-up and why it still tests the claim, and a default budget on 2
cores. Running it (:func:`run`) gives a :class:`ReproductionResult`: the checks (each the claim,
the paper's published number where there is one, initlab's measured number, the band that counts
as agreement, and whether it passed), the figures it redrew, and its data. Bands come from the
paper and from theory (and from the sample's own standard errors, for statistical quantities):
they are written in each reproduction's code before anything is measured, never tuned after.

Everything lands in ``out/NAME/``: ``result.json``, the figures, and ``report.html``; the result
is also recorded in the store ``out/runs.sqlite`` (document ``reproduction:NAME``), beside any
training runs the reproduction made.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from initlab.errors import InitlabError, unknown
from initlab.files import json_text, make_folder, write_text

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``."""


@dataclass(frozen=True)
class Paper:
    authors: str
    year: int
    title: str
    venue: str = ""

    def citation(self) -> str:
        return f"{self.authors} ({self.year}). {self.title}." + (f" {self.venue}." if self.venue else "")


@dataclass(frozen=True)
class Check:
    """One claim, measured: ``passed`` when ``measured`` is finite and inside ``band`` (inclusive)."""

    name: str
    claim: str
    measured: float
    band: tuple[float, float]
    published: float | None = None
    basis: str = ""
    """Where the band comes from (the paper, a closed form, a number of standard errors)."""
    reason: str = ""
    """Why a failed check failed, where it is known."""

    @property
    def passed(self) -> bool:
        low, high = self.band
        return math.isfinite(self.measured) and low <= self.measured <= high

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "claim": self.claim, "published": self.published, "measured": self.measured,
            "band": list(self.band), "passed": self.passed, "basis": self.basis,
            **({"reason": self.reason} if self.reason and not self.passed else {}),
        }  # fmt: skip


@dataclass
class Context:
    """What a reproduction's code receives: its folder, the scale, the seed and a progress callback."""

    folder: Path
    store: Path
    full: bool = False
    seed: int = 0
    progress: Progress | None = None

    def stage(self, name: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(name, done, total)


@dataclass
class Outcome:
    """What a reproduction's code returns."""

    checks: list[Check]
    figures: list[tuple[Path, str]]
    """``(path, caption)`` of every figure it drew."""
    data: dict[str, Any] = field(default_factory=dict)
    setup: str = ""
    """The set-up as run (sizes, seeds, counts), when it depends on ``--full``."""


@dataclass(frozen=True)
class Reproduction:
    name: str
    paper: Paper
    claim: str
    setup: str
    why: str
    budget_s: float
    """The default run's budget on 2 cores, in seconds."""
    full_setup: str
    run: Callable[[Context], Outcome] = field(repr=False)


@dataclass
class ReproductionResult:
    name: str
    paper: Paper
    claim: str
    setup: str
    why: str
    budget_s: float
    elapsed_s: float
    full: bool
    checks: list[Check]
    figures: list[tuple[str, str]]
    data: dict[str, Any]
    folder: str

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "paper": {"authors": self.paper.authors, "year": self.paper.year,
                                         "title": self.paper.title, "venue": self.paper.venue},
            "claim": self.claim, "setup": self.setup, "why": self.why, "full": self.full,
            "budget_s": self.budget_s, "elapsed_s": self.elapsed_s, "within_budget": self.elapsed_s <= self.budget_s,
            "passed": self.passed, "checks": [check.to_dict() for check in self.checks],
            "figures": [{"path": path, "caption": caption} for path, caption in self.figures],
            "folder": self.folder, "data": self.data,
        }  # fmt: skip


DATA_FILE: str | None = None
"""The MNIST file (Keras's ``mnist.npz`` layout) the papers' training runs read; ``None``: the shipped
one. The pipeline's tests point it at a few hundred generated images."""


def train(context: Context, labels: list[str], configs: list[Any]) -> dict[str, dict[str, Any]]:
    """Train ``configs`` into the reproduction's store (finished runs reused, labelled ``NAME: label``);
    each config's stored run (:meth:`~initlab.experiments.store.Store.runs`' rows), by config hash."""
    from initlab.experiments.executors import run_configs
    from initlab.experiments.store import Store
    from initlab.training.config import TrainConfig

    labels = [f"{context.folder.name}: {label}" for label in labels]
    run_configs(configs, context.store, labels=labels, progress=lambda done, total: context.stage("training", done, total))
    wanted = {config.config_hash() for config in configs}
    with Store(context.store, read_only=True) as store:
        return {key: stored for stored in store.runs()
                if (key := TrainConfig.from_dict(stored["config"]).config_hash()) in wanted}  # fmt: skip


def train_with_parameters(context: Context, labels: list[str], configs: list[Any]) -> list[Any]:
    """Train ``configs`` and return their :class:`~initlab.training.loop.TrainResult` (final parameters
    included), each run also recorded in the reproduction's store (labelled ``NAME: label``). Trained
    anew each time: the store keeps runs' metrics, not their parameters."""
    import dataclasses

    from initlab.experiments.store import Store, library_versions
    from initlab.training.ensembles import train_many

    if DATA_FILE is not None:
        configs = [dataclasses.replace(config, data_file=DATA_FILE) for config in configs]
    context.stage("training", 0, len(configs))
    results = train_many(configs)
    context.stage("training", len(configs), len(configs))
    versions = library_versions()
    with Store(context.store) as store:
        ids = store.add_runs(configs, labels=[f"{context.folder.name}: {label}" for label in labels])
        for run_id, result in zip(ids, results):
            store.record_result(
                run_id, result.history, status="done" if result.diverged_epoch is None else "diverged",
                diverged_epoch=result.diverged_epoch, timings=result.timings,
                versions={**versions, "matmul": result.matmul, "initializers": result.initializers},
            )  # fmt: skip
    return results


def final_accuracies(context: Context, runs: list[tuple[str, int]], configs: list[Any]) -> dict[str, dict[int, float]]:
    """Train ``configs`` (run ``i`` is ``runs[i] = (name, seed)``) into the reproduction's store, finished
    runs reused, and return their final validation accuracies by name, then seed (NaN: diverged)."""
    import dataclasses

    from initlab.experiments.store import Store

    if DATA_FILE is not None:
        configs = [dataclasses.replace(config, data_file=DATA_FILE) for config in configs]
    stored = train(context, [name for name, _ in runs], configs)
    out: dict[str, dict[int, float]] = {}
    with Store(context.store, read_only=True) as store:
        for (name, seed), config in zip(runs, configs):
            run = stored.get(config.config_hash())
            history = store.history(run["run_id"]) if run is not None and run["status"] == "done" else {}
            out.setdefault(name, {})[seed] = (history.get("val_accuracy") or [math.nan])[-1]
    return out


REPRODUCTIONS: dict[str, Reproduction] = {}
PAPERS = (
    "glorot2010", "saxe2014", "he2015", "mishkin2016", "schoenholz2017", "pennington2017", "hanin2018", "xiao2018",
    "zhang2019", "wang2022", "zhao2022", "yang2022",
)  # fmt: skip
"""The paper reproductions' modules, in the order ``reproduce all`` runs them."""


def load_all() -> None:
    """Import every paper's module (each registers its reproduction)."""
    import importlib

    for name in PAPERS:
        importlib.import_module(f"initlab.reproduce.{name}")


def register(reproduction: Reproduction) -> Reproduction:
    REPRODUCTIONS[reproduction.name] = reproduction
    return reproduction


def get(name: str) -> Reproduction:
    load_all()
    if name not in REPRODUCTIONS:
        raise unknown("reproduction", name, ["all", "seed", *sorted(REPRODUCTIONS)])
    return REPRODUCTIONS[name]


def run(name: str, out: str | Path, *, full: bool = False, seed: int = 0, progress: Progress | None = None) -> ReproductionResult:
    """Run reproduction ``name`` into ``out/NAME/`` (store: ``out/runs.sqlite``) and return its result."""
    from initlab.experiments.store import Store

    reproduction = get(name)
    out = make_folder(out)
    folder = make_folder(out / name)
    store = out / "runs.sqlite"
    started = time.perf_counter()
    outcome = reproduction.run(Context(folder=folder, store=store, full=full, seed=seed, progress=progress))
    elapsed = time.perf_counter() - started
    if not outcome.checks:
        raise InitlabError(f"reproduction {name} measured nothing")  # (a programming error, said plainly)
    result = ReproductionResult(
        name=name, paper=reproduction.paper, claim=reproduction.claim,
        setup=outcome.setup or (reproduction.full_setup if full else reproduction.setup), why=reproduction.why,
        budget_s=reproduction.budget_s, elapsed_s=elapsed, full=full, checks=outcome.checks,
        figures=[(str(path), caption) for path, caption in outcome.figures], data=outcome.data, folder=str(folder),
    )  # fmt: skip
    document = result.to_dict()
    write_text(folder / "result.json", json_text(document))
    with Store(store) as writer:
        writer.record_document(f"reproduction:{name}", document)
    from initlab.report import reproduction_report

    reproduction_report([document], folder / "report.html", title=f"{reproduction.paper.authors} {reproduction.paper.year}")
    return result


def listing() -> list[dict[str, Any]]:
    """Every registered reproduction with its paper and budget (``initlab reproduce --list``)."""
    load_all()
    return [
        {"name": r.name, "paper": r.paper.citation(), "claim": r.claim, "budget_s": r.budget_s}
        for r in sorted(REPRODUCTIONS.values(), key=lambda r: r.name)
    ]


__all__ = [
    "Check", "Context", "Outcome", "Paper", "Progress", "REPRODUCTIONS", "Reproduction", "ReproductionResult",
    "PAPERS", "final_accuracies", "get", "listing", "load_all", "register", "run", "train", "train_with_parameters",
]  # fmt: skip
