"""Notebook 02 (hard parameter sharing): its studies, built on the fair-comparison protocol.

Every model here is trained by :func:`mtl_helpers.protocol.run` (one run: the dataset's budget,
best epoch on validation), :func:`~mtl_helpers.protocol.tune` or
:func:`~mtl_helpers.protocol.compare`; this module only says *which* arms and *which* runs:

* :func:`mtl_arm`, :func:`low_data_arms`, :func:`linear_arm` — the arms: hard sharing on every
  task, the single-task / multi-task pair when one task keeps only a fraction of its labels,
  and a logistic-regression reference on the same labelled rows;
* :func:`load_adult_married` — Adult with a more related auxiliary task (married, instead of
  never married), same rows and features;
* :func:`with_stored_baselines` — section 2's table: notebook 01's stored single-task runs
  beside the multi-task runs, as one :class:`~mtl_helpers.protocol.Comparison`;
* :func:`cost_table`, :func:`step_and_forward_timers` — what sharing costs: deterministic
  counts (parameters, FLOPs) and closures for :func:`~mtl_helpers.utils.time_interleaved` to show;
* :func:`low_data_comparison`, :func:`auxiliary_head_auc` — section 3: every arm tuned alike
  at one label fraction, and how much of the starved task the auxiliary head already ranks;
* :func:`depth_arms`, :func:`depth_sweep`, :func:`chosen_depth`, :func:`depth_results` — section 4:
  one arm per split depth, each tuned alike and run with the same seeds, the depth chosen on validation;
* :func:`draw_architecture`, :func:`draw_depth_panels`, :func:`draw_split_depth`,
  :func:`draw_low_data` — the figures (diagram, static panels, the widget's figure);
* :func:`outcome`, :func:`softmax_ce_floor` — section 6 (head/loss mismatches).
"""

from __future__ import annotations

import copy
import functools
import math
import statistics
import warnings
from collections.abc import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import FancyBboxPatch
from torch import Tensor, nn

from ..costs import inference_flops, step_cost
from ..course import BUDGETS, reference_baselines
from ..data import Budget, MultiTaskDataset, Split, adult_features, adult_labels, split_adult_frames
from ..metrics import auc
from ..models import HardSharing, layer_groups, split_model, standard_network
from ..protocol import Arm, Comparison, Run, Runner, Tuned, compare, reusing_runner, sequential_runner
from ..tasks import Task
from ..train import make_optimizer, predict, selection_score, train_step
from ..utils import count_parameters

MASK_SEED_OFFSET = 1000  # label masks use seed + 1000: a stream apart from the training seed

# --------------------------------------------------------------------------- arms


def mtl_arm(dataset: MultiTaskDataset, name: str = "MTL", train: Callable[[int], Split] | None = None) -> Arm:
    """Hard sharing on every task of ``dataset``: the standard network with all its heads."""
    return Arm(name, lambda _: standard_network(dataset), train=train)


def low_data_arms(dataset: MultiTaskDataset, task: str, fraction: float,
                  mtl_name: str = "MTL") -> tuple[Arm, Arm]:
    """The single-task and the hard-sharing arm when ``task`` keeps only ``fraction`` of its labels.

    For seed s both draw the same labelled rows, ``with_label_fraction(task, f, seed=s + 1000)``
    (not the training seed s). The single-task arm learns from those rows only, and the protocol
    gives it as many optimisation steps as a full-data run (:meth:`Budget.max_epochs`); the
    multi-task arm sees every input, the other tasks fully labelled. Both are selected on
    ``task``'s validation metric alone: the question is how well each predicts ``task``.
    """
    dataset.task(task)  # a clear error for an unknown task
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}.")

    def masked(seed: int) -> Split:
        return dataset.train.with_label_fraction(task, fraction, seed=seed + MASK_SEED_OFFSET)

    def on_task(metrics: dict[str, float]) -> float:
        return metrics[task]

    stl = Arm(f"STL {task}", lambda _: standard_network(dataset, [task]), tasks=[task],
              train=lambda seed: masked(seed).labelled(task))
    mtl = Arm(mtl_name, lambda _: standard_network(dataset), train=masked, score=on_task)
    return stl, mtl


def linear_arm(dataset: MultiTaskDataset, task: str, train: Callable[[int], Split] | None = None,
               name: str | None = None) -> Arm:
    """Logistic (or linear) regression on the raw inputs as an arm: ``HardSharing`` with a
    flattening trunk and one linear head, trained by the same protocol (Adam, the budget's steps,
    best epoch on validation) on ``train`` (e.g. the single-task arm's labelled rows)."""
    spec = dataset.task(task)
    d = math.prod(dataset.train.x.shape[1:])
    return Arm(name or f"LogReg {task}", lambda _: HardSharing(nn.Flatten(), {task: nn.Linear(d, spec.n_outputs)}),
               tasks=[task], train=train)


