"""Checkers for notebook 03 (soft parameter sharing).

Each checker runs the learner's function on cases with known answers, prints ✔ or ✘ with a
hint and returns True/False. A wrong answer never raises, and a stub that still raises
``NotImplementedError`` reads "not implemented yet" (:func:`~mtl_helpers.exercises.attempt`).
The expected answers come from the package: :func:`~mtl_helpers.models.coupling_penalty`,
:func:`~mtl_helpers.models.cross_stitch_mix`, :func:`~mtl_helpers.experiments.nb03.best_on_validation`
and the parameter count of a :class:`~mtl_helpers.models.LowRankSharing` layer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..experiments.nb03 import best_on_validation
from ..models import LowRankSharing, SoftSharing, coupling_penalty, cross_stitch_mix, mlp, weight_decay_penalty
from ..tasks import Task
from ..utils import count_parameters
from . import Failed, attempt, check_cases, report

# --------------------------------------------------------------------------- 1. coupling penalty


def _random_soft(seed: int, n_tasks: int = 2) -> SoftSharing:
    torch.manual_seed(seed)
    names = ["A", "B", "C"][:n_tasks]
    return SoftSharing({n: mlp(6, [5, 4]) for n in names}, {n: nn.Linear(4, 1) for n in names})


def _penalty_problem(got: object, model: SoftSharing, alpha: float) -> str | None:
    """What is wrong with ``got`` as the coupling penalty of ``model`` (None: nothing)."""
    want = coupling_penalty(model, alpha)
    if not isinstance(got, Tensor) or got.numel() != 1:
        return f"Return a scalar tensor, got {type(got).__name__}."
    if not got.requires_grad:
        return ("The result must stay differentiable: no .item(), .detach() or torch.no_grad(), "
                "or training cannot use it.")
    if torch.allclose(got.reshape(()), want, rtol=1e-4):
        return None
    if torch.allclose(got.reshape(()), weight_decay_penalty(model, alpha), rtol=1e-4):
        hint = " That is Σ‖θ‖²: plain weight decay, which couples nothing; penalise θ_A − θ_B."
    else:
        hint = " Use the squared Frobenius norm, summed (not averaged) over every weight and bias, times alpha."
    return f"For alpha={alpha} expected {want.item():.4f}, got {got.item():.4f}.{hint}"


def check_coupling_penalty(fn: Callable[[SoftSharing, float], Tensor]) -> bool:
    """``fn(model, alpha)`` must return α Σ_layers ‖θ_A − θ_B‖²_F over all tower parameters
    (weights and biases) of a two-tower :class:`SoftSharing` model, as a differentiable tensor."""
    identical = _random_soft(3)
    identical.towers["B"].load_state_dict(identical.towers["A"].state_dict())
    cases = [(_random_soft(0), 1.0), (_random_soft(1), 0.3), (_random_soft(2), 5.0), (identical, 2.0)]
    for model, alpha in cases:
        try:
            got = attempt(fn, model, alpha)
        except Failed as failure:
            return report(False, "", f"my_coupling(model, {alpha}): {failure}.")
        problem = _penalty_problem(got, model, alpha)
        if problem:
            return report(False, "", problem)
    return report(True, "Your coupling penalty matches α Σ‖θ_A − θ_B‖² and is zero for identical towers.", "")


# --------------------------------------------------------------------------- 2. cross-stitch unit


def _stitch_cases() -> list[tuple[Tensor, Tensor, Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(5, c, generator=g), torch.randn(5, c, generator=g), torch.rand(c, 2, 2, generator=g))
            for c in (3, 7)]


def reference_cross_stitch(x_a: Tensor, x_b: Tensor, a: Tensor) -> tuple[Tensor, Tensor]:
    """The package's unit, :func:`~mtl_helpers.models.cross_stitch_mix`, on a pair of activations."""
    mixed_a, mixed_b = cross_stitch_mix(torch.stack([x_a, x_b]), a)
    return mixed_a, mixed_b


def _same_pair(got: object, want: tuple[Tensor, Tensor]) -> bool:
    return (isinstance(got, (tuple, list)) and len(got) == 2
            and all(isinstance(g, Tensor) and g.shape == w.shape and torch.allclose(g, w, atol=1e-5)
                    for g, w in zip(got, want)))


def _stitch_hint(case: tuple, got: object, want: tuple[Tensor, Tensor]) -> str:
    x_a, x_b, a = case
    channels = a.shape[0]
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return "Return a pair (mixed_a, mixed_b)."
    if any(not isinstance(g, Tensor) or g.shape != x_a.shape for g in got):
        shapes = [tuple(g.shape) if isinstance(g, Tensor) else type(g).__name__ for g in got]
        return f"Outputs must keep the shape {tuple(x_a.shape)}, got {shapes}."
    transposed = reference_cross_stitch(x_a, x_b, a.transpose(1, 2))
    if _same_pair(got, transposed):
        return (f"The mixed activations are wrong for C={channels}. You used a[:, 1, 0] for A's input from B: "
                "row i of the unit holds what task i receives (x̃ = a x), so x̃_a uses a[:, 0, 0] and a[:, 0, 1].")
    return (f"The mixed activations are wrong for C={channels}. Each channel c has its own 2×2 matrix a[c]: "
            "multiply per channel, do not average the units.")


