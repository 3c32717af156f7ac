"""Checkers for notebook 02 (hard parameter sharing).

Each checker runs the learner's function on cases with known answers, prints ✔ or ✘ with a
hint and returns True/False. A wrong answer never raises, and a stub that still raises
``NotImplementedError`` reads "not implemented yet" (:func:`~mtl_helpers.exercises.attempt`).
The expected answers come from the package: :func:`~mtl_helpers.models.parameter_counts`,
:meth:`Split.labelled <mtl_helpers.data.Split.labelled>`,
:func:`~mtl_helpers.models.export_task_model` and :meth:`Task.loss <mtl_helpers.tasks.Task.loss>`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data import Split
from ..models import HardSharing, export_task_model, make_head, mlp, parameter_counts
from ..tasks import Task
from ..utils import count_parameters
from . import Failed, attempt, check_cases, report

# --------------------------------------------------------------------------- 1. parameter ratio


def reference_parameter_ratio(trunk_params: int, head_params: int, n_tasks: int) -> float:
    """The package's answer: shared / separate from :func:`~mtl_helpers.models.parameter_counts`."""
    counts = parameter_counts(n_tasks, trunk_params, head_params)
    return counts["shared"] / counts["separate"]


def _ratio_hint(case: tuple, got: object, want: float) -> str:
    n_tasks = case[2]
    one_head = isinstance(got, (int, float)) and math.isclose(float(got), 1 / n_tasks)
    hint = ("the shared model still has one head per task" if one_head
            else "divide the shared model's size by T full single-task nets")
    return f"parameter_ratio{case} = {got}, expected {want:.4f}: {hint}."


def check_parameter_ratio(parameter_ratio: Callable[[int, int, int], float]) -> bool:
    """``parameter_ratio(trunk_params, head_params, n_tasks)`` must give the size of the
    hard-sharing model divided by the total size of ``n_tasks`` single-task networks."""
    cases = [(17696, 2410, 2), (100, 0, 4), (0, 10, 3), (1000, 100, 1), (5000, 50, 10)]
    return check_cases(
        parameter_ratio, cases, reference_parameter_ratio,
        same=lambda got, want: isinstance(got, (int, float)) and math.isclose(float(got), want, rel_tol=1e-6),
        success="parameter_ratio is right: with T tasks the ratio tends to 1/T as the trunk dominates "
                "and to 1 as the heads dominate.",
        hint=_ratio_hint)


# --------------------------------------------------------------------------- 2. labelled rows


def _masked_toy_split() -> Split:
    x = torch.arange(20, dtype=torch.float32).unsqueeze(1)
    y = {"a": torch.arange(20) % 3, "b": torch.arange(20) % 2}
    keep = torch.zeros(20, dtype=torch.bool)
    keep[[1, 4, 5, 11, 17]] = True
    return Split(x, y, {"a": keep})


def _rows_problem(got: object, want: Split, task: str) -> str | None:
    """What is wrong with ``got`` as the labelled rows of ``task`` (None: nothing)."""
    if not isinstance(got, Split):
        return f"Return a Split (use split.subset(index)), got {type(got).__name__}."
    rows, expected = got.x.squeeze(1).tolist(), want.x.squeeze(1).tolist()
    if rows != expected:
        hint = ("you kept every row: use the mask" if len(rows) == 20 and len(expected) < 20 else
                "you kept the unlabelled rows: the mask is True where a label exists" if len(rows) == 15 else
                "take the rows where the mask is True, e.g. split.subset(mask.nonzero().squeeze(1))")
        return f"Kept inputs {rows[:8]}{'…' if len(rows) > 8 else ''}, expected {expected}: {hint}."
    if task not in got.y or not torch.equal(got.y[task], want.y[task]):
        return f"The labels of task {task!r} do not follow the rows you kept."
    if task in got.masks and not bool(got.masks[task].all()):
        return "Every row you return is labelled, so the mask (if you keep one) must be all True."
    return None


def check_labelled_rows(labelled_rows: Callable[[Split, str], Split]) -> bool:
    """``labelled_rows(split, task)`` must keep exactly the rows whose ``task`` label is
    present (``split.masks[task]``), in order, with their inputs and that task's labels; a
    task without a mask keeps every row. The answer is :meth:`Split.labelled`'s."""
    split = _masked_toy_split()
    for task in ("a", "b"):  # "b" has no mask: fully labelled
        try:
            got = attempt(labelled_rows, split, task)
        except Failed as failure:
            return report(False, "", f"labelled_rows(split, {task!r}): {failure}.")
        problem = _rows_problem(got, split.labelled(task), task)
        if problem and task == "b":
            problem = f"A task without a mask is fully labelled: every row should stay. {problem}"
        if problem:
            return report(False, "", problem)
    return report(True, "labelled_rows keeps exactly the labelled rows: what a single-task model can learn from "
                        "(the package's version is Split.labelled).", "")


# --------------------------------------------------------------------------- 3. export


def _toy_joint_model() -> HardSharing:
    torch.manual_seed(0)
    tasks = [Task("digit", "classification", 4), Task("size", "regression"), Task("odd", "binary")]
    return HardSharing(mlp(6, [12, 8]), {t.name: make_head(8, t, (5,)) for t in tasks}).eval()


