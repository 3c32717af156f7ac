"""Many independent copies of one architecture, trained as one batched model.

A sweep over a setting (say the coupling weight α ∈ {0, 0.001, …, 100}) trains the same
architecture many times on the same batches. On a laptop CPU each of those tiny networks
spends most of its time in per-operation overhead, so :class:`Replicas` stacks the copies'
parameters along a new first axis and runs the forward pass under ``torch.func.vmap``: R
copies cost little more than one. The loss is the *sum* of the copies' losses and Adam's
update is per coordinate, so every copy follows exactly the path it would follow alone (same
batches), up to float rounding.

:func:`batched_runner` is a drop-in ``runner`` for :func:`mtl_helpers.protocol.tune` and
:func:`~mtl_helpers.protocol.compare`: for each seed it trains every setting of an arm at
once, keeps each copy's best epoch on validation, and returns ordinary :class:`Run` s. It
handles arms whose setting is the weight of their ``penalty`` (or that have no setting).
"""

from __future__ import annotations

import copy
import functools
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from .data import MultiTaskDataset, Split
from .protocol import Arm, Run
from .tasks import Task
from .train import evaluate, fit, selection_score
from .workers import build_seeded, side_by_side

SEP = "#"


def replica_key(task: str, replica: int) -> str:
    return f"{task}{SEP}{replica}"


def replicate_split(split: Split, n: int) -> Split:
    """The same rows with every task's targets (and masks) repeated as ``task#0 … task#(n−1)``."""
    return Split(split.x, {replica_key(t, r): y for r in range(n) for t, y in split.y.items()},
                 {replica_key(t, r): m for r in range(n) for t, m in split.masks.items()})


def replicate_tasks(tasks: Sequence[Task], n: int) -> list[Task]:
    return [Task(replica_key(t.name, r), t.kind, t.n_outputs) for r in range(n) for t in tasks]


class _Apply(nn.Module):
    """Lets ``functional_call`` evaluate any function of a module (a penalty) with swapped weights."""

    def __init__(self, module: nn.Module, fn: Callable[[nn.Module], Tensor]) -> None:
        super().__init__()
        self.module, self.fn = module, fn

    def forward(self) -> Tensor:
        return self.fn(self.module)


class Replicas(nn.Module):
    """R independent copies of one architecture; outputs are named ``task#r``."""

    def __init__(self, models: Sequence[nn.Module]) -> None:
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
        self.stacked = nn.ParameterList([nn.Parameter(params[k].detach()) for k in self.param_names])
        for i, k in enumerate(self.buffer_names):
            self.register_buffer(f"buffer_{i}", buffers[k].clone())

    def weights(self) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """The copies' parameters and buffers, each stacked along a first axis of size R."""
        return (dict(zip(self.param_names, self.stacked, strict=True)),
                {k: getattr(self, f"buffer_{i}") for i, k in enumerate(self.buffer_names)})

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        base = self._base[0]
        out = vmap(lambda p, b: functional_call(base, (p, b), (x,)))(*self.weights())
        return {replica_key(task, r): value[r] for task, value in out.items() for r in range(self.n)}

    def penalty(self, fn: Callable[[nn.Module], Tensor], weights: Sequence[float]) -> Callable[[nn.Module], Tensor]:
        """``penalty=`` for ``fit``: Σ_r weights[r] · fn(copy r), all copies at once."""
        w = torch.as_tensor([float(v) for v in weights], dtype=torch.float32)
        if w.shape != (self.n,) or not torch.isfinite(w).all():
            raise ValueError(f"Need one finite weight per replica ({self.n}), got {list(weights)}.")
        wrapped = _Apply(self._base[0], fn)

        def total(model: Replicas) -> Tensor:
            params, buffers = model.weights()
            per_copy = vmap(lambda p, b: functional_call(wrapped, ({f"module.{k}": v for k, v in p.items()},
                                                                   {f"module.{k}": v for k, v in b.items()}), ()))
            return (per_copy(params, buffers) * w.to(model.stacked[0].device)).sum()
        return total

    def unstack(self, r: int) -> nn.Module:
        """Copy ``r`` as an ordinary model (weights copied out)."""
        if not 0 <= r < self.n:
            raise ValueError(f"Replica index must be in 0..{self.n - 1}, got {r}.")
        model = copy.deepcopy(self._base[0])
        params, buffers = self.weights()
        model.load_state_dict({k: v[r].detach().clone() for k, v in {**params, **buffers}.items()})
        return model.to(self.stacked[0].device)


