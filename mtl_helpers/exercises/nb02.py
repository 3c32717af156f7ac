"""Checkers for notebook 02 (hard parameter sharing).

Each checker runs the learner's function on cases with known answers, prints ✔ or ✘ with a
hint and returns True/False. A wrong answer never raises, and a stub that still raises
``NotImplementedError`` reads "not implemented yet" (:func:`~mtl_helpers.exercises.attempt`).
The expected answers come from the package: :func:`~mtl_helpers.models.parameter_counts`,
:meth:`Split.labelled <mtl_helpers.data.Split.labelled>`, :class:`~mtl_helpers.models.HardSharing`
with :func:`~mtl_helpers.train.task_losses` (the from-scratch exercise),
:func:`~mtl_helpers.models.export_task_model` and :meth:`Task.loss <mtl_helpers.tasks.Task.loss>`.
"""

from __future__ import annotations

import math
import numbers
from collections import Counter
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data import Split
from ..models import HardSharing, export_task_model, make_head, mlp, parameter_counts
from ..tasks import Task
from ..train import task_losses
from ..utils import count_parameters
from . import Failed, attempt, check_cases, report

# --------------------------------------------------------------------------- 1. parameter ratio


def reference_parameter_ratio(trunk_params: int, head_params: int, n_tasks: int) -> float:
    """The package's answer: shared / separate from :func:`~mtl_helpers.models.parameter_counts`."""
    counts = parameter_counts(n_tasks, trunk_params, head_params)
    return counts["shared"] / counts["separate"]


def _as_number(value: object) -> float | None:
    """``value`` as a float if it is one real number (int, float, NumPy scalar, 0-d tensor), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, Tensor):
        return float(value.item()) if value.ndim == 0 and not value.is_complex() else None
    if isinstance(value, numbers.Real):
        return float(value)
    return None


def _ratio_hint(case: tuple, got: object, want: float) -> str:
    trunk, head, n_tasks = case
    number = _as_number(got)
    if number is None:
        return (f"parameter_ratio{case} returned {type(got).__name__} {got!r}: return one number (a float, or a "
                "0-d tensor), the ratio for these three sizes.")
    hints = [(1 / n_tasks, "the shared model still has one head per task: P_f + T·P_h, not P_f + P_h"),
             ((n_tasks * (trunk + head)) / (trunk + n_tasks * head) if trunk + n_tasks * head else math.nan,
              "inverted: the hard-sharing model's size goes on top"),
             ((trunk + n_tasks * head) / (trunk + head) if trunk + head else math.nan,
              "compare with T single-task nets, not one")]
    if isinstance(got, numbers.Integral) and want != int(want):
        hints.insert(0, (number, "an integer: use / (true division), not //"))
    hint = next((text for value, text in hints if math.isclose(number, value, rel_tol=1e-6)),
                "divide the shared model's size (P_f + T·P_h) by that of T full single-task nets (T·(P_f + P_h))")
    return f"parameter_ratio{case} = {got}, expected {want:.4f}: {hint}."


def check_parameter_ratio(parameter_ratio: Callable[[int, int, int], float]) -> bool:
    """``parameter_ratio(trunk_params, head_params, n_tasks)`` must give the size of the
    hard-sharing model divided by the total size of ``n_tasks`` single-task networks, as one
    number (a Python or NumPy number, or a 0-d tensor)."""
    cases = [(17696, 2410, 2), (100, 0, 4), (0, 10, 3), (1000, 100, 1), (5000, 50, 10)]

    def same(got: object, want: float) -> bool:
        number = _as_number(got)
        return number is not None and math.isclose(number, want, rel_tol=1e-6)

    return check_cases(
        parameter_ratio, cases, reference_parameter_ratio, same=same,
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


# --------------------------------------------------------------------------- 3. hard sharing from scratch

SCRATCH_SIZES = {"in_dim": 5, "hidden": 7, "outputs": {"digit": 3, "odd": 1}}


def _scratch_tasks() -> list[Task]:
    return [Task("digit", "classification", 3), Task("odd", "binary")]


def _scratch_batches() -> list[Split]:
    """Tiny masked batches: ``odd`` is labelled on some rows only (and on none in the last
    batch), ``digit`` on every row of the first and some of the second. The unlabelled rows
    carry wrong-looking targets, so a loss that ignores the mask gives another number."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(12, SCRATCH_SIZES["in_dim"], generator=g)
    digit = torch.tensor([0, 2, 1, 1, 0, 2, 2, 0, 1, 0, 2, 1])
    odd = torch.tensor([1.0, 0, 0, 1, 1, 0, 1, 0, 0, 1, 1, 0])
    odd_mask = torch.tensor([1, 0, 1, 1, 0, 0, 0, 1, 0, 0, 1, 0], dtype=torch.bool)
    digit_mask = torch.tensor([1, 1, 0, 1, 1, 1, 0, 1, 1, 0, 1, 1], dtype=torch.bool)
    full = Split(x, {"digit": digit, "odd": odd}, {"odd": odd_mask})
    both = Split(x, {"digit": digit, "odd": odd}, {"odd": odd_mask, "digit": digit_mask})
    none = Split(x[:4], {"digit": digit[:4], "odd": odd[:4]}, {"odd": torch.zeros(4, dtype=torch.bool)})
    return [full, both, none]


