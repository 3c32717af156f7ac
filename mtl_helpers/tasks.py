"""A Task bundles what the training loop needs to know about one prediction problem.

Three kinds cover the course:

============== ============================ ===================== ===========
kind           head output                  loss                  metric
============== ============================ ===================== ===========
classification ``n_classes`` logits          cross-entropy         accuracy ↑
binary         one logit                    BCE with logits       AUC ↑
regression     ``n_outputs`` real values     mean squared error    RMSE ↓
============== ============================ ===================== ===========

Heads always output *logits* (no softmax/sigmoid): the losses apply the numerically stable
log-softmax / log-sigmoid themselves. Putting a softmax before ``cross_entropy`` is a classic
silent bug that notebook 02 demonstrates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .metrics import accuracy, auc, rmse

KINDS = ("classification", "binary", "regression")


@dataclass(frozen=True)
class Task:
    """One task of a multi-task problem.

    Attributes:
        name: the key of this task's targets and of its head's output.
        kind: "classification", "binary" or "regression".
        n_outputs: classes for classification, 1 for binary, output size for regression.
    """

    name: str
    kind: str
    n_outputs: int = 1

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Task {self.name!r}: unknown kind {self.kind!r}; use one of {KINDS}.")
        if self.kind == "classification" and self.n_outputs < 2:
            raise ValueError(f"Task {self.name!r}: a classification task needs n_outputs >= 2 classes.")
        if self.kind == "binary" and self.n_outputs != 1:
            raise ValueError(f"Task {self.name!r}: a binary task has exactly one logit (n_outputs=1).")

    @property
    def metric_name(self) -> str:
        return {"classification": "accuracy", "binary": "AUC", "regression": "RMSE"}[self.kind]

    @property
    def higher_is_better(self) -> bool:
        return self.kind != "regression"

    def check(self, output: Tensor, target: Tensor) -> None:
        """Raise ``ValueError`` if ``output`` cannot be scored against ``target``."""
        n = target.shape[0]
        if output.shape[0] != n:
            raise ValueError(f"Task {self.name!r}: the head gives {output.shape[0]} predictions "
                             f"for {n} targets; the batch sizes must match.")
        if self.kind == "classification":
            if output.ndim != 2 or output.shape[1] != self.n_outputs:
                raise ValueError(f"Task {self.name!r}: expected logits of shape (batch, {self.n_outputs}), "
                                 f"got {tuple(output.shape)}; give the head {self.n_outputs} outputs.")
            if target.ndim != 1 or target.dtype not in (torch.int64, torch.int32, torch.uint8):
                raise ValueError(f"Task {self.name!r}: classification targets must be a 1-D integer "
                                 f"tensor of class indices, got {tuple(target.shape)} {target.dtype}.")
        elif output.numel() != n * self.n_outputs or target.numel() != n * self.n_outputs:
            raise ValueError(f"Task {self.name!r}: a {self.kind} head must output {self.n_outputs} "
                             f"value(s) per example to match targets of shape {tuple(target.shape)}, "
                             f"got {tuple(output.shape)}.")

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        """Mean loss of a batch, after checking the shapes fit."""
        self.check(output, target)
        if self.kind == "classification":
            return F.cross_entropy(output, target.long())
        out = output.reshape(target.shape)
        if self.kind == "binary":
            return F.binary_cross_entropy_with_logits(out, target.float())
        return F.mse_loss(out, target.float())

    def metric(self, output: Tensor, target: Tensor) -> float:
        """The task's headline metric (accuracy, AUC or RMSE) over a whole split."""
        self.check(output, target)
        if self.kind == "classification":
            return accuracy(output, target)
        out = output.reshape(target.shape)
        if self.kind == "binary":
            return auc(out, target)
        return rmse(out, target)


def get_task(tasks: Sequence[Task], name: str) -> Task:
    """Look a task up by name, with a helpful error for a typo."""
    for task in tasks:
        if task.name == name:
            return task
    raise ValueError(f"Unknown task {name!r}; the tasks are {[t.name for t in tasks]}.")


def check_tasks(tasks: Sequence[Task]) -> list[Task]:
    """Validate a task list: non-empty, all ``Task``, names unique."""
    tasks = list(tasks)
    if not tasks:
        raise ValueError("The task list is empty: pass at least one Task.")
    for task in tasks:
        if not isinstance(task, Task):
            raise ValueError(f"Expected Task objects, got {type(task).__name__}: {task!r}.")
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise ValueError(f"Task names must be unique, got {names}.")
    return tasks
