"""Checkers for notebook 02 (hard parameter sharing).

Each checker runs the learner's function on cases with known answers, prints ✔ or ✘ with a
hint (via :func:`~mtl_helpers.exercises.report`) and returns True/False. A wrong answer never
raises: the learner can keep going.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data import Split
from ..models import HardSharing, make_head, mlp
from ..tasks import Task
from . import report


def _attempt(fn: Callable, *args) -> tuple[object, str | None]:
    """Call the learner's function; return (result, None) or (None, error description)."""
    try:
        return fn(*args), None
    except Exception as error:  # a learner's bug must not stop the notebook
        return None, f"{type(error).__name__}: {error}"


# --------------------------------------------------------------------------- 1. parameter ratio


def reference_parameter_ratio(trunk_params: int, head_params: int, n_tasks: int) -> float:
    """(P_trunk + T·P_head) / (T·(P_trunk + P_head)): hard sharing over T separate nets."""
    return (trunk_params + n_tasks * head_params) / (n_tasks * (trunk_params + head_params))


def check_parameter_ratio(parameter_ratio: Callable[[int, int, int], float]) -> bool:
    """``parameter_ratio(trunk_params, head_params, n_tasks)`` must give the size of the
    hard-sharing model divided by the total size of ``n_tasks`` single-task networks."""
    cases = [(17696, 2410, 2), (100, 0, 4), (0, 10, 3), (1000, 100, 1), (5000, 50, 10)]
    for case in cases:
        got, error = _attempt(parameter_ratio, *case)
        if error:
            return report(False, "", f"parameter_ratio{case} raised {error}.")
        want = reference_parameter_ratio(*case)
        if not isinstance(got, (int, float)) or not math.isclose(float(got), want, rel_tol=1e-6):
            hint = ("the shared model still has one head per task" if math.isclose(float(got or 0), 1 / case[2])
                    else "divide the shared model's size by T full single-task nets")
            return report(False, "", f"parameter_ratio{case} = {got}, expected {want:.4f}: {hint}.")
    return report(True, "parameter_ratio is right: with T tasks the ratio tends to 1/T as the trunk dominates "
                        "and to 1 as the heads dominate.", "")


# --------------------------------------------------------------------------- 2. labelled rows


def _masked_toy_split() -> Split:
    x = torch.arange(20, dtype=torch.float32).unsqueeze(1)
    y = {"a": torch.arange(20) % 3, "b": torch.arange(20) % 2}
    keep = torch.zeros(20, dtype=torch.bool)
    keep[[1, 4, 5, 11, 17]] = True
    return Split(x, y, {"a": keep})


def check_labelled_rows(labelled_rows: Callable[[Split, str], Split]) -> bool:
    """``labelled_rows(split, task)`` must keep exactly the rows whose ``task`` label is
    present (``split.masks[task]``), in order, with their inputs and that task's labels."""
    split = _masked_toy_split()
    got, error = _attempt(labelled_rows, split, "a")
    if error:
        return report(False, "", f"labelled_rows(split, 'a') raised {error}.")
    if not isinstance(got, Split):
        return report(False, "", f"Return a Split (use split.subset(index)), got {type(got).__name__}.")
    want = [1.0, 4.0, 5.0, 11.0, 17.0]
    rows = got.x.squeeze(1).tolist()
    if rows != want:
        hint = ("you kept every row: use the mask" if len(rows) == 20 else
                "you kept the unlabelled rows: the mask is True where a label exists" if len(rows) == 15 else
                "take the rows where the mask is True, e.g. split.subset(mask.nonzero().squeeze(1))")
        return report(False, "", f"Kept inputs {rows[:8]}{'…' if len(rows) > 8 else ''}, expected {want}: {hint}.")
    if not torch.equal(got.y["a"], split.y["a"][split.masks["a"]]):
        return report(False, "", "The labels of task 'a' do not follow the rows you kept.")
    if "a" in got.masks and not bool(got.masks["a"].all()):
        return report(False, "", "Every row you return is labelled, so the mask (if you keep one) must be all True.")
    unmasked, error = _attempt(labelled_rows, split, "b")
    if error or not isinstance(unmasked, Split) or len(unmasked) != 20:
        return report(False, "", "A task without a mask is fully labelled: every row should stay "
                                 f"(labelled_rows(split, 'b') gave {error or len(unmasked)}).")
    return report(True, "labelled_rows keeps exactly the labelled rows: what a single-task model can learn from.",
                  "")


# --------------------------------------------------------------------------- 3. export


def _toy_joint_model() -> HardSharing:
    torch.manual_seed(0)
    tasks = [Task("digit", "classification", 4), Task("size", "regression"), Task("odd", "binary")]
    return HardSharing(mlp(6, [12, 8]), {t.name: make_head(8, t, (5,)) for t in tasks}).eval()


