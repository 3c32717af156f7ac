"""The CAGrad 2-D toy problem (Liu et al., NeurIPS 2021; reused by Nash-MTL and FAMO).

Two losses of x = (x₁, x₂) with LOWER = 5·10⁻⁶:

    f₁_log = log(max(|0.5(−x₁ − 7) − tanh(−x₂)|, LOWER)) + 6
    f₂_log = log(max(|0.5(−x₁ + 3) + tanh(−x₂) + 2|, LOWER)) + 6
    f₁_sq  = ((−x₁ + 7)² + 0.1(−x₂ − 8)²)/10 − 20
    f₂_sq  = ((−x₁ − 7)² + 0.1(−x₂ − 8)²)/10 − 20
    c₁ = max(tanh(x₂/2), 0),  c₂ = max(tanh(−x₂/2), 0),  f_i = f_i_log·c₁ + f_i_sq·c₂.

Above the x₁ axis the log terms make long valleys where the two gradients nearly cancel; below
it the square terms give task 1 its minimum at (7, −8.434) and task 2 at (−7, −8.434). The
Pareto set is the slightly bent arc joining them through (0, −8.355), where the mean loss is
lowest. (The paper's figure and REFERENCES.md draw it as the straight segment x₂ = −8.3552;
the arc is within 0.08 of it — :func:`pareto_set` computes it.)

A trajectory is 100 000 Adam steps (lr 10⁻³) of a 2-vector. With NumPy or PyTorch every
operation on such a tiny array costs a microsecond of overhead, so a run would take 10–20 s;
plain Python floats with the analytic gradient take about half a second. That is why this module
computes the gradient by hand (:func:`toy_gradients`, tested against autograd on
:func:`toy_losses`) and writes the two-task closed forms of the methods with floats (tested
against the general tensor versions in :mod:`mtl_helpers.conflict`). Method names are those of
:data:`mtl_helpers.conflict.GRADIENT_METHODS`; a registered method without a float version
here still runs, through its tensor version (slower).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence

import matplotlib.pyplot as plt
import torch
from torch import Tensor

from .conflict import GRADIENT_METHODS, make_direction
from .conflict.mgda import mgda_two_task_gamma
from .conflict.simplex import argmin_linear_plus_sqrt

LOWER = 5e-6
PARETO_X2 = -8.3551  # x₂ of the mean loss's minimum (0, −8.3551), the centre of the Pareto set
MEAN_MINIMUM = (0.0, PARETO_X2)
TASK_MINIMA = ((7.0, -8.4345), (-7.0, -8.4345))  # argmin f₁, argmin f₂
STARTS = ((-8.5, 7.5), (-8.5, -5.0), (9.0, 9.0))  # the paper's three starting points
TOY_METHODS = ("mean", "pcgrad", "mgda", "cagrad", "nash")  # the contract; "normalized" is an extra


def toy_losses(x: Tensor) -> Tensor:
    """(f₁, f₂) of the CAGrad toy; x has shape (..., 2), the result (..., 2). Differentiable."""
    x = torch.as_tensor(x)
    if x.shape[-1:] != (2,):
        raise ValueError(f"toy_losses expects points of shape (..., 2), got {tuple(x.shape)}.")
    x1, x2 = x[..., 0], x[..., 1]
    f1_log = (0.5 * (-x1 - 7) - torch.tanh(-x2)).abs().clamp_min(LOWER).log() + 6
    f2_log = (0.5 * (-x1 + 3) + torch.tanh(-x2) + 2).abs().clamp_min(LOWER).log() + 6
    f1_sq = ((-x1 + 7) ** 2 + 0.1 * (-x2 - 8) ** 2) / 10 - 20
    f2_sq = ((-x1 - 7) ** 2 + 0.1 * (-x2 - 8) ** 2) / 10 - 20
    c1 = torch.tanh(x2 / 2).clamp_min(0)
    c2 = torch.tanh(-x2 / 2).clamp_min(0)
    return torch.stack([f1_log * c1 + f1_sq * c2, f2_log * c1 + f2_sq * c2], dim=-1)


def toy_gradients(x1: float, x2: float) -> tuple[float, float, float, float]:
    """Analytic ∇f₁ and ∇f₂ at one point: (∂₁f₁, ∂₂f₁, ∂₁f₂, ∂₂f₂), plain floats.

    With u₁ = −x₁/2 − 3.5 + tanh x₂ and u₂ = −x₁/2 + 3.5 − tanh x₂ (the arguments of the logs),
    ∂ log|u| = u'/u where |u| > LOWER (zero where the clamp is active, as in autograd), and
    c₁, c₂ contribute their derivative ±½(1 − tanh²(x₂/2)) on their own half-plane.
    """
    t = math.tanh(x2)
    dt = 1.0 - t * t
    h = math.tanh(0.5 * x2)
    dh = 0.5 * (1.0 - h * h)
    if x2 > 0:
        c1, dc1, c2, dc2 = h, dh, 0.0, 0.0
    else:
        c1, dc1, c2, dc2 = 0.0, 0.0, -h, -dh
    u1 = -0.5 * x1 - 3.5 + t
    u2 = -0.5 * x1 + 3.5 - t
    if abs(u1) > LOWER:
        f1_log, inv1 = math.log(abs(u1)) + 6.0, 1.0 / u1
    else:
        f1_log, inv1 = math.log(LOWER) + 6.0, 0.0
    if abs(u2) > LOWER:
        f2_log, inv2 = math.log(abs(u2)) + 6.0, 1.0 / u2
    else:
        f2_log, inv2 = math.log(LOWER) + 6.0, 0.0
    common = 0.1 * (x2 + 8.0) ** 2
    f1_sq = ((7.0 - x1) ** 2 + common) / 10.0 - 20.0
    f2_sq = ((x1 + 7.0) ** 2 + common) / 10.0 - 20.0
    d2_sq = (x2 + 8.0) / 50.0
    return (-0.5 * inv1 * c1 + (x1 - 7.0) / 5.0 * c2,
            inv1 * dt * c1 + f1_log * dc1 + d2_sq * c2 + f1_sq * dc2,
            -0.5 * inv2 * c1 + (x1 + 7.0) / 5.0 * c2,
            -inv2 * dt * c1 + f2_log * dc1 + d2_sq * c2 + f2_sq * dc2)


# ----------------------------------------------------------------------------------------------
# Two-task directions with floats: g1 = (a1, a2), g2 = (b1, b2); each returns (d1, d2).
Direction2 = Callable[[float, float, float, float], tuple[float, float]]


def mean_direction(a1: float, a2: float, b1: float, b2: float) -> tuple[float, float]:
    """(g₁ + g₂)/2."""
    return 0.5 * (a1 + b1), 0.5 * (a2 + b2)


def pcgrad_direction(a1: float, a2: float, b1: float, b2: float) -> tuple[float, float]:
    """PCGrad with the *mean* reduction of CAGrad's toy code: if g₁·g₂ < 0,
    ((1 − g₁₂/g₁₁) g₁ + (1 − g₁₂/g₂₂) g₂)/2, else the mean."""
    g11, g12, g22 = a1 * a1 + a2 * a2, a1 * b1 + a2 * b2, b1 * b1 + b2 * b2
    if g12 >= 0 or g11 == 0 or g22 == 0:
        return mean_direction(a1, a2, b1, b2)
    s1, s2 = 1.0 - g12 / g11, 1.0 - g12 / g22
    return 0.5 * (s1 * a1 + s2 * b1), 0.5 * (s1 * a2 + s2 * b2)


def mgda_direction(a1: float, a2: float, b1: float, b2: float) -> tuple[float, float]:
    """γ g₁ + (1 − γ) g₂ with MGDA's two-task γ."""
    gamma = mgda_two_task_gamma(a1 * a1 + a2 * a2, a1 * b1 + a2 * b2, b1 * b1 + b2 * b2)
    return gamma * a1 + (1 - gamma) * b1, gamma * a2 + (1 - gamma) * b2


