"""Notebook 02 (hard parameter sharing): its studies, built on the fair-comparison protocol.

Every model here is trained by :func:`mtl_helpers.protocol.run` (one run: the dataset's budget,
best epoch on validation) or :func:`~mtl_helpers.protocol.compare`; this module only says
*which* arms and *which* runs:

* :func:`mtl_arm`, :func:`low_data_arms` — the arms: hard sharing on every task, and the
  single-task / multi-task pair when one task keeps only a fraction of its labels;
* :func:`with_stored_baselines` — section 2's table: notebook 01's stored single-task runs
  beside the multi-task runs, as one :class:`~mtl_helpers.protocol.Comparison`;
* :func:`cost_table`, :func:`step_and_forward_timers` — what sharing costs: deterministic
  counts (parameters, FLOPs) to claim, and closures for :func:`~mtl_helpers.utils.time_interleaved`
  to show;
* :func:`label_fraction_sweep`, :func:`split_depth_sweep` — sections 3 and 4;
* :func:`draw_architecture`, :func:`draw_depth_panels`, :func:`draw_split_depth` — the diagram,
  its static panels and the widget's figure;
* :func:`outcome`, :func:`softmax_ce_floor` — section 6 (head/loss mismatches).
"""

from __future__ import annotations

import copy
import math
import statistics
import warnings
from collections.abc import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.patches import FancyBboxPatch
from torch import Tensor, nn

from ..costs import inference_flops, step_cost
from ..course import reference_baselines
from ..data import MultiTaskDataset, Split
from ..models import HardSharing, split_model, standard_network
from ..protocol import Arm, Comparison, Run, Tuned, run
from ..train import train_step
from ..utils import count_parameters

MASK_SEED_OFFSET = 1000  # label masks use seed + 1000: a stream apart from the training seed

# --------------------------------------------------------------------------- arms


def mtl_arm(dataset: MultiTaskDataset, name: str = "MTL", train: Callable[[int], Split] | None = None) -> Arm:
    """Hard sharing on every task of ``dataset``: the standard network with all its heads."""
    return Arm(name, lambda _: standard_network(dataset), train=train)


def low_data_arms(dataset: MultiTaskDataset, task: str, fraction: float) -> tuple[Arm, Arm]:
    """The single-task and the hard-sharing arm when ``task`` keeps only ``fraction`` of its labels.

    For seed s both draw the same labelled rows, ``with_label_fraction(task, f, seed=s + 1000)``
    (not the training seed s). The single-task arm learns from those rows only, and the protocol
    gives it as many optimisation steps as a full-data run (:meth:`Budget.max_epochs`); the
    multi-task arm sees every input, the other tasks fully labelled.
    """
    dataset.task(task)  # a clear error for an unknown task
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}.")

    def masked(seed: int) -> Split:
        return dataset.train.with_label_fraction(task, fraction, seed=seed + MASK_SEED_OFFSET)

    stl = Arm(f"STL {task}", lambda _: standard_network(dataset, [task]), tasks=[task],
              train=lambda seed: masked(seed).labelled(task))
    return stl, mtl_arm(dataset, train=masked)


# --------------------------------------------------------------------------- section 2


def stored_baseline_runs(dataset: MultiTaskDataset) -> tuple[dict[str, list[Run]], dict[str, Tuned]]:
    """Notebook 01's stored single-task runs of ``dataset`` (:func:`~mtl_helpers.course.reference_baselines`)
    as protocol :class:`Run` s (test metric per seed, no model) and the search each one got."""
    runs, tuned = {}, {}
    for task, rec in reference_baselines(dataset.name).items():
        arm = f"STL {task}"
        runs[arm] = [Run(arm, seed, rec["lr"], None, {}, {task: test}, epoch, rec["max_epochs"], 0, 0.0)
                     for seed, test, epoch in zip(rec["seeds"], rec["test"], rec["best_epoch"], strict=True)]
        searched = {(float(lr), None): [Run(arm, rec["seeds"][0], float(lr), None, {task: val}, {}, 0,
                                            rec["max_epochs"], 0, 0.0)] for lr, val in rec["val_by_lr"].items()}
        tuned[arm] = Tuned(arm, rec["lr"], None, searched)
    return runs, tuned


