"""Cross-stitch units (Misra, Shrivastava, Gupta & Hebert, CVPR 2016).

T towers are cut into blocks; after block l every channel c of the towers' activations is
mixed by a learned T × T matrix, x̃_i = Σ_j a^l_c[i, j] x_j. The paper initialises (same-task,
cross-task) = (0.9, 0.1) and gives the units a 100–1000× larger learning rate; LibMTL and MTAN
initialise every unit to 1 (a documented divergence).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from ..data import MultiTaskDataset
from .soft import make_soft_sharing
from .trunks import ConvTrunk


def cross_stitch_init(n_channels: int, n_tasks: int, same: float = 0.9, cross: float | None = None) -> Tensor:
    """(C, T, T) mixing matrices: ``same`` on the diagonal, ``cross`` elsewhere (by default
    (1 − same)/(T − 1), i.e. Misra et al.'s (0.9, 0.1) for two tasks; LibMTL/MTAN use all 1)."""
    if n_channels < 1 or n_tasks < 1:
        raise ValueError(f"Need n_channels >= 1 and n_tasks >= 1, got {n_channels} and {n_tasks}.")
    cross = (1.0 - same) / max(n_tasks - 1, 1) if cross is None else cross
    eye = torch.eye(n_tasks)
    return (same * eye + cross * (1 - eye)).expand(n_channels, n_tasks, n_tasks).clone()


def cross_stitch_mix(stacked: Tensor, mixing: Tensor) -> Tensor:
    """x̃_i = Σ_j a_ij x_j per channel: ``stacked`` (T, B, C, ...) and ``mixing`` (C, T, T)."""
    if stacked.ndim < 3 or mixing.ndim != 3 or mixing.shape[0] != stacked.shape[2] \
            or mixing.shape[1:] != (stacked.shape[0], stacked.shape[0]):
        raise ValueError(f"Cross-stitch needs activations (T, B, C, ...) and mixing (C, T, T); got "
                         f"{tuple(stacked.shape)} and {tuple(mixing.shape)}.")
    return torch.einsum("cij,jbc...->ibc...", mixing, stacked)


class CrossStitch(nn.Module):
    """Cross-stitch network (Misra et al. 2016): T towers cut into blocks; after block l every
    channel c of the towers' activations is mixed, x̃_i = Σ_j a^l_c[i, j] x_j.

    The paper trains the units with a 100–1000× larger learning rate. ``fit`` has one
    learning rate, so we *reparametrise*: the module stores u = a / ``unit_lr_scale`` and uses
    a = ``unit_lr_scale`` · u. Adam's step on u is ≈ lr whatever the gradient's scale, so a
    moves ≈ ``unit_lr_scale`` × lr per step: exactly a larger learning rate for the units.
    """

    def __init__(self, blocks: Mapping[str, Sequence[nn.Module]], heads: Mapping[str, nn.Module],
                 channels: Sequence[int], same: float = 0.9, cross: float | None = None,
                 unit_lr_scale: float = 10.0) -> None:
        super().__init__()
        if not blocks or set(blocks) != set(heads):
            raise ValueError(f"Need blocks and heads for the same, non-empty set of tasks; got "
                             f"{sorted(blocks)} and {sorted(heads)}.")
        lengths = {len(b) for b in blocks.values()}
        if lengths != {len(channels)}:
            raise ValueError(f"Every tower needs one block per entry of channels ({len(channels)}), got {lengths}.")
        if unit_lr_scale <= 0:
            raise ValueError(f"unit_lr_scale must be > 0, got {unit_lr_scale}.")
        self.blocks = nn.ModuleDict({name: nn.ModuleList(b) for name, b in blocks.items()})
        self.heads = nn.ModuleDict({name: heads[name] for name in blocks})
        self.unit_lr_scale = float(unit_lr_scale)
        n = len(blocks)
        self.units = nn.ParameterList([nn.Parameter(cross_stitch_init(c, n, same, cross) / unit_lr_scale)
                                       for c in channels])

    @property
    def task_names(self) -> list[str]:
        return list(self.blocks.keys())

    def mixing(self, layer: int) -> Tensor:
        """The (C, T, T) mixing matrices a after block ``layer``."""
        return self.unit_lr_scale * self.units[layer]

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        names = self.task_names
        hs = [x] * len(names)
        for layer in range(len(self.units)):
            stacked = torch.stack([self.blocks[n][layer](h) for n, h in zip(names, hs, strict=True)])
            hs = list(cross_stitch_mix(stacked, self.mixing(layer)).unbind(0))
        return {n: self.heads[n](h) for n, h in zip(names, hs, strict=True)}


def trunk_blocks(trunk: nn.Module) -> list[nn.Module]:
    """Cut a course trunk into blocks that end on an activation (where cross-stitch units go)."""
    if isinstance(trunk, ConvTrunk):
        return [trunk.features[:3], trunk.features[3:], trunk.project]
    if isinstance(trunk, nn.Sequential):
        blocks, current = [], []
        for layer in trunk:
            current.append(layer)
            if isinstance(layer, nn.ReLU):
                blocks.append(nn.Sequential(*current)); current = []
        if current:
            blocks.append(nn.Sequential(*current))
        return blocks
    raise ValueError(f"Do not know how to cut a {type(trunk).__name__} into blocks; pass the blocks yourself.")


def make_cross_stitch(dataset: MultiTaskDataset, task_names: Sequence[str] | None = None, same: float = 0.9,
                      cross: float | None = None, unit_lr_scale: float = 10.0) -> CrossStitch:
    """The standard single-task nets, one per task, stitched after every trunk block."""
    soft = make_soft_sharing(dataset, task_names)
    blocks = {name: trunk_blocks(tower) for name, tower in soft.towers.items()}
    with torch.no_grad():
        h, channels = dataset.train.x[:2], []
        for block in next(iter(blocks.values())):
            h = block(h)
            channels.append(h.shape[1])
    return CrossStitch(blocks, dict(soft.heads), channels, same, cross, unit_lr_scale)
