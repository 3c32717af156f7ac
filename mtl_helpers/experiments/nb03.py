"""Notebook 03 (soft parameter sharing): its arms' plumbing, tables and the widget's figures.

Every model here is trained by the fair-comparison protocol (:func:`mtl_helpers.protocol.compare`,
with :func:`mtl_helpers.batched.batched_runner` for the penalty-weighted arms); this module only
says how to set up what the protocol does not have and how to read the runs:

* :class:`Penalties`, :func:`with_penalty_weights`, :func:`weighted_penalty` — an arm with *two*
  penalty weights (L2 coupling + weight decay) that still trains batched;
* :func:`shuffle_labels` — the control that separates "borrows the other task's features" from
  plain shrinkage: the same coupling to a tower trained on labels that carry no information;
* :func:`sweep_of`, :func:`per_seed`, :func:`best_on_validation` — one learning rate's runs of a
  tuned arm, grouped by setting; choosing a setting on validation (exercise 3's reference answer);
* :func:`grid_frame` — one row per setting: mean metric per task and the towers' distance;
* :func:`stitch_shares` — what cross-stitch units pass on, each mixing weight scaled by the size of
  the activation it multiplies; :func:`mean_mixing` — the raw weights, averaged;
* :func:`alpha_axis`, :func:`plot_tower_scatter`, :func:`plot_alpha_panel` — the figures and the
  widget's callback.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from torch import Tensor

from ..batched import batched_runner
from ..data import MultiTaskDataset, Split
from ..models import CrossStitch, SoftSharing, coupling_penalty, cross_stitch_mix, tower_distance, weight_decay_penalty
from ..protocol import Arm, Comparison, Run, Tuned, sequential_runner

Sweep = dict[Any, list[Run]]  # {setting: one Run per seed, in seed order}


# --------------------------------------------------------------------------- arms
@dataclass(frozen=True)
class Penalties:
    """The setting of an arm trained on α·coupling + λ·weight decay.

    The batched runner weights an arm's penalty by ``float(setting)``; here both weights live in
    the model instead (:func:`with_penalty_weights` stores them as buffers, which every batched
    copy holds for itself), so the setting's own weight is 1.
    """

    coupling: float
    decay: float

    def __post_init__(self) -> None:
        if min(self.coupling, self.decay) < 0:
            raise ValueError(f"Penalty weights must be >= 0, got {self}.")

    def __float__(self) -> float:
        return 1.0

    def __str__(self) -> str:
        return f"α={self.coupling:g}, λ={self.decay:g}"


def with_penalty_weights(model: SoftSharing, setting: Penalties) -> SoftSharing:
    """Store ``setting``'s two weights in ``model`` (buffers) for :func:`weighted_penalty`."""
    model.register_buffer("coupling_weight", torch.tensor(float(setting.coupling)))
    model.register_buffer("decay_weight", torch.tensor(float(setting.decay)))
    return model


def weighted_penalty(model: SoftSharing) -> Tensor:
    """α Σ‖θ_A − θ_B‖² + λ Σ_t ‖θ_t‖², with α and λ read from the model (:func:`with_penalty_weights`)."""
    return model.coupling_weight * coupling_penalty(model) + model.decay_weight * weight_decay_penalty(model)


def shuffle_labels(split: Split, task: str, seed: int = 0) -> Split:
    """``split`` with ``task``'s labels permuted among its labelled rows: the same label counts,
    no relation to the inputs left. A tower trained on them learns nothing about ``task``."""
    if task not in split.y:
        raise ValueError(f"Unknown task {task!r}; the split has {list(split.y)}.")
    mask = split.masks.get(task)
    rows = torch.arange(len(split)) if mask is None else mask.nonzero().squeeze(1)
    labels = split.y[task].clone()
    labels[rows] = labels[rows[torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))]]
    return replace(split, y={**split.y, task: labels})


