"""Per-task gradients and the quantities every gradient-level method is judged by.

Notation (REFERENCES.md): T tasks, g_i = ∇_θ L_i over the *shared* parameters θ, stacked as the
rows of G (T × P); M = G Gᵀ is the T × T Gram matrix and Δ the probability simplex. The small
T × T linear algebra runs in float64 on the CPU: it costs microseconds and avoids round-off
in the solvers; the (P,) directions stay on G's device.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn


def per_task_gradients(losses: Sequence[Tensor] | Tensor, shared_params: Iterable[nn.Parameter],
                       retain_graph: bool = True, *, task_params: Iterable[nn.Parameter] = ()) -> Tensor:
    """G: one row per task, the flattened gradient of L_i w.r.t. ``shared_params``.

    Costs T backward passes through the shared part (one per task). A parameter a loss does not
    reach gets zeros in that row. Pass the losses as separate tensors: the backward pass of one
    row of a ``torch.stack``-ed loss vector also runs every *other* head backward (with zero
    gradients), T times over.

    ``task_params`` (the heads) ride along in the same T passes: each pass also computes the
    gradient of its loss w.r.t. them, and their ``.grad`` accumulates Σ_i ∇L_i, as
    ``(Σ_i L_i).backward()`` would give them — no extra backward pass. ``retain_graph=True``
    keeps the graph after the last pass, for a caller that back-propagates again; ``False``
    frees it as the last pass runs.
    """
    params = list(shared_params)
    heads = list(task_params)
    if len(losses) == 0:
        raise ValueError("per_task_gradients needs at least one loss.")
    if not params:
        raise ValueError("per_task_gradients needs at least one shared parameter.")
    for i, loss in enumerate(losses):
        if loss.ndim != 0:
            raise ValueError(f"Loss {i} must be a scalar, got shape {tuple(loss.shape)}.")
    values = torch.stack([loss.detach() for loss in losses]) if len(losses) > 1 else losses[0].detach()
    if not torch.isfinite(values).all():  # one test for all T losses
        bad = int((~torch.isfinite(values.reshape(-1))).nonzero()[0])
        raise ValueError(f"Loss {bad} is {values.reshape(-1)[bad].item()}: fix the NaN/inf before computing gradients.")
    dtype = functools.reduce(torch.promote_types, (p.dtype for p in params))
    grads = torch.empty(len(losses), sum(p.numel() for p in params), dtype=dtype, device=params[0].device)
    for i, loss in enumerate(losses):
        keep = retain_graph or i < len(losses) - 1
        row = torch.autograd.grad(loss, params + heads, retain_graph=keep, allow_unused=True)
        torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, row)],
                  out=grads[i])  # written in place: no per-task copy, then no stack
        for p, g in zip(heads, row[len(params):]):
            if g is not None:
                set_grad(p, g if p.grad is None else p.grad + g)
    return grads


def set_grad(param: nn.Parameter, grad: Tensor) -> None:
    """``param.grad = grad``, stored in the parameter's own memory layout.

    ``backward()`` keeps that layout for you; a gradient assigned by hand may not have it (a
    channels-last conv weight, a transposed view), and Adam's fused kernel reads parameter and
    gradient as flat memory: with different layouts it silently updates the wrong entries.
    """
    if grad.shape != param.shape:
        raise ValueError(f"A gradient of shape {tuple(grad.shape)} cannot be the .grad of a parameter of shape "
                         f"{tuple(param.shape)}.")
    param.grad = grad if grad.stride() == param.stride() else torch.empty_like(param).copy_(grad)


def check_grads(grads: Tensor, finite: bool = True) -> Tensor:
    """Validate a (T, P) gradient matrix: 2-D, at least one task, finite (``finite=False``
    skips the last test, for :func:`gram` which reads it off M instead)."""
    if not isinstance(grads, Tensor) or grads.ndim != 2:
        raise ValueError(f"grads must be a (T, P) tensor, one flattened gradient per task; "
                         f"got {getattr(grads, 'shape', type(grads))}.")
    if grads.shape[0] == 0 or grads.shape[1] == 0:
        raise ValueError(f"grads is empty (shape {tuple(grads.shape)}): pass at least one task and one parameter.")
    # A NaN or inf entry makes the sum NaN or inf: one pass over G, where isfinite(G).all() takes
    # five. A non-finite sum of finite entries (an overflow) falls back to the exact test.
    if finite and not torch.isfinite(grads.sum()):
        _check_finite(grads)
    return grads


def _check_finite(grads: Tensor) -> None:
    if not torch.isfinite(grads).all():
        raise ValueError("grads contains NaN or inf: check the losses and the learning rate.")


def gradient_cosine(grads: Tensor, eps: float = 1e-12) -> Tensor:
    """T × T matrix of cosines cos(g_i, g_j) = g_i·g_j / (‖g_i‖‖g_j‖); negative = conflict.

    Two tasks *conflict* at a step when cos(g_i, g_j) < 0: a small step along g_i then raises
    L_j to first order. A zero gradient gets cosine 0 with everything (``eps`` avoids 0/0).
    """
    g = check_grads(grads)
    unit = g / g.norm(dim=1, keepdim=True).clamp_min(eps)
    return unit @ unit.T


def gram(grads: Tensor, check: bool = False) -> Tensor:
    """M = G Gᵀ in float64 on the CPU (T × T: cheap, and exact enough for the solvers).

    ``check=True`` validates G as :func:`check_grads` does, without another pass over G: the
    diagonal M_ii = ‖g_i‖² is NaN or inf exactly when g_i has a NaN or inf entry (or overflows,
    and then the exact test decides).
    """
    if check:
        check_grads(grads, finite=False)
    g = grads.detach().double()
    m = g @ g.T
    if m.device.type != "cpu":
        m = m.cpu()
    # the trace Σ M_ii is finite exactly when every M_ii ≥ 0 is: one number to read
    if check and not math.isfinite(float(m.trace())):
        _check_finite(grads)
    return m


def combine(weights: Tensor, grads: Tensor, check: bool = True) -> Tensor:
    """The direction Σ_i w_i g_i = Gᵀw for per-task ``weights`` (T,); ``check=False`` skips
    :func:`check_grads` (for a method that has checked G already)."""
    g = check_grads(grads) if check else grads
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