def with_stored_baselines(comparison: Comparison, dataset: MultiTaskDataset) -> Comparison:
    """``comparison`` (e.g. the MTL arm through :func:`~mtl_helpers.protocol.compare`) with the
    stored single-task baselines added as arms ``"STL <task>"``, paired by seed."""
    runs, tuned = stored_baseline_runs(dataset)
    seeds = [r.seed for r in next(iter(runs.values()))]
    if list(comparison.seeds) != seeds:
        raise ValueError(f"The stored baselines used seeds {seeds}; run the comparison with the same seeds, "
                         f"got {comparison.seeds}.")
    return Comparison(seeds, runs | comparison.runs, tuned | comparison.tuned)


def _as_list(entry: nn.Module | Sequence[nn.Module]) -> list[nn.Module]:
    return list(entry) if isinstance(entry, Sequence) else [entry]


def cost_table(entries: Mapping[str, HardSharing | Sequence[HardSharing]], dataset: MultiTaskDataset,
               batch_rows: int | None = None) -> dict[str, dict[str, int]]:
    """Deterministic costs per entry (a model, or a list: T single-task nets serving T tasks):
    parameters, FLOPs of one training step on a batch of ``batch_rows`` training rows (default:
    the budget's batch size) and FLOPs of one forward pass over that many test rows."""
    if not entries:
        raise ValueError("cost_table needs at least one model.")
    rows = batch_rows or dataset.require_budget().batch_size
    batch, x = dataset.train.subset(torch.arange(rows)), dataset.test.x[:rows]
    table = {}
    for name, entry in entries.items():
        models = _as_list(entry)
        device = next(models[0].parameters()).device
        table[name] = {
            "parameters": sum(count_parameters(m) for m in models),
            "train FLOPs / step": sum(step_cost(m, batch, [dataset.task(t) for t in m.task_names]).flops
                                      for m in models),
            "inference FLOPs": sum(inference_flops(m, x.to(device)) for m in models)}
    return table


def step_and_forward_timers(entries: Mapping[str, HardSharing | Sequence[HardSharing]], dataset: MultiTaskDataset,
                            batch_rows: int | None = None) -> tuple[dict[str, Callable[[], None]],
                                                                    dict[str, Callable[[], None]]]:
    """Closures for :func:`~mtl_helpers.utils.time_interleaved`: per entry, one optimisation step
    of every model on a training batch (on copies, with their own Adam) and one forward pass of
    every model over a test batch (what serving all tasks costs)."""
    if not entries:
        raise ValueError("step_and_forward_timers needs at least one model.")
    rows = batch_rows or dataset.require_budget().batch_size
    steps, forwards = {}, {}
    for name, entry in entries.items():
        copies = [copy.deepcopy(m).train() for m in _as_list(entry)]
        device = next(copies[0].parameters()).device
        batch, x = dataset.train.subset(torch.arange(rows)).to(device), dataset.test.x[:rows].to(device)
        plan = [(m, [dataset.task(t) for t in m.task_names], torch.optim.Adam(m.parameters())) for m in copies]

        def step(plan=plan, batch=batch) -> None:
            for model, tasks, optimizer in plan:
                train_step(model.train(), batch, tasks, optimizer)

        @torch.no_grad()
        def forward(models=copies, x=x) -> None:
            for model in models:
                model.eval()(x)

        steps[name], forwards[name] = step, forward
    return steps, forwards


# --------------------------------------------------------------------------- sections 3 and 4


