"""Notebook 06 (task relatedness, experts, the ESMM cascade): the studies too long for the notebook.

* :func:`correlation_datasets`, :func:`label_correlation` — the MMoE benchmark at several cosines p
  (:func:`mtl_helpers.data.make_mmoe_data`, one data seed: only w₂ moves with p), with the
  notebook's budget attached;
* :func:`over_correlations` — one arm trained at every p at once (one seed, one lr): the copies
  share initial weights and batch order, as separate protocol runs would, and each keeps its
  best epoch on validation; :func:`sweep` adds the learning-rate search (one lr per arm,
  chosen on the mean validation score over every p) and the other seeds;
* :func:`sweep_table`, :func:`loss_difference`, :func:`plot_sweep`, :func:`gate_usage`,
  :func:`plot_gates`, :func:`draw_correlation` — reading the sweep, and the widget's figure;
* :func:`cvr_report` — the ESMM study's metrics against the generator's ground truth.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from torch import Tensor

from ..batched import Replicas, replica_key, replicate_tasks
from ..data import Budget, MultiTaskDataset, Split, make_click_data, make_mmoe_data, row_order
from ..metrics import PairedDifference, auc, format_mean_std, paired_difference
from ..models.esmm import ESMM, ConversionNet
from ..models.moe import MixtureOfExperts, MMoE, OMoE, matched_bottom_width, shared_bottom
from ..protocol import Arm, Run
from ..results import Tuned
from ..train import evaluate, fit, predict, selection_score
from ..utils import count_parameters
from ..workers import build_seeded

CORRELATIONS = (1.0, 0.9, 0.7, 0.5, 0.2)
SWEEP_BUDGET = Budget(epochs=4, batch_size=128, lrs=(3e-3, 1e-2))
SWEEP_DATA = {"n_train": 8000, "n_val": 1000, "n_test": 2000, "dim": 100, "seed": 1}
MODELS = ("Shared-Bottom", "OMoE", "MMoE")
SINGLE = {"Shared-Bottom": "single-task net", "OMoE": "single-task MoE", "MMoE": "single-task MoE"}


STORED_BUDGET = Budget(epochs=12, batch_size=128, lrs=(1e-3, 3e-3, 1e-2))
STORED_SEEDS = tuple(range(10))
STORED_FILE = Path(__file__).with_name("nb06_sweep.json")


def correlation_datasets(correlations: Sequence[float] = CORRELATIONS, budget: Budget = SWEEP_BUDGET,
                         **data: int) -> dict[float, MultiTaskDataset]:
    """The MMoE benchmark at every cosine p, targets standardised (:func:`standardized`), all drawn
    with one data seed: x, u₁, u₂, α, β and the noise are the same for every p, so y₁ is
    identical and only w₂ (hence y₂) moves with p."""
    if not correlations:
        raise ValueError("correlation_datasets needs at least one correlation p.")
    options = {**SWEEP_DATA, **data}
    return {float(p): standardized(make_mmoe_data(float(p), budget=budget, **options)) for p in correlations}


def label_correlation(dataset: MultiTaskDataset, split: str = "train") -> float:
    """Pearson correlation of the two tasks' labels y₁, y₂ on a split."""
    y = getattr(dataset, split).y
    a, b = (y[t].double() for t in dataset.task_names[:2])
    return float(torch.corrcoef(torch.stack([a, b]))[0, 1])


def _stacked_split(datasets: Sequence[MultiTaskDataset], split: str, tasks: Sequence[str]) -> Split:
    """One split whose targets ``task#r`` are those of ``datasets[r]`` (all share the inputs)."""
    first = getattr(datasets[0], split)
    for ds in datasets[1:]:
        if not torch.equal(getattr(ds, split).x, first.x):
            raise ValueError("over_correlations needs datasets with identical inputs (one data seed for every p).")
    return Split(first.x, {replica_key(t, r): getattr(ds, split).y[t] for r, ds in enumerate(datasets) for t in tasks})


