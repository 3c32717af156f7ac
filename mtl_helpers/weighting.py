"""Loss-level balancers: how to add the task losses up (notebook 04).

Every balancer is a callable ``weighting(losses) -> total`` that plugs into
:func:`mtl_helpers.train.fit` (``fit(..., weighting=...)``); ``losses`` is the (T,) tensor of
the current batch's task losses, still attached to the graph.

* :class:`StaticWeighting` — fixed λ: total = Σ λ_i L_i (grid search, :func:`two_task_grid`,
  :func:`pareto_front`);
* :class:`UncertaintyWeighting` — Kendall, Gal & Cipolla (CVPR 2018): learned log-variances;
* :class:`GradNorm` — Chen et al. (ICML 2018): weights that equalise the tasks' gradient norms
  on the last shared layer, with its own optimizer;
* :class:`DWA` — Liu, Johns & Davison (CVPR 2019): weights from the ratio of the last two
  epoch-mean losses.

The module also holds the notebook's data and toys: the Adult income + raw-unit regression
pair (:func:`load_income_and_regression`), Gal's uncertainty-weighting example
(:func:`gal_uw_data`, :func:`fit_gal_example`) and the GradNorm toy (:func:`gradnorm_toy_data`,
:func:`fit_gradnorm_toy`), plus the runners and the widget's drawing function.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor, nn

from .baselines import BUDGETS, make_model
from .data import MultiTaskDataset, Split, adult_features, adult_labels, split_adult_frames
from .models import HardSharing, mlp
from .tasks import Task
from .train import History, evaluate, fit
from .utils import Timer, seed_everything

Losses = Tensor | Sequence[Tensor]


# --------------------------------------------------------------------------- input checks
def check_losses(losses: Losses, n_tasks: int | None = None) -> Tensor:
    """The task losses as a (T,) tensor; ``ValueError`` if empty, mis-shaped or not finite.

    Accepts a 1-D tensor or a list of scalar tensors (the graph is kept: ``torch.stack``).
    """
    if isinstance(losses, Tensor):
        if losses.ndim != 1:
            raise ValueError(f"losses must be a 1-D tensor (one loss per task), got shape {tuple(losses.shape)}.")
        stacked = losses
    else:
        items = list(losses)
        if any(not isinstance(v, Tensor) or v.ndim != 0 for v in items):
            raise ValueError("losses must be a 1-D tensor or a list of scalar tensors, one per task.")
        stacked = torch.stack(items) if items else torch.empty(0)
    if stacked.numel() == 0:
        raise ValueError("losses is empty: pass one loss per task.")
    if n_tasks is not None and stacked.numel() != n_tasks:
        raise ValueError(f"expected {n_tasks} task losses, got {stacked.numel()}; build the balancer with "
                         f"n_tasks equal to the number of tasks.")
    if not torch.isfinite(stacked).all():
        raise ValueError(f"a task loss is NaN or infinite ({stacked.detach().cpu().tolist()}): lower the learning "
                         f"rate, or check the inputs and targets for NaN/inf.")
    return stacked


# --------------------------------------------------------------------------- static weights
class StaticWeighting:
    """Fixed weights: total = Σ_i λ_i L_i. ``StaticWeighting([1, 1])`` is the plain sum."""

    def __init__(self, weights: Sequence[float]) -> None:
        w = torch.as_tensor(list(weights), dtype=torch.float32)
        if w.ndim != 1 or w.numel() == 0 or not torch.isfinite(w).all() or (w < 0).any():
            raise ValueError(f"weights must be a non-empty list of finite non-negative numbers, got {list(weights)}.")
        self.weights = w

    def __call__(self, losses: Losses) -> Tensor:
        L = check_losses(losses, len(self.weights))
        return (self.weights.to(L.device) * L).sum()

    def __repr__(self) -> str:
        return f"StaticWeighting({[round(v, 6) for v in self.weights.tolist()]})"


def two_task_grid(second_weights: Sequence[float]) -> list[tuple[float, float]]:
    """Points (1 − λ, λ) of the two-task weight simplex for each λ in ``second_weights``.

    When the losses differ by orders of magnitude the interesting λ are tiny, so pass a
    geometric sequence (1e-4, 1e-3, …) rather than an even one.
    """
    lams = [float(v) for v in second_weights]
    if not lams or any(not 0.0 <= v <= 1.0 for v in lams):
        raise ValueError(f"each λ must lie in [0, 1] (a point of the simplex), got {lams}.")
    return [(1.0 - v, v) for v in lams]


def pareto_front(points: np.ndarray | Sequence[Sequence[float]], higher_is_better: Sequence[bool]) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``points`` (N runs × M metrics).

    Row a dominates row b if a is at least as good on every metric and strictly better on one;
    the rows nobody dominates form the empirical Pareto front. ``higher_is_better[m]`` gives the
    direction of metric m (AUC: True, RMSE: False).
    """
    p = np.asarray(points, dtype=float)
    if p.ndim != 2 or p.shape[0] == 0:
        raise ValueError(f"points must be a non-empty (N, M) array, got shape {p.shape}.")
    if len(higher_is_better) != p.shape[1]:
        raise ValueError(f"higher_is_better has {len(higher_is_better)} entries for {p.shape[1]} metrics.")
    if not np.isfinite(p).all():
        raise ValueError("points contain NaN or inf.")
    signed = p * np.where(np.asarray(higher_is_better, dtype=bool), 1.0, -1.0)  # now higher is better
    at_least = (signed[:, None, :] >= signed[None, :, :]).all(-1)  # [a, b]: a ≥ b everywhere
    strictly = (signed[:, None, :] > signed[None, :, :]).any(-1)
    dominated = (at_least & strictly).any(0)
    return ~dominated