def make_cagrad_direction(c: float = 0.5) -> Direction2:
    """CAGrad for two tasks, w = (x, 1 − x) in closed form, rescaled by 1/(1 + c)."""
    def cagrad_direction(a1: float, a2: float, b1: float, b2: float) -> tuple[float, float]:
        g11, g12, g22 = a1 * a1 + a2 * a2, a1 * b1 + a2 * b2, b1 * b1 + b2 * b2
        k = c * 0.5 * math.sqrt(max(g11 + 2 * g12 + g22, 0.0))  # c‖g₀‖
        x = argmin_linear_plus_sqrt(0.5 * (g11 - g22), k, g11 + g22 - 2 * g12, g12 - g22, g22)
        w1, w2 = x * a1 + (1 - x) * b1, x * a2 + (1 - x) * b2
        norm_w = math.sqrt(w1 * w1 + w2 * w2)
        lam = k / norm_w if norm_w > 0 else 0.0
        return (0.5 * (a1 + b1) + lam * w1) / (1 + c), (0.5 * (a2 + b2) + lam * w2) / (1 + c)
    return cagrad_direction


def nash_direction(a1: float, a2: float, b1: float, b2: float) -> tuple[float, float]:
    """Nash-MTL for two tasks: α_i = 1/(‖g_i‖√(1 + cos)), so d = (u₁ + u₂)/√(1 + cos) with
    u_i = g_i/‖g_i‖. Exactly opposite gradients have no solution; we then stop (d = 0)."""
    n1, n2 = math.hypot(a1, a2), math.hypot(b1, b2)
    if n1 == 0 or n2 == 0:
        return 0.0, 0.0
    u1, u2, v1, v2 = a1 / n1, a2 / n1, b1 / n2, b2 / n2
    one_plus_cos = 1.0 + u1 * v1 + u2 * v2
    if one_plus_cos <= 1e-12:
        return 0.0, 0.0
    s = 1.0 / math.sqrt(one_plus_cos)
    return s * (u1 + v1), s * (u2 + v2)