def reference_scratch_model() -> HardSharing:
    """The package's answer: ``HardSharing`` with a Linear → ReLU trunk and one linear head per task."""
    sizes = SCRATCH_SIZES
    return HardSharing(nn.Sequential(nn.Linear(sizes["in_dim"], sizes["hidden"]), nn.ReLU()),
                       {t: nn.Linear(sizes["hidden"], n) for t, n in sizes["outputs"].items()})


def _shapes(model: nn.Module) -> Counter:
    return Counter(tuple(p.shape) for p in model.parameters())


def _load_by_shape(source: nn.Module, target: nn.Module) -> None:
    """Copy ``source``'s parameters into ``target``'s: every shape occurs once, so it says where."""
    by_shape = {tuple(p.shape): p for p in source.parameters()}
    with torch.no_grad():
        for p in target.parameters():
            p.copy_(by_shape[tuple(p.shape)])


def _model_problem(model: object, x: Tensor) -> str | None:
    """What is wrong with the learner's hard-sharing model (None: nothing)."""
    if not isinstance(model, nn.Module):
        return f"make_model must return an nn.Module, got {type(model).__name__}."
    reference = reference_scratch_model()
    hidden, in_dim = SCRATCH_SIZES["hidden"], SCRATCH_SIZES["in_dim"]
    got, want = _shapes(model), _shapes(reference)
    if got != want:
        if got[(hidden, in_dim)] > 1:
            return ("The trunk's Linear(in_dim, hidden) appears more than once: that is one tower per task. Hard "
                    "sharing keeps ONE trunk, used by every head.")
        if got[(hidden, in_dim)] == 0:
            return "There is no shared Linear(in_dim, hidden) layer: the trunk is missing."
        return (f"The parameters have shapes {sorted(got.elements())}, expected {sorted(want.elements())}: one "
                "trunk Linear(in_dim, hidden), then one Linear(hidden, n_outputs) head per task.")
    _load_by_shape(model, reference)
    calls = []
    hooks = [m.register_forward_hook(lambda *_: calls.append(1)) for m in model.modules()
             if isinstance(m, nn.Linear) and tuple(m.weight.shape) == (hidden, in_dim)]
    try:
        out = attempt(model, x)
    except Failed as failure:
        return f"Calling your model failed: {failure}."
    finally:
        for hook in hooks:
            hook.remove()
    if not isinstance(out, dict) or set(out) != set(SCRATCH_SIZES["outputs"]):
        return (f"forward(x) must return a dict {{task name: output}} with keys {sorted(SCRATCH_SIZES['outputs'])}, "
                f"got {type(out).__name__}{' with keys ' + str(sorted(out)) if isinstance(out, dict) else ''}.")
    with torch.no_grad():
        want_out = reference(x)
        z = reference.trunk[0](x)  # the trunk without its ReLU
        linear = {t: head(z) for t, head in reference.heads.items()}
    for task, value in out.items():
        w = want_out[task]
        if not isinstance(value, Tensor) or value.numel() != w.numel():
            return f"Output {task!r} should hold {tuple(w.shape)} values, got {getattr(value, 'shape', value)}."
        v = value.detach().reshape(w.shape)
        if torch.allclose(v, w, atol=1e-5):
            continue
        if torch.allclose(v, linear[task], atol=1e-5):
            return "The outputs match a trunk without its ReLU: the trunk is Linear(in_dim, hidden) → ReLU."
        if task == "digit" and torch.allclose(v, w.softmax(1), atol=1e-5):
            return "The classification head applies a softmax: heads output raw logits (the loss applies it)."
        if task == "odd" and torch.allclose(v, torch.sigmoid(w), atol=1e-5):
            return "The binary head applies a sigmoid: heads output raw logits (the loss applies it)."
        return f"Output {task!r} differs from head(ReLU(Linear(x))): each head reads the shared trunk's output."
    if len(calls) != 1:
        return (f"The outputs are right, but the trunk ran {len(calls)} times for one forward pass: run it once "
                "and give its output to every head (that is where hard sharing saves compute).")
    return None