def batched_runner(arm: Arm, dataset: MultiTaskDataset, lr: float, settings: Sequence[Any],
                   seeds: Sequence[int], device: torch.device | str | None = None) -> list[Run]:
    """The protocol's runs of ``arm`` for every (setting, seed), each seed's settings batched.

    Equivalent to :func:`mtl_helpers.protocol.sequential_runner` (same initial weights per
    seed, same batches, each copy's best epoch on validation), for an arm whose ``options``
    do not depend on the setting: the setting may only weight the arm's ``penalty``.
    """
    if arm.options is not None:
        raise ValueError(f"Arm {arm.name!r} has options(model, setting): batched training supports only a penalty "
                         "weighted by the setting; use the sequential runner.")
    per_seed = side_by_side([functools.partial(_one_seed, arm, dataset, lr, list(settings), seed, device)
                             for seed in seeds])
    return [r for runs in per_seed for r in runs]


def _one_seed(arm: Arm, dataset: MultiTaskDataset, lr: float, settings: list[Any], seed: int,
              device: torch.device | str | None) -> list[Run]:
    """Every setting of ``arm`` trained at once with one seed; each copy keeps its best epoch."""
    budget = dataset.require_budget()
    tasks = arm.task_list(dataset)
    score = arm.score or (lambda metrics: selection_score(metrics, tasks))
    models = []
    for setting in settings:
        models.append(build_seeded(arm.build, setting, seed))
    replicas = Replicas(models).to(device or next(models[0].parameters()).device)
    n = replicas.n
    penalty = (replicas.penalty(arm.penalty, [0.0 if v is None else float(v) for v in settings])
               if arm.penalty is not None else None)
    train = arm.train(seed) if arm.train is not None else dataset.train
    epochs = budget.max_epochs(len(train), len(dataset.train))
    val, all_tasks = replicate_split(dataset.val, n), replicate_tasks(tasks, n)
    best: list[tuple[float, int, list[Tensor] | None]] = [(-float("inf"), 0, None)] * n

    def keep_best(epoch: int, record: dict) -> None:
        if epoch % max(1, epochs // 40) and epoch != epochs:
            return
        metrics = evaluate(replicas, val, all_tasks)
        snapshot = None
        for r in range(n):
            s = score({t.name: metrics[replica_key(t.name, r)] for t in tasks})
            if s > best[r][0]:
                snapshot = snapshot or [p.detach().clone() for p in replicas.stacked]
                best[r] = (s, epoch, snapshot)

    start = time.perf_counter()
    fit(replicas, replicate_split(train, n), all_tasks, epochs=epochs, lr=lr, batch_size=budget.batch_size,
        penalty=penalty, on_epoch=keep_best, seed=seed, verbose=False)
    seconds = (time.perf_counter() - start) / n
    runs = []
    for r, setting in enumerate(settings):
        _, epoch, snapshot = best[r]
        with torch.no_grad():
            for p, saved in zip(replicas.stacked, snapshot, strict=True):
                p[r] = saved[r]
        model = replicas.unstack(r)
        runs.append(Run(arm.name, seed, lr, setting, evaluate(model, dataset.val, tasks),
                        evaluate(model, dataset.test, tasks), epoch, epochs,
                        epoch * budget.steps_per_epoch(len(train)), seconds, None, model))
    return runs
