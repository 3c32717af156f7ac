"""Factorised (low-rank) sharing: W_t = B · V_t with a shared basis B and small task factors.

The idea goes back to GO-MTL (Kumar & Daumé III, ICML 2012: task weight vectors as sparse
combinations of a shared latent basis) and to Yang & Hospedales (ICLR 2017: tensor
factorisation of every layer's stacked task weights). The rank k sets how much is shared.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..data import MultiTaskDataset
from ..tasks import Task
from .trunks import make_head


class LowRankSharing(nn.Module):
    """Factorised sharing: every trunk layer's weight is W_t^l = B^l V_t^l.

    B^l (d_l × k) is shared by all tasks, V_t^l (k × h_l) and the bias are task-specific:
    h_t^l = ReLU(h_t^{l−1} B^l V_t^l + b_t^l). Small k forces the tasks through a shared
    k-dimensional projection at every layer; k ≥ min(d_l, h_l) leaves each W_t unconstrained.
    """

    def __init__(self, in_dim: int, hidden: Sequence[int], tasks: Sequence[Task], rank: int,
                 head_hidden: Sequence[int] = ()) -> None:
        super().__init__()
        if rank < 1 or not hidden or not tasks:
            raise ValueError(f"Need rank >= 1, at least one hidden layer and one task; got rank={rank}, "
                             f"hidden={list(hidden)}, {len(tasks)} tasks.")
        dims = [in_dim, *hidden]
        self.rank = rank
        self.bases = nn.ModuleList([nn.Linear(d, rank, bias=False) for d in dims[:-1]])
        self.factors = nn.ModuleDict({t.name: nn.ModuleList([nn.Linear(rank, h) for h in dims[1:]]) for t in tasks})
        self.heads = nn.ModuleDict({t.name: make_head(dims[-1], t, head_hidden) for t in tasks})

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        shared_first = self.bases[0](x)  # the first layer's input is shared: project it once
        out = {}
        for name, factors in self.factors.items():
            h = torch.relu(factors[0](shared_first))
            for basis, factor in zip(self.bases[1:], factors[1:], strict=True):
                h = torch.relu(factor(basis(h)))
            out[name] = self.heads[name](h)
        return out


def make_low_rank(dataset: MultiTaskDataset, rank: int) -> LowRankSharing:
    """Low-rank sharing with the standard MLP's widths and heads (Adult-style vector inputs)."""
    if dataset.train.x.ndim != 2:
        raise ValueError("make_low_rank builds an MLP for vector inputs; this dataset has images.")
    budget = dataset.require_budget()
    width = budget.trunk_width
    return LowRankSharing(dataset.train.x.shape[1], [width, width // 2], dataset.tasks, rank, (budget.head_hidden,))
