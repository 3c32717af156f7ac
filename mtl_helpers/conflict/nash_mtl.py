"""Nash-MTL, multi-task learning as a bargaining game (Navon et al., ICML 2022)."""

from __future__ import annotations

import torch
from torch import Tensor

from .core import check_grads, gram


def nash_mtl_weights(grads: Tensor, gram_normalize: bool = False, max_iter: int = 100,
                     tol: float = 1e-10, ridge: float = 1e-8) -> Tensor:
    """Nash-MTL (Navon et al., ICML 2022): the α > 0 with M α = 1/α (elementwise), M = G Gᵀ.

    The update Gᵀα is the Nash bargaining solution: each task's utility g_iᵀd, the product of
    utilities maximised in a ball. The condition α_i (Mα)_i = 1 says every task gets the same
    share, g_iᵀd = 1/α_i, and ‖Gᵀα‖² = αᵀMα = T: the step length no longer follows the
    gradients' scale. Two tasks have a closed form: α_i = 1/(‖g_i‖√(1 + cos(g_1, g_2))).

    We solve it without cvxpy: α minimises the strictly convex ψ(α) = ½αᵀMα − Σ log α_i
    (∇ψ = Mα − 1/α, ∇²ψ = M + diag(1/α²)), so damped Newton steps from α_i = 1/‖g_i‖ with a
    backtracking line search that keeps α > 0 converge in a few iterations. Newton or BFGS in
    z = log α works too (REFERENCES.md); Newton on ψ(α) is the variant that is convex.
    The authors divide M by its Frobenius norm first (``gram_normalize=True``) and clip the
    shared gradient's norm to 1; their cvxpy path silently falls back to equal weights when
    the ECOS solver is missing. Exactly opposite or zero gradients have no solution (α → ∞):
    a tiny ``ridge`` (relative to mean ‖g_i‖²) keeps α finite. Returns (T,) float64 (CPU).
    """
    g = check_grads(grads)
    m = gram(g)
    if gram_normalize:
        m = m / m.norm().clamp_min(1e-300)
    n_tasks = m.shape[0]
    m = m + ridge * max(m.trace().item() / n_tasks, 1e-300) * torch.eye(n_tasks, dtype=torch.float64)

    def psi(alpha: Tensor) -> float:
        return (0.5 * alpha @ m @ alpha - alpha.log().sum()).item()

    alpha = 1.0 / m.diagonal().sqrt()
    value = psi(alpha)
    for _ in range(max_iter):
        grad = m @ alpha - 1.0 / alpha
        hess = m + torch.diag(1.0 / alpha**2)
        step = -torch.linalg.solve(hess, grad)
        decrement = -(grad @ step).item()  # Newton decrement²: the predicted decrease × 2
        if decrement < tol:
            break
        t = 1.0
        while (alpha + t * step <= 0).any():  # stay inside α > 0
            t *= 0.5
        while psi(alpha + t * step) > value - 0.25 * t * decrement and t > 1e-12:  # Armijo
            t *= 0.5
        alpha = alpha + t * step
        value = psi(alpha)
    return alpha