def load_adult_married(budget: Budget | None = None) -> MultiTaskDataset:
    """UCI Adult with income > 50K and **married** (``marital_status == "Married-civ-spouse"``):
    the same rows, splits and features as :func:`~mtl_helpers.data.load_adult` (marital status
    and relationship stay out of the features: they would give the label away), only the
    auxiliary task differs. Budget: Adult's (``course.BUDGETS["adult"]``) unless given."""
    train_df, val_df, test_df = split_adult_frames()
    x_train, x_val, names = adult_features(train_df, val_df)
    _, x_test, _ = adult_features(train_df, test_df)

    def split(x: np.ndarray, df) -> Split:
        married = torch.tensor((df["marital_status"] == "Married-civ-spouse").to_numpy(), dtype=torch.float32)
        return Split(torch.from_numpy(x), {"income": adult_labels(df)["income"], "married": married})

    tasks = [Task("income", "binary"), Task("married", "binary")]
    return MultiTaskDataset("adult", tasks, split(x_train, train_df), split(x_val, val_df), split(x_test, test_df),
                            budget or BUDGETS["adult"], info={"feature_names": names})


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
    of every model on a training batch (on copies, each with the optimizer ``fit`` builds) and one
    forward pass of every model over a test batch (what serving all tasks costs)."""
    if not entries:
        raise ValueError("step_and_forward_timers needs at least one model.")
    rows = batch_rows or dataset.require_budget().batch_size
    steps, forwards = {}, {}
    for name, entry in entries.items():
        copies = [copy.deepcopy(m).train() for m in _as_list(entry)]
        device = next(copies[0].parameters()).device
        batch, x = dataset.train.subset(torch.arange(rows)).to(device), dataset.test.x[:rows].to(device)
        plan = [(m, [dataset.task(t) for t in m.task_names], make_optimizer(m.parameters())) for m in copies]

        def step(plan=plan, batch=batch) -> None:
            for model, tasks, optimizer in plan:
                train_step(model.train(), batch, tasks, optimizer)

        @torch.no_grad()
        def forward(models=copies, x=x) -> None:
            for model in models:
                model.eval()(x)

        steps[name], forwards[name] = step, forward
    return steps, forwards


# --------------------------------------------------------------------------- section 3


def low_data_comparison(datasets: Mapping[str, MultiTaskDataset], task: str, fraction: float,
                        seeds: Sequence[int], tune_seeds: Sequence[int] | None = None,
                        runner: Runner | None = None, device: torch.device | str | None = None,
                        lrs: Sequence[float] | None = None) -> Comparison:
    """Every arm at one label fraction of ``task``, each tuned alike (:func:`~mtl_helpers.protocol.compare`).

    ``datasets`` maps an auxiliary task's name to a dataset holding ``task`` and that auxiliary
    task, all with the same rows of ``task`` (checked). The single-task arm ``"STL <task>"`` and
    the logistic regression ``"LogReg <task>"`` learn from the labelled rows of the first
    dataset; each dataset adds a hard-sharing arm ``"MTL + <aux>"``. For seed s every arm sees
    the same labelled rows, so the differences are paired.
    """
    if not datasets:
        raise ValueError("low_data_comparison needs at least one dataset (auxiliary name → dataset).")
    first = next(iter(datasets.values()))
    for aux, data in datasets.items():
        data.task(aux)  # a clear error for an unknown auxiliary task
        same = all(torch.equal(getattr(data, s).x, getattr(first, s).x) and
                   torch.equal(getattr(data, s).y[task], getattr(first, s).y[task]) for s in ("train", "val", "test"))
        if not same:
            raise ValueError(f"The dataset of {aux!r} does not hold the same rows of {task!r} as the first one: "
                             "the arms would not be paired.")
    stl, _ = low_data_arms(first, task, fraction)
    options = {"tune_seeds": tune_seeds, "runner": runner, "device": device, "lrs": lrs}
    result = compare([stl, linear_arm(first, task, train=stl.train)], first, seeds, **options)
    for aux, data in datasets.items():
        part = compare([low_data_arms(data, task, fraction, mtl_name=f"MTL + {aux}")[1]], data, seeds, **options)
        result.runs |= part.runs
        result.tuned |= part.tuned
    return result


def auxiliary_head_auc(runs: Sequence[Run], dataset: MultiTaskDataset, aux: str, task: str) -> list[float]:
    """Per run: the test AUC for ``task`` of the *auxiliary* head's logit, never trained on
    ``task``, oriented by the sign of the two labels' correlation on the training split.
    It measures how much of ``task``'s ranking the features learnt for ``aux`` already carry."""
    if dataset.task(task).kind != "binary" or dataset.task(aux).kind != "binary":
        raise ValueError("auxiliary_head_auc compares two binary tasks.")
    ya, yt = dataset.train.y[aux].float(), dataset.train.y[task].float()
    sign = 1.0 if float(((ya - ya.mean()) * (yt - yt.mean())).mean()) >= 0 else -1.0
    out = []
    for r in runs:
        if r.model is None:
            raise ValueError(f"Run {r.arm!r} (seed {r.seed}) kept no model.")
        logit = predict(r.model, dataset.test.x)[aux].reshape(-1)
        out.append(auc(sign * logit, dataset.test.y[task]))
    return out


