"""Gradient-level multi-task methods: each maps the per-task gradients G (T × P) to one update.

Every method is a pure function of G, so it is tested on hand-made gradients and plugged into
:func:`mtl_helpers.train.fit` by name (``fit(..., gradient_method="pcgrad")``). One file per
method, found by name; :data:`GRADIENT_METHODS` is the one registry that ``fit``, the 2-D toy
(:mod:`mtl_helpers.toy`) and the property tests read.

=================  =======================================  ===============================
name               direction d(G)                           paper
=================  =======================================  ===============================
``sum``            Σ g_i (what the plain loss sum gives)    —
``mean``           (1/T) Σ g_i                              —
``normalized``     Σ g_i/‖g_i‖                              —
``pcgrad``         Σ projected g_i                          Yu et al., NeurIPS 2020
``mgda``           Gᵀα*, α* = argmin_Δ ‖Gᵀα‖                Sener & Koltun, NeurIPS 2018
``cagrad``         g_0 + (c‖g_0‖/‖g_w‖) g_w, ÷ (1 + c)      Liu et al., NeurIPS 2021
``nash``           Gᵀα, M α = 1/α                           Navon et al., ICML 2022
=================  =======================================  ===============================

To add a method: write ``my_method(grads) -> (P,)`` in its own file, then one
:func:`register` call below. The property tests (tests/test_conflict_properties.py) then check
it for every promise its entry makes. This package imports only torch: it is a leaf.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from .cagrad import cagrad, cagrad_weights
from .core import check_grads, combine, conflicts, gradient_cosine, gram, per_task_gradients, set_grad
from .measure import ConflictRecorder, within_and_between_cosines
from .mgda import mgda_two_task_gamma, mgda_weights, min_norm_weights
from .nash_mtl import nash_mtl_weights
from .pcgrad import pcgrad
from .simple import clip_norm, mean_direction, normalized_sum, sum_direction


class Direction(Protocol):
    """What ``fit(gradient_method=...)`` calls at every step: G (T, P) → the update d (P,)."""

    def __call__(self, grads: Tensor) -> Tensor: ...


@dataclass(frozen=True)
class GradientMethod:
    """A registry entry: how to build a method's direction, and what the method promises.

    Attributes:
        name: the key, also used by the toy and the notebooks.
        build: options → a :class:`Direction` (e.g. ``build(c=0.4)`` for CAGrad).
        paper: where it comes from.
        no_conflict: when g_i·d ≥ 0 holds for every task i: ``"always"``, ``"two_tasks"``
            (a theorem for T = 2 only) or ``"never"`` (no such promise).
        homogeneity: k with d(sG) = s^k d(G) for s > 0 (1: scales with the gradients;
            0: scale-free, like Nash-MTL and normalisation).
        aligned: the expected d when all T rows of G equal one g: ``aligned(g, T)``.
        any_order: True if d does not depend on the order of the tasks for any T
            (PCGrad visits the tasks in a random order: only T = 2 is order-free).
    """

    name: str
    build: Callable[..., Direction]
    paper: str
    no_conflict: str
    homogeneity: int
    aligned: Callable[[Tensor, int], Tensor]
    any_order: bool = True


GRADIENT_METHODS: dict[str, GradientMethod] = {}


def register(method: GradientMethod) -> GradientMethod:
    """Add a method to :data:`GRADIENT_METHODS` (its name must be new)."""
    if method.name in GRADIENT_METHODS:
        raise ValueError(f"A gradient method named {method.name!r} is already registered.")
    if method.no_conflict not in ("always", "two_tasks", "never"):
        raise ValueError(f"no_conflict must be 'always', 'two_tasks' or 'never', got {method.no_conflict!r}.")
    GRADIENT_METHODS[method.name] = method
    return method


def weights_to_direction(weight_fn: Callable[[Tensor], Tensor], checks_grads: bool = False) -> Direction:
    """Turn a weight solver G → α (T,) into a direction G → Gᵀα (P,). ``checks_grads=True``
    says that ``weight_fn`` validates G itself (:func:`check_grads`), so it is not validated twice."""
    def direction(grads: Tensor) -> Tensor:
        return combine(weight_fn(grads), grads, check=not checks_grads)
    direction.__name__ = f"{getattr(weight_fn, '__name__', 'weights')}_direction"
    return direction


def make_direction(name: str, **options) -> Direction:
    """The direction function of a registered method, e.g. ``make_direction("cagrad", c=0.4)``.

    Options: ``pcgrad(seed=0)`` seeds the random task order; ``mgda(normalize="none")``;
    ``cagrad(c=0.5)``. For MGDA-UB pass ``fit(..., gradient_method="mgda",
    gradients_wrt="representation")``: G is then taken w.r.t. the shared representation z.
    """
    if name not in GRADIENT_METHODS:
        raise ValueError(f"Unknown gradient method {name!r}; choose one of {list(GRADIENT_METHODS)}.")
    return GRADIENT_METHODS[name].build(**options)


def _pcgrad(seed: int = 0) -> Direction:
    generator = torch.Generator().manual_seed(seed)
    return lambda grads: pcgrad(grads, generator=generator)


def _unit(g: Tensor) -> Tensor:
    return g / g.norm()


register(GradientMethod("sum", lambda: sum_direction, "—", "never", 1, lambda g, T: T * g))
register(GradientMethod("mean", lambda: mean_direction, "—", "never", 1, lambda g, T: g))
register(GradientMethod("normalized", lambda: normalized_sum, "—", "two_tasks", 0, lambda g, T: T * _unit(g)))
register(GradientMethod("pcgrad", _pcgrad, "Yu et al., NeurIPS 2020", "two_tasks", 1, lambda g, T: T * g,
                        any_order=False))
register(GradientMethod("mgda", lambda normalize="none": weights_to_direction(
    lambda grads: mgda_weights(grads, normalize=normalize), checks_grads=True), "Sener & Koltun, NeurIPS 2018",
    "always", 1, lambda g, T: g))
register(GradientMethod("cagrad", lambda c=0.5: (lambda grads: cagrad(grads, c=c)), "Liu et al., NeurIPS 2021",
                        "never", 1, lambda g, T: g))
register(GradientMethod("nash", lambda: weights_to_direction(nash_mtl_weights, checks_grads=True),
                        "Navon et al., ICML 2022", "always", 0, lambda g, T: math.sqrt(T) * _unit(g)))

METHODS = tuple(GRADIENT_METHODS)

__all__ = ["Direction", "GradientMethod", "GRADIENT_METHODS", "METHODS", "register", "make_direction",
           "weights_to_direction", "cagrad", "cagrad_weights", "check_grads", "combine", "conflicts",
           "gradient_cosine", "gram", "per_task_gradients", "set_grad", "ConflictRecorder",
           "within_and_between_cosines",
           "mgda_two_task_gamma", "mgda_weights", "min_norm_weights", "nash_mtl_weights", "pcgrad", "clip_norm",
           "mean_direction", "normalized_sum", "sum_direction"]