def over_correlations(arm: Arm, datasets: Mapping[float, MultiTaskDataset], lr: float, seed: int,
                      device: torch.device | str | None = None) -> dict[float, Run]:
    """``arm`` trained once at every p, all copies at once (:class:`~mtl_helpers.batched.Replicas`).

    Copy r starts from the weights ``arm.build`` gives after ``seed_everything(seed)`` and sees
    the batch order of ``seed``, exactly as ``protocol.run(arm, datasets[p_r], lr=lr, seed=seed)``
    would; only its targets differ. The losses add up with no cross terms and Adam updates each
    coordinate on its own, so each copy follows its own path; each keeps its best epoch on its
    own validation score. Returns ``{p: Run}`` (the run's ``setting`` is p).
    """
    ps, sets = list(datasets), list(datasets.values())
    budget = sets[0].require_budget()
    tasks = arm.task_list(sets[0])
    names = [t.name for t in tasks]
    score = arm.score or (lambda metrics: selection_score(metrics, tasks))
    models = []
    for _ in ps:
        models.append(build_seeded(arm.build, None, seed))
    replicas = Replicas(models).to(device or "cpu")
    train, val = _stacked_split(sets, "train", names), _stacked_split(sets, "val", names)
    all_tasks = replicate_tasks(tasks, len(ps))
    epochs = budget.max_epochs(len(train), len(sets[0].train))
    best: list[tuple[float, int, list[torch.Tensor] | None]] = [(-float("inf"), 0, None)] * len(ps)

    def keep_best(epoch: int, record: dict) -> None:
        if epoch % max(1, epochs // 40) and epoch != epochs:
            return
        metrics, snapshot = evaluate(replicas, val, all_tasks), None
        for r in range(len(ps)):
            s = score({n: metrics[replica_key(n, r)] for n in names})
            if s > best[r][0]:
                snapshot = snapshot or [p.detach().clone() for p in replicas.stacked]
                best[r] = (s, epoch, snapshot)

    history = fit(replicas, train, all_tasks, epochs=epochs, lr=lr, batch_size=budget.batch_size,
                  on_epoch=keep_best, seed=seed, verbose=False)
    runs = {}
    for r, (p, ds) in enumerate(datasets.items()):
        _, epoch, snapshot = best[r]
        with torch.no_grad():
            for param, saved in zip(replicas.stacked, snapshot, strict=True):
                param[r] = saved[r]
        model = replicas.unstack(r)
        runs[p] = Run(arm.name, seed, lr, p, evaluate(model, ds.val, tasks), evaluate(model, ds.test, tasks), epoch,
                      epochs, epoch * budget.steps_per_epoch(len(train)), history.seconds / len(ps), None, model)
    return runs


@dataclass
class ArmSweep:
    """One arm over every p: the lr it chose (and the mean validation score of each lr of the
    grid), and per task, per p, one test loss per seed (MSE on standardised targets, RMSE²)."""

    name: str
    lr: float
    seeds: list[int]
    losses: dict[str, dict[float, list[float]]]
    best_epochs: dict[float, list[int]] = field(default_factory=dict)
    val_by_lr: dict[float, float] = field(default_factory=dict)
    runs: dict[float, list[Run]] = field(default_factory=dict, repr=False)  # the trained runs, when kept

    @classmethod
    def from_runs(cls, name: str, lr: float, runs: dict[float, list[Run]],
                  val_by_lr: dict[float, float]) -> ArmSweep:
        first = next(iter(runs.values()))
        losses = {task: {p: [r.test[task] ** 2 for r in rs] for p, rs in runs.items()} for task in first[0].test}
        return cls(name, lr, [r.seed for r in first], losses, {p: [r.best_epoch for r in rs] for p, rs in runs.items()},
                   val_by_lr, runs)

    @property
    def correlations(self) -> list[float]:
        return list(next(iter(self.losses.values())))

    def values(self, p: float, task: str) -> list[float]:
        """Per seed, the test loss of ``task`` at ``p``."""
        if task not in self.losses or p not in self.losses[task]:
            raise ValueError(f"{self.name!r} has no loss for task {task!r} at p = {p}; it has tasks "
                             f"{list(self.losses)} at p in {self.correlations}.")
        return self.losses[task][p]

    def mean_loss(self, p: float, task: str) -> float:
        return float(np.mean(self.values(p, task)))

    def at_every(self, correlations: Sequence[float]) -> ArmSweep:
        """The same results filed under every p: for y₁'s single-task reference, whose data do not
        depend on p (trained once, at the one p it holds)."""
        if len(self.correlations) != 1:
            raise ValueError(f"at_every needs a sweep at a single p, {self.name!r} has {self.correlations}.")
        only = self.correlations[0]
        return replace(self, losses={t: {float(p): v[only] for p in correlations} for t, v in self.losses.items()},
                       best_epochs={float(p): self.best_epochs.get(only, []) for p in correlations},
                       runs={float(p): self.runs[only] for p in correlations} if self.runs else {})

    def record(self) -> dict:
        """A JSON-able copy (no models)."""
        return {"lr": self.lr, "seeds": self.seeds, "val_by_lr": {str(k): v for k, v in self.val_by_lr.items()},
                "losses": {t: {str(p): v for p, v in ps.items()} for t, ps in self.losses.items()},
                "best_epochs": {str(p): v for p, v in self.best_epochs.items()}}

    @classmethod
    def from_record(cls, name: str, record: Mapping) -> ArmSweep:
        return cls(name, record["lr"], list(record["seeds"]),
                   {t: {float(p): list(v) for p, v in ps.items()} for t, ps in record["losses"].items()},
                   {float(p): list(v) for p, v in record["best_epochs"].items()},
                   {float(k): v for k, v in record["val_by_lr"].items()})


def sweep(arm: Arm, datasets: Mapping[float, MultiTaskDataset], seeds: Sequence[int] = (0, 1, 2),
          device: torch.device | str | None = None) -> ArmSweep:
    """The protocol's search for one arm over the whole sweep: every lr of the budget with the
    first seed (all p at once), the lr with the best *mean validation score over p* is kept,
    then the other seeds run at that lr. Every arm gets this same search."""
    if not seeds:
        raise ValueError("sweep needs at least one seed.")
    budget = next(iter(datasets.values())).require_budget()
    tasks = arm.task_list(next(iter(datasets.values())))
    score = arm.score or (lambda metrics: selection_score(metrics, tasks))
    search = {lr: over_correlations(arm, datasets, lr, seeds[0], device) for lr in budget.lrs}
    val_by_lr = {lr: float(np.mean([score(r.val) for r in runs.values()])) for lr, runs in search.items()}
    lr = max(val_by_lr, key=val_by_lr.get)
    runs = {p: [run] for p, run in search[lr].items()}
    for seed in seeds[1:]:
        for p, run in over_correlations(arm, datasets, lr, seed, device).items():
            runs[p].append(run)
    return ArmSweep.from_runs(arm.name, lr, runs, val_by_lr)


def loss_difference(a: ArmSweep, p_a: float, b: ArmSweep, p_b: float, task: str) -> PairedDifference:
    """Paired over seeds: loss of ``a`` at ``p_a`` minus loss of ``b`` at ``p_b`` on ``task``."""
    if a.seeds != b.seeds:
        raise ValueError(f"Sweeps {a.name!r} and {b.name!r} used different seeds: {a.seeds} vs {b.seeds}.")
    return paired_difference(a.values(p_a, task), b.values(p_b, task))


def standardized(dataset: MultiTaskDataset) -> MultiTaskDataset:
    """The same data with every regression target standardised by the *training* split's mean
    and std (y − μ_train)/σ_train; an MSE on this scale is a fraction of the label variance."""
    stats = {t.name: (dataset.train.y[t.name].mean(), dataset.train.y[t.name].std()) for t in dataset.tasks
             if t.kind == "regression"}

    def scale(split: Split) -> Split:
        return Split(split.x, {k: (v - stats[k][0]) / stats[k][1] if k in stats else v for k, v in split.y.items()},
                     split.masks)
    return replace(dataset, train=scale(dataset.train), val=scale(dataset.val), test=scale(dataset.test),
                   info={**dataset.info, "target_mean_std": {k: (float(m), float(s)) for k, (m, s) in stats.items()}})


def moe_arms(datasets: Mapping[float, MultiTaskDataset], n_experts: int = 8, expert_hidden: int = 16,
             tower_hidden: int = 8) -> dict[str, Arm]:
    """Shared-Bottom, OMoE and MMoE with the paper's sizes, Shared-Bottom's bottom sized to
    MMoE's parameter count (:func:`~mtl_helpers.models.matched_bottom_width`), and each task's
    single-task references: the Shared-Bottom net and the MoE, each with one tower."""
    dataset = next(iter(datasets.values()))
    dim, tasks = dataset.train.x.shape[1], dataset.tasks
    sizes = {"n_experts": n_experts, "expert_hidden": expert_hidden, "tower_hidden": tower_hidden}
    width = matched_bottom_width(dim, len(tasks), count_parameters(MMoE(dim, tasks, **sizes)), tower_hidden)
    arms = {"Shared-Bottom": Arm("Shared-Bottom", lambda _: shared_bottom(dim, tasks, width, tower_hidden)),
            "OMoE": Arm("OMoE", lambda _: OMoE(dim, tasks, **sizes)),
            "MMoE": Arm("MMoE", lambda _: MMoE(dim, tasks, **sizes))}
    for t in tasks:
        arms[f"single-task net · {t.name}"] = Arm(f"single-task net · {t.name}", lambda _, t=t: shared_bottom(
            dim, [t], width, tower_hidden), tasks=[t.name])
        arms[f"single-task MoE · {t.name}"] = Arm(f"single-task MoE · {t.name}", lambda _, t=t: MMoE(
            dim, [t], **sizes), tasks=[t.name])
    return arms


def correlation_study(datasets: Mapping[float, MultiTaskDataset], seeds: Sequence[int] = (0, 1, 2),
                      device: torch.device | str | None = None, **sizes: int) -> dict[str, ArmSweep]:
    """Every arm of :func:`moe_arms` (``sizes``: its size options) through :func:`sweep` (the same search for each). The
    single-task references of the first task train once, on the data of the largest p (y₁ is
    the same at every p), and are filed under every p."""
    ps, largest = list(datasets), max(datasets)
    first = next(iter(datasets.values())).task_names[0]
    study = {}
    for name, arm in moe_arms(datasets, **sizes).items():
        if name.endswith(f"· {first}"):
            study[name] = sweep(arm, {largest: datasets[largest]}, seeds, device).at_every(ps)
        else:
            study[name] = sweep(arm, datasets, seeds, device)
    return study


def reference(study: Mapping[str, ArmSweep], model: str, task: str) -> ArmSweep:
    """The single-task reference of ``model`` for ``task`` (the net for Shared-Bottom, the
    single-task MoE for OMoE and MMoE)."""
    if model not in SINGLE:
        raise ValueError(f"Unknown model {model!r}; choose one of {list(SINGLE)}.")
    return study[f"{SINGLE[model]} · {task}"]


@torch.no_grad()
def gate_usage(model: MixtureOfExperts, x: torch.Tensor) -> torch.Tensor:
    """(T, n_experts): each task's mean gate weight on every expert over the inputs ``x``."""
    model.eval()
    device = next(model.parameters()).device
    return torch.stack([g.mean(0) for g in model.gate_weights(x.to(device)).values()]).cpu()


@torch.no_grad()
def gate_agreement(model: MixtureOfExperts, x: torch.Tensor) -> float:
    """1 − the mean total-variation distance between the two tasks' gates, per input:
    1 means both tasks mix the experts identically (OMoE always), 0 means disjoint experts."""
    model.eval()
    gates = list(model.gate_weights(x.to(next(model.parameters()).device)).values())
    if len(gates) != 2:
        raise ValueError(f"gate_agreement compares two tasks' gates, the model has {len(gates)}.")
    return float(1 - 0.5 * (gates[0] - gates[1]).abs().sum(1).mean())


def usage_entropy(usage: Tensor) -> float:
    """Mean over tasks of H(u_k) / log n for mean gate usages ``usage`` (T × n, rows on the
    simplex): 1 when a task spreads its weight evenly over the n experts, 0 when it uses one."""
    usage = torch.as_tensor(usage, dtype=torch.float64)
    return float(-(usage * usage.clamp_min(1e-300).log()).sum(1).mean() / np.log(usage.shape[1]))


def gates_at_init(datasets: Mapping[float, MultiTaskDataset], seeds: Sequence[int]) -> dict[str, list[float]]:
    """The untrained baseline of :func:`gate_summary`: MMoE as each seed builds it, before any
    training (the test inputs are the same at every p), its gate agreement and usage entropy."""
    dataset = next(iter(datasets.values()))
    arm, x = moe_arms(datasets)["MMoE"], dataset.test.x
    models = [build_seeded(arm.build, None, seed) for seed in seeds]
    return {"agreement": [gate_agreement(m, x) for m in models],
            "entropy": [usage_entropy(gate_usage(m, x)) for m in models]}


# --------------------------------------------------------------------------- reading the sweep
def sweep_table(study: Mapping[str, ArmSweep], task: str, names: Sequence[str] | None = None) -> pd.DataFrame:
    """Rows: arms (those with ``task``); columns: p; cells: test loss in % of the label variance,
    mean ± std over seeds. The lr each arm chose is the last column."""
    rows = {}
    for name, result in study.items():
        if names is not None and name not in names:
            continue
        if task not in result.losses:
            continue
        rows[name] = {f"p = {p:g}": format_mean_std([100 * v for v in result.values(p, task)], 2)
                      for p in result.correlations}
        rows[name]["lr"] = result.lr
    return pd.DataFrame(rows).T


def degradation(result: ArmSweep, task: str, low: float, high: float = 1.0) -> list[float]:
    """Per seed, the loss at p = ``low`` minus the loss at p = ``high`` (same seed: paired)."""
    return [a - b for a, b in zip(result.values(low, task), result.values(high, task))]


def transfer(study: Mapping[str, ArmSweep], model: str, task: str, p: float) -> PairedDifference:
    """Loss of ``model`` minus its single-task reference on ``task`` at ``p``, paired over seeds:
    an interval above 0 is negative transfer, below 0 positive transfer."""
    ref = reference(study, model, task)
    return loss_difference(study[model], p, ref, p, task)


def plot_sweep(study: Mapping[str, ArmSweep], tasks: Sequence[str] = ("y1", "y2"), axes=None):
    """Test loss (% of label variance) against p, mean ± std over seeds, one panel per task;
    dashed: each architecture's single-task reference; a red ring marks negative transfer
    (the paired interval of model − reference lies above 0)."""
    if axes is None:
        axes = plt.subplots(1, len(tasks), figsize=(10, 3.3), squeeze=False)[1][0]
    for ax, task in zip(axes, tasks):
        for i, model in enumerate(MODELS):
            result = study[model]
            ps = sorted(result.correlations)
            mean = [100 * result.mean_loss(p, task) for p in ps]
            std = [100 * np.std(result.values(p, task), ddof=1) for p in ps]
            ax.errorbar(ps, mean, yerr=std, marker="o", ms=4, capsize=3, color=f"C{i}", label=model)
            ref_name = f"{SINGLE[model]} · {task}"
            if ref_name in study and model != "MMoE":
                ax.plot(ps, [100 * study[ref_name].mean_loss(p, task) for p in ps], ls="--", color=f"C{i}", lw=1,
                        label=f"{SINGLE[model]} (alone)")
            if ref_name in study:
                bad = [p for p in ps if transfer(study, model, task, p).direction == 1]
                ax.scatter(bad, [100 * result.mean_loss(p, task) for p in bad], s=160, facecolors="none",
                           edgecolors="red", lw=1.5, zorder=5)
        ax.set_xlabel("task correlation p (cosine of w₁, w₂)")
        ax.set_ylabel(f"test loss on {task} (% of variance)")
        ax.invert_xaxis()
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, ncol=2)
    return axes


