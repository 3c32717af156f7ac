"""Static weights: total = Σ λ_i L_i, and the two-task grid to search them on."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .core import Losses, check_losses


class StaticWeighting:
    """Fixed weights: total = Σ_i λ_i L_i. ``StaticWeighting([1, 1])`` is the plain sum."""

    def __init__(self, weights: Sequence[float]) -> None:
        w = torch.as_tensor(list(weights), dtype=torch.float32)
        if w.ndim != 1 or w.numel() == 0 or not torch.isfinite(w).all() or (w < 0).any():
            raise ValueError(f"weights must be a non-empty list of finite non-negative numbers, got {list(weights)}.")
        self.weights = w

    def __call__(self, losses: Losses) -> Tensor:
        L = check_losses(losses, len(self.weights))
        return (self.weights.to(L.device) * L).sum()

    def __repr__(self) -> str:
        return f"StaticWeighting({[round(v, 6) for v in self.weights.tolist()]})"


def two_task_grid(second_weights: Sequence[float]) -> list[tuple[float, float]]:
    """Points (1 − λ, λ) of the two-task weight simplex for each λ in ``second_weights``.

    When the losses differ by orders of magnitude the interesting λ are tiny, so pass a
    geometric sequence (1e-4, 1e-3, …) rather than an even one.
    """
    lams = [float(v) for v in second_weights]
    if not lams or any(not 0.0 <= v <= 1.0 for v in lams):
        raise ValueError(f"each λ must lie in [0, 1] (a point of the simplex), got {lams}.")
    return [(1.0 - v, v) for v in lams]
