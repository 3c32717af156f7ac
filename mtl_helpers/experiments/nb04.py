"""Notebook 04 (task weighting): the studies too long for the notebook itself.

* :func:`target_stats`, :class:`AffineOutput`, :func:`standardised_network` and
  :class:`ScaledLosses` — the first fix, standardising a regression target: the head learns
  (y − μ)/σ, the model answers in units, every balancer sees the standardised loss;
* :func:`weighting_arm` — the standard network trained with a loss weighting, as a protocol
  :class:`~mtl_helpers.protocol.Arm` (the weighting is chosen by ``options``; a static-weight
  grid is an arm whose setting is λ; ``standardise=True`` for the fix above);
  :func:`balancer_of` gives back the balancer a run used (its learned log-variances, its weight
  history);
* :func:`grid_runner` — a protocol ``runner`` that trains every λ of a static arm at once
  (:class:`StackedNetworks`: batched matrix products, the same paths as one run each);
* :func:`relative_score` — a validation score for tasks in different units (AUC and RMSE in
  hours): the mean relative gain over reference metrics;
* :class:`TrackGradNorms` — equal (or fixed) weights that also record each task's gradient norm
  on the last shared layer;
* :class:`GridResult`, :func:`measurable_tradeoffs`, :func:`draw_front` and
  :func:`draw_weight_choice` — the grid's runs over seeds in metric space, the Pareto front,
  which of its trade-offs survive pairing over the seeds, and the widget's figure;
* :func:`fit_gal_example` and :func:`fit_gradnorm_toy` — the two papers' toy reproductions.

The cost per step is :func:`mtl_helpers.costs.step_cost_table`, as in every notebook.
"""

from __future__ import annotations

import copy
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor, nn

from ..batched import replica_key, replicate_split, replicate_tasks
from ..data import MultiTaskDataset, gal_uw_data, gradnorm_toy_data
from ..metrics import PairedDifference, paired_difference, pareto_front
from ..models import HardSharing, mlp, standard_network
from ..protocol import Arm, Run
from ..tasks import Task
from ..train import History, evaluate, fit, selection_score
from ..utils import seed_everything
from ..weighting import (
    WEIGHTINGS,
    GradNorm,
    Losses,
    LossWeighting,
    StaticWeighting,
    UncertaintyWeighting,
    check_losses,
    last_shared_layer,
    make_weighting,
    task_gradient_norms,
)
from ..workers import build_seeded, side_by_side

Score = Callable[[dict[str, float]], float]

# --------------------------------------------------------------------------- standardising a target
class AffineOutput(nn.Module):
    """z ↦ μ + σ·z with fixed μ and σ (buffers, never trained): the last layer of a head that
    predicts a standardised target and answers in the target's own units."""

    def __init__(self, mean: float, std: float) -> None:
        super().__init__()
        if not (np.isfinite(mean) and np.isfinite(std) and std > 0):
            raise ValueError(f"AffineOutput needs a finite mean and a positive std, got {mean}, {std}.")
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))

    def forward(self, z: Tensor) -> Tensor:
        return self.mean + self.std * z


def target_stats(dataset: MultiTaskDataset) -> dict[str, tuple[float, float]]:
    """(μ, σ) of every regression target on the *training* split (never validation or test)."""
    stats = {}
    for task in dataset.tasks:
        if task.kind == "regression":
            y = dataset.train.y[task.name].float()
            stats[task.name] = (y.mean().item(), y.std().item())
    return stats


def standardised_network(dataset: MultiTaskDataset, stats: Mapping[str, tuple[float, float]]) -> HardSharing:
    """The standard network (same initial weights for the same seed) whose regression heads end
    in :class:`AffineOutput`: the head learns z = (y − μ)/σ, the model answers μ + σ·z in units."""
    model = standard_network(dataset)
    for name, (mean, std) in stats.items():
        model.heads[name] = nn.Sequential(model.heads[name], AffineOutput(mean, std))
    return model


