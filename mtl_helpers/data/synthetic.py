"""Seeded synthetic data whose ground truth is known: the MMoE correlation benchmark, Gal's
uncertainty-weighting example and the GradNorm paper's toy."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..tasks import Task
from .splits import Budget, MultiTaskDataset, Split


def make_mmoe_data(correlation: float, n_train: int = 8000, n_val: int = 1000, n_test: int = 2000, *,
                   dim: int = 100, scale: float = 0.3, n_sines: int = 5, noise: float = 0.01,
                   seed: int = 0, budget: Budget | None = None) -> MultiTaskDataset:
    """Two regression tasks whose correlation you control (Ma et al., KDD 2018, §3.2).

    u₁ ⊥ u₂ unit vectors; w₁ = c·u₁, w₂ = c·(p·u₁ + √(1−p²)·u₂); x ~ N(0, I_d);
    y_k = w_kᵀx + Σ_{i=1..m} sin(α_i w_kᵀx + β_i) + ε,  ε ~ N(0, noise²).
    The paper does not give c, m, α, β: we use c = 0.3, m = 5, α_i, β_i ~ N(0, 1), with which
    the label correlation tracks p (p = 0.9 gives about 0.87).
    """
    if not -1.0 <= correlation <= 1.0:
        raise ValueError(f"correlation p must be in [-1, 1], got {correlation}.")
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(dim, 2, generator=g))
    u1, u2 = q[:, 0], q[:, 1]
    w1 = scale * u1
    w2 = scale * (correlation * u1 + (1 - correlation**2) ** 0.5 * u2)
    alpha, beta = torch.randn(n_sines, generator=g), torch.randn(n_sines, generator=g)

    def target(x: Tensor, w: Tensor) -> Tensor:
        z = x @ w
        return z + torch.sin(alpha * z[:, None] + beta).sum(1) + noise * torch.randn(len(x), generator=g)

    def split(n: int) -> Split:
        x = torch.randn(n, dim, generator=g)
        return Split(x, {"y1": target(x, w1), "y2": target(x, w2)})

    tasks = [Task("y1", "regression"), Task("y2", "regression")]
    return MultiTaskDataset("mmoe_synthetic", tasks, split(n_train), split(n_val), split(n_test), budget,
                            info={"correlation": correlation, "scale": scale, "n_sines": n_sines})


def gal_uw_data(n: int = 100, noise: tuple[float, float] = (10.0, 1.0), seed: int = 0) -> Split:
    """Gal's public uncertainty-weighting example: x ~ N(0, 1), y1 = 2x + 8 + 10ε, y2 = 3x + 3 + ε."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, generator=g)
    y1 = 2 * x[:, 0] + 8 + noise[0] * torch.randn(n, generator=g)
    y2 = 3 * x[:, 0] + 3 + noise[1] * torch.randn(n, generator=g)
    return Split(x, {"y1": y1, "y2": y2})


def gradnorm_toy_data(sigmas: Sequence[float], n: int = 1000, dim_in: int = 250, dim_out: int = 100,
                      b_std: float = 10.0, eps_std: float = 3.5, seed: int = 0) -> Split:
    """The GradNorm paper's toy regression (Chen et al., ICML 2018): f_i(x) = σ_i·tanh((B + ε_i)x).

    B (dim_out × dim_in) has N(0, 10²) entries shared by all tasks, ε_i N(0, 3.5²) entries
    specific to task i (the paper writes N(0, 10) and N(0, 3.5); both public codes use 10 and
    3.5 as standard deviations). x is uniform in [−1, 1]^dim_in scaled to unit norm, as in the
    public PyTorch code. Task names are ``t0``, ``t1``, …; each target is a dim_out vector.
    """
    sig = [float(s) for s in sigmas]
    if not sig or any(s <= 0 for s in sig):
        raise ValueError(f"sigmas must be a non-empty list of positive scales, got {list(sigmas)}.")
    g = torch.Generator().manual_seed(seed)
    B = b_std * torch.randn(dim_out, dim_in, generator=g)
    eps = eps_std * torch.randn(len(sig), dim_out, dim_in, generator=g)
    x = torch.rand(n, dim_in, generator=g) * 2 - 1
    x = x / x.norm(dim=1, keepdim=True)
    y = {f"t{i}": s * torch.tanh(x @ (B + eps[i]).T) for i, s in enumerate(sig)}
    return Split(x, y)
