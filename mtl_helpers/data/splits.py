"""Splits, datasets and the training budget a dataset carries.

A :class:`MultiTaskDataset` holds train / validation / test :class:`Split` s (inputs ``x`` and
one target tensor per task), the list of :class:`~mtl_helpers.tasks.Task` s and, optionally, a
:class:`Budget`: what every model trained on it gets. The budget travels *with* the data, so
a loader that builds a new task pair from the same rows attaches it explicitly, instead of
borrowing another dataset's settings through its name. Everything is in memory as tensors:
the datasets are small, and indexing a tensor is far faster on a CPU than a ``DataLoader``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import Tensor

from ..tasks import Task, check_tasks, get_task


@dataclass(frozen=True)
class Budget:
    """What every arm of a comparison on a dataset gets, single-task or multi-task alike.

    ``epochs`` is the training length on the full training split; an arm that trains on fewer
    rows may take as many *optimisation steps* (see :meth:`max_epochs`), and every arm picks
    its best epoch on validation. ``lrs`` is the learning-rate grid searched on validation.
    ``trunk_width`` / ``head_hidden`` size the standard network
    (:func:`mtl_helpers.models.standard_network`).
    """

    epochs: int
    batch_size: int
    lrs: tuple[float, ...]
    trunk_width: int = 64
    head_hidden: int = 16

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or not self.lrs or min(self.lrs) <= 0:
            raise ValueError(f"A Budget needs epochs >= 1, batch_size >= 1 and positive lrs, got {self}.")

    def steps_per_epoch(self, n_rows: int) -> int:
        return math.ceil(n_rows / self.batch_size)

    def max_epochs(self, n_rows: int, full_rows: int) -> int:
        """Epochs over ``n_rows`` rows that give (at least) the steps of ``epochs`` over ``full_rows``.

        A single-task net trained on 1 % of the labels would otherwise take 1 % of the steps:
        a strawman. Equal steps, then the best epoch on validation, is the fair version.
        """
        if n_rows < 1 or full_rows < 1:
            raise ValueError(f"Row counts must be positive, got {n_rows} and {full_rows}.")
        steps = self.epochs * self.steps_per_epoch(full_rows)
        return max(self.epochs, math.ceil(steps / self.steps_per_epoch(n_rows)))


def row_order(n: int, seed: int) -> np.ndarray:
    """A random order of n rows from NumPy's generator: a stream independent of the torch
    generator that ``fit(seed=...)`` uses for batch order. (With the same stream and seed,
    the rows kept by ``with_label_fraction`` would all land in the first batches.)"""
    return np.random.default_rng(seed).permutation(n)


@dataclass
class Split:
    """Inputs and per-task targets of one split.

    ``masks[name]`` (optional) marks which rows carry a label for task ``name``; the training
    loop ignores unlabelled rows for that task. It is how one task keeps only a fraction of
    its labels while the other keeps all of them.
    """

    x: Tensor
    y: dict[str, Tensor]
    masks: dict[str, Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.y:
            raise ValueError("A Split needs at least one task's targets in y.")
        n = self.x.shape[0]
        for name, t in {**self.y, **self.masks}.items():
            if t.shape[0] != n:
                raise ValueError(f"Targets/mask of task {name!r} have {t.shape[0]} rows but x has {n}.")
        for name in self.masks:
            if name not in self.y:
                raise ValueError(f"Mask given for unknown task {name!r}; the tasks are {list(self.y)}.")

    def __len__(self) -> int:
        return self.x.shape[0]

    def subset(self, index: Tensor) -> Split:
        """The rows ``index`` of this split (targets and masks follow)."""
        return Split(self.x[index], {k: v[index] for k, v in self.y.items()},
                     {k: v[index] for k, v in self.masks.items()})

    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator[Split]:
        """One epoch of mini-batches in a random order drawn from ``generator``.

        Batch k holds the rows perm[kB : (k+1)B] of a random permutation perm. The split is
        gathered once in that order and cut into consecutive slices (views, no copy): the same
        batches as indexing with each chunk of perm, with one gather per epoch instead of one
        per step (a tenth of a small MLP's step).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        order = torch.randperm(len(self), generator=generator).to(self.x.device)
        shuffled = self.subset(order)
        for start in range(0, len(self), batch_size):
            end = start + batch_size
            yield shuffled._rows(start, end)

    def _rows(self, start: int, end: int) -> Split:
        """Rows ``start:end`` as views. A slice of a valid split is valid: the checks of
        ``__post_init__`` are skipped (they cost a third of the slicing, at every step)."""
        batch = object.__new__(Split)
        batch.x = self.x[start:end]
        batch.y = {k: v[start:end] for k, v in self.y.items()}
        batch.masks = {k: v[start:end] for k, v in self.masks.items()}
        return batch

    def take(self, n: int, seed: int = 0) -> Split:
        """A random subset of ``n`` rows (the same rows for the same seed)."""
        if not 0 < n <= len(self):
            raise ValueError(f"take(n) needs 0 < n <= {len(self)}, got {n}.")
        return self.subset(torch.from_numpy(row_order(len(self), seed)[:n]))

    def with_label_fraction(self, task: str, fraction: float, seed: int = 0) -> Split:
        """Keep every input but only a random ``fraction`` of task ``task``'s labels."""
        if task not in self.y:
            raise ValueError(f"Unknown task {task!r}; the tasks are {list(self.y)}.")
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}.")
        keep = torch.zeros(len(self), dtype=torch.bool)
        keep[torch.from_numpy(row_order(len(self), seed)[: max(1, round(fraction * len(self)))])] = True
        return replace(self, masks={**self.masks, task: keep})

    def labelled(self, task: str) -> Split:
        """The rows that carry a label for ``task``, as a single-task split: what a single-task
        model can learn from when only some rows are labelled (all rows if there is no mask)."""
        if task not in self.y:
            raise ValueError(f"Unknown task {task!r}; the split has {list(self.y)}.")
        only = Split(self.x, {task: self.y[task]})
        mask = self.masks.get(task)
        return only if mask is None else only.subset(mask.nonzero().squeeze(1))

    def to(self, device: torch.device | str) -> Split:
        return Split(self.x.to(device), {k: v.to(device) for k, v in self.y.items()},
                     {k: v.to(device) for k, v in self.masks.items()})