class ScaledLosses(nn.Module):
    """Fixed factors c_t applied to the task losses before a balancer: ``inner(c ⊙ L)``.

    With c_t = 1/σ_t² on a regression task whose model answers μ + σ·z, c_t·MSE(μ + σz, y) =
    MSE(z, (y − μ)/σ): every balancer then sees the loss on the standardised target. DWA's
    epoch means are scaled alike (it is scale-free, so this changes nothing for it)."""

    def __init__(self, inner: Callable[[Tensor], Tensor], scales: Sequence[float]) -> None:
        super().__init__()
        c = torch.as_tensor([float(v) for v in scales])
        if c.ndim != 1 or not len(c) or not torch.isfinite(c).all() or (c <= 0).any():
            raise ValueError(f"scales must be positive finite numbers, one per task, got {list(scales)}.")
        self.inner = inner
        self.register_buffer("scales", c)

    def forward(self, losses: Losses) -> Tensor:
        L = check_losses(losses, len(self.scales))
        return self.inner(L * self.scales.to(L.device))

    def epoch_end(self, mean_losses: Tensor) -> None:
        if hasattr(self.inner, "epoch_end"):
            self.inner.epoch_end(torch.as_tensor(mean_losses).detach().cpu() * self.scales.cpu())


# --------------------------------------------------------------------------- arms
def weighting_arm(name: str, dataset: MultiTaskDataset,
                  weighting: str | Callable[[nn.Module, Any], LossWeighting], *,
                  settings: Sequence[Any] = (None,), score: Score | None = None, standardise: bool = False,
                  **options: Any) -> Arm:
    """The standard network on all of ``dataset``'s tasks, trained on ``weighting(L)``.

    ``weighting`` is a name of :data:`~mtl_helpers.weighting.WEIGHTINGS` (``options`` go to
    :func:`~mtl_helpers.weighting.make_weighting`, e.g. ``alpha=1.5``) or a function
    ``(model, setting) -> balancer`` (the setting is the arm's own knob, e.g. the λ of a static
    weight). With ``standardise=True`` every regression target is standardised with the training
    split's (μ, σ): the heads end in :class:`AffineOutput` (metrics stay in the target's units)
    and the balancer sees the losses on the standardised targets (:class:`ScaledLosses`, 1/σ²).
    The balancer reaches ``fit`` through the arm's ``options``; :func:`balancer_of` gives it back.
    """
    if isinstance(weighting, str):
        if weighting not in WEIGHTINGS:
            raise ValueError(f"Unknown loss weighting {weighting!r}; choose one of {list(WEIGHTINGS)}.")
    elif not callable(weighting) or options:
        raise ValueError("weighting must be a registry name (with its options) or a function (model, setting) "
                         "-> balancer (without options).")
    stats = target_stats(dataset) if standardise else {}
    scales = [1.0 / stats[t.name][1] ** 2 if t.name in stats else 1.0 for t in dataset.tasks]

    def choose(model: nn.Module, setting: Any) -> dict:
        balancer = (make_weighting(weighting, model, dataset.tasks, **options) if isinstance(weighting, str)
                    else weighting(model, setting))
        return {"weighting": ScaledLosses(balancer, scales) if standardise else balancer}

    build = (lambda _: standardised_network(dataset, stats)) if standardise else (lambda _: standard_network(dataset))
    return Arm(name, build, settings=tuple(settings), options=choose, score=score)


def balancer_of(run: Run) -> LossWeighting:
    """The balancer a run of a :func:`weighting_arm` trained with (inside :class:`ScaledLosses`
    for a standardised arm). Its state is the one at the end of training, not at the kept epoch."""
    balancer = (run.options or {}).get("weighting")
    if balancer is None:
        raise ValueError(f"Run of {run.arm!r} (seed {run.seed}) has no balancer in its options: train it with a "
                         "weighting_arm.")
    return balancer.inner if isinstance(balancer, ScaledLosses) else balancer


def static_weights_of(balancer: Any) -> Tensor:
    """The fixed weights a static balancer puts on the raw losses (scales included)."""
    if isinstance(balancer, ScaledLosses):
        return balancer.scales.cpu() * static_weights_of(balancer.inner)
    if isinstance(balancer, StaticWeighting):
        return balancer.weights
    raise ValueError(f"{type(balancer).__name__} is not a static weighting: grid_runner trains static weights only.")