def _export_problem(part: object, model: HardSharing, task: str, x: Tensor, joint: dict[str, Tensor]) -> str | None:
    """What is wrong with ``part`` as the standalone model of ``task`` (None: nothing)."""
    if not isinstance(part, nn.Module):
        return f"Return an nn.Module, got {type(part).__name__}."
    try:
        with torch.no_grad():
            out = attempt(part.eval(), x)
    except Failed as failure:
        return f"Calling the exported {task!r} model failed: {failure}."
    if isinstance(out, dict):
        return ("The exported model returns a dict: a standalone task model returns that task's tensor "
                "(trunk, then its head).")
    if not isinstance(out, Tensor) or out.shape != joint[task].shape or not torch.equal(out, joint[task]):
        return f"The exported {task!r} model's output differs from model(x)[{task!r}]."
    want = count_parameters(export_task_model(model, task))
    if count_parameters(part) != want:
        return (f"The exported {task!r} model has {count_parameters(part)} parameters, expected {want} "
                "(trunk + its own head): leave the other heads out.")
    if {id(p) for p in model.parameters()} & {id(p) for p in part.parameters()}:
        return ("The exported model shares parameter tensors with the joint model: deep-copy the trunk and "
                "the head (copy.deepcopy).")
    return None


def check_export(export: Callable[[HardSharing, str], nn.Module]) -> bool:
    """``export(model, task)`` must return a standalone module: input → that task's output
    tensor, equal to the joint model's exactly, with its own copy of the trunk and that head
    only (no other heads), so changing it leaves the joint model untouched."""
    model = _toy_joint_model()
    x = torch.randn(9, 6, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        joint = model(x)
    for task in ("digit", "size"):
        try:
            part = attempt(export, model, task)
        except Failed as failure:
            return report(False, "", f"export(model, {task!r}): {failure}.")
        problem = _export_problem(part, model, task, x, joint)
        if problem:
            return report(False, "", problem)
    return report(True, "export gives an exact, independent, single-task model.", "")


# --------------------------------------------------------------------------- 4. head ↔ loss


def _loss_matches(got: object, want: Tensor, atol: float) -> bool:
    return isinstance(got, Tensor) and got.numel() == 1 and torch.allclose(got.reshape(()), want, atol=atol)


def _one_loss(fn: Callable[[Tensor, Tensor], Tensor], output: Tensor, target: Tensor) -> tuple[object, str | None]:
    try:
        return attempt(fn, output, target), None
    except Failed as failure:
        return None, str(failure)


def check_head_losses(classification_loss: Callable[[Tensor, Tensor], Tensor],
                      binary_loss: Callable[[Tensor, Tensor], Tensor],
                      regression_loss: Callable[[Tensor, Tensor], Tensor]) -> bool:
    """Each function takes the head's raw output and the targets and returns the mean loss
    (the answer is :meth:`Task.loss`'s for that kind of task):

    * ``classification_loss(logits (N, C), y (N,) int)`` — cross-entropy on logits;
    * ``binary_loss(logits (N, 1), y (N,) 0/1 float)`` — BCE on logits, numerically stable;
    * ``regression_loss(prediction (N, 1), y (N,))`` — mean squared error per example.
    """
    g = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(16, 5, generator=g)
    classes = torch.randint(0, 5, (16,), generator=g)
    want = Task("c", "classification", 5).loss(logits, classes)
    got, error = _one_loss(classification_loss, logits, classes)
    if error or not _loss_matches(got, want, 1e-5):
        soft = F.cross_entropy(logits.softmax(1), classes)
        hint = ("you applied softmax before cross-entropy, which applies log-softmax itself"
                if _loss_matches(got, soft, 1e-5) else "pass the raw logits and the class indices to F.cross_entropy")
        return report(False, "", f"classification_loss gave {error or got}, expected {want.item():.4f}: {hint}.")

    z = torch.tensor([[30.0], [-30.0], [0.5], [-2.0]])  # confident and wrong on the first two rows
    y = torch.tensor([0.0, 1.0, 1.0, 0.0])
    want = Task("b", "binary").loss(z, y)
    got, error = _one_loss(binary_loss, z, y)
    if error or not _loss_matches(got, want, 1e-4):
        saturated = isinstance(got, Tensor) and got.numel() == 1 and got.item() > want.item() + 5
        hint = ("a sigmoid followed by binary_cross_entropy saturates in float32: σ(30) rounds to 1 and the loss "
                "is clipped; use F.binary_cross_entropy_with_logits on the raw logit" if saturated else
                "match the shapes (reshape the (N, 1) output to (N,)) and use binary_cross_entropy_with_logits")
        return report(False, "", f"binary_loss gave {error or got}, expected {want.item():.4f}: {hint}.")

    pred = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    target = torch.tensor([1.5, 2.0, 2.0, 6.0])
    want = Task("r", "regression").loss(pred, target)
    got, error = _one_loss(regression_loss, pred, target)
    if error or not _loss_matches(got, want, 1e-5):
        broadcast = F.mse_loss(pred.expand(4, 4), target.expand(4, 4))  # what (N, 1) − (N,) computes
        hint = ("(N, 1) minus (N,) broadcasts to (N, N): reshape the prediction to the target's shape"
                if _loss_matches(got, broadcast, 1e-5) else
                "use the mean squared error between prediction.reshape(target.shape) and the target")
        return report(False, "", f"regression_loss gave {error or got}, expected {want.item():.4f}: {hint}.")
    return report(True, "all three heads are matched to their losses: logits + CE, logit + BCE-with-logits, "
                        "value + MSE with matching shapes.", "")
