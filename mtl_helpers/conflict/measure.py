"""Measuring conflict during training: cosines, conflict rate, magnitude ratio."""

from __future__ import annotations

import torch
from torch import Tensor

from .core import gradient_cosine


class ConflictRecorder:
    """An ``on_step`` callback for :func:`~mtl_helpers.train.fit` that measures conflict.

    Per step it stores the cosine matrix of the task gradients, their norms and the losses;
    with ``keep_every=k`` it also keeps every k-th G (on the CPU) for later analysis. It needs
    G, so train with a ``gradient_method`` (``make_direction("sum")`` reproduces plain
    equal-weight training while exposing G).
    """

    def __init__(self, keep_every: int = 0) -> None:
        self.keep_every = keep_every
        self.cosines: list[Tensor] = []
        self.norms: list[Tensor] = []
        self.losses: list[Tensor] = []
        self.kept: list[Tensor] = []

    def __call__(self, info) -> None:  # info: mtl_helpers.train.StepInfo
        if info.grads is None:
            raise ValueError("ConflictRecorder needs per-task gradients: train with a gradient_method, "
                             "e.g. fit(..., gradient_method=make_direction('sum'), on_step=recorder).")
        self.cosines.append(gradient_cosine(info.grads).cpu())
        self.norms.append(info.grads.norm(dim=1).cpu())
        self.losses.append(info.losses.cpu())
        if self.keep_every and info.step % self.keep_every == 0:
            self.kept.append(info.grads.cpu().clone())

    def cosine(self, i: int = 0, j: int = 1) -> Tensor:
        """(steps,) cos(g_i, g_j) over training."""
        if not self.cosines:
            raise ValueError("Nothing recorded yet: pass the recorder to fit(on_step=...).")
        return torch.stack(self.cosines)[:, i, j]

    def conflict_rate(self, i: int = 0, j: int = 1) -> float:
        """Fraction of recorded steps with g_i·g_j < 0."""
        return (self.cosine(i, j) < 0).double().mean().item()

    def norm_ratio(self, i: int = 0, j: int = 1) -> Tensor:
        """(steps,) ‖g_i‖/‖g_j‖: the other half of conflict (a large gradient dominates the sum)."""
        norms = torch.stack(self.norms)
        return norms[:, i] / norms[:, j].clamp_min(1e-30)


def within_and_between_cosines(stack: Tensor) -> dict[str, Tensor]:
    """From a (B, T, P) stack of per-batch G (``experiments.nb05.gradients_on_batches``):
    ``"between"`` holds cos(g_i, g_j) of different tasks on the same batch (B·T(T−1)/2 values);
    ``"within"`` holds cos of the *same* task on two different batches (T·B(B−1)/2 values), the
    noise floor."""
    if stack.ndim != 3 or stack.shape[0] < 2:
        raise ValueError(f"stack must be (batches >= 2, T, P), got {tuple(stack.shape)}.")
    n_batches, n_tasks, _ = stack.shape
    between = [gradient_cosine(stack[b])[i, j] for b in range(n_batches)
               for i in range(n_tasks) for j in range(i + 1, n_tasks)]
    within = [gradient_cosine(stack[:, t])[a, b] for t in range(n_tasks)
              for a in range(n_batches) for b in range(a + 1, n_batches)]
    return {"between": torch.stack(between), "within": torch.stack(within)}