def check_cross_stitch(fn: Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]) -> bool:
    """``fn(x_a, x_b, a)`` with activations (B, C) and units a (C, 2, 2) must return
    (x̃_a, x̃_b) with x̃_a = a[:, 0, 0]·x_a + a[:, 0, 1]·x_b and x̃_b = a[:, 1, 0]·x_a + a[:, 1, 1]·x_b."""
    return check_cases(fn, _stitch_cases(), reference_cross_stitch, _same_pair,
                       "Your cross-stitch unit mixes each channel with its own 2×2 matrix, x̃ = a x.", _stitch_hint)


# --------------------------------------------------------------------------- 3. choose α

# The first case gives every plausible wrong answer its own α, distinct from the right one (best MEAN
# validation metric): best on test, best single seed, last seed, first seed, lowest validation.
ALPHA_CASES = [
    ({0.0: {"val": [0.70, 0.71, 0.70], "test": [0.70, 0.70, 0.70]},
      0.001: {"val": [0.86, 0.76, 0.77], "test": [0.80, 0.80, 0.80]},
      0.01: {"val": [0.78, 0.77, 0.87], "test": [0.80, 0.80, 0.80]},
      0.1: {"val": [0.84, 0.84, 0.84], "test": [0.82, 0.82, 0.82]},
      1.0: {"val": [0.75, 0.90, 0.74], "test": [0.85, 0.85, 0.85]},
      10.0: {"val": [0.80, 0.80, 0.80], "test": [0.95, 0.95, 0.95]}},),
    ({0.0: {"val": [0.85, 0.70, 0.72], "test": [0.70, 0.70, 0.71]},
      0.01: {"val": [0.80, 0.81, 0.80], "test": [0.90, 0.60, 0.70]},
      1.0: {"val": [0.78, 0.79, 0.79], "test": [0.90, 0.90, 0.90]},
      10.0: {"val": [0.60, 0.62, 0.83], "test": [0.75, 0.74, 0.76]}},),
]

_WRONG_CHOICES = [  # (how a plausible wrong answer chooses, what to tell the learner)
    (lambda r: max(r, key=lambda a: float(np.mean(r[a]["test"]))),
     "You picked by the TEST metric: that leaks the test set into the choice, and the reported number is then "
     "optimistic. Choose on validation."),
    (lambda r: max(r, key=lambda a: max(r[a]["val"])),
     "You picked the α with the best single seed: one lucky seed is noise, not a better α. Average the "
     "validation metric over the seeds."),
    (lambda r: max(r, key=lambda a: r[a]["val"][-1]),
     "You used only the last seed's validation metric. Average it over all seeds."),
    (lambda r: max(r, key=lambda a: r[a]["val"][0]),
     "You used only the first seed's validation metric. Average it over all seeds."),
    (lambda r: min(r, key=lambda a: float(np.mean(r[a]["val"]))),
     "You took the lowest validation metric; AUC is higher-is-better."),
]


def _alpha_hint(case: tuple, got: object, want: float) -> str:
    results = case[0]
    try:
        known = got in results
    except TypeError:  # an unhashable answer (a list, a dict) is not one of the keys
        known = False
    if not known:
        return f"Return one of the α keys {sorted(results)}, got {got!r} (an α, not its position or its score)."
    reason = next((text for choose, text in _WRONG_CHOICES if choose(results) == got),
                  "Average the validation metric over the seeds, then take the largest.")
    return f"Expected α={want}, got α={got}. {reason}"


def check_choose_alpha(fn: Callable[[Mapping[float, Mapping[str, Sequence[float]]]], float]) -> bool:
    """``fn(results)`` gets ``{alpha: {"val": [per seed], "test": [per seed]}}`` for the data-poor task
    and must return the α with the best *mean validation* metric over seeds (higher is better)."""
    return check_cases(fn, ALPHA_CASES, best_on_validation, lambda got, want: got == want,
                       "You choose α on the mean validation metric over seeds and leave the test set alone.",
                       _alpha_hint)


# --------------------------------------------------------------------------- 4. low-rank count


def reference_low_rank_count(d: int, h: int, k: int, n_tasks: int) -> int:
    """The package's answer: the parameters of one :class:`~mtl_helpers.models.LowRankSharing`
    layer (the shared basis B and every task's factor V_t with its bias), counted."""
    tasks = [Task(f"task{i}", "binary") for i in range(n_tasks)]
    model = LowRankSharing(d, [h], tasks, rank=k)
    return count_parameters(model.bases[0]) + sum(count_parameters(f[0]) for f in model.factors.values())


def _count_hint(case: tuple, got: object, want: int) -> str:
    d, h, k, t = case
    hints = {t * (d * k + k * h + h): " B is shared: count it once, not once per task.",
             d * k + t * k * h: " Each task's layer also has a bias of h numbers.",
             t * (d * h + h): " That is T full-rank layers; the factorised layer is cheaper."}
    hint = next((text for count, text in hints.items() if isinstance(got, (int, float)) and got == count), "")
    return f"For d={d}, h={h}, k={k}, T={t} expected {want}, got {got}.{hint}"


def check_low_rank_count(fn: Callable[[int, int, int, int], int]) -> bool:
    """``fn(d, h, k, n_tasks)``: parameters of one factorised layer W_t = B V_t (shared B d×k,
    per task V_t k×h and a bias of h)."""
    return check_cases(fn, [(94, 64, 8, 2), (10, 5, 3, 4), (64, 32, 1, 3)], reference_low_rank_count,
                       lambda got, want: got == want, "Right: d·k shared + T·(k·h + h) task-specific.", _count_hint)
