"""Hard parameter sharing (notebook 02): where to split, what it costs, how to deploy it.

Hard parameter sharing (Caruana 1997) puts one trunk f under one head h_t per task and trains
on Σ_t λ_t L_t(h_t(f(x)), y_t). This module holds the reusable parts of notebook 02:

* :func:`layer_groups`, :func:`split_model` — the course's standard network cut after any
  number of layers: ``n_shared = 0`` is separate towers, the largest value shares everything
  but each task's output layer;
* :func:`fit_and_test` — train any such model with the dataset's standard budget;
* :func:`training_seconds` — a run's training time, robust to bursts of background load;
* :func:`label_fraction_sweep`, :func:`split_depth_sweep` — the notebook's two experiments;
* :func:`export_task_model`, :func:`save_task_models`, :func:`load_task_model` — one task's
  standalone model (trunk + its head), saved as a ``state_dict``;
* :func:`measure_latency`, :func:`measure_training_step` — time per batch (inference) and per
  optimisation step (training), models interleaved;
* :func:`draw_architecture`, :func:`draw_split_depth` — the diagram and the widget's figure;
* :func:`outcome` — run a (possibly wrong) loss and say what happened.
"""

from __future__ import annotations

import copy
import math
import statistics
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from matplotlib.patches import FancyBboxPatch
from torch import Tensor, nn

from .baselines import make_model, train_and_test
from .data import MultiTaskDataset, Split
from .models import HardSharing
from .tasks import Task
from .train import History, task_losses
from .utils import Timer, count_parameters

# --------------------------------------------------------------------------- where to split


def layer_groups(model: nn.Module) -> list[nn.Sequential]:
    """Cut a feed-forward network into its layers, in order.

    A layer starts at a ``Linear`` or ``Conv2d`` and takes every parameter-free module that
    follows it (ReLU, pooling, flatten, dropout). Relies on the modules being registered in the
    order they run, which holds for ``nn.Sequential``, ``mlp``, ``ConvTrunk`` and ``make_head``.
    The groups reuse the model's modules (no copy).
    """
    leaves = [m for m in model.modules() if not list(m.children())]
    if not leaves or not isinstance(leaves[0], (nn.Linear, nn.Conv2d)):
        raise ValueError("layer_groups needs a network that starts with a Linear or Conv2d layer, got "
                         f"{type(leaves[0]).__name__ if leaves else 'no layers'}.")
    groups: list[list[nn.Module]] = []
    for module in leaves:
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            groups.append([module])
        else:
            groups[-1].append(module)
    return [nn.Sequential(*g) for g in groups]


def n_layers(dataset: MultiTaskDataset) -> int:
    """Number of layers (see :func:`layer_groups`) of the standard single-task network."""
    return len(layer_groups(make_model(dataset, [dataset.tasks[0].name])))


def standard_shared_layers(dataset: MultiTaskDataset) -> int:
    """How many layers ``baselines.make_model`` shares: the layers of its trunk."""
    return len(layer_groups(make_model(dataset, [dataset.tasks[0].name]).trunk))


def split_model(dataset: MultiTaskDataset, n_shared: int, task_names: Sequence[str] | None = None) -> HardSharing:
    """The standard network with its first ``n_shared`` layers shared and the rest per task.

    Every task's tower is ``make_model(dataset, [task])`` cut into layers: layers
    1..n_shared become the shared trunk (taken from the first task's tower), layers
    n_shared+1..L stay in each task's head. ``n_shared = 0`` gives separate towers (T
    single-task nets side by side); ``n_shared = L − 1`` shares everything but the output
    layers; ``standard_shared_layers(dataset)`` reproduces ``make_model(dataset)``.
    """
    names = list(task_names) if task_names is not None else [t.name for t in dataset.tasks]
    if not names:
        raise ValueError("split_model needs at least one task name.")
    towers = {name: layer_groups(make_model(dataset, [name])) for name in names}
    depth = len(towers[names[0]])
    if not isinstance(n_shared, int) or not 0 <= n_shared <= depth - 1:
        raise ValueError(f"n_shared must be an int in 0..{depth - 1} for {dataset.name!r} (the output layer is "
                         f"always task-specific), got {n_shared!r}.")
    trunk = nn.Sequential(*towers[names[0]][:n_shared]) if n_shared else nn.Identity()
    return HardSharing(trunk, {name: nn.Sequential(*towers[name][n_shared:]) for name in names})


def fit_and_test(build: Callable[[], nn.Module], dataset: MultiTaskDataset, task_names: Sequence[str], lr: float,
                 seed: int, train: Split | None = None, epochs: int | None = None,
                 device: torch.device | str | None = None) -> dict:
    """:func:`~mtl_helpers.baselines.train_and_test` for any model ``build()`` returns (e.g. a
    :func:`split_model`): seed, build, train with the dataset's budget (``epochs`` overrides
    the number of epochs), return test metrics, training seconds and the model."""
    epochs_kw = {"epochs": epochs} if epochs else {}
    return train_and_test(dataset, task_names, lr, seed, train=train, build=build, device=device, **epochs_kw)


