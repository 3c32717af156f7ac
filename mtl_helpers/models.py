"""Trunks, heads and the two architectures of the first notebooks.

Every model in the course maps an input batch to a ``dict`` ``{task name: head output}``,
so one training loop serves single-task nets, hard sharing and everything that follows.
A model with a shared part also exposes

* ``encode(x)`` → the shared representation z, and ``decode(z)`` → the heads' outputs;
* ``shared_parameters()`` and ``task_parameters(name)``,

which the gradient-level methods of notebook 05 need (they treat shared and task-specific
parameters differently).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from torch import Tensor, nn

from .tasks import Task


def mlp(in_dim: int, hidden: Sequence[int], dropout: float = 0.0) -> nn.Sequential:
    """Linear → ReLU (→ Dropout) blocks, one per entry of ``hidden``; ends on a ReLU."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        in_dim = width
    return nn.Sequential(*layers)


class ConvTrunk(nn.Module):
    """A small LeNet-style trunk for MultiMNIST images (1 × s × s).

    conv(1→c₁, 3×3) → ReLU → max-pool 2 → conv(c₁→c₂, 3×3) → ReLU → max-pool 2 → flatten
    → linear(→ out_dim) → ReLU. Sener & Koltun use 10/20 channels with 5×5 kernels and a
    50-unit output on 28×28 inputs; this is the same shape, shrunk for a CPU.
    """

    def __init__(self, image_size: int = 18, channels: tuple[int, int] = (8, 16), out_dim: int = 64) -> None:
        super().__init__()
        c1, c2 = channels
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
        side = image_size // 2 // 2
        self.project = nn.Sequential(nn.Linear(c2 * side * side, out_dim), nn.ReLU())
        self.out_dim = out_dim

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"ConvTrunk expects images of shape (batch, 1, H, W), got {tuple(x.shape)}.")
        return self.project(self.features(x))


def make_head(in_dim: int, task: Task, hidden: Sequence[int] = ()) -> nn.Sequential:
    """A task head: optional hidden ReLU layers, then a linear layer giving raw logits/values."""
    return nn.Sequential(mlp(in_dim, hidden), nn.Linear(hidden[-1] if hidden else in_dim, task.n_outputs))


class HardSharing(nn.Module):
    """Hard parameter sharing (Caruana 1997): one shared trunk, one head per task.

    ŷ_t = h_t(f(x)) with shared f and task heads h_t; trained on Σ_t λ_t L_t. With a single
    head this *is* the single-task network, which keeps every comparison like for like.
    """

    def __init__(self, trunk: nn.Module, heads: Mapping[str, nn.Module]) -> None:
        super().__init__()
        if not heads:
            raise ValueError("HardSharing needs at least one head (a dict task name → module).")
        self.trunk = trunk
        self.heads = nn.ModuleDict(dict(heads))

    @property
    def task_names(self) -> list[str]:
        return list(self.heads.keys())

    def encode(self, x: Tensor) -> Tensor:
        return self.trunk(x)

    def decode(self, z: Tensor) -> dict[str, Tensor]:
        return {name: head(z) for name, head in self.heads.items()}

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return self.decode(self.encode(x))

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        return self.trunk.parameters()

    def task_parameters(self, name: str | None = None) -> Iterator[nn.Parameter]:
        """The parameters of one head, or of all heads when ``name`` is None."""
        if name is None:
            return self.heads.parameters()
        if name not in self.heads:
            raise ValueError(f"Unknown task {name!r}; this model has heads {self.task_names}.")
        return self.heads[name].parameters()


def parameter_counts(n_tasks: int, trunk_params: int, head_params: int) -> dict[str, int]:
    """Parameters of T separate single-task nets vs one hard-sharing net.

    separate = T·(trunk + head);  shared = trunk + T·head.  The ratio shared/separate tends to
    head/(trunk + head) as T grows: the trunk is paid for once instead of T times.
    """
    if n_tasks < 1 or trunk_params < 0 or head_params < 0:
        raise ValueError("n_tasks must be >= 1 and parameter counts >= 0.")
    return {"separate": n_tasks * (trunk_params + head_params), "shared": trunk_params + n_tasks * head_params}