def _loss_problem(joint_loss: Callable, batch: Split, tasks: list[Task], index: int) -> str | None:
    """Compare the learner's loss (value and gradient w.r.t. the outputs) with the package's."""
    torch.manual_seed(10 + index)
    raw = {"digit": torch.randn(len(batch), 3), "odd": torch.randn(len(batch), 1)}
    mine = {t: v.clone().requires_grad_() for t, v in raw.items()}
    theirs = {t: v.clone().requires_grad_() for t, v in raw.items()}
    want = task_losses(theirs, batch, tasks).sum()
    want_grads = torch.autograd.grad(want, list(theirs.values()))
    try:
        got = attempt(joint_loss, mine, batch, tasks)
    except Failed as failure:
        return f"joint_loss failed on batch {index}: {failure}."
    if not isinstance(got, Tensor) or got.numel() != 1:
        return f"joint_loss must return a one-element tensor (the total loss), got {type(got).__name__}."
    value = got.reshape(())
    if not torch.isfinite(value):
        return (f"joint_loss gave {value.item()} on a batch where no row carries an 'odd' label: a task without a "
                "label in the batch must add 0 (skip it), not the mean of nothing.")
    if not torch.isclose(value, want, atol=1e-5):
        per_task = task_losses(theirs, batch, tasks).detach()
        ignoring = task_losses(theirs, Split(batch.x, batch.y), tasks).detach()
        labelled = {t.name: batch.masks.get(t.name, torch.ones(len(batch), dtype=torch.bool)) for t in tasks}
        diluted = sum(per_task[i] * labelled[t.name].float().mean() for i, t in enumerate(tasks))
        hints = [(per_task.mean(), "you averaged the task losses: add them (λ_t = 1)"),
                 (ignoring.sum(), "you ignored the masks: average each task's loss over its labelled rows only"),
                 (diluted, "you zeroed the unlabelled rows but divided by the batch size: divide by the number "
                           "of labelled rows")]
        hint = next((text for v, text in hints if torch.isclose(value, v, atol=1e-5)),
                    "per task, keep the rows whose mask is True, take the task's mean loss there, then add the tasks")
        return f"joint_loss gave {value.item():.4f} on batch {index}, expected {want.item():.4f}: {hint}."
    if not value.requires_grad:
        return "The loss has no gradient: do not detach it or call .item() inside joint_loss."
    grads = torch.autograd.grad(value, list(mine.values()), allow_unused=True)  # a skipped task: None, i.e. 0
    for (task, g), w in zip(zip(mine, grads, strict=True), want_grads, strict=True):
        if not torch.allclose(torch.zeros_like(w) if g is None else g, w, atol=1e-6):
            return f"The loss has the right value but the wrong gradient for {task!r}: compute it from the outputs."
    return None


def check_hard_sharing(make_model: Callable[[int, int, dict[str, int]], nn.Module],
                       joint_loss: Callable[[dict[str, Tensor], Split, list[Task]], Tensor]) -> bool:
    """Hard sharing from scratch, checked against the package.

    * ``make_model(in_dim, hidden, outputs)`` — a module with ONE trunk Linear(in_dim, hidden)
      → ReLU and one Linear(hidden, n) head per task (``outputs``: task name → n); its forward
      returns ``{task: raw output}``, running the trunk once. It must compute what
      :class:`~mtl_helpers.models.HardSharing` computes with the same weights.
    * ``joint_loss(outputs, batch, tasks)`` — Σ_t (mean loss of task t over the rows of the batch
      that carry its label, ``batch.masks[t]`` where there is a mask); a task with no label in
      the batch adds 0. It must equal ``train.task_losses(outputs, batch, tasks).sum()``, value
      and gradient.
    """
    sizes = SCRATCH_SIZES
    batches, tasks = _scratch_batches(), _scratch_tasks()
    torch.manual_seed(0)
    try:
        model = attempt(make_model, sizes["in_dim"], sizes["hidden"], dict(sizes["outputs"]))
    except Failed as failure:
        return report(False, "", f"make_model: {failure}.")
    problem = _model_problem(model, batches[0].x)
    if problem:
        return report(False, "", problem)
    for index, batch in enumerate(batches):
        problem = _loss_problem(joint_loss, batch, tasks, index)
        if problem:
            return report(False, "", problem)
    return report(True, "your model computes what HardSharing computes (one trunk pass, one head per task) and "
                        "your loss is train.task_losses(...).sum(): each task averaged over its labelled rows, "
                        "the tasks added.", "")


# --------------------------------------------------------------------------- 4. export


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


# --------------------------------------------------------------------------- 5. head ↔ loss


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
