"""CAGrad, conflict-averse gradient descent (Liu, Liu, Jin, Stone & Liu, NeurIPS 2021)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .core import check_grads, combine, gram
from .simplex import argmin_linear_plus_sqrt, frank_wolfe


def cagrad_weights(grads: Tensor, c: float = 0.5, max_iter: int = 500, tol: float = 1e-9) -> Tensor:
    """The dual of CAGrad: w* = argmin_{w∈Δ} g_wᵀ g_0 + c‖g_0‖‖g_w‖, g_w = Σ w_i g_i.

    In Gram terms F(w) = wᵀb + k√(wᵀMw) with b = M 1/T and k = c‖g_0‖ = c√(1ᵀM1)/T. On a
    segment of the simplex F is "linear + k·√quadratic", minimised in closed form by
    :func:`argmin_linear_plus_sqrt`: two tasks need one such step; more tasks take
    Frank–Wolfe steps (with away steps, :func:`.simplex.frank_wolfe`) with that exact line search.
    (The authors run 20 SGD steps on softmax logits instead; LibMTL copies them.)
    Returns (T,) float64 weights (CPU).
    """
    g = check_grads(grads)
    if not c >= 0.0:
        raise ValueError(f"c must be >= 0, got {c}.")
    m = gram(g)
    n_tasks = m.shape[0]
    b = m.mean(dim=1)
    k = c * math.sqrt(max(m.sum().item(), 0.0)) / n_tasks
    if n_tasks == 1:
        return torch.ones(1, dtype=torch.float64)
    if n_tasks == 2:  # w = (x, 1 − x): g_w = g_2 + x (g_1 − g_2)
        q = (m[0, 0] + m[1, 1] - 2 * m[0, 1]).item()
        x = argmin_linear_plus_sqrt((b[0] - b[1]).item(), k, q, (m[0, 1] - m[1, 1]).item(), m[1, 1].item())
        return torch.tensor([x, 1.0 - x], dtype=torch.float64)

    def gradient(w: Tensor) -> Tensor:
        norm_w = math.sqrt(max((w @ m @ w).item(), 0.0))
        return b + (k / norm_w) * (m @ w) if norm_w > 0 else b

    def line_search(w: Tensor, d: Tensor, step_max: float) -> float:
        # along w + γd, γ = step_max·x: F = const + a x + k√(q x² + 2 p x + r)
        x = argmin_linear_plus_sqrt(step_max * (b @ d).item(), k, step_max**2 * (d @ m @ d).item(),
                                     step_max * (d @ m @ w).item(), (w @ m @ w).item())
        return step_max * x

    scale = max(m.diagonal().max().item(), 1e-300)
    return frank_wolfe(n_tasks, gradient, line_search, max_iter, tol * scale)


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
    g = check_grads(grads)
    w = cagrad_weights(g, c)
    g0 = g.mean(dim=0)
    gw = combine(w, g)
    norm_w = gw.norm()
    d = g0 + (c * g0.norm() / norm_w) * gw if norm_w > 0 else g0.clone()
    return d / (1.0 + c) if rescale else d