def runner(arm: Arm, dataset: MultiTaskDataset, lr: float, settings: Sequence[Any], seeds: Sequence[int],
           device: torch.device | str | None = None) -> list[Run]:
    """The protocol's runs, batched where that saves time: several settings of a penalty-weighted
    arm train as one batched model (:func:`~mtl_helpers.batched.batched_runner`); a single setting
    (the chosen one, run on the remaining seeds) trains alone, which is cheaper for a model this small."""
    several = len(settings) > 1 and arm.options is None
    return (batched_runner if several else sequential_runner)(arm, dataset, lr, settings, seeds, device=device)


def combine(*comparisons: Comparison) -> Comparison:
    """One :class:`~mtl_helpers.protocol.Comparison` from several, run with the same seeds (the arms
    of a notebook are introduced section by section; their differences are still paired)."""
    if not comparisons or any(c.seeds != comparisons[0].seeds for c in comparisons):
        raise ValueError("combine needs at least one comparison, all with the same seeds.")
    names = [name for c in comparisons for name in c.runs]
    if len(set(names)) != len(names):
        raise ValueError(f"Arm names must be unique across the comparisons, got {names}.")
    return Comparison(list(comparisons[0].seeds), {k: v for c in comparisons for k, v in c.runs.items()},
                      {k: v for c in comparisons for k, v in c.tuned.items()})


# --------------------------------------------------------------------------- reading runs
def sweep_of(tuned: Tuned, lr: float | None = None) -> Sweep:
    """The runs of a tuned arm at one learning rate (default: the chosen one), by setting."""
    lr = tuned.lr if lr is None else lr
    result = {setting: runs for (rate, setting), runs in tuned.runs.items() if rate == lr}
    if not result:
        raise ValueError(f"No runs at lr={lr}; the search tried {sorted({r for r, _ in tuned.runs})}.")
    return result


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


def mean_mixing(models: Sequence[CrossStitch]) -> list[Tensor]:
    """Per stitch: the (T, T) mixing matrix a, averaged over channels and over ``models`` (seeds).
    Row i is what task i receives, column j what it takes from task j."""
    if not models:
        raise ValueError("mean_mixing needs at least one trained CrossStitch model.")
    return [torch.stack([m.mixing(layer).detach().cpu().mean(0) for m in models]).mean(0)
            for layer in range(len(models[0].units))]


def stitch_shares(model: CrossStitch, x: Tensor) -> list[Tensor]:
    """Per stitch: a (T, T) matrix S, S[i, j] = the share of what tower i receives that comes from
    tower j, each weight scaled by the size of the activation it multiplies:

        S[i, j] = Σ_c |a_c[i, j]| · mean|x_j,c|  /  Σ_k Σ_c |a_c[i, k]| · mean|x_k,c|

    (means over the batch ``x``; rows sum to 1). A raw weight a_ij says nothing on its own: a
    tower whose activations are twice as large passes twice as much through the same weight.
    """
    if not isinstance(model, CrossStitch):
        raise ValueError(f"Expected a CrossStitch model, got {type(model).__name__}.")
    names, shares = model.task_names, []
    with torch.no_grad():
        hs = [x] * len(names)
        for layer in range(len(model.units)):
            stacked = torch.stack([model.blocks[n][layer](h) for n, h in zip(names, hs, strict=True)])  # (T, B, C)
            size = stacked.abs().transpose(1, 2).flatten(2).mean(-1)  # (T, C): mean |x_j,c| over batch (and pixels)
            a = model.mixing(layer)  # (C, T, T)
            flow = (a.abs() * size.T[:, None, :]).sum(0)  # (T, T): Σ_c |a_c[i, j]| · mean|x_j,c|
            shares.append((flow / flow.sum(1, keepdim=True)).cpu())
            hs = list(cross_stitch_mix(stacked, a).unbind(0))
    return shares


# --------------------------------------------------------------------------- figures
def alpha_axis(alphas: Sequence[float]) -> list[float]:
    """x positions for α on a log axis: α = 0 is drawn one decade left of the smallest positive α."""
    positive = [a for a in alphas if a > 0]
    if not positive:
        raise ValueError(f"alpha_axis needs at least one α > 0, got {list(alphas)}.")
    return [a if a > 0 else min(positive) / 10 for a in alphas]


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
    """The widget's figure for one α of a precomputed sweep of soft-sharing models.

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
