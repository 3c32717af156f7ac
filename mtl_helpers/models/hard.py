"""Hard parameter sharing (Caruana 1997): one shared trunk, one head per task.

ŷ_t = h_t(f(x)) with a shared trunk f and task heads h_t, trained on Σ_t λ_t L_t. With one
head it *is* the single-task network, which keeps every comparison like for like. This
module also cuts a network into layers to choose *where* to split
(:func:`split_model`), and exports one task's standalone model for deployment.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from ..data import MultiTaskDataset
from .trunks import make_head, standard_trunk


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


def standard_network(dataset: MultiTaskDataset, task_names: Sequence[str] | None = None, *,
                     width: int | None = None, head_hidden: int | None = None) -> HardSharing:
    """The course's network for ``dataset``, with a head for each task in ``task_names`` (all by
    default): one head is the single-task baseline, all heads is hard sharing, so every
    comparison is like for like. Sizes default to the dataset's budget."""
    names = list(task_names) if task_names is not None else dataset.task_names
    if not names:
        raise ValueError("standard_network needs at least one task name.")
    tasks = [dataset.task(n) for n in names]
    hidden = head_hidden if head_hidden is not None else dataset.require_budget().head_hidden
    trunk, out = standard_trunk(dataset, width)
    return HardSharing(trunk, {t.name: make_head(out, t, (hidden,) if hidden else ()) for t in tasks})


def layer_groups(model: nn.Module) -> list[nn.Sequential]:
    """Cut a feed-forward network into its layers, in order.

    A layer starts at a ``Linear`` or ``Conv2d`` and takes every parameter-free module that
    follows it (ReLU, pooling, flatten, dropout). Relies on the modules being registered in the
    order they run, which holds for ``nn.Sequential``, ``mlp``, ``ConvTrunk`` and ``make_head``.
    The groups reuse the model's modules (no copy).
    """
    leaves = [m for m in model.modules() if not list(m.children())]
    if not leaves or not isinstance(leaves[0], (nn.Linear, nn.Conv2d)):
        raise ValueError("layer_groups needs a network that starts with a Linear or Conv2d layer, got "
                         f"{type(leaves[0]).__name__ if leaves else 'no layers'}.")
    groups: list[list[nn.Module]] = []
    for module in leaves:
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            groups.append([module])
        else:
            groups[-1].append(module)
    return [nn.Sequential(*g) for g in groups]


def split_model(dataset: MultiTaskDataset, n_shared: int, task_names: Sequence[str] | None = None) -> HardSharing:
    """The standard network with its first ``n_shared`` layers shared and the rest per task.

    Every task's tower is a trunk and its head, cut into layers: layers 1..n_shared become the
    shared trunk (taken from the first task's tower), layers n_shared+1..L stay in each task's
    head. ``n_shared = 0`` gives separate towers (T single-task nets side by side);
    ``n_shared = L − 1`` shares everything but the output layers;
    ``len(layer_groups(standard_network(dataset).trunk))`` reproduces ``standard_network(dataset)``.

    The initial weights are drawn as ``standard_network(dataset)`` draws them (trunk, then each
    head), and only then the other tasks' own trunks. So, after the same seed, the first task's
    tower starts as the single-task net ``standard_network(dataset, [first])`` does, and the
    split after the whole trunk starts as ``standard_network(dataset)`` does: the same weights,
    the same run (notebook 02 reuses those runs instead of training them twice).
    """
    names = list(task_names) if task_names is not None else [t.name for t in dataset.tasks]
    if not names:
        raise ValueError("split_model needs at least one task name.")
    full = standard_network(dataset, names)
    trunks = {names[0]: full.trunk} | {name: standard_network(dataset, [name]).trunk for name in names[1:]}
    towers = {name: layer_groups(trunks[name]) + layer_groups(full.heads[name]) for name in names}
    depth = len(towers[names[0]])
    if not isinstance(n_shared, int) or not 0 <= n_shared <= depth - 1:
        raise ValueError(f"n_shared must be an int in 0..{depth - 1} for {dataset.name!r} (the output layer is "
                         f"always task-specific), got {n_shared!r}.")
    trunk = nn.Sequential(*towers[names[0]][:n_shared]) if n_shared else nn.Identity()
    return HardSharing(trunk, {name: nn.Sequential(*towers[name][n_shared:]) for name in names})


def export_task_model(model: HardSharing, task: str) -> nn.Sequential:
    """One task's standalone model: a copy of the trunk followed by a copy of its head.

    It returns that task's output as a tensor (not a dict), owns its own parameters (changing
    it leaves the joint model alone), and carries nothing of the other tasks' heads.
    """
    if not isinstance(model, HardSharing):
        raise ValueError(f"export_task_model needs a HardSharing model, got {type(model).__name__}.")
    if task not in model.heads:
        raise ValueError(f"Unknown task {task!r}; this model has heads {model.task_names}.")
    standalone = nn.Sequential(OrderedDict(trunk=copy.deepcopy(model.trunk), head=copy.deepcopy(model.heads[task])))
    return standalone.eval()


def save_task_models(model: HardSharing, directory: str | Path) -> dict[str, Path]:
    """Export every task and save its ``state_dict`` as ``<directory>/<task>.pt``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"{directory} is not a directory; create it first (e.g. with tempfile.mkdtemp()).")
    paths = {}
    for task in model.task_names:
        paths[task] = directory / f"{task}.pt"
        torch.save(export_task_model(model, task).state_dict(), paths[task])
    return paths


def load_task_model(path: str | Path, architecture: nn.Module,
                    device: torch.device | str | None = None) -> nn.Module:
    """Load a saved ``state_dict`` into ``architecture`` (an untrained model of the same
    shape, e.g. ``export_task_model(standard_network(dataset), task)``). ``weights_only=True``
    refuses to unpickle arbitrary objects: a saved file cannot run code on load."""
    state = torch.load(path, map_location=device or "cpu", weights_only=True)
    architecture.load_state_dict(state)  # strict: raises if a key or shape differs
    return architecture.to(device or "cpu").eval()
