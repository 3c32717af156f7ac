"""Notebook 03 (soft parameter sharing): its sweeps, tables and the widget's figures.

Every model here is trained by the fair-comparison protocol's runners
(:func:`mtl_helpers.batched.batched_runner` for the α sweeps, which trains all α of one seed as
one batched model, or :func:`mtl_helpers.protocol.sequential_runner`); this module only says
*which* runs and how to read them:

* :func:`sweep` — every setting of an arm at one given learning rate, for every seed, grouped
  by setting; :func:`searched` records that search for :meth:`Comparison.table`'s "search" column;
* :func:`per_seed`, :func:`best_on_validation` — choose a setting on validation (exercise 3's
  reference answer);
* :func:`grid_frame` — one row per setting: mean test metric per task and the towers' distance;
* :func:`alpha_axis`, :func:`plot_tower_scatter`, :func:`plot_alpha_panel` — the figures and the
  widget's callback;
* :func:`mean_mixing` — what cross-stitch units learned, averaged over channels and seeds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from torch import Tensor

from ..batched import batched_runner
from ..data import MultiTaskDataset
from ..models import CrossStitch, SoftSharing, tower_distance
from ..protocol import Arm, Run, Runner, Tuned

Sweep = dict[Any, list[Run]]  # {setting: one Run per seed, in seed order}


def sweep(arm: Arm, dataset: MultiTaskDataset, lr: float, seeds: Sequence[int], runner: Runner = batched_runner,
          device: torch.device | str | None = None) -> Sweep:
    """Every setting of ``arm`` at the one learning rate ``lr`` (no lr search), for every seed.

    The default runner trains all settings of one seed as one batched model; each run keeps its
    best epoch on validation (the protocol's training length). Returns ``{setting: [runs]}``.
    """
    if not seeds:
        raise ValueError("sweep needs at least one seed.")
    runs = runner(arm, dataset, lr, list(arm.settings), list(seeds), device=device)
    return {setting: [r for r in runs if r.setting == setting] for setting in arm.settings}


def searched(name: str, result: Sweep, chosen: Any) -> Tuned:
    """The record of a one-lr sweep in which ``chosen`` was picked: for a
    :class:`~mtl_helpers.protocol.Comparison`'s "search" column ("1 lrs × k settings, …")."""
    if chosen not in result:
        raise ValueError(f"The chosen setting {chosen!r} is not in the sweep {list(result)}.")
    return Tuned(name, result[chosen][0].lr, chosen, {(runs[0].lr, s): runs for s, runs in result.items()})


def per_seed(result: Sweep, task: str) -> dict[Any, dict[str, list[float]]]:
    """``{setting: {"val": [per seed], "test": [per seed]}}`` of one task's metric."""
    return {s: {split: [getattr(r, split)[task] for r in runs] for split in ("val", "test")}
            for s, runs in result.items()}


def best_on_validation(results: Mapping[Any, Mapping[str, Sequence[float]]]) -> Any:
    """The setting with the best *mean validation* metric over seeds (higher is better); the
    test split plays no part in the choice, so the test number reported for it stays honest."""
    if not results:
        raise ValueError("best_on_validation needs at least one setting.")
    return max(results, key=lambda s: float(np.mean(results[s]["val"])))


def grid_frame(result: Sweep, split: str = "test") -> pd.DataFrame:
    """One row per setting: the mean metric per task over seeds, and for soft-sharing models
    the towers' mean relative distance (:func:`~mtl_helpers.models.tower_distance`)."""
    rows = {}
    for setting, runs in result.items():
        row = {task: float(np.mean([getattr(r, split)[task] for r in runs])) for task in getattr(runs[0], split)}
        if isinstance(runs[0].model, SoftSharing):
            row["tower distance"] = float(np.mean([tower_distance(r.model) for r in runs]))
        rows[setting] = row
    return pd.DataFrame(rows).T.rename_axis("setting")


def alpha_axis(alphas: Sequence[float]) -> list[float]:
    """x positions for α on a log axis: α = 0 is drawn one decade left of the smallest positive α."""
    positive = [a for a in alphas if a > 0]
    if not positive:
        raise ValueError(f"alpha_axis needs at least one α > 0, got {list(alphas)}.")
    return [a if a > 0 else min(positive) / 10 for a in alphas]


def mean_mixing(models: Sequence[CrossStitch]) -> list[Tensor]:
    """Per stitch: the (T, T) mixing matrix a, averaged over channels and over ``models`` (seeds).
    Row i is what task i receives, column j what it takes from task j."""
    if not models:
        raise ValueError("mean_mixing needs at least one trained CrossStitch model.")
    return [torch.stack([m.mixing(layer).detach().cpu().mean(0) for m in models]).mean(0)
            for layer in range(len(models[0].units))]


# --------------------------------------------------------------------------- figures
def plot_tower_scatter(model: SoftSharing, ax: plt.Axes | None = None, layer: int = 0,
                       max_points: int = 1500, title: str | None = None) -> plt.Axes:
    """Weights of layer ``layer`` in tower A (x) against tower B (y): on the diagonal = shared."""
    if len(model.towers) != 2:
        raise ValueError("plot_tower_scatter compares exactly two towers.")
    groups = model.coupled_parameters()
    if not 0 <= layer < len(groups):
        raise ValueError(f"layer must be in 0..{len(groups) - 1}, got {layer}.")
    a, b = (t.detach().cpu().reshape(-1) for t in groups[layer])
    keep = torch.randperm(len(a), generator=torch.Generator().manual_seed(0))[:max_points]
    ax = ax or plt.subplots(figsize=(3.2, 3.2))[1]
    lim = float(max(a.abs().max(), b.abs().max()))
    ax.plot([-lim, lim], [-lim, lim], color="grey", lw=0.8, ls="--")
    ax.scatter(a[keep], b[keep], s=3, alpha=0.4)
    ax.set_xlabel(f"tower {model.task_names[0]}")
    ax.set_ylabel(f"tower {model.task_names[1]}")
    ax.set_title(title or f"layer-{layer} weights", fontsize=9)
    ax.set_aspect("equal")
    return ax


def plot_alpha_panel(result: Sweep, alpha: float, task: str, reference: float | None = None,
                     hard: float | None = None, reference_label: str = "independent towers (α = 0)") -> plt.Figure:
    """The widget's figure for one α of a precomputed :func:`sweep` of soft-sharing models.

    Left: the first seed's first-layer weights, tower A against tower B; right: ``task``'s mean
    test metric against α, this α circled, with horizontal lines for ``reference`` and ``hard``.
    """
    if alpha not in result:
        raise ValueError(f"α={alpha} was not precomputed; choose one of {sorted(result)}.")
    alphas = sorted(result)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(8.5, 3.3))
    models = [r.model for r in result[alpha]]
    distance = float(np.mean([tower_distance(m) for m in models]))
    plot_tower_scatter(models[0], ax0, title=f"α = {alpha:g}: relative distance {distance:.2f}")
    xs = alpha_axis(alphas) if len(alphas) > 1 else [1.0]
    means = [float(np.mean([r.test[task] for r in result[a]])) for a in alphas]
    ax1.plot(xs, means, marker="o", label="L2 coupling")
    if reference is not None:
        ax1.axhline(reference, color="grey", ls="--", lw=1, label=reference_label)
    if hard is not None:
        ax1.axhline(hard, color="C3", ls=":", lw=1.2, label="hard sharing")
    i = alphas.index(alpha)
    ax1.scatter([xs[i]], [means[i]], s=120, facecolors="none", edgecolors="k", zorder=3)
    ax1.set_xscale("log")
    ax1.set_xlabel("α (leftmost point: α = 0)")
    ax1.set_ylabel(f"test {task}")
    ax1.legend(fontsize=7)
    fig.tight_layout()
    return fig