class _StackedLinear(nn.Module):
    """R linear layers of one shape as one: h (B, in) or (R, B, in) → (R, B, out) by batched matmul."""

    def __init__(self, layers: Sequence[nn.Linear]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.stack([layer.weight.detach() for layer in layers]).transpose(1, 2).clone())
        self.bias = nn.Parameter(torch.stack([layer.bias.detach() for layer in layers]).unsqueeze(1).clone())

    def forward(self, h: Tensor) -> Tensor:
        return torch.matmul(h, self.weight) + self.bias

    def copy_out(self, layer: nn.Linear, r: int) -> None:
        layer.weight.copy_(self.weight[r].T)
        layer.bias.copy_(self.bias[r, 0])


def _stack(modules: Sequence[nn.Module]) -> nn.Module:
    """One module computing R copies of a feed-forward block at once (Linear, ReLU, AffineOutput,
    Sequential); the copies must share their architecture (and their AffineOutput)."""
    first = modules[0]
    if any(type(m) is not type(first) for m in modules):
        raise ValueError("The copies must have the same architecture.")
    if isinstance(first, nn.Linear):
        return _StackedLinear(modules)
    if isinstance(first, nn.Sequential):
        if any(len(m) != len(first) for m in modules):
            raise ValueError("The copies must have the same architecture.")
        return nn.Sequential(*[_stack([m[i] for m in modules]) for i in range(len(first))])
    if isinstance(first, nn.ReLU):
        return nn.ReLU()
    if isinstance(first, AffineOutput):
        if any(not (torch.equal(m.mean, first.mean) and torch.equal(m.std, first.std)) for m in modules):
            raise ValueError("The copies must share their AffineOutput (the same μ and σ).")
        return copy.deepcopy(first)
    raise ValueError(f"grid_runner stacks Linear/ReLU/AffineOutput networks only, got {type(first).__name__}.")


class StackedNetworks(nn.Module):
    """R copies of one :class:`~mtl_helpers.models.HardSharing` MLP trained as one model.

    Every Linear layer holds the R copies' weights in one (R, in, out) tensor and runs them as
    one batched matrix product; outputs are named ``task#r``, as in
    :class:`~mtl_helpers.batched.Replicas` (which does the same for any architecture with
    ``vmap``, at a higher cost per step for networks this small)."""

    def __init__(self, models: Sequence[HardSharing]) -> None:
        super().__init__()
        models = list(models)
        if not models or any(m.task_names != models[0].task_names for m in models):
            raise ValueError("StackedNetworks needs at least one model, all with the same heads.")
        self.n, self._base = len(models), [copy.deepcopy(models[0])]
        self.trunk = _stack([m.trunk for m in models])
        self.heads = nn.ModuleDict({t: _stack([m.heads[t] for m in models]) for t in models[0].task_names})

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        z = self.trunk(x)
        return {replica_key(t, r): out[r] for t, head in self.heads.items() for out in [head(z)] for r in range(self.n)}

    def unstack(self, r: int) -> HardSharing:
        """Copy ``r`` as an ordinary model (weights copied out)."""
        if not 0 <= r < self.n:
            raise ValueError(f"Copy index must be in 0..{self.n - 1}, got {r}.")
        model = copy.deepcopy(self._base[0])
        pairs = [(self.trunk, model.trunk)] + [(self.heads[t], model.heads[t]) for t in self.heads]
        with torch.no_grad():
            for stacked, target in pairs:
                mine = [m for m in stacked.modules() if isinstance(m, _StackedLinear)]
                for s_layer, layer in zip(mine, [m for m in target.modules() if isinstance(m, nn.Linear)], strict=True):
                    s_layer.copy_out(layer, r)
        return model.to(next(self.parameters()).device)


def grid_runner(arm: Arm, dataset: MultiTaskDataset, lr: float, settings: Sequence[Any], seeds: Sequence[int],
                device: torch.device | str | None = None) -> list[Run]:
    """A protocol ``runner`` for a static-weight arm: per seed, every setting trains at once.

    The copies are stacked in one :class:`StackedNetworks` model and trained on
    Σ_r Σ_t λ_{r,t} L_{r,t}: copy r only reaches its own losses and Adam works per coordinate,
    so each copy follows the path it would follow alone (same initial weights, same batches),
    up to float rounding. Each copy keeps its best epoch on validation (the arm's score). Runs
    come back as from :func:`~mtl_helpers.protocol.sequential_runner`, with their validation
    curves in ``history`` and their balancer in ``options``.
    """
    per_seed = side_by_side([functools.partial(_grid_one_seed, arm, dataset, lr, list(settings), seed, device)
                             for seed in seeds])
    return [r for runs in per_seed for r in runs]


