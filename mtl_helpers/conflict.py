"""Per-task gradients and the gradient-level multi-task methods.

Notation (REFERENCES.md): T tasks, g_i = ∇_θ L_i over the *shared* parameters θ, stacked as
the rows of G (T × P). Every method here is a pure function of G, so it can be tested on
hand-made gradients and plugged into :func:`mtl_helpers.train.fit` as ``gradient_method``.
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
        rows.append(torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, grads)]))
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
    """T × T matrix of cosines cos(g_i, g_j) = g_i·g_j / (‖g_i‖‖g_j‖); negative = conflict."""
    g = check_grads(grads)
    unit = g / g.norm(dim=1, keepdim=True).clamp_min(eps)
    return unit @ unit.T
