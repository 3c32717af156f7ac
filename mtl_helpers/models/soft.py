"""Soft parameter sharing with L2 coupling (Duong et al., ACL 2015; restated in the MMoE paper §6.1).

One tower per task with identical shapes, trained on

    Σ_t L_t(θ_t) + α Σ_layers ‖θ_A − θ_B‖²_F.

α = 0 gives independent single-task nets, α → ∞ forces the towers equal (hard sharing). For
T > 2 tasks we sum over all pairs; :func:`coupling_penalty` computes it through the identity
Σ_{i<j} ‖θ_i − θ_j‖² = T · Σ_i ‖θ_i − θ̄‖² (θ̄ the towers' mean), and ``mode="mean"`` gives the
distance-to-the-mean form instead. Penalising ‖θ_t‖² alone is weight decay, not coupling:
:func:`weight_decay_penalty` is that common mistake, kept to be shown.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from ..data import MultiTaskDataset
from .hard import standard_network

PAIRS, MEAN = "pairs", "mean"


def _check_alpha(alpha: float) -> float:
    if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha >= 0):
        raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}.")
    return float(alpha)


def _check_towers(towers: Mapping[str, nn.Module], heads: Mapping[str, nn.Module]) -> None:
    if not towers:
        raise ValueError("Soft sharing needs at least one tower: pass a dict task name -> module.")
    if set(towers) != set(heads):
        raise ValueError(f"Towers {sorted(towers)} and heads {sorted(heads)} must be for the same tasks.")
    shapes = {name: [tuple(p.shape) for p in tower.parameters()] for name, tower in towers.items()}
    first = next(iter(shapes.values()))
    for name, s in shapes.items():
        if s != first:
            raise ValueError(f"Tower {name!r} has parameter shapes {s}, but soft sharing couples layer by layer "
                             f"and needs identical shapes, e.g. {first}: build every tower the same way.")


class SoftSharing(nn.Module):
    """One tower and one head per task; ŷ_t = h_t(f_t(x)) with nothing shared in the forward pass.

    The sharing lives in the loss: :func:`coupling_penalty` pulls the towers f_t together.
    The parameters count is that of T single-task nets.
    """

    def __init__(self, towers: Mapping[str, nn.Module], heads: Mapping[str, nn.Module]) -> None:
        super().__init__()
        _check_towers(towers, heads)
        self.towers = nn.ModuleDict(dict(towers))
        self.heads = nn.ModuleDict({name: heads[name] for name in towers})

    @property
    def task_names(self) -> list[str]:
        return list(self.towers.keys())

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return {name: self.heads[name](tower(x)) for name, tower in self.towers.items()}

    def coupled_parameters(self) -> list[tuple[Tensor, ...]]:
        """One tuple per tower parameter (layer weight or bias): that tensor in each of the T towers."""
        return list(zip(*(tower.parameters() for tower in self.towers.values()), strict=True))


def _spread(model: SoftSharing) -> Tensor:
    """Σ_layers Σ_t ‖θ_t − θ̄‖²: squared distance of every tower to the towers' mean."""
    if not isinstance(model, SoftSharing):
        raise ValueError(f"Expected a SoftSharing model, got {type(model).__name__}.")
    total = 0.0
    for group in model.coupled_parameters():
        stacked = torch.stack(group)  # (T, *shape)
        total = total + (stacked - stacked.mean(0)).pow(2).sum()
    return total


def coupling_penalty(model: SoftSharing, alpha: float = 1.0, mode: str = PAIRS) -> Tensor:
    """The L2 coupling term (Duong et al. 2015): α Σ_layers Σ_{i<j} ‖θ_i^l − θ_j^l‖²_F.

    Two tasks: α Σ_l ‖θ_A^l − θ_B^l‖²_F. For T tasks ``mode="pairs"`` (default) sums over all
    pairs, computed as T · Σ_t ‖θ_t − θ̄‖² (same value, O(T) instead of O(T²));
    ``mode="mean"`` is α Σ_l Σ_t ‖θ_t^l − θ̄^l‖² (for T = 2 exactly half the pairs form).
    Its gradient w.r.t. θ_A is 2α(θ_A − θ_B): each tower is pulled towards the other.
    """
    alpha = _check_alpha(alpha)
    if mode not in (PAIRS, MEAN):
        raise ValueError(f"mode must be {PAIRS!r} (sum over pairs) or {MEAN!r} (distance to the mean), got {mode!r}.")
    spread = _spread(model)
    return alpha * (len(model.towers) * spread if mode == PAIRS else spread)


def weight_decay_penalty(model: SoftSharing, alpha: float = 1.0) -> Tensor:
    """THE COMMON MISTAKE: α Σ_t Σ_l ‖θ_t^l‖²_F. Plain weight decay: it shrinks each tower
    towards zero on its own and couples nothing (its gradient for θ_A does not involve θ_B)."""
    alpha = _check_alpha(alpha)
    if not isinstance(model, SoftSharing):
        raise ValueError(f"Expected a SoftSharing model, got {type(model).__name__}.")
    return alpha * sum(p.pow(2).sum() for tower in model.towers.values() for p in tower.parameters())


def l2_coupling(alpha: float, mode: str = PAIRS) -> Callable[[nn.Module], Tensor]:
    """``penalty=l2_coupling(α)`` for :func:`mtl_helpers.train.fit`."""
    alpha = _check_alpha(alpha)
    return lambda model: coupling_penalty(model, alpha, mode)


def tower_distance(model: SoftSharing, relative: bool = True) -> float:
    """How far apart the towers are: RMS over pairs of ‖θ_i − θ_j‖ (all tower parameters).

    ``relative=True`` divides by the towers' mean norm ‖θ_t‖, so the number does not fall just
    because weight decay shrinks every tower: two independent random towers give ≈ √2, equal
    towers give 0.
    """
    n_towers = len(model.towers)
    if n_towers < 2:
        raise ValueError("tower_distance needs at least two towers.")
    with torch.no_grad():
        pairs_sq = n_towers * float(_spread(model))
        distance = math.sqrt(pairs_sq / (n_towers * (n_towers - 1) / 2))
        if not relative:
            return distance
        norms = [math.sqrt(sum(float(p.pow(2).sum()) for p in t.parameters())) for t in model.towers.values()]
    return distance / (sum(norms) / n_towers)


def make_soft_sharing(dataset: MultiTaskDataset, task_names: Sequence[str] | None = None) -> SoftSharing:
    """The course's standard network, once per task: tower t + head t *is* the single-task net
    of :func:`~mtl_helpers.models.standard_network` (built one after the other, so the towers start
    from different random weights, as independent nets would)."""
    names = list(task_names) if task_names is not None else [t.name for t in dataset.tasks]
    if not names:
        raise ValueError("make_soft_sharing needs at least one task name.")
    nets = {name: standard_network(dataset, [name]) for name in names}
    return SoftSharing({n: net.trunk for n, net in nets.items()}, {n: net.heads[n] for n, net in nets.items()})
