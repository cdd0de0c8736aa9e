"""Yang et al. (2022), Tensor Programs V: under muP the best learning rate stays put as width grows; under SP it moves.

The paper's Figure 1 (and 3, for MLPs): training loss against log2 learning rate, one curve per
width, SP beside muP; SP's optimum drifts with width while muP's stays, and under muP wider is
better. Here: :func:`initlab.scaling.transfer.transfer` on MNIST, each width's learning-rate grid
(x seeds) one vmapped ensemble of the training engine, Adam, a 2-hidden-layer ReLU MLP.
"""

from __future__ import annotations

from initlab.reproduce.base import Check, Context, Outcome, Paper, Reproduction, register

PAPER = Paper(
    "Greg Yang, Edward J. Hu, Igor Babuschkin, Szymon Sidor, Xiaodong Liu, David Farhi, Nick Ryder, Jakub Pachocki, "
    "Weizhu Chen and Jianfeng Gao", 2022,
    "Tensor Programs V: Tuning Large Neural Networks via Zero-Shot Hyperparameter Transfer", "arXiv:2203.03466",
)  # fmt: skip
WIDTHS, FULL_WIDTHS = (128, 256, 512, 1024), (128, 256, 512, 1024, 2048, 4096)
LOG2_RATES = tuple(range(-12, -3))
SEEDS, EXAMPLES, FULL_EXAMPLES = (0, 1), 4096, 16384
MUP_MAX_SHIFT = 1.0
"""muP's optimum may move one grid step (a factor 2) across the widths: the issue's criterion."""
SP_MIN_SHIFT = 2.0
"""SP's must move at least two (a factor 4): the output layer's Adam updates grow as the width (8x here)."""


def _run(context: Context) -> Outcome:
    from initlab.scaling.transfer import transfer
    from initlab.viz.plots import save
    from initlab.viz.scaling import TransferDisplay

    widths = FULL_WIDTHS if context.full else WIDTHS
    examples = FULL_EXAMPLES if context.full else EXAMPLES
    total = 2 * len(widths)
    done = [0]

    def progress(name: str, width: int, models: int) -> None:
        done[0] += 1
        context.stage("learning-rate grids", done[0], total)

    context.stage("learning-rate grids", 0, total)
    result = transfer(("sp", "mup"), widths=widths, log2_learning_rates=LOG2_RATES,
                      seeds=tuple(context.seed + s for s in SEEDS), train_examples=examples,
                      eval_examples=min(2048, examples), on_width=progress)  # fmt: skip
    step = result.grid_step
    checks = [
        Check(
            name=f"muP: largest distance between two widths' optimal learning rates ({widths[0]}-{widths[-1]})",
            claim="under muP the optimal learning rate does not move with width", measured=result.max_shift_steps("mup"),
            band=(0.0, MUP_MAX_SHIFT), published=0.0,
            basis=f"at most {MUP_MAX_SHIFT:g} grid step of {step:g} in log2 (a factor 2), over {len(SEEDS)} seeds' mean",
        ),
        Check(
            name=f"SP: largest distance between two widths' optimal learning rates ({widths[0]}-{widths[-1]})",
            claim="under SP the optimal learning rate moves with width (smaller for wider networks under Adam)",
            measured=result.max_shift_steps("sp"), band=(SP_MIN_SHIFT, float(len(LOG2_RATES))),
            basis=f"at least {SP_MIN_SHIFT:g} grid steps (a factor 4) across a {widths[-1] // widths[0]}x range of widths",
        ),
    ]  # fmt: skip
    best = result.mean_losses("mup").min(axis=1)
    checks.append(Check(
        name=f"muP: best loss of width {widths[-1]} minus that of width {widths[0]}",
        claim="under muP wider is better: the widest network's best loss is the lowest",
        measured=float(best[-1] - best[0]), band=(-10.0, 0.0),
        basis="negative: the widest is better at its best learning rate",
        reason="after one short epoch width changes muP's loss by less than the seeds do" if best[-1] > best[0] else "",
    ))  # fmt: skip
    figure = context.folder / "transfer.png"
    save(TransferDisplay(result).plot().figure_, figure)
    caption = (
        "As the paper's Figure 1: training loss after training against log2 learning rate, a curve per width "
        f"(darker: wider; bands: 1 standard error over {len(SEEDS)} seeds; stars: each width's optimum), SP beside muP, "
        f"MNIST's first {examples} examples, one epoch of Adam, a 2-hidden-layer ReLU MLP."
    )
    setup = (f"784 -> n -> n -> 10 ReLU MLPs, n in {', '.join(map(str, widths))}, base width {widths[0]}, Adam at "
             f"2^{LOG2_RATES[0]}..2^{LOG2_RATES[-1]}, {len(SEEDS)} seeds, {examples} MNIST examples, one epoch")  # fmt: skip
    return Outcome(checks=checks, figures=[(figure, caption)], data=result.to_dict(), setup=setup)


register(Reproduction(
    name="yang2022", paper=PAPER,
    claim="Under muP the optimal learning rate of a network is the same at every width, so it transfers from a small "
          "network to a large one; under the standard parametrization it shifts with width.",
    setup=f"2-hidden-layer ReLU MLPs of widths {WIDTHS[0]}-{WIDTHS[-1]} on MNIST, {len(LOG2_RATES)} learning rates x "
          f"{len(SEEDS)} seeds each, one epoch of Adam on {EXAMPLES} examples",
    why="The shift under SP comes from the output layer's updates growing with width, which an 8x range of widths on "
        "an MLP already shows (3 grid steps predicted); each width's grid is one vmapped ensemble, so the 144 "
        "trainings fit a laptop's minutes.",
    budget_s=150.0, full_setup=f"widths {FULL_WIDTHS[0]}-{FULL_WIDTHS[-1]}, {FULL_EXAMPLES} examples",
    run=_run,
))  # fmt: skip