def draw_low_data(comparison: Comparison, task: str, references: Mapping[str, float] | None = None,
                  ylabel: str | None = None, ax: plt.Axes | None = None) -> plt.Axes:
    """Every arm's test metric on ``task``, one dot per seed (seeds joined by grey lines: they
    are paired) and its mean; ``references`` draws horizontal lines (e.g. full-data results)."""
    arms = [a for a in comparison.runs if task in comparison.runs[a][0].test]
    if not arms:
        raise ValueError(f"No arm of the comparison reports {task!r}.")
    ax = ax or plt.subplots(figsize=(6.5, 3.2))[1]
    values = np.array([comparison.values(a, task) for a in arms])  # (arms, seeds)
    xs = np.arange(len(arms))
    ax.plot(xs, values, color="0.8", lw=0.8, zorder=1)
    for i, row in enumerate(values):
        ax.scatter([i] * len(row), row, s=14, zorder=2)
        ax.plot([i - 0.25, i + 0.25], [row.mean()] * 2, color="k", lw=2, zorder=3)
    for j, (label, value) in enumerate((references or {}).items()):
        ax.axhline(value, ls="--", lw=1, color=f"C{j + 4}", label=label)
    ax.set_xticks(xs, arms, fontsize=8)
    ax.set_ylabel(ylabel or f"test {task}")
    ax.grid(alpha=0.3, axis="y")
    if references:
        ax.legend(fontsize=8, loc="lower right")
    return ax


# --------------------------------------------------------------------------- section 4


def depth_arms(dataset: MultiTaskDataset, depths: Sequence[int]) -> list[Arm]:
    """One arm ``"k=<depth>"`` per split depth: :func:`~mtl_helpers.models.split_model` of
    ``dataset`` cut after ``depth`` layers (0 = separate towers)."""
    if not depths:
        raise ValueError("depth_arms needs at least one depth.")
    return [Arm(f"k={k}", functools.partial(_split_at, dataset, k)) for k in depths]


def _split_at(dataset: MultiTaskDataset, depth: int, _setting: object) -> HardSharing:
    return split_model(dataset, depth)


def depth_sweep(dataset: MultiTaskDataset, depths: Sequence[int], seeds: Sequence[int],
                lrs: Sequence[float] | None = None, runner: Runner | None = None,
                device: torch.device | str | None = None, standard_runs: Sequence[Run] = ()) -> Comparison:
    """The split depth as arms of :func:`~mtl_helpers.protocol.compare`, one per depth
    (:func:`depth_arms`), every depth tuned alike: each learning rate of ``lrs`` (default: the
    budget's grid) with the first seed, the training length by the best epoch on validation,
    then its own learning rate with every seed. Which depth to use is then chosen on validation
    too (:func:`chosen_depth`).

    The split after the whole trunk *is* ``standard_network(dataset)``, weights included
    (:func:`~mtl_helpers.models.split_model`): ``standard_runs``, that network's runs through
    the same protocol on ``dataset`` (e.g. notebook 02's MTL arm, its search included), are
    reused for that depth where their learning rate and seed match, instead of being trained again."""
    if not depths or not seeds:
        raise ValueError("depth_sweep needs at least one depth and one seed.")
    arms = depth_arms(dataset, depths)
    if standard_runs:
        names = {r.arm for r in standard_runs}
        if len(names) != 1:
            raise ValueError(f"standard_runs must be one arm's runs, got arms {sorted(names)}.")
        whole_trunk = len(layer_groups(standard_network(dataset).trunk))
        runner = reusing_runner({(f"k={whole_trunk}", None): names.pop()}, runner or sequential_runner,
                                earlier=(dataset, standard_runs))
    return compare(arms, dataset, seeds=list(seeds), runner=runner, device=device, lrs=lrs)


def chosen_depth(comparison: Comparison, dataset: MultiTaskDataset) -> int:
    """The depth of a :func:`depth_sweep` with the best mean validation score over its seeds
    (:func:`~mtl_helpers.train.selection_score`, each depth at its own learning rate): the depth
    is chosen on validation, like the learning rate."""
    tasks = [dataset.task(t) for t in comparison.runs[next(iter(comparison.runs))][0].val]

    def mean_score(name: str) -> float:
        return statistics.fmean(selection_score(r.val, tasks) for r in comparison.runs[name])
    return int(max(comparison.runs, key=mean_score).removeprefix("k="))


def depth_results(comparison: Comparison, dataset: MultiTaskDataset) -> dict[int, dict]:
    """``{depth: {"test": {task: [per-seed metric]}, "val": {...}, "params": int}}`` of a
    :func:`depth_sweep`: what :func:`draw_split_depth` and the widget draw."""
    out = {}
    for name, runs in comparison.runs.items():
        depth = int(name.removeprefix("k="))
        out[depth] = {"test": {t: [r.test[t] for r in runs] for t in dataset.task_names},
                      "val": {t: [r.val[t] for r in runs] for t in dataset.task_names},
                      "params": count_parameters(split_model(dataset, depth))}
    return dict(sorted(out.items()))


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
    with ``n_shared`` marked. ``results`` comes from :func:`depth_results`."""
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