def balanced_choice(points: np.ndarray | Sequence[Sequence[float]], higher_is_better: Sequence[bool]) -> int:
    """Index of the front point whose worst relative gap to the best value of each metric is
    smallest (a Chebyshev scalarisation): one reasonable rule for "the best grid weights"."""
    p = np.asarray(points, dtype=float)
    front = pareto_front(p, higher_is_better)
    best = np.where(higher_is_better, p.max(0), p.min(0))
    gaps = np.abs(p - best) / np.abs(best).clip(1e-12)
    worst = np.where(front, gaps.max(1), np.inf)
    return int(worst.argmin())


# --------------------------------------------------------------------------- uncertainty weighting
UW_FORMS = {"regression": 0.5, "classification": 1.0, "binary": 1.0}


class UncertaintyWeighting(nn.Module):
    """Uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018), learning s_i = log σ_i².

    * regression form (a Gaussian likelihood):   ½·e^{−s_i}·L_i + ½·s_i
    * classification form (the paper's approximation for a tempered softmax):  e^{−s_i}·L_i + ½·s_i

    Minimising over s_i alone gives e^{−s_i} = 1/L_i (regression) or 1/(2 L_i)
    (classification): the learned weight is the inverse of the task's current loss, so tasks
    in large units are scaled down; the ½·s_i term stops s_i from running off to +∞.

    Defaults and divergences (say which one you use): ``forms=None`` uses the regression form
    for every task and ``init=0.0`` (s = 0, σ = 1). LibMTL and MTAN also use the regression form
    for every task but start at s = −0.5; Nash-MTL's code uses 0.5·(e^{−s}L + s) with s = 0,
    i.e. the regression form; the paper uses the classification form for its classification
    task. Gal's public example minimises Σ e^{−s}L + s, twice the regression form (same optimum).

    Args:
        n_tasks: T.
        forms: per task "regression" or "classification" ("binary" counts as classification);
            a task kind from :class:`~mtl_helpers.tasks.Task` works as is.
        init: starting value of every s_i, or ``"first_loss"``: set s_i on the first call to the
            value that is optimal for that batch's losses, s_i = log(2·coef_i·L_i) (not in the
            paper: a warm start for losses that begin far from 1, see notebook 04).
    """

    def __init__(self, n_tasks: int, forms: Sequence[str] | None = None, init: float | str = 0.0) -> None:
        super().__init__()
        if not isinstance(n_tasks, int) or n_tasks < 1:
            raise ValueError(f"n_tasks must be a positive int, got {n_tasks!r}.")
        forms = list(forms) if forms is not None else ["regression"] * n_tasks
        if len(forms) != n_tasks or any(f not in UW_FORMS for f in forms):
            raise ValueError(f"forms must list {n_tasks} of {sorted(UW_FORMS)}, got {forms}.")
        self.forms = forms
        self.register_buffer("coef", torch.tensor([UW_FORMS[f] for f in forms]))
        if init != "first_loss" and not isinstance(init, (int, float)):
            raise ValueError(f"init must be a number or 'first_loss', got {init!r}.")
        self.warm_start = init == "first_loss"
        self.log_vars = nn.Parameter(torch.full((n_tasks,), 0.0 if self.warm_start else float(init)))

    def forward(self, losses: Losses) -> Tensor:
        L = check_losses(losses, len(self.log_vars))
        if self.warm_start:  # start at the fixed point of the first batch: s_i = log(2·coef_i·L_i)
            with torch.no_grad():
                self.log_vars.copy_(torch.log(2 * self.coef * L.detach().clamp_min(1e-12)))
            self.warm_start = False
        s = self.log_vars
        return (self.coef * torch.exp(-s) * L + 0.5 * s).sum()

    @property
    def sigmas(self) -> Tensor:
        """σ_i = √(e^{s_i}), detached."""
        return torch.exp(0.5 * self.log_vars.detach())

    @property
    def weights(self) -> Tensor:
        """The effective weights on the raw losses: coef_i·e^{−s_i}, detached."""
        return self.coef * torch.exp(-self.log_vars.detach())


