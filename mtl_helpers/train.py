"""One training loop for every notebook.

``fit`` trains any model that returns ``{task: output}`` on a :class:`~mtl_helpers.data.Split`.
Per step it computes one loss per task, L = (L_1, …, L_T), and then, depending on the hooks:

* default: back-propagate Σ_t L_t (equal weights, the plain multi-task loss);
* ``weighting``: back-propagate ``weighting(L)`` — a loss-level balancer (an object or a name
  of :data:`mtl_helpers.weighting.WEIGHTINGS`; notebook 04). If it is an ``nn.Module`` its
  parameters are trained too; if it has ``epoch_end(mean_losses)`` it is called after each epoch;
* ``gradient_method``: a gradient-level method (a direction function or a name of
  :data:`mtl_helpers.conflict.GRADIENT_METHODS`; notebook 05). The step builds G (T × P) on
  the shared parameters, writes ``gradient_method(G)`` (a P-vector) into their ``.grad``, and
  gives each head its own task's gradient. With ``gradients_wrt="representation"`` G is taken
  w.r.t. the shared representation z instead (MGDA-UB: one trunk backward rather than T);
* ``penalty(model)``: an extra term added to the loss (the L2 coupling of notebook 03).

One optimisation step is :func:`train_step`; ``fit`` loops over it, and the cost counters of
:mod:`mtl_helpers.costs` call the very same function. With ``val`` and ``restore_best=True``
``fit`` keeps the weights of the epoch with the best validation score: the training length is
then chosen on validation, as the fair-comparison protocol asks. A non-finite loss stops
training with a ``ValueError`` naming the task and the step.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import Tensor, nn

from .conflict import make_direction, per_task_gradients, set_grad
from .data import Split
from .models import HardSharing
from .tasks import Task, check_tasks
from .utils import quiet
from .weighting import make_weighting


@dataclass
class StepInfo:
    """What ``on_step`` callbacks receive after every optimisation step."""

    epoch: int
    step: int
    losses: Tensor  # (T,), detached
    grads: Tensor | None  # (T, P) when a gradient method ran, else None


@dataclass
class History:
    """Per-epoch records: ``train_loss/<task>``, ``val/<task>`` (the task metric), ``seconds``;
    ``best_epoch`` is the epoch whose weights the model kept (the last one unless
    ``fit(restore_best=True)``)."""

    records: list[dict] = field(default_factory=list)
    best_epoch: int = 0

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.records).set_index("epoch")

    def last(self, key: str) -> float:
        return self.records[-1][key]

    @property
    def seconds(self) -> float:
        """Total training time (excluding validation)."""
        return sum(r["seconds"] for r in self.records)


def task_losses(outputs: dict[str, Tensor], batch: Split, tasks: Sequence[Task]) -> Tensor:
    """(T,) tensor of mean batch losses, skipping rows whose label is masked out."""
    losses = []
    for task in tasks:
        if task.name not in outputs:
            raise ValueError(f"The model has no output for task {task.name!r}; it gives {list(outputs)}.")
        out, target = outputs[task.name], batch.y[task.name]
        mask = batch.masks.get(task.name)
        if mask is not None:
            if not mask.any():  # no label for this task in the batch: contributes nothing
                losses.append(out.sum() * 0.0)
                continue
            out, target = out[mask], target[mask]
        losses.append(task.loss(out, target))
    return torch.stack(losses)


def _check_finite(losses: Tensor, tasks: Sequence[Task], epoch: int, step: int) -> None:
    if math.isfinite(float(losses.detach().sum())):  # the fast path, every step: one number to read
        return
    bad = ~torch.isfinite(losses)
    if bad.any():  # (else finite losses whose sum overflowed: nothing to report)
        i = int(bad.nonzero()[0])
        raise ValueError(f"Task {tasks[i].name!r} has a non-finite loss ({losses[i].item()}) at epoch {epoch}, "
                         f"step {step}: lower the learning rate, check the inputs and targets for NaN/inf, "
                         f"or check that the head's output suits the loss.")


def _require_shared_and_heads(model: nn.Module) -> None:
    if not hasattr(model, "shared_parameters") or not hasattr(model, "task_parameters"):
        raise ValueError("A gradient_method needs a model with shared_parameters() and task_parameters() "
                         "(e.g. HardSharing).")


def _shared_and_head_params(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """The trunk's and the heads' parameters. Listing them walks the module tree, which costs
    about as much as a small head's backward pass: a step lists only what it uses."""
    _require_shared_and_heads(model)
    return list(model.shared_parameters()), list(model.task_parameters())


