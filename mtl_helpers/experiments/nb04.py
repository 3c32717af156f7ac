"""Notebook 04 (task weighting): the studies too long for the notebook itself.

* :func:`weighting_arm` — the standard network trained with a loss weighting, as a protocol
  :class:`~mtl_helpers.protocol.Arm` (the weighting is chosen by ``options``; a static-weight
  grid is an arm whose setting is λ); :func:`balancer_of` gives back the balancer a run used
  (its learned log-variances, its weight history);
* :func:`relative_score` — a validation score for tasks in different units (AUC and RMSE in
  hours): the mean relative gain over reference metrics;
* :class:`TrackGradNorms` — equal (or fixed) weights that also record each task's gradient norm
  on the last shared layer;
* :class:`GridResult` and :func:`draw_weight_choice` — the grid's runs in metric space, the
  Pareto front and the widget's figure;
* :func:`fit_gal_example` and :func:`fit_gradnorm_toy` — the two papers' toy reproductions.

The cost per step is :func:`mtl_helpers.costs.step_cost_table`, as in every notebook.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor, nn

from ..data import MultiTaskDataset, gal_uw_data, gradnorm_toy_data
from ..metrics import pareto_front
from ..models import HardSharing, mlp, standard_network
from ..protocol import Arm, Run
from ..tasks import Task
from ..train import evaluate, fit
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

Score = Callable[[dict[str, float]], float]

# --------------------------------------------------------------------------- arms
_BALANCERS: weakref.WeakKeyDictionary[nn.Module, LossWeighting] = weakref.WeakKeyDictionary()


def weighting_arm(name: str, dataset: MultiTaskDataset,
                  weighting: str | Callable[[nn.Module, Any], LossWeighting], *,
                  settings: Sequence[Any] = (None,), score: Score | None = None, **options: Any) -> Arm:
    """The standard network on all of ``dataset``'s tasks, trained on ``weighting(L)``.

    ``weighting`` is a name of :data:`~mtl_helpers.weighting.WEIGHTINGS` (``options`` go to
    :func:`~mtl_helpers.weighting.make_weighting`, e.g. ``alpha=1.5``) or a function
    ``(model, setting) -> balancer`` (the setting is the arm's own knob, e.g. the λ of a static
    weight). The arm hands the balancer to ``fit`` through ``options(model, setting)``, and
    remembers it: :func:`balancer_of` gives it back for any of the arm's runs.
    """
    if isinstance(weighting, str):
        if weighting not in WEIGHTINGS:
            raise ValueError(f"Unknown loss weighting {weighting!r}; choose one of {list(WEIGHTINGS)}.")
    elif not callable(weighting) or options:
        raise ValueError("weighting must be a registry name (with its options) or a function (model, setting) "
                         "-> balancer (without options).")

    def choose(model: nn.Module, setting: Any) -> dict:
        balancer = (make_weighting(weighting, model, dataset.tasks, **options) if isinstance(weighting, str)
                    else weighting(model, setting))
        _BALANCERS[model] = balancer
        return {"weighting": balancer}

    return Arm(name, lambda _: standard_network(dataset), settings=tuple(settings), options=choose, score=score)


def balancer_of(run: Run) -> LossWeighting:
    """The balancer a run of a :func:`weighting_arm` trained with (a :class:`Run` keeps the
    model, not the balancer). Its state is the one at the end of training, not at the kept epoch."""
    if run.model is None or run.model not in _BALANCERS:
        raise ValueError(f"Run of {run.arm!r} (seed {run.seed}) was not trained by a weighting_arm in this session.")
    return _BALANCERS[run.model]


def relative_score(reference: Mapping[str, float], tasks: Sequence[Task]) -> Score:
    """A unit-free validation score for tasks whose metrics live in different units.

    score(m) = (1/T) Σ_t s_t · (m_t − r_t) / |r_t|, with s_t = +1 where higher is better (AUC)
    and −1 where lower is better (RMSE): the mean relative gain over the reference metrics r
    (the single-task networks' in notebook 04). It is −Δm of Maninis et al. (CVPR 2019), the
    multi-task summary of notebook 08, signed so that higher is better. The plain mean of AUC
    and −RMSE would let the hours RMSE (≈ 11) drown the AUC (≈ 0.87).
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
    parameter W at every step, to *see* which task drives the shared weights. Recording adds
    T small backward passes to W, and changes nothing in the training. ``norms`` is (steps, T).
    """

    def __init__(self, layer: nn.Parameter, weights: Sequence[float] | None = None) -> None:
        if not isinstance(layer, nn.Parameter):
            raise ValueError("TrackGradNorms needs the shared parameter W, e.g. last_shared_layer(model).")
        self.layer = layer
        self.static = StaticWeighting(weights) if weights is not None else None
        self._rows: list[Tensor] = []

    def __call__(self, losses: Losses) -> Tensor:
        L = check_losses(losses)
        self._rows.append(task_gradient_norms(L, self.layer).detach().cpu())
        return self.static(L) if self.static is not None else L.sum()

    @property
    def norms(self) -> Tensor:
        return torch.stack(self._rows) if self._rows else torch.empty(0)


# --------------------------------------------------------------------------- the grid and its widget
@dataclass
class GridResult:
    """Validation results of a static-weight grid: ``metrics[k, m]`` for weight vector k."""

    weights: list[tuple[float, ...]]
    metrics: np.ndarray
    task_names: list[str]
    higher_is_better: list[bool]
    curves: list[dict[str, list[float]]] = field(default_factory=list)  # per run: val metric per epoch

    def __post_init__(self) -> None:
        self.metrics = np.asarray(self.metrics, dtype=float)
        if self.metrics.shape != (len(self.weights), len(self.task_names)):
            raise ValueError(f"metrics must have shape ({len(self.weights)}, {len(self.task_names)}), "
                             f"got {self.metrics.shape}.")

    @classmethod
    def from_runs(cls, runs: Sequence[Run], tasks: Sequence[Task]) -> GridResult:
        """The grid of a two-task static arm whose setting is λ (the second task's weight): each
        run's validation metrics at its kept epoch, and its validation curve per epoch."""
        if not runs:
            raise ValueError("GridResult.from_runs needs at least one run.")
        names = [t.name for t in tasks]
        curves = [{t: [rec[f"val/{t}"] for rec in r.history.records if f"val/{t}" in rec] for t in names}
                  for r in runs if r.history is not None]
        return cls([(1.0 - r.setting, r.setting) for r in runs], [[r.val[t] for t in names] for r in runs],
                   names, [t.higher_is_better for t in tasks], curves)

    @property
    def front(self) -> np.ndarray:
        return pareto_front(self.metrics, self.higher_is_better)


def draw_weight_choice(grid: GridResult, index: int) -> plt.Figure:
    """The widget's figure: left, every grid run in metric space (front joined, run ``index``
    in red); right, that run's validation metrics per epoch (two y axes: two units)."""
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
    ax2.set_title(f"weights ({grid.weights[index][0]:.4g}, {grid.weights[index][1]:.4g})", fontsize=9)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- the papers' toys
GAL_TASKS = [Task("y1", "regression"), Task("y2", "regression")]


def fit_gal_example(seeds: Sequence[int] = (0, 1, 2), steps: int = 500, lr: float = 0.1, hidden: int = 256,
                    n: int = 100, device: torch.device | str = "cpu") -> dict:
    """Gal's uncertainty-weighting example, one :func:`~mtl_helpers.train.fit` per seed.

    Seed s: the data ``gal_uw_data(n, seed=s)``, a network of one hidden ReLU layer shared by
    two linear heads, :class:`UncertaintyWeighting` in the regression form. Gal trains 1 024
    units for 2 000 epochs of batch 20 at Adam's default lr 1e-3 (10 000 steps); we train full
    batch, ``steps`` steps at a larger ``lr`` and ``hidden`` = 256 units (the mean function is
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
