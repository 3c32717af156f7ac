"""Checkers for notebook 05 (gradient conflict).

Each checker calls the learner's function on hand-checkable pairs of gradients (orthogonal,
aligned, conflicting, opposite, rescaled) and compares it with the reference from
:mod:`mtl_helpers.conflict`, through the shared toolkit (:func:`~mtl_helpers.exercises.check_cases`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..conflict import mgda_weights, nash_mtl_weights, pcgrad
from . import check_cases

CASES = {
    "orthogonal": ([1.0, 0.0], [0.0, 2.0]),
    "aligned": ([1.0, 1.0], [2.0, 0.5]),
    "conflicting": ([1.0, 0.0], [-1.0, 1.0]),
    "conflicting, other sizes": ([3.0, 1.0], [-1.0, 0.5]),
    "one dominates (clipped)": ([1.0, 0.0], [2.0, 0.0]),
    "opposite": ([1.0, -2.0], [-1.0, 2.0]),
}




def _same(got: object, want: Tensor) -> bool:
    got = torch.as_tensor(got, dtype=torch.float64)
    return got.shape == want.shape and torch.allclose(got, want, atol=1e-6)


def _rounded(value: object) -> list[float] | object:
    try:
        return [round(v, 4) for v in torch.as_tensor(value, dtype=torch.float64).reshape(-1).tolist()]
    except (TypeError, ValueError, RuntimeError):
        return value


def _check(fn: Callable, reference: Callable[[Tensor, Tensor], Tensor], cases: dict[str, tuple[list, list]],
           what: str, hint: str) -> bool:
    """Compare ``fn(g1, g2)`` with ``reference`` on every named case (the learner gets copies, so
    an in-place edit of g1 or g2 cannot change the reference's answer)."""
    pairs = [(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)) for a, b in cases.values()]
    return check_cases(
        lambda g1, g2: fn(g1.clone(), g2.clone()), pairs, reference, _same,
        f"{what}: right on {len(cases)} cases ({'; '.join(cases)}).",
        lambda case, got, want: (f"{what} is wrong for g1={case[0].tolist()}, g2={case[1].tolist()}: expected "
                                 f"{_rounded(want)}, got {_rounded(got)}. {hint}"))


def check_pcgrad_two_tasks(fn: Callable[[Tensor, Tensor], Tensor]) -> bool:
    """``fn(g1, g2)`` must return PCGrad's update for two tasks with the *sum* reduction."""
    return _check(fn, lambda g1, g2: pcgrad(torch.stack([g1, g2])), CASES, "PCGrad (two tasks, sum)",
                  "Project only when g1·g2 < 0, project each gradient on the ORIGINAL other one "
                  "(g1 − (g1·g2/‖g2‖²) g2 and g2 − (g1·g2/‖g1‖²) g1), and add the two results.")


def check_mgda_two_task_weight(fn: Callable[[Tensor, Tensor], float]) -> bool:
    """``fn(g1, g2)`` must return MGDA's weight γ on g1 (the weight on g2 is 1 − γ)."""
    return _check(fn, lambda g1, g2: mgda_weights(torch.stack([g1, g2]))[0], CASES, "The MGDA weight γ on g1",
                  "γ = ((g2 − g1)·g2)/‖g1 − g2‖², clipped to [0, 1]; it is the weight on g1.")


def check_nash_two_tasks(fn: Callable[[Tensor, Tensor], Tensor]) -> bool:
    """``fn(g1, g2)`` must return Nash-MTL's (α1, α2) for two (not opposite) gradients."""
    cases = {name: pair for name, pair in CASES.items() if name != "opposite"} | {"rescaled": ([2.0, 0.0], [6.0, 0.0])}
    return _check(fn, lambda g1, g2: nash_mtl_weights(torch.stack([g1, g2]), ridge=0.0), cases,
                  "The Nash-MTL weights", "Use α_i = 1/(‖g_i‖·√(1 + cos(g1, g2))): check that α_i (Mα)_i = 1.")
