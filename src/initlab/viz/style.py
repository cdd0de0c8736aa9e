"""How initlab's figures look and are laid out: the house style, panels, legends, verbatim text.

Shared by the figures of a results store (:mod:`initlab.viz.figures`) and the report. matplotlib is
imported inside each function, so importing this module stays fast.

Example:
    >>> with style():
    ...     figure, axes, created = panels(None, 3, columns=2, size=(3.5, 2.7))
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from initlab.analysis.results import PALETTE
from initlab.errors import InitlabError

_RC = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e5e5e5",
    "grid.linewidth": 0.6,
    "axes.axisbelow": True,
    "axes.linewidth": 0.7,
    "lines.linewidth": 1.4,
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "figure.dpi": 100,
    "savefig.dpi": 200,
}

@contextmanager
def style() -> Iterator[None]:
    """The house style of initlab's figures (fonts, grid, colour cycle), as a matplotlib rc context."""
    import matplotlib as mpl
    from cycler import cycler

    with mpl.rc_context({**_RC, "axes.prop_cycle": cycler(color=PALETTE)}):
        yield


def mpl_text(text: str) -> str:
    """Text shown verbatim by matplotlib: ``$`` is not mathtext, a leading ``_`` is not hidden."""
    text = str(text).replace("$", r"\$")
    return " " + text if text.startswith("_") else text


def panels(
    ax: Any, count: int, *, columns: int, size: tuple[float, float], **subplots: Any
) -> tuple[Any, list[Any], bool]:
    """(figure, ``count`` axes, created): new axes, or the caller's (one Axes, or a sequence)."""
    import matplotlib.pyplot as plt

    if ax is None:
        columns = max(1, min(columns, count))
        rows = math.ceil(count / columns)
        figure, grid = plt.subplots(
            rows,
            columns,
            figsize=(size[0] * columns, size[1] * rows + 0.5),
            layout="constrained",
            squeeze=False,
            **subplots,
        )
        axes = list(grid.flat)
        for extra in axes[count:]:
            extra.set_visible(False)
        return figure, axes[:count], True
    axes = [ax] if hasattr(ax, "plot") else list(np.ravel(np.asarray(ax, dtype=object)))
    if len(axes) != count:
        raise InitlabError(f"this figure draws {count} panel(s); got {len(axes)} axes")
    return axes[0].figure, axes, False


Entries = list[tuple[str, dict[str, Any]]]


def legend(figure: Any, axes: list[Any], entries: Entries, created: bool, key: Entries = ()) -> None:
    """Configurations below the figure, the line-style ``key`` at its right (in the caller's axes: inside)."""
    from matplotlib.lines import Line2D

    if key:
        key_handles, key_labels = [Line2D([], [], **kwargs) for _, kwargs in key], [label for label, _ in key]
        if created:
            figure.legend(key_handles, key_labels, loc="outside right upper", frameon=False, handlelength=2.4)
        else:
            key_legend = axes[0].legend(key_handles, key_labels, loc="best", frameon=False, handlelength=2.4)
            axes[0].add_artist(key_legend)  # so that a second legend on the same axes does not replace it
    handles = [Line2D([], [], **kwargs) for _, kwargs in entries]
    labels = [mpl_text(label) for label, _ in entries]
    if not handles:
        return
    if created:
        longest = max(len(label) for label in labels)
        per_row = figure.get_figwidth() * 14  # characters of 8 pt text across the figure
        columns = max(1, min(len(labels), int(per_row // (longest + 6))))
        rows = math.ceil(len(labels) / columns)
        # matplotlib fills a legend column by column; this order reads row by row, as in the other figures
        order = [r * columns + c for c in range(columns) for r in range(rows) if r * columns + c < len(labels)]
        handles, labels = [handles[i] for i in order], [labels[i] for i in order]
        # Grow the figure by the legend's rows, so that many configurations do not squash the axes.
        figure.set_figheight(figure.get_figheight() + 0.19 * rows)
        figure.legend(handles, labels, loc="outside lower center", ncol=columns, frameon=False)
    else:
        axes[-1].legend(handles, labels, loc="best", frameon=False)


def percent_axis(ax: Any, highs: Iterable[float]) -> None:
    from matplotlib.ticker import PercentFormatter

    top = max([h for h in highs if math.isfinite(h)] or [0.0])
    ax.set_ylim(0.0, min(1.02, max(0.05, top * 1.1)))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=None))
