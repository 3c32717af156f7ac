"""The simple remedies a practitioner tries first: sum, mean, per-task normalisation, clipping."""

from __future__ import annotations

from torch import Tensor

from .core import check_grads


def sum_direction(grads: Tensor) -> Tensor:
    """Σ_i g_i: exactly what back-propagating the plain sum of the losses gives the trunk."""
    return check_grads(grads).sum(dim=0)


def mean_direction(grads: Tensor) -> Tensor:
    """(1/T) Σ_i g_i: the mean gradient g_0 of CAGrad's notation."""
    return check_grads(grads).mean(dim=0)


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
