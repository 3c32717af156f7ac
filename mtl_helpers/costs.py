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

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from .data import Split
from .tasks import Task, check_tasks
from .train import resolve_methods, train_step


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

    The step runs on a deep copy of ``model`` (with a throw-away Adam), so the model is left as
    it is. A backward pass is counted each time autograd computes the gradient of the first
    shared parameter (the trunk's first layer): T for a method that needs every task's
    gradient on the parameters, 1 for the plain sum or MGDA-UB.
    """
    tasks = check_tasks(tasks)
    clone = copy.deepcopy(model).train()
    weighting, gradient_method = resolve_methods(clone, tasks, weighting, gradient_method)
    params = list(clone.parameters()) + (list(weighting.parameters()) if isinstance(weighting, nn.Module) else [])
    optimizer = torch.optim.Adam(params)
    device = next(clone.parameters()).device
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