@dataclass
class MultiTaskDataset:
    """Three splits, the tasks they carry and (optionally) the budget every model gets."""

    name: str
    tasks: list[Task]
    train: Split
    val: Split
    test: Split
    budget: Budget | None = None
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.tasks = check_tasks(self.tasks)
        for split in (self.train, self.val, self.test):
            for task in self.tasks:
                if task.name not in split.y:
                    raise ValueError(f"Split has no targets for task {task.name!r}.")

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def task(self, name: str) -> Task:
        return get_task(self.tasks, name)

    def select(self, task_names: Sequence[str]) -> MultiTaskDataset:
        """The same data restricted to some tasks (a single-task view for a baseline)."""
        tasks = [self.task(n) for n in task_names]

        def keep(s: Split) -> Split:
            return Split(s.x, {t.name: s.y[t.name] for t in tasks},
                         {t.name: s.masks[t.name] for t in tasks if t.name in s.masks})
        return replace(self, tasks=tasks, train=keep(self.train), val=keep(self.val), test=keep(self.test))

    def with_budget(self, budget: Budget) -> MultiTaskDataset:
        return replace(self, budget=budget)

    def require_budget(self) -> Budget:
        if self.budget is None:
            raise ValueError(f"Dataset {self.name!r} has no budget: attach one with dataset.with_budget(Budget(...)) "
                             "or load it with mtl_helpers.course.load_course_dataset.")
        return self.budget
