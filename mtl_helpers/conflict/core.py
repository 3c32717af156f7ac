"""Per-task gradients and the quantities every gradient-level method is judged by.

Notation (REFERENCES.md): T tasks, g_i = ∇_θ L_i over the *shared* parameters θ, stacked as the
rows of G (T × P); M = G Gᵀ is the T × T Gram matrix and Δ the probability simplex. The small
T × T linear algebra runs in float64 on the CPU: it costs microseconds and avoids round-off
in the solvers; the (P,) directions stay on G's device.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

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


def gram(grads: Tensor) -> Tensor:
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
