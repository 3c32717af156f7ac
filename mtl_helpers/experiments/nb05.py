"""Notebook 05 (gradient conflict): the studies too long for the notebook itself.

* :func:`gradients_on_batches` — G on several mini-batches at fixed weights, to separate real
  conflict between tasks from mini-batch noise (with
  :func:`mtl_helpers.conflict.within_and_between_cosines`);
* :func:`gradient_arms` — equal weights and five gradient-level methods as protocol arms, every
  method picked by its registry name (:data:`mtl_helpers.conflict.GRADIENT_METHODS`);
* :func:`fixed_lr_budget` — the dataset's budget cut down to one learning rate and a few
  epochs, for a comparison that fits the notebook's time budget (the search it got is printed
  beside every result);
* :func:`cost_table` — each arm's deterministic cost per step (trunk backward passes, FLOPs,
  :func:`mtl_helpers.costs.step_cost`) beside its measured time (shown, never asserted);
* :func:`mean_over_tasks`, :func:`mean_task_difference` — the mean over tasks of the metric,
  per seed, and its paired difference between two arms.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import pandas as pd
import torch
from torch import Tensor, nn

from ..conflict import make_direction, per_task_gradients
from ..costs import step_cost
from ..data import MultiTaskDataset, Split
from ..metrics import PairedDifference, paired_difference
from ..models import standard_network
from ..protocol import Arm, Comparison
from ..tasks import Task
from ..train import resolve_methods, task_losses, train_step
from ..utils import seed_everything, time_interleaved

EQUAL = "equal weights"


def gradients_on_batches(model: nn.Module, split: Split, tasks: Sequence[Task], batch_size: int = 128,
                         n_batches: int = 8, seed: int = 0) -> Tensor:
    """(n_batches, T, P): G on ``n_batches`` disjoint random mini-batches of ``split``, with the
    model's current weights (shared parameters only).

    Compare tasks *within* a batch with one task *across* batches
    (:func:`~mtl_helpers.conflict.within_and_between_cosines`) to see how much of the measured
    "conflict" is mini-batch noise. The model is put in evaluation mode while measuring (no
    dropout noise: only the batch changes) and back in training mode after.
    """
    if n_batches < 2 or n_batches * batch_size > len(split):
        raise ValueError(f"Need 2 <= n_batches and n_batches * batch_size <= {len(split)} rows; "
                         f"got {n_batches} × {batch_size}.")
    device = next(model.parameters()).device
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))
    shared = list(model.shared_parameters())
    model.eval()
    stacks = []
    for b in range(n_batches):
        batch = split.subset(order[b * batch_size:(b + 1) * batch_size]).to(device)
        stacks.append(per_task_gradients(task_losses(model(batch.x), batch, tasks), shared))
    model.train()
    return torch.stack(stacks).detach()


def gradient_arms(dataset: MultiTaskDataset, c: float = 0.4) -> list[Arm]:
    """Equal weights and PCGrad, MGDA, MGDA-UB, CAGrad (its ``c`` as the arm's setting) and
    Nash-MTL, all on the standard network: the arms differ only in how the trunk's update is
    made from the per-task gradients (``fit(gradient_method=<registry name>)``)."""
    def build(_: object) -> nn.Module:
        return standard_network(dataset)

    def method(name: str, **extra: str) -> Callable[[nn.Module, object], dict]:
        return lambda model, setting: {"gradient_method": name, **extra}

    return [Arm(EQUAL, build),
            Arm("PCGrad", build, options=method("pcgrad")),
            Arm("MGDA", build, options=method("mgda")),
            Arm("MGDA-UB", build, options=method("mgda", gradients_wrt="representation")),
            Arm("CAGrad", build, settings=(c,),
                options=lambda model, c: {"gradient_method": make_direction("cagrad", c=c)}),
            Arm("Nash-MTL", build, options=method("nash"))]


def fixed_lr_budget(dataset: MultiTaskDataset, lr: float, epochs: int) -> MultiTaskDataset:
    """The same data with its budget cut to one learning rate and ``epochs`` epochs: every arm
    of :func:`mtl_helpers.protocol.compare` then gets that one lr and keeps its best of
    ``epochs`` epochs on validation (the table's "search" column says so)."""
    if not lr > 0 or epochs < 1:
        raise ValueError(f"lr must be > 0 and epochs >= 1, got lr={lr}, epochs={epochs}.")
    return dataset.with_budget(dataclasses.replace(dataset.require_budget(), lrs=(lr,), epochs=epochs))


def _timed_step(model: nn.Module, batch: Split, tasks: Sequence[Task], options: dict) -> Callable[[], object]:
    """A no-argument function that runs one real training step (``train_step``) of ``model``."""
    options = dict(options)
    weighting, method = resolve_methods(model, tasks, options.pop("weighting", None),
                                        options.pop("gradient_method", None))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    return lambda: train_step(model, batch, tasks, optimizer, weighting=weighting, gradient_method=method, **options)


def cost_table(arms: Sequence[Arm], dataset: MultiTaskDataset, reference: str = EQUAL, repeats: int = 5,
               device: torch.device | str | None = None) -> pd.DataFrame:
    """Per arm, the cost of one training step on one batch of the budget's size.

    Deterministic columns (:func:`mtl_helpers.costs.step_cost`): backward passes through the
    trunk and MFLOPs per step, and the FLOPs relative to ``reference``. Measured column: the
    median ms per step of :func:`~mtl_helpers.utils.time_interleaved` (the arms timed in turn,
    so background load hits them alike) — shown, never asserted.
    """
    names = [a.name for a in arms]
    if reference not in names:
        raise ValueError(f"The reference arm {reference!r} is not among the arms {names}.")
    budget = dataset.require_budget()
    tasks_of = {a.name: a.task_list(dataset) for a in arms}
    batch = dataset.train.subset(torch.arange(min(budget.batch_size, len(dataset.train))))
    batch = batch.to(device) if device is not None else batch
    costs, steps = {}, {}
    for arm in arms:
        setting = arm.settings[0]
        seed_everything(0)
        model = arm.build(setting)
        model = model.to(device) if device is not None else model
        options = arm.fit_options(model, setting)
        costs[arm.name] = step_cost(model, batch, tasks_of[arm.name], **options)
        steps[arm.name] = _timed_step(model, batch, tasks_of[arm.name], options)
    seconds = time_interleaved(steps, repeats=repeats, warmup=1, device=device)
    flops_ref = costs[reference].flops
    return pd.DataFrame({name: {"trunk backward passes": cost.trunk_backward_passes,
                                "MFLOPs / step": round(cost.flops / 1e6, 1),
                                f"FLOPs × {reference}": round(cost.flops / flops_ref, 2),
                                "measured ms / step": round(seconds[name] * 1e3, 1)}
                         for name, cost in costs.items()}).T


def mean_over_tasks(comparison: Comparison, arm: str, split: str = "test") -> list[float]:
    """Per seed, the mean over tasks of ``arm``'s metric (for tasks that share a metric and its
    direction, such as the two MultiMNIST accuracies)."""
    if arm not in comparison.runs:
        raise ValueError(f"Unknown arm {arm!r}; the arms are {list(comparison.runs)}.")
    return [sum(values.values()) / len(values) for values in (getattr(r, split) for r in comparison.runs[arm])]


def mean_task_difference(comparison: Comparison, a: str, b: str, split: str = "test") -> PairedDifference:
    """Paired difference a − b over the seeds of :func:`mean_over_tasks`."""
    return paired_difference(mean_over_tasks(comparison, a, split), mean_over_tasks(comparison, b, split))