def check_export(export: Callable[[HardSharing, str], nn.Module]) -> bool:
    """``export(model, task)`` must return a standalone module: input → that task's output
    tensor, equal to the joint model's exactly, with its own copy of the trunk and that head
    only (no other heads), so changing it leaves the joint model untouched."""
    model = _toy_joint_model()
    x = torch.randn(9, 6, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        joint = model(x)
    for task in ("digit", "size"):
        part, error = _attempt(export, model, task)
        if error:
            return report(False, "", f"export(model, {task!r}) raised {error}.")
        if not isinstance(part, nn.Module):
            return report(False, "", f"Return an nn.Module, got {type(part).__name__}.")
        with torch.no_grad():
            out, error = _attempt(part.eval(), x)
        if error:
            return report(False, "", f"Calling the exported {task!r} model raised {error}.")
        if isinstance(out, dict):
            return report(False, "", "The exported model returns a dict: a standalone task model returns that "
                                     "task's tensor (trunk, then its head).")
        if not isinstance(out, Tensor) or not torch.equal(out, joint[task]):
            return report(False, "", f"The exported {task!r} model's output differs from model(x)[{task!r}].")
        n_params = sum(p.numel() for p in part.parameters())
        want = sum(p.numel() for p in model.trunk.parameters()) + sum(p.numel() for p in model.heads[task].parameters())
        if n_params != want:
            return report(False, "", f"The exported {task!r} model has {n_params} parameters, expected {want} "
                                     "(trunk + its own head): leave the other heads out.")
        shared = {id(p) for p in model.parameters()} & {id(p) for p in part.parameters()}
        if shared:
            return report(False, "", "The exported model shares parameter tensors with the joint model: "
                                     "deep-copy the trunk and the head (copy.deepcopy).")
    return report(True, "export gives an exact, independent, single-task model.", "")


# --------------------------------------------------------------------------- 4. head ↔ loss


def check_head_losses(classification_loss: Callable[[Tensor, Tensor], Tensor],
                      binary_loss: Callable[[Tensor, Tensor], Tensor],
                      regression_loss: Callable[[Tensor, Tensor], Tensor]) -> bool:
    """Each function takes the head's raw output and the targets and returns the mean loss:

    * ``classification_loss(logits (N, C), y (N,) int)`` — cross-entropy on logits;
    * ``binary_loss(logits (N, 1), y (N,) 0/1 float)`` — BCE on logits, numerically stable;
    * ``regression_loss(prediction (N, 1), y (N,))`` — mean squared error per example.
    """
    g = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(16, 5, generator=g)
    classes = torch.randint(0, 5, (16,), generator=g)
    want = F.cross_entropy(logits, classes)
    got, error = _attempt(classification_loss, logits, classes)
    if error or not isinstance(got, Tensor) or not torch.allclose(got, want, atol=1e-5):
        soft = F.cross_entropy(logits.softmax(1), classes)
        hint = ("you applied softmax before cross-entropy, which applies log-softmax itself"
                if isinstance(got, Tensor) and torch.allclose(got, soft, atol=1e-5) else
                "pass the raw logits and the class indices to F.cross_entropy")
        return report(False, "", f"classification_loss gave {error or got}, expected {want.item():.4f}: {hint}.")

    z = torch.tensor([[30.0], [-30.0], [0.5], [-2.0]])  # confident and wrong on the first two rows
    y = torch.tensor([0.0, 1.0, 1.0, 0.0])
    want = F.binary_cross_entropy_with_logits(z.squeeze(1), y)
    got, error = _attempt(binary_loss, z, y)
    if error or not isinstance(got, Tensor) or got.numel() != 1 or not torch.allclose(got, want, atol=1e-4):
        hint = ("a sigmoid followed by binary_cross_entropy saturates in float32: σ(30) rounds to 1 and the loss "
                "is clipped; use F.binary_cross_entropy_with_logits on the raw logit"
                if isinstance(got, Tensor) and got.numel() == 1 and got.item() > want.item() + 5 else
                "match the shapes (reshape the (N, 1) output to (N,)) and use binary_cross_entropy_with_logits")
        return report(False, "", f"binary_loss gave {error or got}, expected {want.item():.4f}: {hint}.")

    pred = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    target = torch.tensor([1.5, 2.0, 2.0, 6.0])
    want = torch.tensor((0.25 + 0 + 1 + 4) / 4)
    got, error = _attempt(regression_loss, pred, target)
    if error or not isinstance(got, Tensor) or got.numel() != 1 or not torch.allclose(got, want, atol=1e-5):
        hint = ("(N, 1) minus (N,) broadcasts to (N, N): reshape the prediction to the target's shape"
                if isinstance(got, Tensor) and got.numel() == 1 and math.isclose(got.item(), 4.6875, rel_tol=1e-4)
                else "use the mean squared error between prediction.reshape(target.shape) and the target")
        return report(False, "", f"regression_loss gave {error or got}, expected {want.item():.4f}: {hint}.")
    return report(True, "all three heads are matched to their losses: logits + CE, logit + BCE-with-logits, "
                        "value + MSE with matching shapes.", "")
