"""Small solvers over the probability simplex, shared by MGDA, CAGrad and Nash-MTL.

They work on the T × T Gram matrix M = G Gᵀ as plain Python lists of floats (float64): with a
handful of tasks an iteration is a few dozen multiplications, which Python does in microseconds,
whereas every torch operation on a tiny tensor costs a few microseconds of dispatch (and every
``.item()`` a conversion). The (P,) directions stay torch tensors on G's device.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

Vector = list[float]
Matrix = Sequence[Sequence[float]]


def dot(u: Sequence[float], v: Sequence[float]) -> float:
    """u·v."""
    return sum(a * b for a, b in zip(u, v))


def matvec(m: Matrix, v: Sequence[float]) -> Vector:
    """M v."""
    return [dot(row, v) for row in m]


def quad(m: Matrix, u: Sequence[float], v: Sequence[float]) -> float:
    """uᵀ M v."""
    return dot(u, matvec(m, v))


def solve_spd(a: Matrix, b: Sequence[float]) -> Vector | None:
    """x with A x = b for a symmetric positive definite A (Cholesky, A = L Lᵀ); None if A is
    not (numerically) positive definite."""
    n = len(b)
    low = [[0.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(i + 1):
            s = a[i][j] - sum(low[i][k] * low[j][k] for k in range(j))
            if i == j:
                if not s > 1e-13 * abs(a[i][i]):
                    return None
                low[i][i] = math.sqrt(s)
            else:
                low[i][j] = s / low[j][j]
    y = [0.0] * n
    for i in range(n):  # L y = b
        y[i] = (b[i] - sum(low[i][k] * y[k] for k in range(i))) / low[i][i]
    x = [0.0] * n
    for i in reversed(range(n)):  # Lᵀ x = y
        x[i] = (y[i] - sum(low[k][i] * x[k] for k in range(i + 1, n))) / low[i][i]
    return x


def on_simplex(x: Vector | None) -> Vector | None:
    """x/Σx if that is a point of the simplex (no negative weight), else None."""
    if x is None or not sum(x) > 0:
        return None
    total = sum(x)
    w = [xi / total for xi in x]
    return w if min(w) >= 0.0 else None


def frank_wolfe(n_tasks: int, gradient: Callable[[Vector], Vector],
                line_search: Callable[[Vector, Vector, float], float], max_iter: int, tol: float,
                start: Vector | None = None) -> Vector:
    """Minimise a convex function over the simplex by Frank–Wolfe with *away steps*.

    Each step either moves towards the vertex e_s with the smallest partial derivative (the
    classic Frank–Wolfe step) or away from the used vertex e_v with the largest one, whichever
    promises more; ``line_search(w, d, γ_max)`` picks the exact step along d. Plain Frank–Wolfe
    zig-zags when the answer lies on a face of the simplex (some weight 0); away steps
    (Lacoste-Julien & Jaggi, NeurIPS 2015) fix that and converge linearly. Stops when the
    Frank–Wolfe gap ∇ᵀ(w − e_s), an upper bound on the sub-optimality, is below ``tol``.

    ``start`` (a point of the simplex, e.g. a closed-form guess) replaces the centre as the
    first iterate: if it is optimal, the first gap test accepts it at the cost of one gradient.
    """
    w = list(start) if start is not None else [1.0 / n_tasks] * n_tasks
    for _ in range(max_iter):
        grad = gradient(w)
        s = min(range(n_tasks), key=grad.__getitem__)
        v = max((i for i in range(n_tasks) if w[i] > 0), key=grad.__getitem__)
        grad_w = dot(grad, w)
        gap_towards, gap_away = grad_w - grad[s], grad[v] - grad_w
        if gap_towards <= tol:
            break
        away = not (gap_towards >= gap_away or w[v] >= 1.0)
        if not away:
            d, step_max = [-x for x in w], 1.0
            d[s] += 1.0
        else:
            d, step_max = list(w), w[v] / (1.0 - w[v])
            d[v] -= 1.0
        gamma = line_search(w, d, step_max)
        w = [max(x + gamma * y, 0.0) for x, y in zip(w, d)]
        if away and gamma >= step_max:  # a "drop step": e_v leaves the support exactly, not as a
            w[v] = 0.0  # 1e-17 residue that later away steps could only shave by 1e-17
        total = sum(w)
        w = [x / total for x in w]
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