def plot_gates(usage: Mapping[float, torch.Tensor], axes=None, tasks: Sequence[str] = ("y1", "y2")):
    """One heatmap per p: rows = tasks, columns = experts, colour = mean gate weight (a uniform
    gate gives every expert 1/n)."""
    if axes is None:
        axes = plt.subplots(1, len(usage), figsize=(10, 1.9), squeeze=False)[1][0]
    image = None
    for i, (ax, (p, u)) in enumerate(zip(axes, usage.items())):
        image = ax.imshow(u.numpy(), cmap="viridis", vmin=0.0, vmax=2.5 / u.shape[1], aspect="auto")
        ax.set_title(f"p = {p:g}", fontsize=9)
        ax.set_yticks(range(len(tasks)), tasks if i == 0 else [""] * len(tasks))
        ax.set_xticks(range(u.shape[1]), [str(j + 1) for j in range(u.shape[1])], fontsize=7)
        ax.set_xlabel("expert", fontsize=8)
    if image is not None:
        plt.colorbar(image, ax=list(axes), fraction=0.02, label="mean gate weight")
    return axes


def gate_summary(result: ArmSweep, datasets: Mapping[float, MultiTaskDataset]) -> dict:
    """From a sweep that kept its runs (an MoE arm): per p, every seed's mean gate usage
    (T × n, :func:`gate_usage`) and gate agreement (:func:`gate_agreement`) on the test inputs."""
    if not result.runs:
        raise ValueError(f"The sweep of {result.name!r} kept no models (it was loaded from a record).")
    return {"usage": {p: [gate_usage(r.model, datasets[p].test.x).tolist() for r in runs]
                      for p, runs in result.runs.items()},
            "agreement": {p: [gate_agreement(r.model, datasets[p].test.x) for r in runs]
                          for p, runs in result.runs.items()}}


