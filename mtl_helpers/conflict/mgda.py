"""MGDA, the multiple-gradient descent algorithm as multi-task learning (Sener & Koltun, NeurIPS 2018)."""

from __future__ import annotations

import torch
from torch import Tensor

from .core import gram
from .simplex import dot, frank_wolfe, matvec, on_simplex, solve_spd


def mgda_two_task_gamma(g11: float, g12: float, g22: float) -> float:
    """Weight γ on g_1 of the min-norm point of the segment [g_2, g_1] (Sener & Koltun, Alg. 1).

    γ = clip((g_2 − g_1)·g_2 / ‖g_1 − g_2‖², 0, 1) = clip((g22 − g12)/(g11 + g22 − 2 g12), 0, 1),
    written with the Gram entries g_ij = g_i·g_j. Equal gradients (‖g_1 − g_2‖ = 0): γ = ½.
    """
    denom = g11 + g22 - 2.0 * g12
    if denom <= 1e-30 * max(g11 + g22, 1e-300):
        return 0.5
    return min(max((g22 - g12) / denom, 0.0), 1.0)


def _gradient_scales(norms: Tensor, normalize: str, losses: Tensor | None) -> Tensor:
    """The n_i of MGDA's optional normalisation g_i / n_i (authors' code, not the paper)."""
    if normalize == "none":
        return torch.ones_like(norms)
    if normalize == "l2":
        return norms
    if losses is None:
        raise ValueError(f"normalize={normalize!r} divides by the task losses: pass losses=(T,) tensor.")
    losses = torch.as_tensor(losses).detach().double().cpu().reshape(-1)
    if losses.shape != norms.shape or not torch.isfinite(losses).all() or (losses <= 0).any():
        raise ValueError(f"losses must be {tuple(norms.shape)} positive finite values, got {losses.tolist()}.")
    if normalize == "loss":
        return losses
    if normalize == "loss+":
        return losses * norms
    raise ValueError(f"normalize must be 'none', 'l2', 'loss' or 'loss+', got {normalize!r}.")


def min_norm_weights(gram: Tensor, max_iter: int = 250, tol: float = 1e-9) -> Tensor:
    """α* = argmin_{α∈Δ} αᵀ M α for a Gram matrix M (T × T): the min-norm point of the
    convex hull of the gradients.

    Two tasks: the closed form of :func:`mgda_two_task_gamma`. More: Frank–Wolfe, Sener &
    Koltun's Algorithm 2 (the step towards e_t, t = argmin (Mα)_t, has the exact length
    γ = (b − a)/(b + c − 2a), a = (Mα)_t, b = αᵀMα, c = M_tt), here with away steps so that it
    converges in a few dozen iterations instead of zig-zagging for thousands. It starts from
    α ∝ M⁻¹1, the exact answer whenever M is invertible and no weight is 0 at the optimum.
    """
    m = gram.double().cpu().tolist()  # T × T: plain floats are faster than tiny tensors
    n_tasks = len(m)
    if n_tasks == 1:
        return torch.ones(1, dtype=torch.float64)
    if n_tasks == 2:
        gamma = mgda_two_task_gamma(m[0][0], m[0][1], m[1][1])
        return torch.tensor([gamma, 1.0 - gamma], dtype=torch.float64)

    def line_search(w: list[float], d: list[float], step_max: float) -> float:
        md = matvec(m, d)  # ‖Gᵀ(w + γd)‖² = wᵀMw + 2γ dᵀMw + γ² dᵀMd
        curvature = dot(d, md)
        return step_max if curvature <= 0 else min(max(-dot(w, md) / curvature, 0.0), step_max)

    # α ∝ M⁻¹1 solves the problem without the α ≥ 0 constraints (Mα = λ1): when no weight is
    # negative it is the answer, and Frank–Wolfe's first gap test confirms it in one step
    start = on_simplex(solve_spd(m, [1.0] * n_tasks))
    scale = max(max(m[i][i] for i in range(n_tasks)), 1e-300)
    w = frank_wolfe(n_tasks, lambda w: [2.0 * x for x in matvec(m, w)], line_search, max_iter, tol * scale, start)
    return torch.tensor(w, dtype=torch.float64)


def mgda_weights(grads: Tensor, normalize: str = "none", losses: Tensor | None = None,
                 max_iter: int = 250, tol: float = 1e-9) -> Tensor:
    """MGDA (Sener & Koltun, NeurIPS 2018): α* = argmin_{α∈Δ} ‖Σ_i α_i g_i‖².

    The min-norm point d = Σ α_i g_i of the convex hull of the gradients is a common descent
    direction: g_i·d ≥ ‖d‖² > 0 for every task, unless d = 0, in which case the point is
    *Pareto stationary* and MGDA stops moving. Two tasks have the closed form
    γ = clip(((g_2 − g_1)·g_2)/‖g_1 − g_2‖², 0, 1), α = (γ, 1 − γ); more tasks use Frank–Wolfe
    (:func:`min_norm_weights`).

    ``normalize`` divides g_i by n_i before solving, as in the authors' code (not the paper):
    ``"none"`` (default), ``"l2"`` (n_i = ‖g_i‖), ``"loss"`` (n_i = L_i) or ``"loss+"``
    (n_i = L_i‖g_i‖); the last two need ``losses``. Like the authors' code we return the
    weights α found on the normalised gradients and apply them to the raw ones (they weight
    the raw losses with α). Returns (T,) float64 weights on the simplex (CPU).
    """
    m = gram(grads, check=True)
    if normalize != "none":
        scales = _gradient_scales(m.diagonal().sqrt(), normalize, losses).clamp_min(1e-30)  # ‖g_i‖ = √M_ii
        m = m / (scales[:, None] * scales[None, :])
    return min_norm_weights(m, max_iter=max_iter, tol=tol)
