"""The figures and tables that recur across notebooks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import pandas as pd
from torch import Tensor

from .metrics import format_mean_std, mean_std
from .train import History


def plot_history(histories: Mapping[str, History], key: str, ax: plt.Axes | None = None) -> plt.Axes:
    """One line per run of a per-epoch quantity, e.g. ``key="val/left"``."""
    ax = ax or plt.subplots(figsize=(5, 3.2))[1]
    for label, history in histories.items():
        frame = history.frame()
        if key not in frame:
            raise ValueError(f"History {label!r} has no {key!r}; it has {list(frame.columns)}.")
        ax.plot(frame.index, frame[key], marker="o", ms=3, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(key)
    ax.legend(fontsize=8)
    return ax


def plot_learning_curve(sizes: Sequence[int], results: Mapping[str, Sequence[Sequence[float]]],
                        ylabel: str, ax: plt.Axes | None = None, logx: bool = True) -> plt.Axes:
    """Metric against training-set size, mean ± std band over seeds; ``results[label][i]`` holds
    the per-seed values at ``sizes[i]``."""
    ax = ax or plt.subplots(figsize=(5, 3.2))[1]
    for label, per_size in results.items():
        if len(per_size) != len(sizes):
            raise ValueError(f"{label!r}: {len(per_size)} results for {len(sizes)} sizes.")
        stats = [mean_std(v) for v in per_size]
        mean = [m for m, _ in stats]
        std = [s for _, s in stats]
        ax.plot(sizes, mean, marker="o", label=label)
        ax.fill_between(sizes, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)], alpha=0.2)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel("training examples")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def results_table(rows: Mapping[str, Mapping[str, Sequence[float]]], digits: int = 3) -> pd.DataFrame:
    """A table of ``mean ± std`` strings: ``rows[model][column]`` is a list of per-seed values."""
    return pd.DataFrame({model: {col: format_mean_std(v, digits) for col, v in cols.items()}
                         for model, cols in rows.items()}).T


def show_images(x: Tensor, titles: Sequence[str] | None = None, ncols: int = 8) -> plt.Figure:
    """A grid of single-channel images (N × 1 × H × W or N × H × W)."""
    images = x.squeeze(1) if x.ndim == 4 else x
    n = len(images)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.2 * ncols, 1.35 * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i].detach().cpu().numpy(), cmap="gray_r")
            if titles is not None:
                ax.set_title(titles[i], fontsize=8)
    fig.tight_layout()
    return fig


def draw_hard_sharing(task_names: Sequence[str] = ("task A", "task B"), ax: plt.Axes | None = None) -> plt.Axes:
    """The picture of hard parameter sharing: one input, one shared trunk, one head per task."""
    ax = ax or plt.subplots(figsize=(6, 2.8))[1]
    box = dict(boxstyle="round,pad=0.4", ec="black")
    ax.text(0.05, 0.5, "input x", ha="center", va="center", bbox={**box, "fc": "#eeeeee"})
    ax.text(0.38, 0.5, "shared trunk f(x)\n(learned by all tasks)", ha="center", va="center",
            bbox={**box, "fc": "#cfe2f3"})
    n = len(task_names)
    for i, name in enumerate(task_names):
        y = 0.5 if n == 1 else 0.85 - 0.7 * i / (n - 1)
        ax.annotate("", xy=(0.66, y), xytext=(0.53, 0.5), arrowprops=dict(arrowstyle="->"))
        ax.text(0.75, y, f"head {i + 1}", ha="center", va="center", bbox={**box, "fc": "#fce5cd"})
        ax.text(0.95, y, name, ha="center", va="center", fontsize=9)
    ax.annotate("", xy=(0.23, 0.5), xytext=(0.11, 0.5), arrowprops=dict(arrowstyle="->"))
    ax.set_xlim(-0.05, 1.05)
    ax.set_ylim(0, 1)
    ax.axis("off")
    return ax


def draw_parameter_scaling(n_tasks: int, trunk_params: int, head_params: int, max_tasks: int = 10,
                           ax: plt.Axes | None = None) -> plt.Axes:
    """Parameters of T separate nets vs one hard-sharing net for T = 1..max_tasks, with T marked."""
    from .models import parameter_counts

    ax = ax or plt.subplots(figsize=(5, 3))[1]
    ts = list(range(1, max_tasks + 1))
    counts = [parameter_counts(t, trunk_params, head_params) for t in ts]
    ax.plot(ts, [c["separate"] for c in counts], marker="o", label="T separate nets")
    ax.plot(ts, [c["shared"] for c in counts], marker="s", label="one shared trunk + T heads")
    here = parameter_counts(n_tasks, trunk_params, head_params)
    ax.axvline(n_tasks, color="gray", ls=":")
    ax.set_title(f"T = {n_tasks}: shared / separate = {here['shared'] / here['separate']:.2f}", fontsize=10)
    ax.set_xlabel("number of tasks T")
    ax.set_ylabel("parameters")
    ax.legend(fontsize=8)
    return ax


def plot_tuning(results: Mapping[str, Mapping], lr: float | None = None, axes=None):
    """Validation metric per epoch for each learning rate of the grid, one panel per task.

    ``results[task]`` is a stored baseline record (:func:`mtl_helpers.course.reference_baselines`):
    ``"val_curves"`` maps each lr to its curve and ``"lr"`` is the chosen one; ``lr`` highlights
    one of them.
    """
    if axes is None:
        axes = plt.subplots(1, len(results), figsize=(3.2 * len(results), 2.8), squeeze=False)[1][0]
    for ax, (task, res) in zip(axes, results.items()):
        for key, curve in res["val_curves"].items():
            chosen = lr is None or float(key) == lr
            ax.plot(range(1, len(curve) + 1), curve, marker="o", ms=3, alpha=1.0 if chosen else 0.25,
                    label=f"lr {key}" + (" (best)" if float(key) == res["lr"] else ""))
        ax.set_title(task, fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"validation {res['metric']}")
        ax.legend(fontsize=7)
    return axes