def normalized_direction(a1: float, a2: float, b1: float, b2: float) -> tuple[float, float]:
    """u₁ + u₂ = g₁/‖g₁‖ + g₂/‖g₂‖ (per-task gradient normalisation)."""
    n1, n2 = math.hypot(a1, a2) or 1.0, math.hypot(b1, b2) or 1.0
    return a1 / n1 + b1 / n2, a2 / n1 + b2 / n2


FAST_DIRECTIONS: dict[str, Direction2] = {"mean": mean_direction, "pcgrad": pcgrad_direction,
                                          "mgda": mgda_direction, "nash": nash_direction,
                                          "normalized": normalized_direction}


def _from_registry(name: str) -> Direction2:
    """A registered method's tensor direction, called on the 2 × 2 matrix G (slow but general)."""
    direction = make_direction(name)

    def fn(a1: float, a2: float, b1: float, b2: float) -> tuple[float, float]:
        d = direction(torch.tensor([[a1, a2], [b1, b2]], dtype=torch.float64))
        return float(d[0]), float(d[1])
    return fn


def toy_direction(method: str, c: float = 0.5) -> Direction2:
    """The direction function of a method of :data:`~mtl_helpers.conflict.GRADIENT_METHODS`: its
    float closed form when there is one (PCGrad with the toy's *mean* reduction), else the
    registry's tensor version."""
    if method == "cagrad":
        return make_cagrad_direction(c)
    if method in FAST_DIRECTIONS:
        return FAST_DIRECTIONS[method]
    if method in GRADIENT_METHODS:
        return _from_registry(method)
    raise ValueError(f"Unknown toy method {method!r}; choose one of {list(GRADIENT_METHODS)}.")