def draw_correlation(study: Mapping[str, ArmSweep], usage: Mapping[float, torch.Tensor], p: float) -> plt.Figure:
    """The widget's figure at one p: every model's loss on both tasks (mean ± std) beside its
    single-task reference, and MMoE's gate usage."""
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 3.2), gridspec_kw={"width_ratios": [1.3, 1]})
    width = 0.38
    for j, task in enumerate(("y1", "y2")):
        xs = np.arange(len(MODELS)) + (j - 0.5) * width
        means = [100 * study[m].mean_loss(p, task) for m in MODELS]
        stds = [100 * np.std(study[m].values(p, task), ddof=1) for m in MODELS]
        ax0.bar(xs, means, width, yerr=stds, capsize=3, label=task, color=f"C{j}", alpha=0.8)
        for x, m in zip(xs, MODELS):
            ref = f"{SINGLE[m]} · {task}"
            if ref in study:
                ax0.hlines(100 * study[ref].mean_loss(p, task), x - width / 2, x + width / 2, colors="k", lw=2)
    ax0.set_xticks(range(len(MODELS)), MODELS)
    ax0.set_ylabel("test loss (% of variance)")
    ax0.set_title(f"p = {p:g} · black: single-task reference", fontsize=9)
    ax0.legend(fontsize=8, loc="upper left")
    plot_gates({p: usage[p]}, axes=[ax1])
    ax1.set_title(f"MMoE gates at p = {p:g} (seed 0)", fontsize=9)
    return fig