def gal_uw_data(n: int = 100, noise: tuple[float, float] = (10.0, 1.0), seed: int = 0) -> Split:
    """Gal's public uncertainty-weighting example: x ~ N(0, 1), y1 = 2x + 8 + 10ε, y2 = 3x + 3 + ε."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, generator=g)
    y1 = 2 * x[:, 0] + 8 + noise[0] * torch.randn(n, generator=g)
    y2 = 3 * x[:, 0] + 3 + noise[1] * torch.randn(n, generator=g)
    return Split(x, {"y1": y1, "y2": y2})


def fit_gal_example(seeds: Sequence[int] = (0, 1, 2), steps: int = 1000, lr: float = 0.05, hidden: int = 256,
                    n: int = 100, device: torch.device | str = "cpu") -> dict:
    """Gal's network (one hidden ReLU layer, two linear heads) trained with
    :class:`UncertaintyWeighting`, one independent run per seed in a single batched network.

    Every parameter gets a leading seed axis and each seed its own balancer; the total is the
    sum of the per-seed totals. Adam is element-wise and no parameter is shared between seeds,
    so these are ``len(seeds)`` independent runs (seed i's data is ``gal_uw_data(seed=i)``) at
    about the cost of one. Gal trains 1 024 units for 2 000 epochs of batch 20 at
    Adam's default lr 1e-3 (10 000 steps); we train full batch, ``steps`` steps at a larger
    ``lr`` and ``hidden`` = 256 units (the mean function is linear, width hardly matters): the
    same fixed point σ_i² = MSE_i, reached in a second. Returns the learned σ (S, 2), the
    final training RMSE (S, 2) and the balancers.
    """
    seeds = list(seeds)
    if not seeds or steps < 1 or hidden < 1:
        raise ValueError("fit_gal_example needs at least one seed, steps >= 1 and hidden >= 1.")
    data = [gal_uw_data(n, seed=s) for s in seeds]
    x = torch.stack([d.x for d in data]).to(device)  # (S, n, 1)
    y = torch.stack([torch.stack([d.y["y1"], d.y["y2"]], 1) for d in data]).to(device)  # (S, n, 2)
    seed_everything(seeds[0])
    S = len(seeds)
    bound = hidden ** -0.5  # nn.Linear's default initialisation, per seed
    params = [torch.empty(S, 1, hidden).uniform_(-1, 1), torch.empty(S, 1, hidden).uniform_(-1, 1),
              torch.empty(S, hidden, 2).uniform_(-bound, bound), torch.empty(S, 1, 2).uniform_(-bound, bound)]
    w1, b1, w2, b2 = [nn.Parameter(p.to(device)) for p in params]
    balancers = nn.ModuleList([UncertaintyWeighting(2) for _ in seeds]).to(device)
    optimizer = torch.optim.Adam([w1, b1, w2, b2, *balancers.parameters()], lr=lr)

    def mse() -> Tensor:  # (S, 2): per seed, per task
        return ((torch.relu(x @ w1 + b1) @ w2 + b2 - y) ** 2).mean(1)

    for _ in range(steps):
        losses = mse()
        total = sum(uw(losses[i]) for i, uw in enumerate(balancers))
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
    with torch.no_grad():
        rmse = mse().sqrt().cpu()
    return {"sigmas": torch.stack([uw.sigmas for uw in balancers]).cpu(), "train_rmse": rmse,
            "true": torch.tensor([10.0, 1.0]), "balancers": balancers}


# --------------------------------------------------------------------------- GradNorm
def last_shared_layer(model: nn.Module) -> nn.Parameter:
    """The weight matrix of the last Linear/Conv layer of ``model.trunk`` (GradNorm's W)."""
    trunk = getattr(model, "trunk", None)
    if trunk is None:
        raise ValueError("last_shared_layer needs a model with a .trunk (e.g. HardSharing).")
    layers = [m for m in trunk.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    if not layers:
        raise ValueError("the trunk has no Linear or Conv2d layer to normalise gradients on.")
    return layers[-1].weight


def task_gradient_norms(losses: Tensor, layer: nn.Parameter) -> Tensor:
    """(T,) tensor of ‖∇_W L_i‖₂ for each task loss w.r.t. one parameter W; keeps the graph."""
    L = check_losses(losses)
    rows = []
    for i in range(len(L)):
        (g,) = torch.autograd.grad(L[i], layer, retain_graph=True, allow_unused=True)
        rows.append(torch.zeros((), device=layer.device) if g is None else g.norm())
    norms = torch.stack(rows)
    if not torch.isfinite(norms).all():
        raise ValueError("a task gradient is NaN or infinite: lower the learning rate or check the data.")
    return norms


def _as_parameter(layer: nn.Parameter | nn.Module) -> nn.Parameter:
    if isinstance(layer, nn.Parameter):
        return layer
    weight = getattr(layer, "weight", None)
    if isinstance(weight, nn.Parameter):
        return weight
    raise ValueError("shared_layer must be a Parameter or a layer with a .weight (the last shared layer).")


class GradNorm:
    """GradNorm (Chen, Badrinarayanan, Lee & Rabinovich, ICML 2018).

    With W the last shared layer, at every step:

    * G_i = ‖∇_W (w_i L_i)‖₂ and Ḡ = mean_i G_i;
    * L̃_i = L_i(t)/L_i(0) (how far task i still is from where it started) and
      r_i = L̃_i / mean_j L̃_j, its relative inverse training rate;
    * L_grad = Σ_i |G_i − Ḡ·r_i^α| with the target Ḡ·r_i^α held constant; one step of this
      balancer's **own** Adam on w only; then w ← T·w/Σ_j w_j (and w_i ≥ ``min_weight``).

    The network is trained on Σ_i w_i L_i with w detached (the weights before this step's
    update). α sets how hard slow tasks are pushed: 0.12 on the paper's toy, 1.5 on NYUv2
    (LibMTL's default). Since w_i > 0, G_i = w_i·‖∇_W L_i‖ exactly, so ∂L_grad/∂w_i only needs
    the plain gradient norms: the public codes get the same gradient through
    ``autograd.grad(..., create_graph=True)``, which costs a second-order graph.
    LibMTL's variant differs: w = T·softmax(θ) and G over all shared parameters.

    Pass to ``fit(weighting=GradNorm(T, last_shared_layer(model)))``. ``history`` holds w after
    every step.
    """

    def __init__(self, n_tasks: int, shared_layer: nn.Parameter | nn.Module, alpha: float = 1.5,
                 lr: float = 0.025, min_weight: float = 1e-4) -> None:
        if not isinstance(n_tasks, int) or n_tasks < 1:
            raise ValueError(f"n_tasks must be a positive int, got {n_tasks!r}.")
        if alpha < 0 or lr <= 0:
            raise ValueError(f"alpha must be >= 0 and lr > 0, got alpha={alpha}, lr={lr}.")
        self.layer = _as_parameter(shared_layer)
        self.n_tasks, self.alpha, self.min_weight = n_tasks, float(alpha), float(min_weight)
        self.weights = torch.ones(n_tasks, device=self.layer.device, requires_grad=True)
        self.optimizer = torch.optim.Adam([self.weights], lr=lr)
        self.initial_losses: Tensor | None = None
        self.history: list[Tensor] = []

    def targets(self, G: Tensor, losses: Tensor) -> Tensor:
        """The constant targets Ḡ·r_i^α of the paper's equation (2)."""
        ratio = losses.detach() / self.initial_losses
        r = ratio / ratio.mean()
        return (G.detach().mean() * r ** self.alpha).detach()

    def __call__(self, losses: Losses) -> Tensor:
        L = check_losses(losses, self.n_tasks)
        if self.initial_losses is None:
            self.initial_losses = L.detach().clamp_min(1e-12)
        used = self.weights.detach().clone()
        norms = task_gradient_norms(L, self.layer).detach()
        G = self.weights * norms
        grad_loss = (G - self.targets(G, L)).abs().sum()
        self.optimizer.zero_grad(set_to_none=True)
        (self.weights.grad,) = torch.autograd.grad(grad_loss, self.weights)
        self.optimizer.step()
        with torch.no_grad():  # renormalise: Σ w = T, every weight positive
            self.weights.clamp_(min=self.min_weight)
            self.weights.mul_(self.n_tasks / self.weights.sum())
        self.history.append(self.weights.detach().cpu().clone())
        return (used * L).sum()


def gradnorm_toy_data(sigmas: Sequence[float], n: int = 1000, dim_in: int = 250, dim_out: int = 100,
                      b_std: float = 10.0, eps_std: float = 3.5, seed: int = 0) -> Split:
    """The GradNorm paper's toy regression: f_i(x) = σ_i·tanh((B + ε_i)x).

    B (dim_out × dim_in) has N(0, 10²) entries shared by all tasks, ε_i N(0, 3.5²) entries
    specific to task i (the paper writes N(0, 10) and N(0, 3.5); both public codes use 10 and
    3.5 as standard deviations). x is uniform in [−1, 1]^dim_in scaled to unit norm, as in the
    public PyTorch code. Task names are ``t0``, ``t1``, …; each target is a dim_out vector.
    """
    sig = [float(s) for s in sigmas]
    if not sig or any(s <= 0 for s in sig):
        raise ValueError(f"sigmas must be a non-empty list of positive scales, got {list(sigmas)}.")
    g = torch.Generator().manual_seed(seed)
    B = b_std * torch.randn(dim_out, dim_in, generator=g)
    eps = eps_std * torch.randn(len(sig), dim_out, dim_in, generator=g)
    x = torch.rand(n, dim_in, generator=g) * 2 - 1
    x = x / x.norm(dim=1, keepdim=True)
    y = {f"t{i}": s * torch.tanh(x @ (B + eps[i]).T) for i, s in enumerate(sig)}
    return Split(x, y)


def fit_gradnorm_toy(sigmas: Sequence[float], alpha: float = 0.12, epochs: int = 40, n: int = 1000,
                     batch_size: int = 100, lr: float = 1e-3, weight_lr: float = 0.025, seed: int = 0,
                     device: torch.device | str = "cpu") -> GradNorm:
    """Train the paper's toy network (a trunk of 4 ReLU layers of 100 units, one affine head
    per task) with :class:`GradNorm` through :func:`~mtl_helpers.train.fit`; return the
    balancer (its ``history`` is the weight trajectory). CPU-sized: 1 000 examples,
    ``epochs × n / batch_size`` steps (400 by default) instead of the paper's long runs."""
    data = gradnorm_toy_data(sigmas, n=n, seed=seed)
    tasks = [Task(f"t{i}", "regression", 100) for i in range(len(sigmas))]
    seed_everything(seed)
    model = HardSharing(mlp(250, [100] * 4), {t.name: nn.Linear(100, 100) for t in tasks}).to(device)
    balancer = GradNorm(len(tasks), last_shared_layer(model), alpha=alpha, lr=weight_lr)
    fit(model, data, tasks, epochs=epochs, lr=lr, batch_size=batch_size, weighting=balancer, seed=seed,
        device=device, verbose=False)
    return balancer


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation (Pearson correlation of the ranks; ties broken by order)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 2:
        raise ValueError(f"spearman needs two 1-D sequences of the same length >= 2, got {x.shape} and {y.shape}.")
    rx, ry = x.argsort().argsort().astype(float), y.argsort().argsort().astype(float)
    return float(np.corrcoef(rx, ry)[0, 1])


# --------------------------------------------------------------------------- DWA
class DWA:
    """Dynamic Weight Average (Liu, Johns & Davison, CVPR 2019).

    λ_k(t) = K·exp(w_k(t−1)/T) / Σ_i exp(w_i(t−1)/T),  w_k(t−1) = L̄_k(t−1)/L̄_k(t−2),

    with L̄ the epoch-mean *unweighted* training loss and temperature T = 2; λ = 1 for the first
    two epochs (there is no ratio yet). ``fit`` calls :meth:`epoch_end` with the epoch means.
    The ratios are scale-free: DWA balances how fast the tasks learn, not their units.
    """

    def __init__(self, n_tasks: int, temperature: float = 2.0) -> None:
        if not isinstance(n_tasks, int) or n_tasks < 1:
            raise ValueError(f"n_tasks must be a positive int, got {n_tasks!r}.")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}.")
        self.n_tasks, self.temperature = n_tasks, float(temperature)
        self.weights = torch.ones(n_tasks)
        self.epoch_losses: list[Tensor] = []
        self.history: list[Tensor] = []  # the weights used in each epoch, recorded at its end

    def __call__(self, losses: Losses) -> Tensor:
        L = check_losses(losses, self.n_tasks)
        return (self.weights.to(L.device) * L).sum()

    def epoch_end(self, mean_losses: Tensor) -> None:
        m = check_losses(torch.as_tensor(mean_losses).detach().float().cpu(), self.n_tasks)
        self.history.append(self.weights.clone())
        self.epoch_losses.append(m)
        if len(self.epoch_losses) >= 2:
            ratio = self.epoch_losses[-1] / self.epoch_losses[-2].clamp_min(1e-12)
            self.weights = self.n_tasks * torch.softmax(ratio / self.temperature, dim=0)


# --------------------------------------------------------------------------- the real task pair
def load_income_and_regression(target: str = "hours_per_week", val_fraction: float = 0.15,
                               n_train: int | None = None, seed: int = 0) -> MultiTaskDataset:
    """UCI Adult with a deliberately unbalanced pair: income > 50K (binary, BCE ≈ 0.3–0.7)
    and ``target`` (a numeric column in raw units, MSE in the hundreds) as a regression task.

    The same splits as :func:`~mtl_helpers.data.load_adult` (same seed); the features are the
    standard ones minus ``target`` itself (it would give the label away). Named "adult", so the
    course's standard network and budget apply. ``n_train`` keeps only that many training rows.
    """
    numeric = ("age", "hours_per_week", "education_num", "capital_gain", "capital_loss")
    if target not in numeric:
        raise ValueError(f"target must be one of {numeric}, got {target!r}.")
    train_df, val_df, test = split_adult_frames(val_fraction, n_train, seed)
    x_train, x_val, names = adult_features(train_df, val_df)
    _, x_test, _ = adult_features(train_df, test)
    keep = [i for i, name in enumerate(names) if name != target]

    def split(x: np.ndarray, df) -> Split:
        y = {"income": adult_labels(df)["income"], target: torch.tensor(df[target].to_numpy(), dtype=torch.float32)}
        return Split(torch.from_numpy(np.ascontiguousarray(x[:, keep])), y)

    tasks = [Task("income", "binary"), Task(target, "regression")]
    return MultiTaskDataset("adult", tasks, split(x_train, train_df), split(x_val, val_df), split(x_test, test),
                            info={"feature_names": [names[i] for i in keep], "regression_target": target})


# --------------------------------------------------------------------------- runners
@dataclass
class WeightedRun:
    """One training run with a balancer: metrics, time, steps, history and the objects."""

    val: dict[str, float]
    test: dict[str, float]
    seconds: float
    steps: int
    history: History
    model: nn.Module
    weighting: object

    @property
    def seconds_per_step(self) -> float:
        return self.seconds / max(self.steps, 1)


def run_weighted(dataset: MultiTaskDataset, make_weighting: Callable[[nn.Module], object] | None, lr: float,
                 seed: int, per_epoch_val: bool = False, device: torch.device | str | None = None) -> WeightedRun:
    """Train the standard network (``baselines.make_model``) on all tasks of ``dataset`` with
    its standard budget and ``weighting = make_weighting(model)`` (None: the plain sum).

    The factory receives the freshly built model, so GradNorm can find its last shared layer.
    """
    budget = BUDGETS[dataset.name]
    seed_everything(seed)
    model = make_model(dataset)
    if device is not None:
        model.to(device)
    weighting = make_weighting(model) if make_weighting is not None else None
    with Timer(device) as t:
        history = fit(model, dataset.train, dataset.tasks, epochs=budget.epochs, lr=lr,
                      batch_size=budget.batch_size, weighting=weighting, seed=seed, verbose=False,
                      val=dataset.val if per_epoch_val else None)
    steps = budget.epochs * -(-len(dataset.train) // budget.batch_size)
    return WeightedRun(evaluate(model, dataset.val, dataset.tasks), evaluate(model, dataset.test, dataset.tasks),
                       t.seconds, steps, history, model, weighting)


class TrackGradNorms:
    """A static weighting that also records ‖∇_W L_i‖ on one shared layer at every step (to
    *see* which task drives the shared weights). ``norms`` is a (steps, T) tensor."""

    def __init__(self, layer: nn.Parameter | nn.Module, weights: Sequence[float] | None = None) -> None:
        self.layer = _as_parameter(layer)
        self.static = StaticWeighting(weights) if weights is not None else None
        self._rows: list[Tensor] = []

    def __call__(self, losses: Losses) -> Tensor:
        L = check_losses(losses)
        self._rows.append(task_gradient_norms(L, self.layer).detach().cpu())
        return self.static(L) if self.static is not None else L.sum()

    @property
    def norms(self) -> Tensor:
        return torch.stack(self._rows) if self._rows else torch.empty(0)


def time_per_step(dataset: MultiTaskDataset, factories: dict[str, Callable[[nn.Module], object] | None],
                  lr: float, n_steps: int = 30, repeats: int = 3, seed: int = 0,
                  device: torch.device | str | None = None) -> dict[str, float]:
    """Median seconds per training step of each balancer, measured interleaved (method A, B, …,
    then again) on the same ``n_steps`` batches, so load from other processes hits all alike."""
    if not factories:
        raise ValueError("time_per_step needs at least one method.")
    budget = BUDGETS[dataset.name]
    sample = dataset.train.take(min(len(dataset.train), n_steps * budget.batch_size), seed=seed)
    times: dict[str, list[float]] = {name: [] for name in factories}
    for _ in range(repeats):
        for name, factory in factories.items():
            seed_everything(seed)
            model = make_model(dataset)
            if device is not None:
                model.to(device)
            weighting = factory(model) if factory is not None else None
            history = fit(model, sample, dataset.tasks, epochs=1, lr=lr, batch_size=budget.batch_size,
                          weighting=weighting, seed=seed, verbose=False)
            times[name].append(history.seconds / n_steps)
    return {name: float(np.median(v)) for name, v in times.items()}


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
