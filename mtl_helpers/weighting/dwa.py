"""Dynamic Weight Average (Liu, Johns & Davison, CVPR 2019): weights from how fast each loss falls."""

from __future__ import annotations

import torch
from torch import Tensor

from .core import Losses, check_losses


class DWA:
    """Dynamic Weight Average (Liu, Johns & Davison, CVPR 2019).

    λ_k(t) = K·exp(w_k(t−1)/T) / Σ_i exp(w_i(t−1)/T),  w_k(t−1) = L̄_k(t−1)/L̄_k(t−2),

    with L̄ the epoch-mean *unweighted* training loss and temperature T = 2; λ = 1 for the first
    two epochs (there is no ratio yet). ``fit`` calls :meth:`epoch_end` with the epoch means.
    The ratios are scale-free: DWA balances how fast the tasks learn, not their units.
    """

    def __init__(self, n_tasks: int, temperature: float = 2.0) -> None:
        if not isinstance(n_tasks, int) or n_tasks < 1:
            raise ValueError(f"n_tasks must be a positive int, got {n_tasks!r}.")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}.")
        self.n_tasks, self.temperature = n_tasks, float(temperature)
        self.weights = torch.ones(n_tasks)
        self.epoch_losses: list[Tensor] = []
        self.history: list[Tensor] = []  # the weights used in each epoch, recorded at its end

    def __call__(self, losses: Losses) -> Tensor:
        L = check_losses(losses, self.n_tasks)
        return (self.weights.to(L.device) * L).sum()

    def epoch_end(self, mean_losses: Tensor) -> None:
        m = check_losses(torch.as_tensor(mean_losses).detach().float().cpu(), self.n_tasks)
        self.history.append(self.weights.clone())
        self.epoch_losses.append(m)
        if len(self.epoch_losses) >= 2:
            ratio = self.epoch_losses[-1] / self.epoch_losses[-2].clamp_min(1e-12)
            self.weights = self.n_tasks * torch.softmax(ratio / self.temperature, dim=0)
