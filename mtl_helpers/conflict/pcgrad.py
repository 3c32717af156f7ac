"""PCGrad, "gradient surgery" (Yu, Kumar, Gupta, Levine, Hausman & Finn, NeurIPS 2020)."""

from __future__ import annotations

import torch
from torch import Tensor

from .core import combine, gram


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
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}.")
    # Every g_i^PC is g_i minus multiples of the original g_j: track its coefficients a_i
    # (g_i^PC = Σ_k a_ik g_k), so each dot product is a_i·M[:, j] on the T × T Gram matrix and
    # G is read once more, at the end: d = Gᵀ(Σ_i a_i). The same projections, none of them (P,)-sized.
    m = gram(grads, check=True).tolist()
    n_tasks = len(m)
    total = [0.0] * n_tasks
    for i in range(n_tasks):
        a = [float(k == i) for k in range(n_tasks)]
        order = torch.randperm(n_tasks, generator=generator).tolist()
        for j in order:
            if j == i or m[j][j] == 0:
                continue
            dot = sum(a_k * m[k][j] for k, a_k in enumerate(a))  # g_i^PC · g_j
            if dot < 0:
                a[j] -= dot / m[j][j]
        total = [t + a_k for t, a_k in zip(total, a)]
    weights = torch.tensor(total, dtype=torch.float64)
    return combine(weights if reduction == "sum" else weights / n_tasks, grads, check=False)