def training_seconds(histories: Sequence[History]) -> float:
    """Typical training time of one run: epochs × the median epoch time over ``histories``.

    The median ignores epochs slowed by a burst of background load, so two models timed on a
    busy machine are still compared fairly.
    """
    epochs = [r["seconds"] for h in histories for r in h.records]
    if not epochs:
        raise ValueError("training_seconds needs at least one History with at least one epoch.")
    return len(histories[0].records) * statistics.median(epochs)


def split_depth_sweep(dataset: MultiTaskDataset, depths: Sequence[int], seeds: Sequence[int], lr: float,
                      train: Split | None = None, epochs: int | None = None,
                      device: torch.device | str | None = None) -> dict[int, dict]:
    """Train :func:`split_model` for every depth and seed (all tasks, equal weights).

    Returns ``{depth: {"test": {task: [per-seed metric]}, "params": int}}``.
    """
    if not depths or not seeds:
        raise ValueError("split_depth_sweep needs at least one depth and one seed.")
    names = [t.name for t in dataset.tasks]
    results = {}
    for depth in depths:
        build = lambda: split_model(dataset, depth)  # noqa: B023 (used at once)
        runs = [fit_and_test(build, dataset, names, lr, s, train=train, epochs=epochs, device=device) for s in seeds]
        results[depth] = {"test": {n: [r["test"][n] for r in runs] for n in names},
                          "params": count_parameters(runs[0]["model"])}
    return results


# --------------------------------------------------------------------------- low-data regime


def labelled_rows(split: Split, task: str) -> Split:
    """The rows of ``split`` that carry a label for ``task`` (all rows if it has no mask):
    what a single-task model can learn from when only some rows are labelled."""
    if task not in split.y:
        raise ValueError(f"Unknown task {task!r}; the split has {list(split.y)}.")
    mask = split.masks.get(task)
    if mask is None:
        return split
    only = Split(split.x, {task: split.y[task]})  # a single-task view: the other tasks' labels go
    return only.subset(mask.nonzero().squeeze(1))


MASK_SEED_OFFSET = 1000


def label_fraction_sweep(dataset: MultiTaskDataset, task: str, fractions: Sequence[float], seeds: Sequence[int],
                         stl_lr: float, mtl_lr: float, epochs: int | None = None,
                         device: torch.device | str | None = None) -> dict[str, dict[float, list[float]]]:
    """STL vs MTL when ``task`` keeps only a ``fraction`` of its training labels.

    For each fraction f and seed s the same labelled rows are drawn for both models
    (``with_label_fraction(task, f, seed=s + MASK_SEED_OFFSET)``: *not* the training seed,
    which would make the first epoch's batch order put every labelled row first). The
    single-task net trains on those rows only, the hard-sharing net on every input with the
    other tasks fully labelled. Both use the dataset's budget (epochs over *their own*
    training rows, batch size), each at its own tuned learning rate.
    Returns ``{"STL": {f: [per-seed test metric]}, "MTL": {...}}``.
    """
    if not fractions or not seeds:
        raise ValueError("label_fraction_sweep needs at least one fraction and one seed.")
    names = [t.name for t in dataset.tasks]
    if task not in names:
        raise ValueError(f"Unknown task {task!r}; the tasks are {names}.")
    curves: dict[str, dict[float, list[float]]] = {"STL": {}, "MTL": {}}
    for f in fractions:
        for s in seeds:
            masked = dataset.train.with_label_fraction(task, f, seed=s + MASK_SEED_OFFSET)
            stl = fit_and_test(lambda: make_model(dataset, [task]), dataset, [task], stl_lr, s,
                               train=labelled_rows(masked, task), epochs=epochs, device=device)
            mtl = fit_and_test(lambda: make_model(dataset, names), dataset, names, mtl_lr, s, train=masked,
                               epochs=epochs, device=device)
            curves["STL"].setdefault(f, []).append(stl["test"][task])
            curves["MTL"].setdefault(f, []).append(mtl["test"][task])
    return curves


# --------------------------------------------------------------------------- deployment


def export_task_model(model: HardSharing, task: str) -> nn.Sequential:
    """One task's standalone model: a copy of the trunk followed by a copy of its head.

    It returns that task's output as a tensor (not a dict), owns its own parameters (changing
    it leaves the joint model alone), and carries nothing of the other tasks' heads.
    """
    if not isinstance(model, HardSharing):
        raise ValueError(f"export_task_model needs a HardSharing model, got {type(model).__name__}.")
    if task not in model.heads:
        raise ValueError(f"Unknown task {task!r}; this model has heads {model.task_names}.")
    standalone = nn.Sequential(OrderedDict(trunk=copy.deepcopy(model.trunk), head=copy.deepcopy(model.heads[task])))
    return standalone.eval()


