"""Checkers for notebook 05 (gradient conflict).

Each checker calls the learner's function on hand-checkable gradients (orthogonal, aligned,
conflicting, opposite, rescaled; for T tasks, conflicts whose result depends on the order) and
compares it with the reference from :mod:`mtl_helpers.conflict`, through the shared toolkit
(:func:`~mtl_helpers.exercises.check_cases`). The hints say what to check, never the formula:
deriving it is the exercise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

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
           what: str, hint: str | Callable[[Tensor, Tensor, object], str]) -> bool:
    """Compare ``fn(g1, g2)`` with ``reference`` on every named case (the learner gets copies, so
    an in-place edit of g1 or g2 cannot change the reference's answer). ``hint`` is a text or a
    function (g1, g2, got) → text."""
    pairs = [(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)) for a, b in cases.values()]
    return check_cases(
        lambda g1, g2: fn(g1.clone(), g2.clone()), pairs, reference, _same,
        f"{what}: right on {len(cases)} cases ({'; '.join(cases)}).",
        lambda case, got, want: (f"{what} is wrong for g1={case[0].tolist()}, g2={case[1].tolist()}: expected "
                                 f"{_rounded(want)}, got {_rounded(got)}. "
                                 f"{hint(*case, got) if callable(hint) else hint}"))


def check_pcgrad_two_tasks(fn: Callable[[Tensor, Tensor], Tensor]) -> bool:
    """``fn(g1, g2)`` must return PCGrad's update for two tasks with the *sum* reduction."""
    return _check(fn, lambda g1, g2: pcgrad(torch.stack([g1, g2])), CASES, "PCGrad (two tasks, sum)",
                  "Check three things: you project only when the two gradients conflict (g1·g2 < 0); each "
                  "gradient loses its component along the ORIGINAL other one (not the already projected one); "
                  "and the update is the sum of the two results, not their mean.")


def check_mgda_two_task_weight(fn: Callable[[Tensor, Tensor], float]) -> bool:
    """``fn(g1, g2)`` must return MGDA's weight γ on g1 (the weight on g2 is 1 − γ)."""
    return _check(fn, lambda g1, g2: mgda_weights(torch.stack([g1, g2]))[0], CASES, "The MGDA weight γ on g1",
                  "Write ‖γ g1 + (1 − γ) g2‖² as a quadratic in γ and set its derivative to zero; γ must stay a "
                  "weight of the simplex (between 0 and 1), and it is the weight on g1, not on g2.")


def _nash_residual(g1: Tensor, g2: Tensor, got: object) -> str:
    """What the learner's α gives in the defining equations α_i (Mα)_i = 1 (no formula)."""
    try:
        alpha = torch.as_tensor(got, dtype=torch.float64).reshape(2)
    except (TypeError, ValueError, RuntimeError):
        return "Return a tensor of two weights (α1, α2)."
    G = torch.stack([g1, g2])
    residual = alpha * (G @ G.T @ alpha)
    return (f"Nash-MTL's α solves α_i (Mα)_i = 1 for each task (M = G Gᵀ); yours gives {_rounded(residual)}. "
            "Subtract the two equations to relate α1 and α2, then substitute back into one of them.")


def check_nash_two_tasks(fn: Callable[[Tensor, Tensor], Tensor]) -> bool:
    """``fn(g1, g2)`` must return Nash-MTL's (α1, α2) for two (not opposite) gradients."""
    cases = {name: pair for name, pair in CASES.items() if name != "opposite"} | {"rescaled": ([2.0, 0.0], [6.0, 0.0])}
    return _check(fn, lambda g1, g2: nash_mtl_weights(torch.stack([g1, g2]), ridge=0.0), cases,
                  "The Nash-MTL weights", _nash_residual)


# --------------------------------------------------------------------------- exercise 4: PCGrad, T tasks
def task_orders(n_tasks: int, seed: int) -> list[list[int]]:
    """The order in which each task visits the others, as :func:`mtl_helpers.conflict.pcgrad`
    draws it from ``torch.Generator().manual_seed(seed)``: one permutation of range(T) per task."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randperm(n_tasks, generator=generator).tolist() for _ in range(n_tasks)]


def reference_pcgrad(grads: Tensor, seed: int) -> Tensor:
    """The package's PCGrad (sum) with the orders of :func:`task_orders` (same seed)."""
    return pcgrad(grads, generator=torch.Generator().manual_seed(seed))


def pcgrad_cases() -> list[tuple[str, Tensor, int]]:
    """(name, G, seed): two tasks, then three and four tasks where the visiting order changes
    the result, and one task that conflicts with nobody."""
    three = torch.tensor([[1.0, 0.0, 0.0], [-0.8, 1.0, 0.0], [-0.5, -0.7, 1.0]], dtype=torch.float64)
    four = torch.randn(4, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    free = torch.tensor([[1.0, 0.0, 0.0], [-1.0, 1.0, 0.0], [0.0, 0.0, 2.0]], dtype=torch.float64)
    return [("two conflicting tasks", torch.tensor([[1.0, 0.0], [-1.0, 1.0]], dtype=torch.float64), 0),
            ("three tasks, each conflicting with the others", three, 0),
            ("the same three tasks, other orders", three, 5),
            ("four random tasks", four, 1), ("four random tasks, other orders", four, 2),
            ("a third task that conflicts with nobody", free, 0)]


def check_pcgrad(fn: Callable[[Tensor, Sequence[Sequence[int]]], Tensor]) -> bool:
    """``fn(G, orders)`` must return PCGrad's update Σ_i g_i^PC for G (T, P), where task i visits
    the tasks in the order ``orders[i]`` (a permutation of range(T); it skips itself)."""
    cases = pcgrad_cases()
    args = [(G, task_orders(G.shape[0], seed)) for _, G, seed in cases]
    reference = {id(orders): reference_pcgrad(G, seed) for (G, orders), (_, _, seed) in zip(args, cases)}
    names = {id(orders): name for (_, orders), (name, _, _) in zip(args, cases)}
    return check_cases(
        lambda G, orders: fn(G.clone(), [list(o) for o in orders]), args,
        lambda G, orders: reference[id(orders)], _same,
        f"PCGrad for T tasks: right on {len(cases)} cases ({'; '.join(n for n, _, _ in cases)}).",
        lambda case, got, want: (
            f"PCGrad is wrong on '{names[id(case[1])]}' (G = {case[0].tolist()}, orders = {case[1]}): expected "
            f"{_rounded(want)}, got {_rounded(got)}. Check: each g_i^PC starts from g_i and visits the tasks in "
            "orders[i], skipping itself; it tests for conflict with its CURRENT (already projected) self, but "
            "projects against the ORIGINAL g_j, never a projected one (work on a copy: do not overwrite G); "
            "the update is the sum over tasks."))
