"""Notebook 01 (single-task baselines): the floor, the baseline table and the learning curves.

Everything here trains through the fair-comparison protocol (:mod:`mtl_helpers.protocol`):
a single-task baseline is :func:`mtl_helpers.course.single_task_arm`, and a point of a
learning curve is the same arm restricted to ``n`` random training rows. The protocol gives
that arm as many optimisation steps as the full training set gets
(:meth:`~mtl_helpers.data.Budget.max_epochs`) and keeps its best epoch on validation, so the
curve measures *less data*, not *less training*. :func:`curve_table` and :func:`step_gains`
read a curve the course's way: mean ± std per size, and the gain of each step up the curve
as a paired difference over seeds.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import replace

import pandas as pd
import torch
from torch import Tensor

from ..course import single_task_arm
from ..data import MultiTaskDataset
from ..metrics import PairedDifference, format_mean_std, paired_difference
from ..protocol import Arm, Comparison, Run, run
from ..workers import side_by_side


def majority_accuracy(labels: Tensor) -> float:
    """Accuracy of always predicting the most frequent label: max_c n_c / N.

    The floor every classifier must clear (for balanced classes it is about 1 / number of classes).
    """
    if labels.ndim != 1 or len(labels) == 0 or labels.is_floating_point():
        raise ValueError(f"majority_accuracy needs a non-empty 1-D tensor of integer labels, got "
                         f"shape {tuple(labels.shape)} and dtype {labels.dtype}.")
    return torch.bincount(labels).max().item() / len(labels)


def baseline_table(comparison: Comparison, dataset: MultiTaskDataset, digits: int = 3) -> pd.DataFrame:
    """The baselines as one row per task: metric, test mean ± std over the seeds, the chosen lr,
    the kept epoch (median over seeds), the search the arm got and the seconds per run (shown,
    never claimed)."""
    table = comparison.table(digits=digits)
    rows = {}
    for arm, runs in comparison.runs.items():
        task = dataset.task(list(runs[0].test)[0])
        rows[arm] = {"metric": task.metric_name, f"test ({len(runs)} seeds)": table.loc[arm, task.name],
                     "lr": table.loc[arm, "lr"], "best epoch": table.loc[arm, "best epoch"],
                     "search": table.loc[arm, "search"], "s per run": round(runs[0].seconds, 1)}
    return pd.DataFrame(rows).T


def subset_arm(dataset: MultiTaskDataset, task: str, n_rows: int) -> Arm:
    """The single-task baseline of ``task`` trained on ``n_rows`` random training rows (which
    rows depends on the seed, :meth:`~mtl_helpers.data.Split.take`)."""
    if not 0 < n_rows <= len(dataset.train):
        raise ValueError(f"n_rows must be in 1..{len(dataset.train)} (the training rows), got {n_rows}.")
    arm = single_task_arm(dataset, task, name=f"STL {task}, {n_rows} rows")
    return replace(arm, train=lambda seed: dataset.train.take(n_rows, seed=seed))


def learning_curve(dataset: MultiTaskDataset, task: str, sizes: Sequence[int], lr: float,
                   seeds: Sequence[int] = (0, 1, 2), device: torch.device | str | None = None) -> dict[int, list[Run]]:
    """The single-task net of ``task`` trained on ``n`` rows for each ``n`` in ``sizes`` and each seed.

    Every run is :func:`mtl_helpers.protocol.run` at the given ``lr`` (the learning rate tuned
    on the full set: it is not searched again per size). The protocol gives ``n`` rows
    ⌈E·⌈N/B⌉ / ⌈n/B⌉⌉ epochs, i.e. the optimisation steps of E epochs over all N rows (batch B),
    and keeps the best epoch on validation. The runs train side by side
    (:func:`~mtl_helpers.workers.side_by_side`). Returns ``{n: [Run per seed]}``.
    """
    if not sizes or not seeds:
        raise ValueError("learning_curve needs at least one size and one seed.")
    jobs = {(n, s): functools.partial(run, subset_arm(dataset, task, n), dataset, lr=lr, seed=s, device=device)
            for n in sizes for s in seeds}
    runs = dict(zip(jobs, side_by_side(list(jobs.values()))))
    return {n: [runs[(n, s)] for s in seeds] for n in sizes}


def fraction_sizes(dataset: MultiTaskDataset, fractions: Sequence[float]) -> list[int]:
    """The number of training rows that each fraction of the training set keeps: round(f·N), at
    least 1 — as many rows as :meth:`~mtl_helpers.data.Split.with_label_fraction` keeps labels."""
    n = len(dataset.train)
    if not fractions or not all(0.0 < f <= 1.0 for f in fractions):
        raise ValueError(f"fractions must be a non-empty list of values in (0, 1], got {list(fractions)}.")
    return [max(1, round(f * n)) for f in fractions]


def step_gains(curve: Mapping[int, Sequence[float]]) -> dict[tuple[int, int], PairedDifference]:
    """The gain of each step up a learning curve, ``{(n, m): metric(m) − metric(n)}`` for
    consecutive sizes n < m, paired by seed (``curve[n][i]`` and ``curve[m][i]`` share seed i)."""
    sizes = sorted(curve)
    if len(sizes) < 2:
        raise ValueError(f"step_gains needs at least two sizes, got {sizes}.")
    return {(a, b): paired_difference(curve[b], curve[a]) for a, b in zip(sizes, sizes[1:])}


def curve_table(curve: Mapping[int, Sequence[Run]], dataset: MultiTaskDataset, task: str,
                digits: int = 3) -> pd.DataFrame:
    """A learning curve as a table, one row per size: the share of the training rows, the
    training length the protocol gave it (epochs × steps per epoch), the kept epoch (median over
    seeds), the test metric (mean ± std) and the gain over the previous size (paired, 95 %)."""
    budget, n_full = dataset.require_budget(), len(dataset.train)
    values = {n: [r.test[task] for r in runs] for n, runs in sorted(curve.items())}
    gains = step_gains(values) if len(values) > 1 else {}
    metric = dataset.task(task).metric_name
    rows = {}
    for i, (n, runs) in enumerate(sorted(curve.items())):
        epochs = [r.best_epoch for r in runs]
        rows[f"{n:,} rows"] = {
            "share": f"{n / n_full:.0%}",
            "epochs × steps": f"{runs[0].max_epochs} × {budget.steps_per_epoch(n)}",
            "kept epoch": sorted(epochs)[len(epochs) // 2],
            f"test {metric} ({len(runs)} seeds)": format_mean_std(values[n], digits),
            "gain over the previous size": str(gains[(sorted(values)[i - 1], n)]) if i else ""}
    return pd.DataFrame(rows).T