def save_task_models(model: HardSharing, directory: str | Path) -> dict[str, Path]:
    """Export every task and save its ``state_dict`` as ``<directory>/<task>.pt``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"{directory} is not a directory; create it first (e.g. with tempfile.mkdtemp()).")
    paths = {}
    for task in model.task_names:
        paths[task] = directory / f"{task}.pt"
        torch.save(export_task_model(model, task).state_dict(), paths[task])
    return paths


def load_task_model(path: str | Path, architecture: nn.Module,
                    device: torch.device | str | None = None) -> nn.Module:
    """Load a saved ``state_dict`` into ``architecture`` (an untrained model of the same
    shape, e.g. ``export_task_model(make_model(dataset), task)``). ``weights_only=True``
    refuses to unpickle arbitrary objects: a saved file cannot run code on load."""
    state = torch.load(path, map_location=device or "cpu", weights_only=True)
    architecture.load_state_dict(state)  # strict: raises if a key or shape differs
    return architecture.to(device or "cpu").eval()


@torch.no_grad()
def measure_latency(models: Mapping[str, nn.Module | Sequence[nn.Module]], x: Tensor, repeats: int = 25,
                    warmup: int = 3) -> dict[str, float]:
    """Median wall-clock seconds of one forward pass over the batch ``x``, per entry.

    An entry may be a list of models: serving T single-task nets means T forward passes, so
    they are timed together. Entries are timed in turn inside each repeat, so a burst of
    background load hits all of them alike; the median ignores the bursts.
    """
    if not models:
        raise ValueError("measure_latency needs at least one model.")
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got {repeats} and {warmup}.")
    groups = {name: list(m) if isinstance(m, Sequence) else [m] for name, m in models.items()}
    for group in groups.values():
        for m in group:
            m.eval()
    device = next(groups[next(iter(groups))][0].parameters()).device
    x = x.to(device)
    times: dict[str, list[float]] = {name: [] for name in groups}
    for i in range(warmup + repeats):
        for name, group in groups.items():
            with Timer(device) as t:
                for m in group:
                    m(x)
            if i >= warmup:
                times[name].append(t.seconds)
    return {name: statistics.median(ts) for name, ts in times.items()}


def measure_training_step(models: Mapping[str, HardSharing | Sequence[HardSharing]], batch: Split,
                          tasks: Sequence[Task], repeats: int = 15, warmup: int = 3) -> dict[str, float]:
    """Median wall-clock seconds of one optimisation step (forward, Σ_t L_t, backward, Adam)
    on ``batch``, per entry; a list entry (T single-task nets) takes one step of each.

    Steps are taken on *copies*, so the models are left as they are. Entries are timed in turn
    inside each repeat, like :func:`measure_latency`, so a change in background load hits
    every entry alike: a fairer comparison than timing whole runs one after the other.
    """
    if not models:
        raise ValueError("measure_training_step needs at least one model.")
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got {repeats} and {warmup}.")
    by_name = {t.name: t for t in tasks}
    groups = {}
    for name, entry in models.items():
        group = []
        for model in (list(entry) if isinstance(entry, Sequence) else [entry]):
            if not isinstance(model, HardSharing):
                raise ValueError(f"{name!r}: expected HardSharing models, got {type(model).__name__}.")
            missing = [t for t in model.task_names if t not in by_name]
            if missing:
                raise ValueError(f"{name!r}: no Task given for head(s) {missing}; pass them in tasks.")
            copy_ = copy.deepcopy(model).train()
            group.append((copy_, [by_name[t] for t in copy_.task_names], torch.optim.Adam(copy_.parameters())))
        groups[name] = group
    device = next(groups[next(iter(groups))][0][0].parameters()).device
    batch = batch.to(device)
    times: dict[str, list[float]] = {name: [] for name in groups}
    for i in range(warmup + repeats):
        for name, group in groups.items():
            with Timer(device) as t:
                for model, model_tasks, optimizer in group:
                    optimizer.zero_grad(set_to_none=True)
                    task_losses(model(batch.x), batch, model_tasks).sum().backward()
                    optimizer.step()
            if i >= warmup:
                times[name].append(t.seconds)
    return {name: statistics.median(ts) for name, ts in times.items()}


# --------------------------------------------------------------------------- losses


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


def softmax_ce_floor(n_classes: int) -> float:
    """Lowest value cross-entropy can reach when it is (wrongly) fed probabilities p instead of
    logits: it applies log-softmax to p ∈ [0, 1], so at best −log(e / (e + C − 1))."""
    if n_classes < 2:
        raise ValueError(f"n_classes must be >= 2, got {n_classes}.")
    return math.log(math.e + n_classes - 1) - 1.0