# --------------------------------------------------------------------------- the ESMM study
# five lrs and 18 epochs (96 for the CVR nets, on a fifth of the rows): in the search (seed 0) every arm's chosen
# lr and kept epoch fell inside these grids, or on a flat stretch of validation score (printed in the notebook);
# one of ESMM's five final runs keeps its last epoch
CLICK_BUDGET = Budget(epochs=18, batch_size=256, lrs=(1e-3, 3e-3, 1e-2, 3e-2, 1e-1))
CLICK_DATA = {"n_train": 8_000, "n_val": 2_000, "n_test": 10_000, "dim": 8, "ctr_bias": -2.0, "rho": -0.7,
              "bend": 0.5, "seed": 0}


def click_dataset(budget: Budget = CLICK_BUDGET, **options: float) -> MultiTaskDataset:
    """The notebook's impression → click → conversion data (:func:`mtl_helpers.data.make_click_data`)."""
    return make_click_data(budget=budget, **{**CLICK_DATA, **options})


def clicked_only(dataset: MultiTaskDataset) -> MultiTaskDataset:
    """What a conversion model trained the usual way is selected on: the ``conversion`` task on
    the clicked validation impressions (the only ones with a conversion label); test keeps every
    impression, with the ground-truth labels, to score it on the entire space. Its arm trains on
    ``train.labelled("conversion")``, the clicked training rows (:func:`esmm_arms`), with as many
    optimisation steps as an arm on every impression (:meth:`~mtl_helpers.data.Budget.max_epochs`)."""
    view = dataset.select(["conversion"])
    return replace(view, val=view.val.labelled("conversion"))


