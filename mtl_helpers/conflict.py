"""Per-task gradients and the gradient-level multi-task methods (notebook 05).

Notation (REFERENCES.md): T tasks, g_i = ∇_θ L_i over the *shared* parameters θ, stacked as
the rows of G (T × P); M = G Gᵀ is the T × T Gram matrix and Δ the probability simplex.
Every method here is a pure function of G, so it can be tested on hand-made gradients and
plugged into :func:`mtl_helpers.train.fit` as ``gradient_method``:

=====================  =======================================  ===============================
function               returns                                  paper
=====================  =======================================  ===============================
``pcgrad``             (P,) projected-and-summed direction      Yu et al., NeurIPS 2020
``mgda_weights``       (T,) min-norm weights on Δ               Sener & Koltun, NeurIPS 2018
``cagrad``             (P,) conflict-averse direction           Liu et al., NeurIPS 2021
``nash_mtl_weights``   (T,) α > 0 with M α = 1/α                Navon et al., ICML 2022
=====================  =======================================  ===============================

Ready-made one-argument directions for ``fit(gradient_method=...)`` come from
:func:`make_direction` (``"sum"``, ``"pcgrad"``, ``"mgda"``, ``"cagrad"``, ``"nash"``,
``"normalized"``); MGDA-UB is ``make_direction("mgda")`` with
``fit(..., gradients_wrt="representation")``. :class:`ConflictRecorder` is an ``on_step``
callback that measures conflict during training.

The linear algebra on the small T × T matrices is done in float64 on the CPU: it costs
microseconds and avoids round-off in the solvers; the (P,) directions stay on G's device.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import torch
from torch import Tensor, nn


def per_task_gradients(losses: Sequence[Tensor] | Tensor, shared_params: Iterable[nn.Parameter],
                       retain_graph: bool = True) -> Tensor:
    """G: one row per task, the flattened gradient of L_i w.r.t. ``shared_params``.

    Costs T backward passes through the shared part (one per task); the graph is retained so
    the caller can still back-propagate into the heads. A parameter a loss does not reach gets
    zeros in that row.
    """
    params = [p for p in shared_params]
    if len(losses) == 0:
        raise ValueError("per_task_gradients needs at least one loss.")
    if not params:
        raise ValueError("per_task_gradients needs at least one shared parameter.")
    rows = []
    for i, loss in enumerate(losses):
        if loss.ndim != 0:
            raise ValueError(f"Loss {i} must be a scalar, got shape {tuple(loss.shape)}.")
        if not torch.isfinite(loss):
            raise ValueError(f"Loss {i} is {loss.item()}: fix the NaN/inf before computing gradients.")
        grads = torch.autograd.grad(loss, params, retain_graph=retain_graph, allow_unused=True)
        rows.append(torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                               for p, g in zip(params, grads, strict=True)]))
    return torch.stack(rows)


def check_grads(grads: Tensor) -> Tensor:
    """Validate a (T, P) gradient matrix: 2-D, at least one task, finite."""
    if not isinstance(grads, Tensor) or grads.ndim != 2:
        raise ValueError(f"grads must be a (T, P) tensor, one flattened gradient per task; "
                         f"got {getattr(grads, 'shape', type(grads))}.")
    if grads.shape[0] == 0 or grads.shape[1] == 0:
        raise ValueError(f"grads is empty (shape {tuple(grads.shape)}): pass at least one task and one parameter.")
    if not torch.isfinite(grads).all():
        raise ValueError("grads contains NaN or inf: check the losses and the learning rate.")
    return grads


def gradient_cosine(grads: Tensor, eps: float = 1e-12) -> Tensor:
    """T × T matrix of cosines cos(g_i, g_j) = g_i·g_j / (‖g_i‖‖g_j‖); negative = conflict.

    Two tasks *conflict* at a step when cos(g_i, g_j) < 0: a small step along g_i then raises
    L_j to first order. A zero gradient gets cosine 0 with everything (``eps`` avoids 0/0).
    """
    g = check_grads(grads)
    unit = g / g.norm(dim=1, keepdim=True).clamp_min(eps)
    return unit @ unit.T


# --------------------------------------------------------------------------- helpers
def _gram(grads: Tensor) -> Tensor:
    """M = G Gᵀ in float64 on the CPU (T × T: cheap, and exact enough for the solvers)."""
    g = grads.detach().double()
    return (g @ g.T).cpu()


def combine(weights: Tensor, grads: Tensor) -> Tensor:
    """The direction Σ_i w_i g_i = Gᵀw for per-task ``weights`` (T,)."""
    g = check_grads(grads)
    if weights.shape != (g.shape[0],):
        raise ValueError(f"weights must have shape ({g.shape[0]},), one per task; got {tuple(weights.shape)}.")
    return weights.to(device=g.device, dtype=g.dtype) @ g


def conflicts(grads: Tensor, direction: Tensor) -> Tensor:
    """(T,) bool: which tasks a small step along ``-direction`` would make *worse*.

    A descent step x ← x − η d changes L_i by −η g_i·d + O(η²), so task i gets worse to
    first order exactly when g_i·d < 0. This is the check every method below is judged by.
    """
    g = check_grads(grads)
    if direction.shape != (g.shape[1],):
        raise ValueError(f"direction must have shape ({g.shape[1]},); got {tuple(direction.shape)}.")
    return (g @ direction.to(g.dtype)) < 0


# --------------------------------------------------------------------------- PCGrad
def pcgrad(grads: Tensor, generator: torch.Generator | None = None, reduction: str = "sum") -> Tensor:
    """PCGrad, "gradient surgery" (Yu et al., NeurIPS 2020, Algorithm 1).

    For every task i start from g_i^PC = g_i and visit the other tasks j in a fresh random
    order; whenever g_i^PC·g_j < 0 remove the conflicting component,

        g_i^PC ← g_i^PC − (g_i^PC·g_j / ‖g_j‖²) g_j,

    always projecting on the *original* g_j. The update is Σ_i g_i^PC (``reduction="sum"``, as
    in the paper and LibMTL) or its mean (``"mean"``: the popular Pytorch-PCGrad repository
    and CAGrad's toy; with Adam the two differ only through Adam's ε). With two tasks the
    order does not matter; with more it does, which is why ``generator`` is accepted (seed it
    for reproducible runs).
    """
    g = check_grads(grads)
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}.")
    n_tasks = g.shape[0]
    sq_norms = (g * g).sum(dim=1)
    projected = g.clone()
    for i in range(n_tasks):
        order = torch.randperm(n_tasks, generator=generator).tolist()
        for j in order:
            if j == i or sq_norms[j] == 0:
                continue
            dot = projected[i] @ g[j]
            if dot < 0:
                projected[i] = projected[i] - (dot / sq_norms[j]) * g[j]
    return projected.sum(dim=0) if reduction == "sum" else projected.mean(dim=0)


# --------------------------------------------------------------------------- MGDA
def mgda_two_task_gamma(g11: float, g12: float, g22: float) -> float:
    """Weight γ on g_1 of the min-norm point of the segment [g_2, g_1] (Sener & Koltun, Alg. 1).

    γ = clip((g_2 − g_1)·g_2 / ‖g_1 − g_2‖², 0, 1) = clip((g22 − g12)/(g11 + g22 − 2 g12), 0, 1),
    written with the Gram entries g_ij = g_i·g_j. Equal gradients (‖g_1 − g_2‖ = 0): γ = ½.
    """
    denom = g11 + g22 - 2.0 * g12
    if denom <= 1e-30 * max(g11 + g22, 1e-300):
        return 0.5
    return min(max((g22 - g12) / denom, 0.0), 1.0)


def _gradient_scales(grads: Tensor, normalize: str, losses: Tensor | None) -> Tensor:
    """The n_i of MGDA's optional normalisation g_i / n_i (authors' code, not the paper)."""
    norms = grads.detach().double().norm(dim=1).cpu()
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


def _frank_wolfe(n_tasks: int, gradient: Callable[[Tensor], Tensor],
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


def min_norm_weights(gram: Tensor, max_iter: int = 250, tol: float = 1e-9) -> Tensor:
    """α* = argmin_{α∈Δ} αᵀ M α for a Gram matrix M (T × T): the min-norm point of the
    convex hull of the gradients.

    Two tasks: the closed form of :func:`mgda_two_task_gamma`. More: Frank–Wolfe, Sener &
    Koltun's Algorithm 2 (the step towards e_t, t = argmin (Mα)_t, has the exact length
    γ = (b − a)/(b + c − 2a), a = (Mα)_t, b = αᵀMα, c = M_tt), here with away steps so that it
    converges in a few dozen iterations instead of zig-zagging for thousands.
    """
    m = gram.double().cpu()
    n_tasks = m.shape[0]
    if n_tasks == 1:
        return torch.ones(1, dtype=torch.float64)
    if n_tasks == 2:
        gamma = mgda_two_task_gamma(m[0, 0].item(), m[0, 1].item(), m[1, 1].item())
        return torch.tensor([gamma, 1.0 - gamma], dtype=torch.float64)

    def line_search(w: Tensor, d: Tensor, step_max: float) -> float:
        curvature = (d @ m @ d).item()  # ‖Gᵀ(w + γd)‖² = wᵀMw + 2γ dᵀMw + γ² dᵀMd
        return step_max if curvature <= 0 else min(max(-(d @ m @ w).item() / curvature, 0.0), step_max)

    scale = max(m.diagonal().max().item(), 1e-300)
    return _frank_wolfe(n_tasks, lambda w: 2.0 * (m @ w), line_search, max_iter, tol * scale)


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
    g = check_grads(grads)
    scales = _gradient_scales(g, normalize, losses).clamp_min(1e-30)
    gram = _gram(g) / (scales[:, None] * scales[None, :])
    return min_norm_weights(gram, max_iter=max_iter, tol=tol)


# --------------------------------------------------------------------------- CAGrad
def _argmin_linear_plus_sqrt(a: float, k: float, q: float, p: float, r: float) -> float:
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


def cagrad_weights(grads: Tensor, c: float = 0.5, max_iter: int = 500, tol: float = 1e-9) -> Tensor:
    """The dual of CAGrad: w* = argmin_{w∈Δ} g_wᵀ g_0 + c‖g_0‖‖g_w‖, g_w = Σ w_i g_i.

    In Gram terms F(w) = wᵀb + k√(wᵀMw) with b = M 1/T and k = c‖g_0‖ = c√(1ᵀM1)/T. On a
    segment of the simplex F is "linear + k·√quadratic", minimised in closed form by
    :func:`_argmin_linear_plus_sqrt`: two tasks need one such step; more tasks take
    Frank–Wolfe steps (with away steps, :func:`_frank_wolfe`) with that exact line search.
    (The authors run 20 SGD steps on softmax logits instead; LibMTL copies them.)
    Returns (T,) float64 weights (CPU).
    """
    g = check_grads(grads)
    if not c >= 0.0:
        raise ValueError(f"c must be >= 0, got {c}.")
    m = _gram(g)
    n_tasks = m.shape[0]
    b = m.mean(dim=1)
    k = c * math.sqrt(max(m.sum().item(), 0.0)) / n_tasks
    if n_tasks == 1:
        return torch.ones(1, dtype=torch.float64)
    if n_tasks == 2:  # w = (x, 1 − x): g_w = g_2 + x (g_1 − g_2)
        q = (m[0, 0] + m[1, 1] - 2 * m[0, 1]).item()
        x = _argmin_linear_plus_sqrt((b[0] - b[1]).item(), k, q, (m[0, 1] - m[1, 1]).item(), m[1, 1].item())
        return torch.tensor([x, 1.0 - x], dtype=torch.float64)

    def gradient(w: Tensor) -> Tensor:
        norm_w = math.sqrt(max((w @ m @ w).item(), 0.0))
        return b + (k / norm_w) * (m @ w) if norm_w > 0 else b

    def line_search(w: Tensor, d: Tensor, step_max: float) -> float:
        # along w + γd, γ = step_max·x: F = const + a x + k√(q x² + 2 p x + r)
        x = _argmin_linear_plus_sqrt(step_max * (b @ d).item(), k, step_max**2 * (d @ m @ d).item(),
                                     step_max * (d @ m @ w).item(), (w @ m @ w).item())
        return step_max * x

    scale = max(m.diagonal().max().item(), 1e-300)
    return _frank_wolfe(n_tasks, gradient, line_search, max_iter, tol * scale)


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


# --------------------------------------------------------------------------- Nash-MTL
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
    m = _gram(g)
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


# --------------------------------------------------------------------------- the simple remedies
def normalized_sum(grads: Tensor, eps: float = 1e-12) -> Tensor:
    """Σ_i g_i/‖g_i‖: every task gets the same say, whatever its gradient's size.

    Fixes magnitude imbalance (one task's large gradient drowning the others). It does not fix
    conflicting directions: two exactly opposite tasks still cancel, and with three or more
    tasks a majority can still push one task uphill (u_1·d = 1 + Σ_{j≠1} cos(g_1, g_j) < 0).
    For two tasks it is Nash-MTL's direction up to scale: (u_1 + u_2)/√(1 + cos).
    """
    g = check_grads(grads)
    return (g / g.norm(dim=1, keepdim=True).clamp_min(eps)).sum(dim=0)


def clip_norm(direction: Tensor, max_norm: float) -> Tensor:
    """Global gradient clipping: d·min(1, max_norm/‖d‖). It bounds the step, never turns it:
    whatever conflict d has, the clipped d has too."""
    if not max_norm > 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm}.")
    norm = direction.norm()
    return direction * (max_norm / norm) if norm > max_norm else direction


# --------------------------------------------------------------------------- hooks for fit()
def weights_to_direction(weight_fn: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    """Turn a weight solver G → α (T,) into a ``gradient_method`` G → Gᵀα (P,)."""
    def direction(grads: Tensor) -> Tensor:
        return combine(weight_fn(grads), grads)
    direction.__name__ = f"{getattr(weight_fn, '__name__', 'weights')}_direction"
    return direction


METHODS = ("sum", "mean", "pcgrad", "mgda", "cagrad", "nash", "normalized")


def make_direction(name: str, *, c: float = 0.5, normalize: str = "none",
                   seed: int = 0) -> Callable[[Tensor], Tensor]:
    """A one-argument ``gradient_method`` for :func:`~mtl_helpers.train.fit`, by name.

    ``"sum"`` (Σ g_i, what equal weights back-propagate), ``"mean"``, ``"pcgrad"`` (sum
    reduction, order drawn from a generator seeded with ``seed``), ``"mgda"`` (Σ α_i g_i with
    ``normalize``), ``"cagrad"`` (with ``c``, rescaled), ``"nash"`` (Gᵀα) or ``"normalized"``
    (Σ g_i/‖g_i‖). For MGDA-UB pass ``make_direction("mgda")`` to ``fit`` together with
    ``gradients_wrt="representation"``: G is then taken w.r.t. the shared representation z.
    """
    if name == "sum":
        return lambda grads: check_grads(grads).sum(dim=0)
    if name == "mean":
        return lambda grads: check_grads(grads).mean(dim=0)
    if name == "pcgrad":
        generator = torch.Generator().manual_seed(seed)
        return lambda grads: pcgrad(grads, generator=generator)
    if name == "mgda":
        return weights_to_direction(lambda grads: mgda_weights(grads, normalize=normalize))
    if name == "cagrad":
        return lambda grads: cagrad(grads, c=c)
    if name == "nash":
        return weights_to_direction(nash_mtl_weights)
    if name == "normalized":
        return normalized_sum
    raise ValueError(f"Unknown gradient method {name!r}; choose one of {METHODS}.")


class ConflictRecorder:
    """An ``on_step`` callback for :func:`~mtl_helpers.train.fit` that measures conflict.

    Per step it stores the cosine matrix of the task gradients, their norms and the losses;
    with ``keep_every=k`` it also keeps every k-th G (on the CPU) for later analysis. It needs
    G, so train with a ``gradient_method`` (``make_direction("sum")`` reproduces plain
    equal-weight training while exposing G).
    """

    def __init__(self, keep_every: int = 0) -> None:
        self.keep_every = keep_every
        self.cosines: list[Tensor] = []
        self.norms: list[Tensor] = []
        self.losses: list[Tensor] = []
        self.kept: list[Tensor] = []

    def __call__(self, info) -> None:  # info: mtl_helpers.train.StepInfo
        if info.grads is None:
            raise ValueError("ConflictRecorder needs per-task gradients: train with a gradient_method, "
                             "e.g. fit(..., gradient_method=make_direction('sum'), on_step=recorder).")
        self.cosines.append(gradient_cosine(info.grads).cpu())
        self.norms.append(info.grads.norm(dim=1).cpu())
        self.losses.append(info.losses.cpu())
        if self.keep_every and info.step % self.keep_every == 0:
            self.kept.append(info.grads.cpu().clone())

    def cosine(self, i: int = 0, j: int = 1) -> Tensor:
        """(steps,) cos(g_i, g_j) over training."""
        if not self.cosines:
            raise ValueError("Nothing recorded yet: pass the recorder to fit(on_step=...).")
        return torch.stack(self.cosines)[:, i, j]

    def conflict_rate(self, i: int = 0, j: int = 1) -> float:
        """Fraction of recorded steps with g_i·g_j < 0."""
        return (self.cosine(i, j) < 0).double().mean().item()

    def norm_ratio(self, i: int = 0, j: int = 1) -> Tensor:
        """(steps,) ‖g_i‖/‖g_j‖: the other half of conflict (a large gradient dominates the sum)."""
        norms = torch.stack(self.norms)
        return norms[:, i] / norms[:, j].clamp_min(1e-30)


def gradients_on_batches(model: nn.Module, split, tasks: Sequence, batch_size: int = 128, n_batches: int = 8,
                         seed: int = 0) -> Tensor:
    """(n_batches, T, P): G on ``n_batches`` disjoint random mini-batches of ``split``, with the
    model's current weights (shared parameters only). Compare tasks *within* a batch with one
    task *across* batches to see how much of the measured "conflict" is mini-batch noise."""
    from .train import task_losses  # train imports this module: import here to avoid a cycle

    if n_batches < 2 or n_batches * batch_size > len(split):
        raise ValueError(f"Need 2 <= n_batches and n_batches * batch_size <= {len(split)} rows; "
                         f"got {n_batches} × {batch_size}.")
    device = next(model.parameters()).device
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))
    shared = list(model.shared_parameters())
    model.eval()  # no dropout noise: only the batch changes
    stacks = []
    for b in range(n_batches):
        batch = split.subset(order[b * batch_size:(b + 1) * batch_size]).to(device)
        stacks.append(per_task_gradients(task_losses(model(batch.x), batch, tasks), shared, retain_graph=True))
    model.train()
    return torch.stack(stacks).detach()


def within_and_between_cosines(stack: Tensor) -> dict[str, Tensor]:
    """From a (B, T, P) stack of :func:`gradients_on_batches`: ``"between"`` holds cos(g_i, g_j)
    of different tasks on the same batch (B·T(T−1)/2 values); ``"within"`` holds cos of the
    *same* task on two different batches (T·B(B−1)/2 values), the noise floor."""
    if stack.ndim != 3 or stack.shape[0] < 2:
        raise ValueError(f"stack must be (batches >= 2, T, P), got {tuple(stack.shape)}.")
    n_batches, n_tasks, _ = stack.shape
    between = [gradient_cosine(stack[b])[i, j] for b in range(n_batches)
               for i in range(n_tasks) for j in range(i + 1, n_tasks)]
    within = [gradient_cosine(stack[:, t])[a, b] for t in range(n_tasks)
              for a in range(n_batches) for b in range(a + 1, n_batches)]
    return {"between": torch.stack(between), "within": torch.stack(within)}
