"""The contract every loss weighting keeps, and its input check."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

Losses = Tensor | Sequence[Tensor]


@runtime_checkable
class LossWeighting(Protocol):
    """A loss-level balancer for :func:`mtl_helpers.train.fit` (``fit(..., weighting=...)``).

    ``weighting(losses) -> total``: ``losses`` is the (T,) tensor of the current batch's task
    losses, still attached to the graph; the total is back-propagated. Optional extras that
    ``fit`` uses when present: being an ``nn.Module`` (its parameters are trained too, as
    uncertainty weighting's log-variances are) and ``epoch_end(mean_losses)`` (DWA).
    """

    def __call__(self, losses: Losses) -> Tensor: ...


def check_losses(losses: Losses, n_tasks: int | None = None) -> Tensor:
    """The task losses as a (T,) tensor; ``ValueError`` if empty, mis-shaped or not finite.

    Accepts a 1-D tensor or a list of scalar tensors (the graph is kept: ``torch.stack``).
    """
    if isinstance(losses, Tensor):
        if losses.ndim != 1:
            raise ValueError(f"losses must be a 1-D tensor (one loss per task), got shape {tuple(losses.shape)}.")
        stacked = losses
    else:
        items = list(losses)
        if any(not isinstance(v, Tensor) or v.ndim != 0 for v in items):
            raise ValueError("losses must be a 1-D tensor or a list of scalar tensors, one per task.")
        stacked = torch.stack(items) if items else torch.empty(0)
    if stacked.numel() == 0:
        raise ValueError("losses is empty: pass one loss per task.")
    if n_tasks is not None and stacked.numel() != n_tasks:
        raise ValueError(f"expected {n_tasks} task losses, got {stacked.numel()}; build the balancer with "
                         f"n_tasks equal to the number of tasks.")
    if not torch.isfinite(stacked).all():
        raise ValueError(f"a task loss is NaN or infinite ({stacked.detach().cpu().tolist()}): lower the learning "
                         f"rate, or check the inputs and targets for NaN/inf.")
    return stacked