def _gradient_step(model: nn.Module, batch: Split, tasks: Sequence[Task], method: Callable[[Tensor], Tensor],
                   wrt: str, epoch: int, step: int) -> tuple[Tensor, Tensor]:
    """Fill ``.grad`` using a gradient-level method; returns (losses, G).

    The T backward passes that build G also give each head its own task's gradient (the heads
    ride along, :func:`~mtl_helpers.conflict.per_task_gradients`), and each pass starts from its
    own task's loss, so it runs that task's head only. With ``wrt="representation"`` and
    :class:`~mtl_helpers.models.HardSharing`'s decode (one head per task) each head reads its own detached
    copy z_i of z: L_i depends on z_i alone, so one backward pass of Σ_i L_i gives every
    ∇_z L_i = ∇_{z_i} L_i separately (and the heads their gradients), then one pass takes the
    trunk from z: two backward passes whatever T is.
    """
    _require_shared_and_heads(model)
    copies = None
    if wrt == "parameters":
        outputs = model(batch.x)
    elif wrt == "representation":
        z = model.encode(batch.x)
        if type(model).decode is HardSharing.decode:  # decode = one head per task: give each its own copy of z
            copies = {t.name: z.detach().requires_grad_() for t in tasks if t.name in model.heads}
            outputs = {name: model.heads[name](copy) for name, copy in copies.items()}
        else:
            outputs = model.decode(z)
    else:
        raise ValueError(f"gradients_wrt must be 'parameters' or 'representation', got {wrt!r}.")
    if copies is not None:  # L_i reaches z only through its own copy: one backward pass of Σ L_i
        losses = task_losses(outputs, batch, tasks)
        _check_finite(losses, tasks, epoch, step)
        losses.sum().backward()  # gives every ∇_z L_i apart, and the heads their gradients
        grads = torch.stack([(torch.zeros_like(c) if c.grad is None else c.grad).reshape(-1) for c in copies.values()])
        direction = _checked(method(grads), grads)
        z.backward(direction.view_as(z))  # the trunk gets J_zᵀ d: one backward pass
        return losses.detach(), grads
    per_task = [task_losses(outputs, batch, [task])[0] for task in tasks]  # T passes: not one stack, see above
    losses = torch.stack([loss.detach() for loss in per_task])
    _check_finite(losses, tasks, epoch, step)
    if wrt == "parameters":
        shared, heads = _shared_and_head_params(model)
        grads = per_task_gradients(per_task, shared, retain_graph=False, task_params=heads)  # T trunk passes
        direction = _checked(method(grads), grads)
        if direction.untyped_storage().data_ptr() == grads.untyped_storage().data_ptr():
            direction = direction.clone()  # a view of G: G must stay as on_step will see it
        for p, d in zip(shared, direction.contiguous().split([p.numel() for p in shared])):
            set_grad(p, d.view_as(p))
    else:  # ∇_z L_i: T backward passes through the heads only, then one through the trunk
        grads = per_task_gradients(per_task, [z], retain_graph=False, task_params=list(model.task_parameters()))
        direction = _checked(method(grads), grads)
        z.backward(direction.view_as(z))  # the trunk gets J_zᵀ d: one backward pass
    return losses, grads


