"""Checkers for notebook 05 (gradient conflict).

Each checker calls the learner's function on hand-checkable gradients (orthogonal, conflicting,
opposite, rescaled) and compares it with the reference from :mod:`mtl_helpers.conflict`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..conflict import mgda_weights, nash_mtl_weights, pcgrad
from . import report

_CASES = {
    "orthogonal": ([1.0, 0.0], [0.0, 2.0]),
    "aligned": ([1.0, 1.0], [2.0, 0.5]),
    "conflicting": ([1.0, 0.0], [-1.0, 1.0]),
    "conflicting, other sizes": ([3.0, 1.0], [-1.0, 0.5]),
    "one dominates (clipped)": ([1.0, 0.0], [2.0, 0.0]),
    "opposite": ([1.0, -2.0], [-1.0, 2.0]),
}


def _run(fn: Callable, g1: Tensor, g2: Tensor) -> Tensor | None:
    try:
        out = fn(g1.clone(), g2.clone())
        return torch.as_tensor(out, dtype=torch.float64)
    except Exception as error:  # a learner's bug must not stop the notebook
        print(f"  your function raised {type(error).__name__}: {error}")
        return None


def _compare(fn: Callable, reference: Callable[[Tensor, Tensor], Tensor], cases: dict, what: str,
             hint: str) -> bool:
    for name, (a, b) in cases.items():
        g1, g2 = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
        got, want = _run(fn, g1, g2), reference(g1, g2)
        if got is None or got.shape != want.shape or not torch.allclose(got, want, atol=1e-6):
            shown = None if got is None else [round(v, 4) for v in got.reshape(-1).tolist()]
            return report(False, "", f"{what} is wrong for {name} gradients g1={a}, g2={b}: expected "
                                     f"{[round(v, 4) for v in want.reshape(-1).tolist()]}, got {shown}. {hint}")
    return report(True, f"{what} matches on {len(cases)} cases ({'; '.join(cases)}).", "")


def check_pcgrad_two_tasks(fn: Callable[[Tensor, Tensor], Tensor]) -> bool:
    """``fn(g1, g2)`` must return PCGrad's update for two tasks with the *sum* reduction."""
    return _compare(fn, lambda g1, g2: pcgrad(torch.stack([g1, g2])), _CASES, "PCGrad (two tasks, sum)",
                    "Project only when g1·g2 < 0, project each gradient on the ORIGINAL other one "
                    "(g1 − (g1·g2/‖g2‖²) g2 and g2 − (g1·g2/‖g1‖²) g1), and add the two results.")


def check_mgda_two_task_weight(fn: Callable[[Tensor, Tensor], float]) -> bool:
    """``fn(g1, g2)`` must return MGDA's weight γ on g1 (the weight on g2 is 1 − γ)."""
    cases = {k: v for k, v in _CASES.items()}
    return _compare(fn, lambda g1, g2: mgda_weights(torch.stack([g1, g2]))[0], cases, "The MGDA weight γ on g1",
                    "γ = ((g2 − g1)·g2)/‖g1 − g2‖², clipped to [0, 1]; it is the weight on g1.")


def check_nash_two_tasks(fn: Callable[[Tensor, Tensor], Tensor]) -> bool:
    """``fn(g1, g2)`` must return Nash-MTL's (α1, α2) for two (not opposite) gradients."""
    cases = {k: v for k, v in _CASES.items() if k != "opposite"}
    cases["rescaled"] = ([2.0, 0.0], [6.0, 0.0])
    return _compare(fn, lambda g1, g2: nash_mtl_weights(torch.stack([g1, g2]), ridge=0.0), cases,
                    "The Nash-MTL weights", "Use α_i = 1/(‖g_i‖·√(1 + cos(g1, g2))): check that α_i (Mα)_i = 1.")