def label_fraction_sweep(dataset: MultiTaskDataset, task: str, fractions: Sequence[float], seeds: Sequence[int],
                         stl_lr: float, mtl_lr: float,
                         device: torch.device | str | None = None) -> dict[str, dict[float, list[Run]]]:
    """Single-task vs hard sharing when ``task`` keeps a fraction of its labels (:func:`low_data_arms`).

    Each arm runs at one given learning rate (the one its full-data version chose on
    validation), once per seed, with the protocol's training length. Returns
    ``{"STL": {f: [Run per seed]}, "MTL": {...}}``; ``run.test[task]`` is the metric.
    """
    if not fractions or not seeds:
        raise ValueError("label_fraction_sweep needs at least one fraction and one seed.")
    curves: dict[str, dict[float, list[Run]]] = {"STL": {}, "MTL": {}}
    for f in fractions:
        stl, mtl = low_data_arms(dataset, task, f)
        curves["STL"][f] = [run(stl, dataset, lr=stl_lr, seed=s, device=device) for s in seeds]
        curves["MTL"][f] = [run(mtl, dataset, lr=mtl_lr, seed=s, device=device) for s in seeds]
    return curves


def split_depth_sweep(dataset: MultiTaskDataset, depths: Sequence[int], seeds: Sequence[int], lr: float,
                      device: torch.device | str | None = None) -> dict[int, dict]:
    """:func:`~mtl_helpers.models.split_model` for every depth k and seed, one protocol run each
    at learning rate ``lr``. Returns ``{k: {"test": {task: [per-seed metric]}, "params": int}}``."""
    if not depths or not seeds:
        raise ValueError("split_depth_sweep needs at least one depth and one seed.")
    results = {}
    for depth in depths:
        arm = Arm(f"k={depth}", lambda _, k=depth: split_model(dataset, k))
        runs = [run(arm, dataset, lr=lr, seed=s, device=device) for s in seeds]
        results[depth] = {"test": {t: [r.test[t] for r in runs] for t in dataset.task_names},
                          "params": count_parameters(runs[0].model)}
    return results


# --------------------------------------------------------------------------- section 6: losses


