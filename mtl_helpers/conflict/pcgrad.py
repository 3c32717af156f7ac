"""PCGrad, "gradient surgery" (Yu, Kumar, Gupta, Levine, Hausman & Finn, NeurIPS 2020)."""

from __future__ import annotations

import torch
from torch import Tensor

from .core import check_grads


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
