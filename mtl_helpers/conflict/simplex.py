"""Two small solvers over the probability simplex, shared by MGDA and CAGrad."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor


def frank_wolfe(n_tasks: int, gradient: Callable[[Tensor], Tensor],
                 line_search: Callable[[Tensor, Tensor, float], float], max_iter: int, tol: float) -> Tensor:
    """Minimise a convex function over the simplex by Frank–Wolfe with *away steps*.

    Each step either moves towards the vertex e_s with the smallest partial derivative (the
    classic Frank–Wolfe step) or away from the used vertex e_v with the largest one, whichever
    promises more; ``line_search(w, d, γ_max)`` picks the exact step along d. Plain Frank–Wolfe
    zig-zags when the answer lies on a face of the simplex (some weight 0); away steps
    (Lacoste-Julien & Jaggi, NeurIPS 2015) fix that and converge linearly. Stops when the
    Frank–Wolfe gap ∇ᵀ(w − e_s), an upper bound on the sub-optimality, is below ``tol``.
    """
    w = torch.full((n_tasks,), 1.0 / n_tasks, dtype=torch.float64)
    for _ in range(max_iter):
        grad = gradient(w)
        s = int(torch.argmin(grad))
        used = torch.nonzero(w > 0).flatten()
        v = int(used[torch.argmax(grad[used])])
        gap_towards, gap_away = (grad @ w - grad[s]).item(), (grad[v] - grad @ w).item()
        if gap_towards <= tol:
            break
        if gap_towards >= gap_away or w[v] >= 1.0:
            d, step_max = -w.clone(), 1.0
            d[s] += 1.0
        else:
            d, step_max = w.clone(), (w[v] / (1.0 - w[v])).item()
            d[v] -= 1.0
        w = (w + line_search(w, d, step_max) * d).clamp_min(0.0)
        w = w / w.sum()
    return w


def argmin_linear_plus_sqrt(a: float, k: float, q: float, p: float, r: float) -> float:
    """argmin over x ∈ [0, 1] of φ(x) = a·x + k·√(q x² + 2 p x + r), with k ≥ 0 and the
    quadratic a squared norm (q ≥ 0, p² ≤ q r). φ is convex, so the clipped stationary point is
    the constrained minimiser.

    With y = x + p/q and s = r − p²/q ≥ 0: φ'(x) = a + k q y/√(q y² + s). When |a| ≥ k√q the
    derivative never changes sign (the √ term's slope is bounded by k√q); otherwise it is
    zero at y* = −sign(a)·√(a² s / (q (k² q − a²))).
    """
    if q <= 1e-30 * max(abs(r), 1e-300) or k == 0.0 or abs(a) >= k * math.sqrt(q):
        return 0.0 if a > 0 else (1.0 if a < 0 else 0.5)
    s = max(r - p * p / q, 0.0)
    room = k * k * q - a * a  # > 0 here, but it can round to 0
    if room <= 0.0:
        return 0.0 if a > 0 else 1.0
    y = -math.copysign(math.sqrt(a * a * s / (q * room)), a) if a != 0.0 else 0.0
    return min(max(y - p / q, 0.0), 1.0)