def _grid_one_seed(arm: Arm, dataset: MultiTaskDataset, lr: float, settings: list[Any], seed: int,
                   device: torch.device | str | None) -> list[Run]:
    budget, tasks, train = dataset.require_budget(), arm.task_list(dataset), dataset.train
    score = arm.score or (lambda metrics: selection_score(metrics, tasks))
    models, balancers = [], []
    for setting in settings:
        models.append(build_seeded(arm.build, setting, seed))
        balancers.append(arm.fit_options(models[-1], setting)["weighting"])
    weights = torch.cat([static_weights_of(b) for b in balancers])
    stacked = StackedNetworks(models).to(device or "cpu")
    n, epochs = len(settings), budget.max_epochs(len(train), len(train))
    val, all_tasks = replicate_split(dataset.val, n), replicate_tasks(tasks, n)
    best: list[tuple[float, int, list[Tensor] | None]] = [(-float("inf"), 0, None)] * n
    curves: list[list[dict]] = [[] for _ in range(n)]

    def keep_best(epoch: int, record: dict) -> None:
        metrics = evaluate(stacked, val, all_tasks)
        snapshot = None
        for r in range(n):
            mine = {t.name: metrics[replica_key(t.name, r)] for t in tasks}
            losses = {f"train_loss/{t.name}": record[f"train_loss/{replica_key(t.name, r)}"] for t in tasks}
            curves[r].append({"epoch": epoch, **losses, **{f"val/{k}": v for k, v in mine.items()}})
            if score(mine) > best[r][0]:
                snapshot = snapshot or [p.detach().clone() for p in stacked.parameters()]
                best[r] = (score(mine), epoch, snapshot)

    start = time.perf_counter()
    fit(stacked, replicate_split(train, n), all_tasks, epochs=epochs, lr=lr, batch_size=budget.batch_size,
        weighting=StaticWeighting(weights.tolist()), on_epoch=keep_best, seed=seed, verbose=False)
    seconds = (time.perf_counter() - start) / n
    runs = []
    for r, setting in enumerate(settings):
        _, epoch, snapshot = best[r]
        with torch.no_grad():
            for p, saved in zip(stacked.parameters(), snapshot, strict=True):
                p[r] = saved[r]
        model = stacked.unstack(r)
        runs.append(Run(arm.name, seed, lr, setting, evaluate(model, dataset.val, tasks),
                        evaluate(model, dataset.test, tasks), epoch, epochs, epoch * budget.steps_per_epoch(len(train)),
                        seconds, History(curves[r], epoch), model, {"weighting": balancers[r]}))
    return runs


def relative_score(reference: Mapping[str, float], tasks: Sequence[Task]) -> Score:
    """A unit-free validation score for tasks whose metrics live in different units.

    score(m) = (1/T) Σ_t s_t · (m_t − r_t) / |r_t|, with s_t = +1 where higher is better (AUC)
    and −1 where lower is better (RMSE): the mean relative gain over the reference metrics r.
    Notebook 04 takes the constant predictors as reference (AUC ½, RMSE σ of the target), so
    that the score needs no extra runs. It is −Δm of Maninis et al. (CVPR 2019), the multi-task
    summary of notebook 08, signed so that higher is better. The plain mean of AUC and −RMSE
    would let the hours RMSE (≈ 11) drown the AUC (≈ 0.87).
    """
    tasks = list(tasks)
    missing = [t.name for t in tasks if t.name not in reference]
    if not tasks or missing:
        raise ValueError(f"relative_score needs a reference value for every task; missing {missing or 'all'}.")
    if any(reference[t.name] == 0 or not np.isfinite(reference[t.name]) for t in tasks):
        raise ValueError(f"reference metrics must be finite and non-zero, got {dict(reference)}.")

    def score(metrics: dict[str, float]) -> float:
        gains = [(1 if t.higher_is_better else -1) * (metrics[t.name] - reference[t.name]) / abs(reference[t.name])
                 for t in tasks]
        return float(np.mean(gains))

    return score