def revealed_at_random(dataset: MultiTaskDataset, seed: int = 0) -> MultiTaskDataset:
    """The experiment no shop can run: conversion labels revealed on a *random* set of impressions,
    as many as were clicked (in train and in validation). Same number of labels as
    :func:`clicked_only`, no selection: the difference between the two is the selection bias."""
    view = dataset.select(["conversion"])

    def random_rows(split: Split, clicks: Tensor, offset: int) -> Split:
        keep = torch.zeros(len(split), dtype=torch.bool)
        keep[torch.from_numpy(row_order(len(split), seed + offset)[: int(clicks.sum())])] = True
        return replace(split, masks={"conversion": keep})

    train = random_rows(view.train, dataset.train.y["click"], 0)
    return replace(view, train=train, val=random_rows(view.val, dataset.val.y["click"], 1).labelled("conversion"))


def esmm_arms(dataset: MultiTaskDataset) -> dict[str, tuple[Arm, MultiTaskDataset]]:
    """The contenders, each with the data it may learn and be selected on: the CVR net on the
    clicked impressions (what a shop can train), the same net on as many *random* impressions
    (the unbiased reference only a generator allows) and ESMM (click and purchase labels on every
    impression). The CVR nets train on their labelled rows with as many steps as ESMM."""
    dim = dataset.train.x.shape[1]
    clicked, at_random = clicked_only(dataset), revealed_at_random(dataset)
    return {"CVR net, clicked only": (Arm("CVR net, clicked only", lambda _: ConversionNet(dim), tasks=["conversion"],
                                          train=lambda seed: clicked.train.labelled("conversion")), clicked),
            "CVR net, random impressions": (Arm("CVR net, random impressions", lambda _: ConversionNet(dim),
                                                tasks=["conversion"],
                                                train=lambda seed: at_random.train.labelled("conversion")), at_random),
            "ESMM": (Arm("ESMM", lambda _: ESMM(dim), tasks=["click", "purchase"]), dataset)}


