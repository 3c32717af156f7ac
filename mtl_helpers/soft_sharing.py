"""Soft parameter sharing: one network per task that share "a little" (notebook 03).

Three ways to let per-task networks share, from loosest to most structured:

* **L2 coupling** (Duong et al., ACL 2015; restated in the MMoE paper §6.1): one tower per
  task with identical shapes, trained on  Σ_t L_t(θ_t) + α Σ_layers ‖θ_A − θ_B‖²_F.
  α = 0 gives independent single-task nets, α → ∞ forces the towers equal (hard sharing).
  For T > 2 tasks we sum over all pairs; :func:`coupling_penalty` computes it through the
  identity  Σ_{i<j} ‖θ_i − θ_j‖² = T · Σ_i ‖θ_i − θ̄‖²  (θ̄ the towers' mean), and
  ``mode="mean"`` gives the distance-to-the-mean form instead.
* **Cross-stitch units** (Misra et al., CVPR 2016): after chosen layers, each channel's
  activations of the T towers are mixed by a learned T × T matrix.
* **A shared low-rank basis** (factorised sharing): W_t = B · V_t with a shared B (d × k) and
  a task-specific V_t (k × h); the rank k sets how much is shared.

:class:`Replicas` trains many independent copies of one architecture as a single batched
model (``torch.func.vmap``), which is how the notebook affords its sweeps on a laptop CPU.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from .baselines import BUDGETS, make_model
from .data import MultiTaskDataset, Split
from .models import ConvTrunk, make_head
from .tasks import Task
from .train import evaluate, fit
from .utils import Timer, get_device, seed_everything

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


# --------------------------------------------------------------------------- L2 coupling
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
    of :func:`mtl_helpers.baselines.make_model` (built one after the other, so the towers start
    from different random weights, as independent nets would)."""
    names = list(task_names) if task_names is not None else [t.name for t in dataset.tasks]
    if not names:
        raise ValueError("make_soft_sharing needs at least one task name.")
    nets = {name: make_model(dataset, [name]) for name in names}
    return SoftSharing({n: net.trunk for n, net in nets.items()}, {n: net.heads[n] for n, net in nets.items()})


# --------------------------------------------------------------------------- cross-stitch
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