class TrackGradNorms:
    """Fixed weights (the plain sum by default) that also record ‖∇_W L_t‖ on one shared
    parameter W every ``every`` steps, to *see* which task drives the shared weights. Recording
    adds T small backward passes to W on those steps, and changes nothing in the training.
    ``norms`` is (recorded steps, T); ``steps`` the step index of each row.
    """

    def __init__(self, layer: nn.Parameter, weights: Sequence[float] | None = None, every: int = 1) -> None:
        if not isinstance(layer, nn.Parameter):
            raise ValueError("TrackGradNorms needs the shared parameter W, e.g. last_shared_layer(model).")
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}.")
        self.layer, self.every = layer, every
        self.static = StaticWeighting(weights) if weights is not None else None
        self._rows: list[Tensor] = []
        self.steps: list[int] = []
        self._calls = 0

    def __call__(self, losses: Losses) -> Tensor:
        L = check_losses(losses)
        if self._calls % self.every == 0:
            self._rows.append(task_gradient_norms(L, self.layer).detach().cpu())
            self.steps.append(self._calls)
        self._calls += 1
        return self.static(L) if self.static is not None else L.sum()

    @property
    def norms(self) -> Tensor:
        return torch.stack(self._rows) if self._rows else torch.empty(0)


# --------------------------------------------------------------------------- the grid and its widget
@dataclass
class GridResult:
    """Validation results of a two-task static-weight grid over seeds.

    ``per_seed[k, s, m]``: metric m of weight vector k with seed s (the same seeds for every k,
    so two settings can be compared pairwise); ``metrics`` is its mean over seeds and ``curves[k]``
    the mean validation curve per epoch."""

    weights: list[tuple[float, ...]]
    per_seed: np.ndarray
    task_names: list[str]
    higher_is_better: list[bool]
    curves: list[dict[str, list[float]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.per_seed = np.asarray(self.per_seed, dtype=float)
        if self.per_seed.ndim == 2:  # one seed
            self.per_seed = self.per_seed[:, None, :]
        if self.per_seed.ndim != 3 or self.per_seed.shape[::2] != (len(self.weights), len(self.task_names)):
            raise ValueError(f"per_seed must have shape ({len(self.weights)}, seeds, {len(self.task_names)}), "
                             f"got {self.per_seed.shape}.")

    @classmethod
    def from_runs(cls, runs: Sequence[Run], tasks: Sequence[Task]) -> GridResult:
        """The grid of a two-task static arm whose setting is λ (the second task's weight): per λ
        (in the runs' order) and seed, the validation metrics at the kept epoch; the curves are
        the mean over seeds of the validation metric per epoch. Every λ needs the same seeds."""
        if not runs:
            raise ValueError("GridResult.from_runs needs at least one run.")
        names = [t.name for t in tasks]
        lams = list(dict.fromkeys(r.setting for r in runs))
        seeds = sorted({r.seed for r in runs})
        by = {(r.setting, r.seed): r for r in runs}
        if len(by) != len(runs) or len(by) != len(lams) * len(seeds):
            raise ValueError(f"from_runs needs exactly one run per (λ, seed), every λ with the seeds {seeds}.")
        per_seed = [[[by[lam, s].val[t] for t in names] for s in seeds] for lam in lams]
        curves = []
        if all(r.history is not None for r in runs):
            for lam in lams:
                rows = [[[rec[f"val/{t}"] for rec in by[lam, s].history.records if f"val/{t}" in rec] for t in names]
                        for s in seeds]
                n = min(len(row[0]) for row in rows)
                curves.append({t: np.mean([row[i][:n] for row in rows], axis=0).tolist() for i, t in enumerate(names)})
        return cls([(1.0 - lam, lam) for lam in lams], per_seed, names, [t.higher_is_better for t in tasks], curves)

    @property
    def metrics(self) -> np.ndarray:
        """(K, M): the mean over seeds of each setting's validation metrics."""
        return self.per_seed.mean(axis=1)

    @property
    def front(self) -> np.ndarray:
        """The non-dominated settings on the mean metrics."""
        return pareto_front(self.metrics, self.higher_is_better)

    def difference(self, i: int, j: int, task: str) -> PairedDifference:
        """Setting i minus setting j on ``task``'s validation metric, paired over the seeds."""
        m = self.task_names.index(task)
        return paired_difference(self.per_seed[i, :, m], self.per_seed[j, :, m])


def measurable_tradeoffs(grid: GridResult, among: np.ndarray | None = None) -> list[tuple[int, int]]:
    """Pairs (i, j) of settings (``among`` a mask, default all) that trade the two tasks
    measurably: i is better than j on the first task and j better than i on the second, both
    with paired intervals over the seeds that exclude zero. None means no measurable trade-off."""
    keep = np.flatnonzero(np.ones(len(grid.weights), bool) if among is None else np.asarray(among, bool))
    sign = [1 if up else -1 for up in grid.higher_is_better]
    a, b = grid.task_names[:2]
    return [(i, j) for i in keep for j in keep if i != j
            and sign[0] * grid.difference(i, j, a).direction > 0 and sign[1] * grid.difference(j, i, b).direction > 0]


def draw_front(grid: GridResult) -> plt.Figure:
    """Left: each task's mean validation metric against λ (seeds as faint dots); right: the
    settings in metric space, the non-dominated ones joined and labelled by λ."""
    a, b = grid.task_names[:2]
    lams = np.array([w[1] for w in grid.weights])
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9.5, 3.3))
    twin = ax.twinx()
    for axis, m, colour, marker in ((ax, 0, "C1", "o"), (twin, 1, "C2", "s")):
        axis.plot(lams, grid.metrics[:, m], marker + "-", color=colour, ms=4)
        for s in range(grid.per_seed.shape[1]):
            axis.plot(lams, grid.per_seed[:, s, m], ".", color=colour, alpha=0.25, ms=3)
        axis.set_ylabel(f"val {grid.task_names[m]} ({'↑' if grid.higher_is_better[m] else '↓'})", color=colour)
    ax.set_xscale("logit")
    ax.minorticks_off()
    ax.set_xticks(lams, [f"{v:g}" for v in lams], fontsize=7)
    ax.set_xlabel(f"λ, the weight of {b} (logit scale)")
    ax.set_title(f"mean of {grid.per_seed.shape[1]} seeds (dots: each seed)", fontsize=9)
    m, front = grid.metrics, grid.front
    order = np.argsort(m[front, 1])
    ax2.plot(m[front, 1][order], m[front, 0][order], "-", color="C0", alpha=0.5, label="Pareto front")
    ax2.scatter(m[:, 1], m[:, 0], c=np.where(front, "C0", "0.6"), s=25, zorder=2)
    for k in np.flatnonzero(front):
        ax2.annotate(f"{lams[k]:g}", (m[k, 1], m[k, 0]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax2.set_xlabel(f"val {b} ({'↑' if grid.higher_is_better[1] else '↓'})")
    ax2.set_ylabel(f"val {a} ({'↑' if grid.higher_is_better[0] else '↓'})")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return fig


def draw_weight_choice(grid: GridResult, index: int) -> plt.Figure:
    """The widget's figure: left, every grid setting in metric space (front joined, setting
    ``index`` in red); right, its mean validation metrics per epoch (two y axes: two units)."""
    if not 0 <= index < len(grid.weights):
        raise ValueError(f"index must be in 0..{len(grid.weights) - 1}, got {index}.")
    a, b = grid.task_names[:2]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
    m, front = grid.metrics, grid.front
    order = np.argsort(m[front, 1])
    ax.plot(m[front, 1][order], m[front, 0][order], "-", color="C0", alpha=0.5, label="Pareto front")
    ax.scatter(m[:, 1], m[:, 0], c=np.where(front, "C0", "0.6"), s=25, zorder=2)
    ax.scatter([m[index, 1]], [m[index, 0]], s=90, facecolors="none", edgecolors="red", lw=2, zorder=3,
               label=f"λ = {grid.weights[index][1]:g}")
    ax.set_xlabel(f"val {b} ({'↑' if grid.higher_is_better[1] else '↓'})")
    ax.set_ylabel(f"val {a} ({'↑' if grid.higher_is_better[0] else '↓'})")
    ax.legend(fontsize=8)
    if grid.curves:
        curve = grid.curves[index]
        epochs = range(1, len(curve[a]) + 1)
        ax2.plot(epochs, curve[a], "o-", color="C1", label=a)
        ax2.set_ylabel(f"val {a}", color="C1")
        twin = ax2.twinx()
        twin.plot(epochs, curve[b], "s--", color="C2", label=b)
        twin.set_ylabel(f"val {b}", color="C2")
        ax2.set_xlabel("epoch")
    ax2.set_title(f"weights ({grid.weights[index][0]:.4g}, {grid.weights[index][1]:.4g}), mean over "
                  f"{grid.per_seed.shape[1]} seeds", fontsize=9)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- the papers' toys
GAL_TASKS = [Task("y1", "regression"), Task("y2", "regression")]


def fit_gal_example(seeds: Sequence[int] = (0, 1, 2), steps: int = 500, lr: float = 0.1, hidden: int = 64,
                    n: int = 100, device: torch.device | str = "cpu") -> dict:
    """Gal's uncertainty-weighting example, one :func:`~mtl_helpers.train.fit` per seed.

    Seed s: the data ``gal_uw_data(n, seed=s)``, a network of one hidden ReLU layer shared by
    two linear heads, :class:`UncertaintyWeighting` in the regression form. Gal trains 1 024
    units for 2 000 epochs of batch 20 at Adam's default lr 1e-3 (10 000 steps); we train full
    batch, ``steps`` steps at a larger ``lr`` and ``hidden`` = 64 units (the mean function is
    linear, width hardly matters): the same fixed point σ_i² = MSE_i. Returns the learned σ
    (S, 2), the final training RMSE (S, 2), the true σ and the balancers.
    """
    seeds = list(seeds)
    if not seeds or steps < 1 or hidden < 1 or n < 2:
        raise ValueError("fit_gal_example needs at least one seed, steps >= 1, hidden >= 1 and n >= 2.")
    sigmas, rmse, balancers = [], [], []
    for seed in seeds:
        data = gal_uw_data(n, seed=seed)
        seed_everything(seed)
        model = HardSharing(mlp(1, [hidden]), {t.name: nn.Linear(hidden, 1) for t in GAL_TASKS})
        uw = UncertaintyWeighting(len(GAL_TASKS))
        fit(model, data, GAL_TASKS, epochs=steps, lr=lr, batch_size=n, weighting=uw, seed=seed, device=device,
            verbose=False)
        metrics = evaluate(model, data, GAL_TASKS)
        sigmas.append(uw.sigmas.cpu())
        rmse.append(torch.tensor([metrics[t.name] for t in GAL_TASKS]))
        balancers.append(uw)
    return {"sigmas": torch.stack(sigmas), "train_rmse": torch.stack(rmse), "true": torch.tensor([10.0, 1.0]),
            "balancers": balancers}


def fit_gradnorm_toy(sigmas: Sequence[float], alpha: float = 0.12, epochs: int = 40, n: int = 1000,
                     batch_size: int = 100, lr: float = 1e-3, weight_lr: float = 0.025, seed: int = 0,
                     device: torch.device | str = "cpu") -> GradNorm:
    """Train the GradNorm paper's toy network (a trunk of 4 ReLU layers of 100 units, one affine
    head per task) with :class:`~mtl_helpers.weighting.GradNorm` through
    :func:`~mtl_helpers.train.fit`; return the balancer (its ``history`` is the weight
    trajectory). CPU-sized: ``n`` examples, ``epochs × n / batch_size`` steps (400 by default)
    instead of the paper's long runs."""
    data = gradnorm_toy_data(sigmas, n=n, seed=seed)
    tasks = [Task(f"t{i}", "regression", 100) for i in range(len(sigmas))]
    seed_everything(seed)
    model = HardSharing(mlp(250, [100] * 4), {t.name: nn.Linear(100, 100) for t in tasks}).to(device)
    balancer = GradNorm(len(tasks), last_shared_layer(model), alpha=alpha, lr=weight_lr)
    fit(model, data, tasks, epochs=epochs, lr=lr, batch_size=batch_size, weighting=balancer, seed=seed,
        device=device, verbose=False)
    return balancer