def searched_lrs(tuned: Tuned, arm: Arm, dataset: MultiTaskDataset) -> dict[str, str]:
    """The search behind an arm's result: per lr, its validation score (the one the protocol
    selects on, mean over the tuning seeds) and the kept epoch of each tuning run."""
    score = arm.score or (lambda metrics: selection_score(metrics, arm.task_list(dataset)))
    by_lr = sorted(tuned.runs.items(), key=lambda item: item[0][0])
    return {f"lr {lr:g}": f"{np.mean([score(r.val) for r in runs]):.4f} "
                          f"(epoch {', '.join(str(r.best_epoch) for r in runs)})"
            for (lr, _), runs in by_lr}


@torch.no_grad()
def predicted_cvr(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """pCVR = σ(the model's ``conversion`` logit) on every row of ``x``."""
    return torch.sigmoid(predict(model, x)["conversion"].reshape(-1))


def cvr_report(model: torch.nn.Module, dataset: MultiTaskDataset) -> dict[str, float]:
    """The model's pCVR on the test impressions against the generator's ground truth.

    * ``AUC, clicked``: against the conversions of clicked impressions (what a shop can measure);
    * ``AUC, all``: against every impression's conversion (revealed by the generator);
    * ``mean pCVR − truth``: mean prediction minus mean true pCVR over all impressions
      (calibration in the large; negative: underestimates);
    * ``mean |pCVR − truth|``: the mean absolute error against the true pCVR, impression by
      impression (not calibration, which compares averages: :func:`plot_calibration`).
    """
    p = predicted_cvr(model, dataset.test.x)
    truth = dataset.info["truth"]["test"]["cvr"]
    converted, clicked = dataset.test.y["conversion"], dataset.test.y["click"].bool()
    return {"AUC, clicked": auc(p[clicked], converted[clicked]), "AUC, all": auc(p, converted),
            "mean pCVR − truth": float(p.mean() - truth.mean()),
            "mean |pCVR − truth|": float((p - truth).abs().mean())}


def cvr_error_by_ctr(model: torch.nn.Module, dataset: MultiTaskDataset, share: float = 0.25) -> dict[str, float]:
    """Mean |pCVR − true pCVR| on the test impressions *least* likely to be clicked (the ``share``
    with the lowest true pCTR, where clicked rows are scarcest) and on the ``share`` most likely."""
    if not 0 < share <= 0.5:
        raise ValueError(f"share must be in (0, 0.5], got {share}.")
    error = (predicted_cvr(model, dataset.test.x) - dataset.info["truth"]["test"]["cvr"]).abs()
    order = dataset.info["truth"]["test"]["ctr"].argsort()
    n = max(1, int(share * len(order)))
    return {"rarely clicked": float(error[order[:n]].mean()), "often clicked": float(error[order[-n:]].mean())}


def oracle_report(dataset: MultiTaskDataset) -> dict[str, float]:
    """:func:`cvr_report`'s AUCs for the true pCVR itself: the best any model can rank, on the
    clicked test impressions and on all of them (they differ: the populations differ)."""
    truth = dataset.info["truth"]["test"]["cvr"]
    converted, clicked = dataset.test.y["conversion"], dataset.test.y["click"].bool()
    return {"AUC, clicked": auc(truth[clicked], converted[clicked]), "AUC, all": auc(truth, converted)}


def plot_calibration(models: Mapping[str, Sequence[torch.nn.Module]], dataset: MultiTaskDataset, ax=None,
                     bins: int = 10):
    """Mean predicted pCVR against the mean *true* pCVR in deciles of the true pCVR, over all test
    impressions (mean over the given models); on the diagonal a model is calibrated."""
    ax = ax or plt.subplots(figsize=(4.5, 3.3))[1]
    truth = dataset.info["truth"]["test"]["cvr"]
    order = truth.argsort()
    groups = order.tensor_split(bins)
    true_mean = [float(truth[g].mean()) for g in groups]
    for name, ms in models.items():
        preds = torch.stack([predicted_cvr(m, dataset.test.x) for m in ms]).mean(0)
        ax.plot(true_mean, [float(preds[g].mean()) for g in groups], marker="o", ms=4, label=name)
    ax.plot([0, 1], [0, 1], color="k", lw=0.8, ls=":")
    lim = max(true_mean) * 1.1
    ax.set_xlim(0, lim)
    ax.set_ylim(0, lim)
    ax.set_xlabel("true pCVR (decile mean)")
    ax.set_ylabel("predicted pCVR")
    ax.legend(fontsize=8)
    return ax


# --------------------------------------------------------------------------- the stored sweep
def write_sweep(path: Path = STORED_FILE, seeds: Sequence[int] = STORED_SEEDS,
                budget: Budget = STORED_BUDGET) -> dict:
    """Run :func:`correlation_study` with the stored budget and seeds (minutes on a CPU) and
    write every arm's record, the label correlations and MMoE's gates to ``path``."""
    start = time.perf_counter()
    datasets = correlation_datasets(budget=budget)
    study = correlation_study(datasets, seeds)
    out = {"protocol": "per arm: every lr of the budget with seed 0 at every p at once, lr chosen on the mean "
                       "validation score over p; then every seed at that lr; best epoch on validation",
           "torch": torch.__version__, "data": SWEEP_DATA, "budget": asdict(budget),
           "label_correlation": {str(p): label_correlation(ds) for p, ds in datasets.items()},
           "arms": {name: result.record() for name, result in study.items()},
           "gates": {k: {str(p): v for p, v in d.items()} for k, d in gate_summary(study["MMoE"], datasets).items()},
           "seconds": time.perf_counter() - start}
    path.write_text(json.dumps(out, indent=1) + "\n")
    return out


def load_sweep(path: Path = STORED_FILE) -> tuple[dict[str, ArmSweep], dict]:
    """The stored sweep: ``({arm: ArmSweep}, the whole record)``."""
    stored = json.loads(Path(path).read_text())
    return {name: ArmSweep.from_record(name, rec) for name, rec in stored["arms"].items()}, stored


if __name__ == "__main__":  # python -m mtl_helpers.experiments.nb06  (one thread, as the tests run)
    torch.set_num_threads(1)
    print(f"{write_sweep()['seconds']:.0f} s")