def outcome(loss_fn: Callable[[], Tensor]) -> str:
    """Run a loss computation and describe what happened: its value, a warning, or an error.

    Used to show what a head/loss mismatch does: some raise, the dangerous ones return a
    perfectly ordinary-looking number.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = loss_fn()
        except (RuntimeError, ValueError, IndexError) as error:
            return f"error: {type(error).__name__}: {str(error).splitlines()[0][:90]}"
    text = f"value {float(value):.4f}"
    if caught:
        text += f" (warning: {str(caught[0].message).splitlines()[0][:70]})"
    return text


def softmax_ce_floor(n_classes: int) -> float:
    """Lowest value cross-entropy can reach when it is (wrongly) fed probabilities p instead of
    logits: it applies log-softmax to p ∈ [0, 1], so at best −log(e / (e + C − 1))."""
    if n_classes < 2:
        raise ValueError(f"n_classes must be >= 2, got {n_classes}.")
    return math.log(math.e + n_classes - 1) - 1.0


# --------------------------------------------------------------------------- figures


def _box(ax: plt.Axes, x: float, y: float, w: float, h: float, text: str, color: str) -> None:
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02", fc=color, ec="0.3"))
    ax.text(x, y, text, ha="center", va="center", fontsize=7)


def draw_architecture(n_layers: int, n_shared: int, task_names: Sequence[str],
                      layer_names: Sequence[str] | None = None, ax: plt.Axes | None = None) -> plt.Axes:
    """Diagram of a network of ``n_layers`` layers with the first ``n_shared`` shared.

    Input at the bottom, shared layers (blue) in one column, then one column per task of
    task-specific layers (orange) ending in that task's output and loss.
    """
    if not task_names:
        raise ValueError("draw_architecture needs at least one task name.")
    if not 0 <= n_shared <= n_layers - 1:
        raise ValueError(f"n_shared must be in 0..{n_layers - 1}, got {n_shared}.")
    names = list(layer_names) if layer_names is not None else [f"layer {i + 1}" for i in range(n_layers)]
    if len(names) != n_layers:
        raise ValueError(f"Got {len(names)} layer names for {n_layers} layers.")
    ax = ax or plt.subplots(figsize=(4.5, 3.2))[1]
    T, h, gap = len(task_names), 0.6, 1.0
    xs = [(i - (T - 1) / 2) * 1.7 for i in range(T)]
    _box(ax, 0, 0, 1.4, h, "input x", "0.9")
    for i in range(n_shared):
        _box(ax, 0, gap * (i + 1), 1.4, h, names[i], "#9ecae1")
        ax.annotate("", (0, gap * (i + 1) - h / 2), (0, gap * i + h / 2), arrowprops={"arrowstyle": "->"})
    top = gap * n_shared
    for x, task in zip(xs, task_names, strict=True):
        prev = (0, top + h / 2)
        for i in range(n_shared, n_layers):
            y = gap * (i + 1)
            _box(ax, x, y, 1.4, h, names[i], "#fdae6b")
            ax.annotate("", (x, y - h / 2), prev, arrowprops={"arrowstyle": "->"})
            prev = (x, y + h / 2)
        ax.text(x, gap * (n_layers + 1) - 0.3, f"ŷ_{task}\n→ L_{task}", ha="center", va="center", fontsize=7)
    ax.set_xlim(min(xs) - 1.0, max(xs) + 1.0)
    ax.set_ylim(-0.5, gap * (n_layers + 1) + 0.1)
    ax.axis("off")
    ax.set_title(f"{n_shared} shared layer(s), {n_layers - n_shared} per task", fontsize=9)
    return ax


def draw_depth_panels(depths: Sequence[int], n_layers: int, task_names: Sequence[str],
                      layer_names: Sequence[str] | None = None,
                      titles: Mapping[int, str] | None = None) -> plt.Figure:
    """One architecture diagram per split depth, side by side (the static version of the
    widget); ``titles[depth]`` replaces a panel's title (e.g. with its results)."""
    if not depths:
        raise ValueError("draw_depth_panels needs at least one depth.")
    fig, axes = plt.subplots(1, len(depths), figsize=(2.5 * len(depths), 3.0), squeeze=False)
    for ax, depth in zip(axes[0], depths, strict=True):
        draw_architecture(n_layers, depth, task_names, layer_names, ax=ax)
        if titles and depth in titles:
            ax.set_title(titles[depth], fontsize=8)
    fig.tight_layout()
    return fig


def draw_split_depth(results: Mapping[int, Mapping], n_shared: int, task_names: Sequence[str] | None = None,
                     layer_names: Sequence[str] | None = None) -> plt.Figure:
    """The widget's figure: the architecture split after ``n_shared`` layers (left) and every
    task's test metric (mean ± std over seeds) against the number of shared layers (right),
    with ``n_shared`` marked. ``results`` comes from :func:`split_depth_sweep`."""
    if n_shared not in results:
        raise ValueError(f"No results for n_shared={n_shared}; precomputed depths are {sorted(results)}.")
    depths = sorted(results)
    names = list(task_names) if task_names is not None else list(results[depths[0]]["test"])
    total = len(layer_names) if layer_names is not None else max(depths) + 1
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.3), gridspec_kw={"width_ratios": [1, 1.3]})
    draw_architecture(total, n_shared, names, layer_names, ax=left)
    for name in names:
        values = [results[d]["test"][name] for d in depths]
        mean = [statistics.fmean(v) for v in values]
        std = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in values]
        right.errorbar(depths, mean, yerr=std, marker="o", capsize=3, label=name)
    right.axvline(n_shared, color="0.5", ls="--", lw=1)
    right.set_xticks(depths)
    right.set_xlabel("shared layers (0 = separate towers)")
    right.set_ylabel("test metric")
    params = results[n_shared].get("params")
    right.set_title(f"{params:,} parameters" if params else "", fontsize=9)
    right.grid(alpha=0.3)
    right.legend(fontsize=8)
    fig.tight_layout()
    return fig