# --------------------------------------------------------------------------- low-rank basis
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
    budget = BUDGETS[dataset.name]
    width = budget.trunk_width
    return LowRankSharing(dataset.train.x.shape[1], [width, width // 2], dataset.tasks, rank, (budget.head_hidden,))


# --------------------------------------------------------------------------- sweeps in one go
SEP = "#"


def replica_key(task: str, replica: int) -> str:
    return f"{task}{SEP}{replica}"


class _Apply(nn.Module):
    """Lets ``functional_call`` evaluate any function of a module (a penalty) with swapped weights."""

    def __init__(self, module: nn.Module, fn: Callable[[nn.Module], Tensor]) -> None:
        super().__init__()
        self.module, self.fn = module, fn

    def forward(self) -> Tensor:
        return self.fn(self.module)


class Replicas(nn.Module):
    """R independent copies of one architecture, trained as one batched model.

    The copies' parameters are stacked along a new first axis and the forward pass runs under
    ``torch.func.vmap``. The loss is the *sum* of the copies' losses and Adam's update is per
    coordinate, so every copy follows exactly the path it would follow alone (same batches).
    Outputs are named ``task#r``; :func:`replicate_split` names the targets the same way.

    ``lr_scale(name)`` gives parameter ``name`` (as the original model names it) a learning rate
    ``lr_scale(name)`` × lr, by the same reparametrisation as :class:`CrossStitch`: we store
    φ = θ / c and use θ = c · φ, and Adam moves φ by ≈ lr per step, so θ moves by ≈ c · lr.
    """

    def __init__(self, models: Sequence[nn.Module], lr_scale: Callable[[str], float] | None = None) -> None:
        super().__init__()
        models = list(models)
        if not models:
            raise ValueError("Replicas needs at least one model.")
        shapes = [{k: tuple(v.shape) for k, v in m.state_dict().items()} for m in models]
        if any(s != shapes[0] for s in shapes):
            raise ValueError("All replicas must have the same architecture (identical parameter names and shapes).")
        params, buffers = stack_module_state(models)
        self.n = len(models)
        self._base = [copy.deepcopy(models[0])]  # a list: not registered, its own weights are never used
        self.param_names, self.buffer_names = list(params), list(buffers)
        self.scales = [float(lr_scale(k)) if lr_scale is not None else 1.0 for k in self.param_names]
        if not all(math.isfinite(c) and c > 0 for c in self.scales):
            raise ValueError(f"lr_scale must give a finite number > 0 for every parameter, got {self.scales}.")
        self.stacked = nn.ParameterList([nn.Parameter(params[k].detach() / c)
                                         for k, c in zip(self.param_names, self.scales, strict=True)])
        for i, k in enumerate(self.buffer_names):
            self.register_buffer(f"buffer_{i}", buffers[k].clone())

    def _weights(self) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """The copies' actual weights θ = c · φ (and buffers), each stacked along a first axis."""
        scaled = zip(self.param_names, self.scales, self.stacked, strict=True)
        return ({k: c * p if c != 1.0 else p for k, c, p in scaled},
                {k: getattr(self, f"buffer_{i}") for i, k in enumerate(self.buffer_names)})

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        base = self._base[0]
        out = vmap(lambda p, b: functional_call(base, (p, b), (x,)))(*self._weights())
        return {replica_key(task, r): value[r] for task, value in out.items() for r in range(self.n)}

    def penalty(self, fn: Callable[[nn.Module], Tensor], weights: Sequence[float]) -> Callable[[nn.Module], Tensor]:
        """``penalty=`` for ``fit``: Σ_r weights[r] · fn(copy r), all copies at once."""
        w = torch.as_tensor(list(weights), dtype=torch.float32)
        if w.shape != (self.n,) or not torch.isfinite(w).all():
            raise ValueError(f"Need one finite weight per replica ({self.n}), got {list(weights)}.")
        wrapped = _Apply(self._base[0], fn)

        def total(model: "Replicas") -> Tensor:
            params, buffers = model._weights()
            per_copy = vmap(lambda p, b: functional_call(wrapped, ({f"module.{k}": v for k, v in p.items()},
                                                                   {f"module.{k}": v for k, v in b.items()}), ()))
            return (per_copy(params, buffers) * w.to(model.stacked[0].device)).sum()
        return total

    def unstack(self, r: int) -> nn.Module:
        """Copy ``r`` as an ordinary model (weights copied out, on the CPU)."""
        if not 0 <= r < self.n:
            raise ValueError(f"Replica index must be in 0..{self.n - 1}, got {r}.")
        model = copy.deepcopy(self._base[0]).cpu()
        params, buffers = self._weights()
        model.load_state_dict({k: v[r].detach().cpu() for k, v in {**params, **buffers}.items()})
        return model


def per_task_lr_scale(task_lrs: Mapping[str, float], lr: float) -> Callable[[str], float]:
    """``lr_scale`` for :class:`Replicas`: a parameter whose name contains task ``t`` (its
    tower, head, factors, …) trains at ``task_lrs[t]``, every other (shared) one at ``lr``."""
    if lr <= 0 or any(not v > 0 for v in task_lrs.values()):
        raise ValueError(f"Learning rates must be > 0, got lr={lr} and {dict(task_lrs)}.")

    def scale(name: str) -> float:
        hits = [t for t in task_lrs if t in name.split(".")]
        return task_lrs[hits[0]] / lr if hits else 1.0
    return scale


def replicate_split(split: Split, n: int) -> Split:
    """The same rows with every task's targets (and masks) repeated as ``task#0 … task#(n−1)``."""
    return Split(split.x, {replica_key(t, r): y for r in range(n) for t, y in split.y.items()},
                 {replica_key(t, r): m for r in range(n) for t, m in split.masks.items()})


def replicate_tasks(tasks: Sequence[Task], n: int) -> list[Task]:
    return [Task(replica_key(t.name, r), t.kind, t.n_outputs) for r in range(n) for t in tasks]


def train_replicas(models: Sequence[nn.Module], dataset: MultiTaskDataset, *, lr: float, seed: int = 0,
                   train: Split | None = None, penalty_terms: Sequence[tuple[Callable, Sequence[float]]] = (),
                   epochs: int | None = None, batch_size: int | None = None,
                   task_lrs: Mapping[str, float] | None = None, device: torch.device | str | None = None) -> dict:
    """Train every model of ``models`` on ``dataset`` (its standard budget unless overridden)
    in one batched run. ``penalty_terms``: pairs (penalty function, one weight per model), e.g.
    ``[(coupling_penalty, alphas)]``; ``task_lrs``: a learning rate per task for the
    parameters of that task (see :func:`per_task_lr_scale`). Returns ``{"runs": [{"val", "test",
    "model"} per model], "seconds"}``; each returned model is an ordinary (unstacked) CPU copy."""
    budget = BUDGETS[dataset.name]
    device = torch.device(device) if device is not None else get_device()
    scale = per_task_lr_scale(task_lrs, lr) if task_lrs else None
    replicas = Replicas(models, scale).to(device)
    n, tasks = replicas.n, dataset.tasks
    terms = [replicas.penalty(fn, weights) for fn, weights in penalty_terms]
    penalty = (lambda m: sum(term(m) for term in terms)) if terms else None
    with Timer(device) as timer:
        fit(replicas, replicate_split(train if train is not None else dataset.train, n), replicate_tasks(tasks, n),
            epochs=epochs or budget.epochs, lr=lr, batch_size=batch_size or budget.batch_size,
            penalty=penalty, device=device, seed=seed, verbose=False)
    scores = {name: evaluate(replicas, replicate_split(getattr(dataset, name), n), replicate_tasks(tasks, n))
              for name in ("val", "test")}
    runs = [{name: {t.name: scores[name][replica_key(t.name, r)] for t in tasks} for name in ("val", "test")}
            | {"model": replicas.unstack(r)} for r in range(n)]
    return {"runs": runs, "seconds": timer.seconds}


def train_grid(build: Callable[[], nn.Module], dataset: MultiTaskDataset, seeds: Sequence[int],
               settings: Sequence[float | None] = (None,), penalty: Callable[[nn.Module], Tensor] | None = None,
               **train_kwargs) -> dict:
    """Train ``build()`` (seeded with each of ``seeds``) for every setting in one batched run.

    With ``penalty`` (e.g. :func:`coupling_penalty`) each setting is its weight α; the copies of a
    seed share their initial weights across settings, so differences between settings come from
    the setting alone. Returns ``{setting: {"val": {task: [per seed]}, "test": {...}, "models": [...]}}``;
    ``train_kwargs`` go to :func:`train_replicas` (``lr``, ``train``, ``task_lrs``, …).
    """
    if not seeds or not settings:
        raise ValueError("train_grid needs at least one seed and one setting.")
    models, weights = [], []
    for setting in settings:
        for seed in seeds:
            seed_everything(seed)
            models.append(build())
            weights.append(0.0 if setting is None else float(setting))
    terms = [(penalty, weights)] if penalty is not None else []
    runs = train_replicas(models, dataset, penalty_terms=terms, **train_kwargs)["runs"]
    grid = {}
    for i, setting in enumerate(settings):
        chunk = runs[i * len(seeds):(i + 1) * len(seeds)]
        grid[setting] = {split: {t.name: [r[split][t.name] for r in chunk] for t in dataset.tasks}
                         for split in ("val", "test")} | {"models": [r["model"] for r in chunk]}
    return grid


def grid_frame(grid: Mapping, split: str = "test") -> pd.DataFrame:
    """One row per setting: mean metric per task over seeds (and the towers' relative distance
    for soft-sharing models)."""
    rows = {}
    for setting, entry in grid.items():
        row = {task: float(np.mean(values)) for task, values in entry[split].items()}
        if isinstance(entry["models"][0], SoftSharing):
            row["tower distance"] = float(np.mean([tower_distance(m) for m in entry["models"]]))
        rows[setting] = row
    return pd.DataFrame(rows).T.rename_axis("setting")


# --------------------------------------------------------------------------- figures
def plot_tower_scatter(model: SoftSharing, ax: plt.Axes | None = None, layer: int = 0,
                       max_points: int = 1500, title: str | None = None) -> plt.Axes:
    """Weights of layer ``layer`` in tower A (x) against tower B (y): on the diagonal = shared."""
    if len(model.towers) != 2:
        raise ValueError("plot_tower_scatter compares exactly two towers.")
    groups = model.coupled_parameters()
    if not 0 <= layer < len(groups):
        raise ValueError(f"layer must be in 0..{len(groups) - 1}, got {layer}.")
    a, b = (t.detach().cpu().reshape(-1) for t in groups[layer])
    keep = torch.randperm(len(a), generator=torch.Generator().manual_seed(0))[:max_points]
    ax = ax or plt.subplots(figsize=(3.2, 3.2))[1]
    lim = float(max(a.abs().max(), b.abs().max()))
    ax.plot([-lim, lim], [-lim, lim], color="grey", lw=0.8, ls="--")
    ax.scatter(a[keep], b[keep], s=3, alpha=0.4)
    ax.set_xlabel(f"tower {model.task_names[0]}"); ax.set_ylabel(f"tower {model.task_names[1]}")
    ax.set_title(title or f"layer-{layer} weights", fontsize=9)
    ax.set_aspect("equal")
    return ax


def plot_alpha_panel(sweep: Mapping[float, Mapping], alpha: float, task: str, reference: float | None = None,
                     hard: float | None = None) -> plt.Figure:
    """The widget's figure for one α of a precomputed sweep.

    ``sweep`` is a :func:`train_grid` result: ``sweep[α]`` holds ``"models"`` (trained
    :class:`SoftSharing` nets, one per seed) and ``"test"`` (per-seed lists per task). Left: the
    first seed's tower-A first-layer weights against tower B's; right: ``task``'s mean test metric
    against α, this α circled.
    """
    if alpha not in sweep:
        raise ValueError(f"α={alpha} was not precomputed; choose one of {sorted(sweep)}.")
    alphas = sorted(sweep)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(8.5, 3.3))
    entry = sweep[alpha]
    distance = float(np.mean([tower_distance(m) for m in entry["models"]]))
    plot_tower_scatter(entry["models"][0], ax0, title=f"α = {alpha:g}: relative distance {distance:.2f}")
    xs = [max(a, alphas[1] / 10) if len(alphas) > 1 else 1.0 for a in alphas]  # α = 0 drawn left of the rest
    means = [float(np.mean(sweep[a]["test"][task])) for a in alphas]
    ax1.plot(xs, means, marker="o", label="L2 coupling")
    if reference is not None:
        ax1.axhline(reference, color="grey", ls="--", lw=1, label="single-task (stored)")
    if hard is not None:
        ax1.axhline(hard, color="C3", ls=":", lw=1.2, label="hard sharing")
    ax1.scatter([xs[alphas.index(alpha)]], [means[alphas.index(alpha)]], s=120, facecolors="none",
                edgecolors="k", zorder=3)
    ax1.set_xscale("log"); ax1.set_xlabel("α (leftmost point: α = 0)"); ax1.set_ylabel(f"test {task}")
    ax1.legend(fontsize=7)
    fig.tight_layout()
    return fig
