"""Checkers for notebook 03 (soft parameter sharing).

Each checker runs the learner's function on cases with known answers, prints ✔ or ✘ with a
hint, and returns True/False. They never raise on a wrong answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from ..models import mlp
from ..soft_sharing import SoftSharing, coupling_penalty, cross_stitch_mix
from . import report


def _random_soft(seed: int, n_tasks: int = 2) -> SoftSharing:
    torch.manual_seed(seed)
    names = ["A", "B", "C"][:n_tasks]
    return SoftSharing({n: mlp(6, [5, 4]) for n in names}, {n: nn.Linear(4, 1) for n in names})


def check_coupling_penalty(fn: Callable[[SoftSharing, float], Tensor]) -> bool:
    """``fn(model, alpha)`` must return α Σ_layers ‖θ_A − θ_B‖²_F over all tower parameters
    (weights and biases) of a two-tower :class:`SoftSharing` model, as a differentiable tensor."""
    try:
        for seed, alpha in [(0, 1.0), (1, 0.3), (2, 5.0)]:
            model = _random_soft(seed)
            got = fn(model, alpha)
            want = coupling_penalty(model, alpha)
            if not isinstance(got, Tensor) or got.numel() != 1:
                return report(False, "", f"Return a scalar tensor, got {type(got).__name__}.")
            if not got.requires_grad:
                return report(False, "", "The result must stay differentiable: no .item(), .detach() or "
                                         "torch.no_grad(), or training cannot use it.")
            if not torch.allclose(got.reshape(()), want, rtol=1e-4):
                wd = alpha * sum(p.pow(2).sum() for p in model.towers.parameters())
                hint = (" That is Σ‖θ‖²: plain weight decay, which couples nothing; penalise θ_A − θ_B."
                        if torch.allclose(got.reshape(()), wd, rtol=1e-4) else
                        " Use the squared Frobenius norm, summed (not averaged) over every weight and bias, "
                        "times alpha.")
                return report(False, "", f"For alpha={alpha} expected {want.item():.4f}, got {got.item():.4f}.{hint}")
        model = _random_soft(3)
        model.towers["B"].load_state_dict(model.towers["A"].state_dict())
        if abs(float(fn(model, 2.0).detach())) > 1e-6:
            return report(False, "", "Identical towers must give a zero penalty.")
    except Exception as error:  # a learner's bug should print, not crash the notebook
        return report(False, "", f"Your function raised {type(error).__name__}: {error}")
    return report(True, "Your coupling penalty matches α Σ‖θ_A − θ_B‖² and is zero for identical towers.", "")


def check_cross_stitch(fn: Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]) -> bool:
    """``fn(x_a, x_b, a)`` with activations (B, C) and units a (C, 2, 2) must return
    (x̃_a, x̃_b) with x̃_a = a[:, 0, 0]·x_a + a[:, 0, 1]·x_b and x̃_b = a[:, 1, 0]·x_a + a[:, 1, 1]·x_b."""
    g = torch.Generator().manual_seed(0)
    try:
        for c in (3, 7):
            x_a, x_b = torch.randn(5, c, generator=g), torch.randn(5, c, generator=g)
            a = torch.rand(c, 2, 2, generator=g)
            want_a, want_b = cross_stitch_mix(torch.stack([x_a, x_b]), a)
            got = fn(x_a, x_b, a)
            if not isinstance(got, (tuple, list)) or len(got) != 2:
                return report(False, "", "Return a pair (mixed_a, mixed_b).")
            got_a, got_b = got
            if got_a.shape != x_a.shape or got_b.shape != x_b.shape:
                return report(False, "", f"Outputs must keep the shape {tuple(x_a.shape)}, got "
                                         f"{tuple(got_a.shape)} and {tuple(got_b.shape)}.")
            if not (torch.allclose(got_a, want_a, atol=1e-5) and torch.allclose(got_b, want_b, atol=1e-5)):
                swapped_a = a[:, 0, 0] * x_a + a[:, 1, 0] * x_b
                hint = (" You used a[:, 1, 0] for A's input from B: row i of the unit holds what task i "
                        "receives (x̃ = a x), so x̃_a uses a[:, 0, 0] and a[:, 0, 1]."
                        if torch.allclose(got_a, swapped_a, atol=1e-5) else
                        " Each channel c has its own 2×2 matrix a[c]: multiply per channel, do not average the units.")
                return report(False, "", f"The mixed activations are wrong for C={c}.{hint}")
    except Exception as error:
        return report(False, "", f"Your function raised {type(error).__name__}: {error}")
    return report(True, "Your cross-stitch unit mixes each channel with its own 2×2 matrix, x̃ = a x.", "")


def check_choose_alpha(fn: Callable[[Mapping[float, Mapping[str, Sequence[float]]]], float]) -> bool:
    """``fn(results)`` gets ``{alpha: {"val": [per seed], "test": [per seed]}}`` for the data-poor task
    and must return the α with the best *mean validation* metric (higher is better)."""
    cases = [
        ({0.0: {"val": [0.80, 0.82], "test": [0.81, 0.80]}, 0.1: {"val": [0.84, 0.83], "test": [0.82, 0.83]},
          1.0: {"val": [0.83, 0.82], "test": [0.86, 0.85]}}, 0.1),
        ({0.0: {"val": [0.70, 0.95], "test": [0.7, 0.7]}, 0.01: {"val": [0.82, 0.81], "test": [0.9, 0.6]},
          10.0: {"val": [0.60, 0.61], "test": [0.9, 0.9]}}, 0.0),
    ]
    try:
        for results, want in cases:
            got = fn(results)
            if got not in results:
                return report(False, "", f"Return one of the α keys {sorted(results)}, got {got!r} "
                                         "(an α, not its position or its score).")
            if got != want:
                by_test = max(results, key=lambda a: sum(results[a]["test"]))
                hint = (" You picked by the TEST metric: that leaks the test set into the choice, and the "
                        "reported number is then optimistic. Choose on validation." if got == by_test else
                        " Average the validation metric over the seeds, then take the largest.")
                return report(False, "", f"Expected α={want}, got α={got}.{hint}")
    except Exception as error:
        return report(False, "", f"Your function raised {type(error).__name__}: {error}")
    return report(True, "You choose α on the mean validation metric and leave the test set alone.", "")


def check_low_rank_count(fn: Callable[[int, int, int, int], int]) -> bool:
    """``fn(d, h, k, n_tasks)``: parameters of one factorised layer W_t = B V_t (shared B d×k,
    per task V_t k×h and a bias of h)."""
    try:
        for d, h, k, t in [(94, 64, 8, 2), (10, 5, 3, 4), (64, 32, 1, 3)]:
            want = d * k + t * (k * h + h)
            got = fn(d, h, k, t)
            if got != want:
                hints = {t * (d * k + k * h + h): " B is shared: count it once, not once per task.",
                         d * k + t * k * h: " Each task's layer also has a bias of h numbers.",
                         t * (d * h + h): " That is T full-rank layers; the factorised layer is cheaper."}
                return report(False, "", f"For d={d}, h={h}, k={k}, T={t} expected {want}, got {got}."
                                         f"{hints.get(got, '')}")
    except Exception as error:
        return report(False, "", f"Your function raised {type(error).__name__}: {error}")
    return report(True, "Right: d·k shared + T·(k·h + h) task-specific.", "")