def toy_trajectory(method: str, start: Sequence[float] = STARTS[0], steps: int = 100_000, lr: float = 1e-3,
                   c: float = 0.5, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> Tensor:
    """Run Adam on the toy with a method's direction written into x.grad, as the paper does.

    Returns the (steps + 1, 2) float64 path, start included. Adam's update is torch's:
    m ← β₁m + (1 − β₁)d, v ← β₂v + (1 − β₂)d², x ← x − lr·m̂/(√v̂ + ε) with bias-corrected
    m̂, v̂. The paper's setting (lr 10⁻³, 100 000 steps) takes about half a second.
    """
    direction = toy_direction(method, c)
    if len(start) != 2 or not all(math.isfinite(float(v)) for v in start):
        raise ValueError(f"start must be two finite numbers (x1, x2), got {start!r}.")
    if steps < 0 or not lr > 0:
        raise ValueError(f"steps must be >= 0 and lr > 0, got steps={steps}, lr={lr}.")
    beta1, beta2 = betas
    rest1, rest2 = 1 - beta1, 1 - beta2  # (1 − β₁), (1 − β₂)
    x1, x2 = float(start[0]), float(start[1])
    m1 = m2 = v1 = v2 = 0.0
    power1 = power2 = 1.0  # β₁ᵗ, β₂ᵗ
    path = [(x1, x2)]
    append, sqrt, gradients = path.append, math.sqrt, toy_gradients  # local names: a faster loop
    for _ in range(steps):
        d1, d2 = direction(*gradients(x1, x2))
        m1 = beta1 * m1 + rest1 * d1
        m2 = beta1 * m2 + rest1 * d2
        v1 = beta2 * v1 + rest2 * d1 * d1
        v2 = beta2 * v2 + rest2 * d2 * d2
        power1 *= beta1
        power2 *= beta2
        step = lr / (1 - power1)
        root = sqrt(1 - power2)
        x1 -= step * m1 / (sqrt(v1) / root + eps)
        x2 -= step * m2 / (sqrt(v2) / root + eps)
        append((x1, x2))
    return torch.tensor(path, dtype=torch.float64)


def toy_trajectories(methods: Iterable[str] = TOY_METHODS, starts: Sequence[Sequence[float]] = STARTS,
                     steps: int = 100_000, lr: float = 1e-3, c: float = 0.5) -> dict[str, list[Tensor]]:
    """``{method: [path from each start]}``, every path (steps + 1, 2)."""
    return {m: [toy_trajectory(m, s, steps, lr, c) for s in starts] for m in methods}


def pareto_set(n: int = 201) -> Tensor:
    """(n, 2) points of the Pareto set between the task minima (±7, −8.3552).

    Pareto stationarity for two tasks means g₁ and g₂ are anti-parallel (the 2-D cross product
    ∂₁f₁∂₂f₂ − ∂₂f₁∂₁f₂ vanishes with g₁·g₂ < 0). For each x₁ we locate that x₂ by bisection
    near −8.355. The arc runs from (−7, −8.434) through (0, −8.355) to (7, −8.434).
    """
    points = []
    for x1 in torch.linspace(-7, 7, n).tolist():
        def cross(x2: float, x1: float = x1) -> float:
            a1, a2, b1, b2 = toy_gradients(x1, x2)
            return a1 * b2 - a2 * b1
        lo, hi = PARETO_X2 - 0.5, PARETO_X2 + 0.5
        if cross(lo) * cross(hi) > 0:  # at the end points one gradient vanishes: use the minimum
            points.append((x1, PARETO_X2))
            continue
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if cross(lo) * cross(mid) > 0 else (lo, mid)
        points.append((x1, 0.5 * (lo + hi)))
    return torch.tensor(points, dtype=torch.float64)


@functools.lru_cache(maxsize=1)
def _pareto_polyline() -> Tensor:
    return pareto_set(281)


def distance_to_pareto_set(point: Sequence[float]) -> float:
    """Euclidean distance from a point to the Pareto set (the arc of :func:`pareto_set`, as a
    polyline of 281 points: exact to ~10⁻⁴)."""
    p = torch.as_tensor([float(point[0]), float(point[1])], dtype=torch.float64)
    a, b = _pareto_polyline()[:-1], _pareto_polyline()[1:]
    seg = b - a
    t = (((p - a) * seg).sum(1) / (seg * seg).sum(1)).clamp(0, 1)
    return (a + t[:, None] * seg - p).norm(dim=1).min().item()


def plot_toy(paths: Mapping[str, Sequence[Tensor]], ax: plt.Axes | None = None, title: str | None = None,
             contour: str = "mean", legend: bool = True) -> plt.Axes:
    """Contours of the mean loss (or ``contour="f1"``/``"f2"``), the Pareto set (grey band), the
    task minima (×) and the trajectories: one colour per label, a dot at each start and a star
    at each end."""
    ax = ax or plt.subplots(figsize=(4, 3.6))[1]
    grid = torch.linspace(-10, 10, 201, dtype=torch.float64)
    xx, yy = torch.meshgrid(grid, grid, indexing="xy")
    values = toy_losses(torch.stack([xx, yy], dim=-1))
    z = {"mean": values.mean(-1), "f1": values[..., 0], "f2": values[..., 1]}[contour]
    ax.contour(xx.numpy(), yy.numpy(), z.numpy(), levels=18, cmap="Greys", linewidths=0.6, alpha=0.7)
    front = pareto_set(41)
    ax.plot(front[:, 0], front[:, 1], color="0.4", lw=4, alpha=0.5, label="Pareto set")
    ax.plot([m[0] for m in TASK_MINIMA], [m[1] for m in TASK_MINIMA], "x", color="k", ms=5)  # the two task minima
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (label, runs) in enumerate(paths.items()):
        colour = colours[k % len(colours)]
        for i, path in enumerate(runs):
            path = torch.as_tensor(path)
            ax.plot(path[:, 0], path[:, 1], color=colour, lw=1.3, label=label if i == 0 else None)
            ax.plot(*path[0].tolist(), "o", color=colour, ms=4)
            ax.plot(*path[-1].tolist(), "*", color=colour, ms=10, mec="k", mew=0.5)
    ax.set_xlim(-10, 10)
    ax.set_ylim(-10, 10)
    ax.set_aspect("equal")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    if title:
        ax.set_title(title, fontsize=10)
    if legend:
        ax.legend(fontsize=7, loc="upper center")
    return ax


WIDGET_STEPS, WIDGET_LR = 33_000, 3e-3  # a third of the paper's steps with a 3× larger step


def plot_cagrad_c(c: float, starts: Sequence[Sequence[float]] = (STARTS[0], STARTS[2]), steps: int = WIDGET_STEPS,
                  lr: float = WIDGET_LR, ax: plt.Axes | None = None, paths: Sequence[Tensor] | None = None) -> plt.Axes:
    """CAGrad's trajectories for one c (the widget's callback; about 0.5 s at the defaults).

    The default setting is shortened from the paper's (lr 10⁻³, 100 000 steps) to lr 3·10⁻³ and
    33 000 steps, which keeps every qualitative outcome (checked in the tests). Much larger
    steps do not: with lr 10⁻² the mean gradient escapes its valley. Pass ``paths`` (one per
    start) to plot runs computed already.
    """
    if not c >= 0:
        raise ValueError(f"c must be >= 0, got {c}.")
    if paths is None:
        paths = [toy_trajectory("cagrad", s, steps, lr, c=c) for s in starts]
    return plot_toy({f"CAGrad c={c:g}": list(paths)}, ax=ax, title=f"c = {c:g}", legend=False)