def _checked(direction: Tensor, grads: Tensor) -> Tensor:
    if direction.shape != (grads.shape[1],):
        raise ValueError(f"gradient_method must return a ({grads.shape[1]},) vector, got {tuple(direction.shape)}.")
    return direction


def train_step(model: nn.Module, batch: Split, tasks: Sequence[Task], optimizer: torch.optim.Optimizer, *,
               weighting: Callable[[Tensor], Tensor] | None = None,
               gradient_method: Callable[[Tensor], Tensor] | None = None, gradients_wrt: str = "parameters",
               penalty: Callable[[nn.Module], Tensor] | None = None, epoch: int = 0,
               step: int = 0) -> tuple[Tensor, Tensor | None]:
    """One optimisation step on ``batch``; returns the detached task losses (T,) and G (or None).

    Default: back-propagate Σ_t L_t (+ penalty). With ``weighting``: back-propagate
    ``weighting(L)`` (+ penalty). With ``gradient_method``: see :func:`_gradient_step`.
    """
    optimizer.zero_grad(set_to_none=True)
    grads = None
    if gradient_method is not None:
        losses, grads = _gradient_step(model, batch, tasks, gradient_method, gradients_wrt, epoch, step)
        if penalty is not None:
            penalty(model).backward()
    else:
        losses = task_losses(model(batch.x), batch, tasks)
        _check_finite(losses, tasks, epoch, step)
        total = weighting(losses) if weighting is not None else losses.sum()
        if penalty is not None:
            total = total + penalty(model)
        total.backward()
        losses = losses.detach()
    optimizer.step()
    return losses, grads


def make_optimizer(params: Iterable[nn.Parameter], lr: float = 1e-3, weight_decay: float = 0.0) -> torch.optim.Adam:
    """The optimizer :func:`fit` trains with: Adam, fused wherever its kernel can run (float
    parameters on a CPU or GPU): one pass over all parameters, ~20 % faster steps for the
    course's small MLPs, the same update up to float rounding."""
    params = list(params)
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused)


def selection_score(metrics: dict[str, float], tasks: Sequence[Task]) -> float:
    """The default validation score a run is selected on: the mean over tasks of the metric,
    negated where lower is better (RMSE). With tasks in different units, pass your own."""
    return sum(metrics[t.name] if t.higher_is_better else -metrics[t.name] for t in tasks) / len(tasks)


def resolve_methods(model: nn.Module, tasks: Sequence[Task], weighting: object,
                    gradient_method: object) -> tuple[Callable | None, Callable | None]:
    """Turn registry names into objects: ``weighting="uw"`` or ``gradient_method="pcgrad"``."""
    if weighting is not None and gradient_method is not None:
        raise ValueError("Use either a loss weighting or a gradient method, not both.")
    if isinstance(weighting, str):
        weighting = make_weighting(weighting, model, tasks)
    if isinstance(gradient_method, str):
        gradient_method = make_direction(gradient_method)
    return weighting, gradient_method


