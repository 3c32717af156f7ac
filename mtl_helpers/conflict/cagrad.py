"""CAGrad, conflict-averse gradient descent (Liu, Liu, Jin, Stone & Liu, NeurIPS 2021)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .core import combine, gram
from .simplex import argmin_linear_plus_sqrt, dot, frank_wolfe, matvec, on_simplex, quad, solve_spd


def cagrad_weights(grads: Tensor, c: float = 0.5, max_iter: int = 500, tol: float = 1e-9) -> Tensor:
    """The dual of CAGrad: w* = argmin_{w∈Δ} g_wᵀ g_0 + c‖g_0‖‖g_w‖, g_w = Σ w_i g_i.

    In Gram terms F(w) = wᵀb + k√(wᵀMw) with b = M 1/T and k = c‖g_0‖ = c√(1ᵀM1)/T. On a
    segment of the simplex F is "linear + k·√quadratic", minimised in closed form by
    :func:`argmin_linear_plus_sqrt`: two tasks need one such step; more tasks take
    Frank–Wolfe steps (with away steps, :func:`.simplex.frank_wolfe`) with that exact line search,
    from the closed-form answer for the case where no weight is 0 (:func:`_interior_guess`).
    (The authors run 20 SGD steps on softmax logits instead; LibMTL copies them.)
    Returns (T,) float64 weights (CPU).
    """
    if not c >= 0.0:
        raise ValueError(f"c must be >= 0, got {c}.")
    w = _dual_weights(gram(grads, check=True).tolist(), c, max_iter, tol)
    return torch.tensor(w, dtype=torch.float64)


def _dual_weights(m: list[list[float]], c: float, max_iter: int, tol: float) -> list[float]:
    """:func:`cagrad_weights` from the Gram matrix M (T × T, plain floats: see :mod:`.simplex`)."""
    n_tasks = len(m)
    b = [sum(row) / n_tasks for row in m]  # b = M 1/T, so wᵀb = g_wᵀg_0
    k = c * math.sqrt(max(sum(map(sum, m)), 0.0)) / n_tasks  # c‖g_0‖
    if n_tasks == 1:
        return [1.0]
    if n_tasks == 2:  # w = (x, 1 − x): g_w = g_2 + x (g_1 − g_2)
        q = m[0][0] + m[1][1] - 2 * m[0][1]
        x = argmin_linear_plus_sqrt(b[0] - b[1], k, q, m[0][1] - m[1][1], m[1][1])
        return [x, 1.0 - x]

    def gradient(w: list[float]) -> list[float]:
        mw = matvec(m, w)
        norm_w = math.sqrt(max(dot(w, mw), 0.0))
        return [bi + (k / norm_w) * x for bi, x in zip(b, mw)] if norm_w > 0 else b

    def line_search(w: list[float], d: list[float], step_max: float) -> float:
        # along w + γd, γ = step_max·x: F = const + a x + k√(q x² + 2 p x + r)
        md = matvec(m, d)
        x = argmin_linear_plus_sqrt(step_max * dot(b, d), k, step_max**2 * dot(d, md), step_max * dot(w, md),
                                    quad(m, w, w))
        return step_max * x

    scale = max(max(m[i][i] for i in range(n_tasks)), 1e-300)
    return frank_wolfe(n_tasks, gradient, line_search, max_iter, tol * scale, _interior_guess(m, c))


def _interior_guess(m: list[list[float]], c: float) -> list[float] | None:
    """The stationary point of F on the plane Σw_i = 1, if it has no negative weight (else None).

    There ∇F = b + k Mw/‖g_w‖ = μ1, so w = (‖g_w‖/k)(μu − 1/T) with u = M⁻¹1 (M⁻¹b = 1/T);
    Σw_i = 1 and wᵀMw = ‖g_w‖² leave S μ² − 2μ + ‖g_0‖²(1 − c²) = 0, S = 1ᵀu, whence
    w = (μu − 1/T)/√δ with δ = 1 − S‖g_0‖²(1 − c²) and μ = (1 + √δ)/S. F is convex, so a
    stationary point inside the simplex is the minimiser.
    """
    n_tasks = len(m)
    u = solve_spd(m, [1.0] * n_tasks)
    if u is None or c <= 0.0:
        return None
    total_u, g0_sq = sum(u), sum(map(sum, m)) / n_tasks**2
    delta = 1.0 - total_u * g0_sq * (1.0 - c * c)
    if not (delta > 0.0 and total_u > 0.0):
        return None
    mu = (1.0 + math.sqrt(delta)) / total_u
    return on_simplex([(mu * ui - 1.0 / n_tasks) / math.sqrt(delta) for ui in u])


def cagrad(grads: Tensor, c: float = 0.5, rescale: bool = True) -> Tensor:
    """CAGrad, conflict-averse gradient descent (Liu et al., NeurIPS 2021).

    Look for the update d within a ball around the mean gradient g_0 = (1/T) Σ g_i that
    maximises the *worst* task's improvement:

        max_d min_i g_iᵀd   subject to   ‖d − g_0‖ ≤ c‖g_0‖.

    Its dual gives w* = argmin_{w∈Δ} g_wᵀg_0 + c‖g_0‖‖g_w‖ (:func:`cagrad_weights`) and
    d = g_0 + (c‖g_0‖/‖g_w‖) g_w. ``rescale=True`` divides by 1 + c as the paper's toy code does
    (the Nash-MTL authors' copy divides by 1 + c²). c = 0 is the mean gradient; as c grows
    g_w tends to MGDA's min-norm direction. The paper's convergence result needs c < 1;
    defaults c = 0.5 (toy, LibMTL) or 0.4 (its NYUv2 runs).
    """
    if not c >= 0.0:
        raise ValueError(f"c must be >= 0, got {c}.")
    m = gram(grads, check=True).tolist()
    w = _dual_weights(m, c, 500, 1e-9)
    n_tasks = len(m)
    # d = g_0 + λ g_w = Gᵀ(1/T + λ w): one pass over G, the norms from M
    g0_norm = math.sqrt(max(sum(map(sum, m)), 0.0)) / n_tasks
    gw_norm = math.sqrt(max(quad(m, w, w), 0.0))
    lam = c * g0_norm / gw_norm if gw_norm > 0 else 0.0
    coefficients = torch.tensor([1.0 / n_tasks + lam * wi for wi in w], dtype=torch.float64)
    if rescale:
        coefficients /= 1.0 + c
    return combine(coefficients, grads, check=False)
