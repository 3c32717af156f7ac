"""Deterministic costs: what a claim about cost may assert.

Wall-clock time depends on the machine and on whatever else it runs, so a claim such as
"MGDA-UB is cheaper than MGDA" is checked with counts that do not: parameters
(:func:`~mtl_helpers.utils.count_parameters`), floating-point operations per training step
(``torch.utils.flop_counter.FlopCounterMode``, which counts the matrix products and
convolutions of the forward *and* backward passes) and backward passes through the shared
trunk per step. Measured times are shown beside them (:func:`~mtl_helpers.utils.time_interleaved`).

Both counters run one real step of :func:`~mtl_helpers.train.train_step`, the same code
``fit`` runs, on a copy of the model.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from .data import MultiTaskDataset, Split
from .protocol import Arm
from .tasks import Task, check_tasks
from .train import make_optimizer, resolve_methods, train_step
from .utils import seed_everything, time_interleaved


@dataclass(frozen=True)
class StepCost:
    """The deterministic cost of one training step."""

    flops: int  # forward + backward matrix products and convolutions, as counted by FlopCounterMode
    trunk_backward_passes: int  # how many times the gradient reached the trunk's first parameter


def _first_layer(model: nn.Module) -> nn.Module:
    """The first Linear/Conv layer of the shared trunk (of the whole model if it has none)."""
    part = getattr(model, "trunk", model)
    for module in part.modules():
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            return module
    raise ValueError("The model has no Linear or Conv layer to count backward passes on.")


def step_cost(model: nn.Module, batch: Split, tasks: Sequence[Task], *,
              weighting: Callable[[Tensor], Tensor] | str | None = None,
              gradient_method: Callable[[Tensor], Tensor] | str | None = None, gradients_wrt: str = "parameters",
              penalty: Callable[[nn.Module], Tensor] | None = None) -> StepCost:
    """FLOPs and trunk backward passes of one :func:`~mtl_helpers.train.train_step` on ``batch``.

    The step runs on a deep copy of ``model`` (and of ``weighting``, so a GradNorm built on the
    model follows the copy), with a throw-away Adam, so both are left as they are. A backward
    pass is counted each time a gradient flows back through the output of the trunk's first
    layer (a hook on that tensor): T for a method that needs every task's gradient on the shared
    parameters, 1 for the plain sum or MGDA-UB.
    """
    tasks = check_tasks(tasks)
    # copy the model and a balancer together: a GradNorm built on the model's last shared layer
    # must point at the copy's layer, not the original's
    clone, weighting = copy.deepcopy((model, weighting))
    clone.train()
    weighting, gradient_method = resolve_methods(clone, tasks, weighting, gradient_method)
    device = next(clone.parameters()).device
    if isinstance(weighting, nn.Module):  # a learned balancer (UW's log-variances) lives with the model
        weighting.to(device)
    params = list(clone.parameters()) + (list(weighting.parameters()) if isinstance(weighting, nn.Module) else [])
    optimizer = make_optimizer(params)
    batch = batch.to(device)
    passes = [0]

    def count(grad: Tensor) -> None:
        passes[0] += 1

    def watch(module: nn.Module, inputs: tuple, output: Tensor) -> None:
        output.register_hook(count)

    handle = _first_layer(clone).register_forward_hook(watch)
    try:
        with FlopCounterMode(display=False) as counter:
            train_step(clone, batch, tasks, optimizer, weighting=weighting, gradient_method=gradient_method,
                       gradients_wrt=gradients_wrt, penalty=penalty)
    finally:
        handle.remove()
    return StepCost(int(counter.get_total_flops()), passes[0])


def inference_flops(model: nn.Module, x: Tensor) -> int:
    """FLOPs of one forward pass over the batch ``x`` (or over a list of models serving it)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.eval()(x)
    return int(counter.get_total_flops())


def _step_function(model: nn.Module, batch: Split, tasks: Sequence[Task], options: dict) -> Callable[[], object]:
    """A no-argument function that runs one real :func:`~mtl_helpers.train.train_step` of ``model``."""
    options = dict(options)
    weighting, method = resolve_methods(model, tasks, options.pop("weighting", None),
                                        options.pop("gradient_method", None))
    if isinstance(weighting, nn.Module):
        weighting.to(next(model.parameters()).device)
    params = list(model.parameters()) + (list(weighting.parameters()) if isinstance(weighting, nn.Module) else [])
    optimizer = make_optimizer(params)  # fit's own Adam: the timed step is fit's step
    options = {k: v for k, v in options.items() if k in ("gradients_wrt", "penalty")}
    return lambda: train_step(model, batch, tasks, optimizer, weighting=weighting, gradient_method=method, **options)


def step_cost_table(arms: Sequence[Arm], dataset: MultiTaskDataset, reference: str | None = None,
                    repeats: int = 10, device: torch.device | str | None = None) -> pd.DataFrame:
    """Per arm (at its first setting), the cost of one training step on a batch of the budget's size.

    Deterministic columns (:func:`step_cost`): trunk backward passes, MFLOPs per step and the
    FLOPs relative to ``reference`` (default: the first arm). Measured column: the median ms per
    step of :func:`~mtl_helpers.utils.time_interleaved`, the arms timed in turn — shown, never
    asserted.
    """
    if not arms:
        raise ValueError("step_cost_table needs at least one arm.")
    reference = reference or arms[0].name
    if reference not in [a.name for a in arms]:
        raise ValueError(f"The reference arm {reference!r} is not among the arms {[a.name for a in arms]}.")
    rows = min(dataset.require_budget().batch_size, len(dataset.train))
    batch = dataset.train.subset(torch.arange(rows))
    batch = batch.to(device) if device is not None else batch
    costs, steps = {}, {}
    for arm in arms:
        seed_everything(0)
        model = arm.build(arm.settings[0])
        model = model.to(device) if device is not None else model
        tasks = arm.task_list(dataset)
        options = arm.fit_options(model, arm.settings[0])
        costs[arm.name] = step_cost(model, batch, tasks, **{k: v for k, v in options.items()
                                                             if k in ("weighting", "gradient_method",
                                                                      "gradients_wrt", "penalty")})
        steps[arm.name] = _step_function(model, batch, tasks, options)
    seconds = time_interleaved(steps, repeats=repeats, warmup=2, device=device)
    flops_ref = costs[reference].flops
    return pd.DataFrame({name: {"trunk backward passes": cost.trunk_backward_passes,
                                "MFLOPs / step": round(cost.flops / 1e6, 2),
                                f"FLOPs × {reference}": round(cost.flops / flops_ref, 3),
                                "measured ms / step": round(seconds[name] * 1e3, 2)}
                         for name, cost in costs.items()}).T