def fit(model: nn.Module, train: Split, tasks: Sequence[Task], *, epochs: int = 5, lr: float = 1e-3,
        batch_size: int = 128, weight_decay: float = 0.0, val: Split | None = None, restore_best: bool = False,
        score: Callable[[dict[str, float]], float] | None = None, val_every: int = 1,
        weighting: Callable[[Tensor], Tensor] | str | None = None,
        gradient_method: Callable[[Tensor], Tensor] | str | None = None, gradients_wrt: str = "parameters",
        penalty: Callable[[nn.Module], Tensor] | None = None,
        on_step: Callable[[StepInfo], None] | None = None, on_epoch: Callable[[int, dict], None] | None = None,
        device: torch.device | str | None = None, seed: int = 0, verbose: bool | None = None) -> History:
    """Train ``model`` with Adam on ``train``; return the per-epoch :class:`History`.

    Mini-batch order is drawn from its own generator seeded by ``seed``, so two runs with the
    same seed (and same initial weights) see the same batches. With ``val``, the validation
    metrics are recorded every ``val_every`` epochs (and at the last); ``restore_best=True``
    then keeps the weights of the best recorded epoch by ``score`` (default
    :func:`selection_score`). ``on_step(StepInfo)`` and ``on_epoch(epoch, record)`` are
    called after every step and every epoch.
    """
    tasks = check_tasks(tasks)
    if epochs < 1 or batch_size < 1 or val_every < 1:
        raise ValueError(f"epochs, batch_size and val_every must be >= 1, got {epochs}, {batch_size}, {val_every}.")
    if restore_best and val is None:
        raise ValueError("restore_best=True chooses the epoch on validation: pass val=<the validation split>.")
    for task in tasks:
        if task.name not in train.y:
            raise ValueError(f"Unknown task {task.name!r}: the training split has targets for {list(train.y)}.")
    weighting, gradient_method = resolve_methods(model, tasks, weighting, gradient_method)
    score = score or (lambda metrics: selection_score(metrics, tasks))
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    train = train.to(device)
    params = list(model.parameters())
    if isinstance(weighting, nn.Module):
        weighting.to(device)
        params += list(weighting.parameters())
    optimizer = make_optimizer(params, lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    show = (not quiet()) if verbose is None else verbose
    history, step, best = History(), 0, (-float("inf"), None)
    for epoch in range(1, epochs + 1):
        model.train()
        start, loss_sum, n_batches = time.perf_counter(), torch.zeros(len(tasks), device=device), 0
        for batch in train.batches(batch_size, generator):
            losses, grads = train_step(model, batch, tasks, optimizer, weighting=weighting,
                                       gradient_method=gradient_method, gradients_wrt=gradients_wrt,
                                       penalty=penalty, epoch=epoch, step=step)
            loss_sum += losses
            n_batches += 1
            if on_step is not None:
                on_step(StepInfo(epoch, step, losses, grads))
            step += 1
        seconds = time.perf_counter() - start
        mean_losses = loss_sum / n_batches
        if hasattr(weighting, "epoch_end"):
            weighting.epoch_end(mean_losses)
        record = {"epoch": epoch, "seconds": seconds}
        record.update({f"train_loss/{t.name}": mean_losses[i].item() for i, t in enumerate(tasks)})
        if val is not None and (epoch % val_every == 0 or epoch == epochs):
            metrics = evaluate(model, val, tasks)
            record.update({f"val/{k}": v for k, v in metrics.items()})
            if restore_best and score(metrics) > best[0]:
                best = (score(metrics), epoch, copy.deepcopy(model.state_dict()))
        history.records.append(record)
        if on_epoch is not None:
            on_epoch(epoch, record)
        if show:
            shown = "  ".join(f"{k}={v:.4f}" for k, v in record.items() if k not in ("epoch", "seconds"))
            print(f"epoch {epoch:>3}/{epochs}  {seconds:5.2f}s  {shown}")
    history.best_epoch = epochs
    if restore_best and best[1] is not None:
        model.load_state_dict(best[2])
        history.best_epoch = best[1]
    return history


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, batch_size: int = 4096) -> dict[str, Tensor]:
    """The model's outputs on ``x`` in evaluation mode, batch by batch, gathered on the CPU."""
    model.eval()
    device = next(model.parameters()).device
    chunks = [model(xb.to(device)) for xb in x.split(batch_size)]
    return {k: torch.cat([c[k] for c in chunks]).cpu() for k in chunks[0]}


def evaluate(model: nn.Module, split: Split, tasks: Sequence[Task]) -> dict[str, float]:
    """``{task name: metric}`` on a whole split (accuracy, AUC or RMSE, per the task's kind)."""
    tasks = check_tasks(tasks)
    outputs = predict(model, split.x)
    result = {}
    for task in tasks:
        if task.name not in outputs:
            raise ValueError(f"The model has no output for task {task.name!r}; it gives {list(outputs)}.")
        result[task.name] = task.metric(outputs[task.name], split.y[task.name].cpu())
    return result
