"""Nash-MTL, multi-task learning as a bargaining game (Navon et al., ICML 2022)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .core import gram
from .simplex import dot, matvec, quad, solve_spd


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
    m = gram(grads, check=True)
    if gram_normalize:
        m = m / m.norm().clamp_min(1e-300)
    m = m.tolist()  # T × T: plain floats (see .simplex)
    n_tasks = len(m)
    ridge = ridge * max(sum(m[i][i] for i in range(n_tasks)) / n_tasks, 1e-300)
    m = [[x + (ridge if i == j else 0.0) for j, x in enumerate(row)] for i, row in enumerate(m)]

    def psi(alpha: list[float]) -> float:
        return 0.5 * quad(m, alpha, alpha) - sum(math.log(a) for a in alpha)

    if min(m[i][i] for i in range(n_tasks)) <= 0.0:
        raise ValueError("Nash-MTL has no solution with a zero gradient (α_i → ∞): keep ridge > 0.")
    alpha = [1.0 / math.sqrt(m[i][i]) for i in range(n_tasks)]
    value = psi(alpha)
    for _ in range(max_iter):
        grad = [x - 1.0 / a for x, a in zip(matvec(m, alpha), alpha)]
        hess = [[x + (1.0 / alpha[i] ** 2 if i == j else 0.0) for j, x in enumerate(row)] for i, row in enumerate(m)]
        step = solve_spd(hess, grad)  # ∇²ψ is positive definite: M ⪰ 0 and 1/α² > 0
        if step is None:
            raise ValueError("Nash-MTL: the Newton system is singular; the gradients are too ill-conditioned.")
        step = [-x for x in step]
        decrement = -dot(grad, step)  # Newton decrement²: the predicted decrease × 2
        if decrement < tol:
            break
        t = 1.0
        while any(a + t * s <= 0 for a, s in zip(alpha, step)):  # stay inside α > 0
            t *= 0.5
        while psi([a + t * s for a, s in zip(alpha, step)]) > value - 0.25 * t * decrement and t > 1e-12:  # Armijo
            t *= 0.5
        alpha = [a + t * s for a, s in zip(alpha, step)]
        value = psi(alpha)
    return torch.tensor(alpha, dtype=torch.float64)
