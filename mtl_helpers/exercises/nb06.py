"""Checkers for notebook 06 (task relatedness, mixtures of experts, ESMM).

Each checker runs the learner's function on cases with known answers and compares it with the
reference from the package (:mod:`mtl_helpers.models.moe`, :mod:`mtl_helpers.models.esmm`,
:func:`mtl_helpers.metrics.paired_difference`), through the shared toolkit.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..metrics import paired_difference
from ..models.esmm import esmm_loss
from ..models.moe import MMoE, gate_mixture
from ..tasks import Task
from ..utils import count_parameters
from . import check_cases


def _close(got: object, want: Tensor) -> bool:
    got = torch.as_tensor(got, dtype=torch.float64)
    return got.shape == want.shape and torch.allclose(got, want.double(), atol=1e-5)


def _gate_cases() -> list[tuple[Tensor, Tensor, Tensor]]:
    g = torch.Generator().manual_seed(0)
    cases = [(torch.randn(5, 3, generator=g), torch.randn(3, 4, generator=g), torch.rand(5, 4, 2, generator=g)),
             (torch.randn(2, 6, generator=g), torch.zeros(6, 3), torch.rand(2, 3, 5, generator=g)),  # uniform gate
             (torch.ones(3, 2), torch.tensor([[20.0, 0.0, 0.0], [20.0, 0.0, 0.0]]),
              torch.rand(3, 3, 4, generator=g))]  # the gate picks expert 1
    return [tuple(t.double() for t in case) for case in cases]


def check_mmoe_gate(fn: Callable[[Tensor, Tensor, Tensor], Tensor]) -> bool:
    """``fn(x, w_gate, experts)`` must return Σ_j softmax(x W_g)_j e_j: x (batch, d), W_g (d, n),
    experts (batch, n, h) → (batch, h)."""
    return check_cases(
        lambda x, w, e: fn(x.clone(), w.clone(), e.clone()), _gate_cases(),
        lambda x, w, e: gate_mixture(x @ w, e), _close,
        "MMoE gate: right on 3 cases (random; a zero gate, which averages the experts; a gate that picks one expert).",
        lambda case, got, want: (f"For x of shape {tuple(case[0].shape)} and experts of shape "
                                 f"{tuple(case[2].shape)} the mixture should be {tuple(want.shape)} with first row "
                                 f"{[round(v, 3) for v in want[0].tolist()]}, got "
                                 f"{getattr(got, 'shape', type(got).__name__)}. Softmax the gate logits x @ W_g over "
                                 "the experts (last dimension), then weight each expert's output by its gate value."))


def mmoe_parameters_reference(d: int, n_experts: int, expert_hidden: int, tower_hidden: int, n_tasks: int) -> int:
    """The parameter count of the package's MMoE with these sizes (one output per task)."""
    tasks = [Task(f"t{i}", "regression") for i in range(n_tasks)]
    return count_parameters(MMoE(d, tasks, n_experts, expert_hidden, tower_hidden))


def check_mmoe_parameters(fn: Callable[[int, int, int, int, int], int]) -> bool:
    """``fn(d, n_experts, expert_hidden, tower_hidden, n_tasks)`` must count MMoE's parameters
    (weights and biases of experts, gates and towers; one output per task)."""
    cases = [(100, 8, 16, 8, 2), (10, 3, 4, 5, 3), (94, 8, 16, 8, 2), (5, 1, 2, 2, 1)]
    return check_cases(fn, cases, mmoe_parameters_reference, lambda got, want: int(got) == want,
                       "MMoE parameter count: right for 4 sizes (the paper's is 14 834).",
                       lambda case, got, want: (f"For (d, n, h, t, T) = {case} MMoE has {want} parameters, you "
                                                f"counted {got}. Count n experts (d·h + h), one gate per task "
                                                "(d·n + n) and one tower per task (h·t + t, then t + 1)."))


def _esmm_cases() -> list[tuple[Tensor, Tensor, Tensor, Tensor]]:
    g = torch.Generator().manual_seed(1)
    cases = []
    for n in (6, 50):
        click = (torch.rand(n, generator=g) < 0.4).double()
        click[0], click[1] = 1.0, 0.0
        conversion = (torch.rand(n, generator=g) < 0.5).double()
        conversion[1] = 1.0  # an unclicked row whose conversion must not count
        cases.append((torch.rand(n, generator=g).double() * 0.9 + 0.05,
                      torch.rand(n, generator=g).double() * 0.9 + 0.05, click, conversion))
    return cases


def check_esmm_loss(fn: Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]) -> bool:
    """``fn(p_ctr, p_cvr, click, conversion)`` must return ESMM's loss over all impressions:
    BCE(pCTR, click) + BCE(pCTR·pCVR, click·conversion), each a mean over impressions."""
    return check_cases(
        lambda *case: fn(*(t.clone() for t in case)), _esmm_cases(), esmm_loss,
        lambda got, want: _close(torch.as_tensor(got).reshape(()), want),
        "ESMM loss: right on 2 cases (including an unclicked impression whose conversion label must not count).",
        lambda case, got, want: (f"Expected {float(want):.5f}, got {got}. Two binary cross-entropies over ALL "
                                 "impressions: pCTR against the click, and pCTR·pCVR against click·conversion "
                                 "(a conversion counts only if there was a click). No term fits pCVR to the "
                                 "clicked rows alone."))


def _plus(values: list[float], differences: list[float]) -> list[float]:
    return [round(v + d, 10) for v, d in zip(values, differences)]


def check_negative_transfer(fn: Callable[[list[float], list[float]], int]) -> bool:
    """``fn(multi_task_losses, single_task_losses)`` (per seed, same seeds) must return +1 for
    measurable negative transfer (the multi-task loss is higher), −1 for measurable positive
    transfer, 0 when the 95 % paired interval contains 0."""
    base = [1.00, 1.10, 0.96, 1.20, 0.90, 1.05, 0.98, 1.12]
    cases = [([1.10, 1.21, 1.05], [1.00, 1.10, 0.96]),  # higher on every seed: negative transfer
             ([0.90, 0.95, 0.80], [1.00, 1.04, 0.91]),  # lower on every seed: positive transfer
             ([1.30, 0.80, 1.10], [1.00, 1.00, 1.00]),  # higher on average, but not on every seed
             ([2.00, 1.00, 3.00, 1.51], [1.90, 0.91, 2.92, 1.40]),  # paired: clear, though the seeds differ a lot
             ([1.2, 1.0], [1.0, 1.1]),
             # differences +0.10, +0.02, +0.06 (mean/sd = 1.5): a z-interval (1.96 instead of the t quantile
             # 4.30 for 3 seeds) excludes 0, the t-interval does not
             (_plus(base[:3], [0.10, 0.02, 0.06]), base[:3]),
             # +0.01, +0.30, +0.02: higher on every seed, but too noisy for 3 seeds to tell
             (_plus(base[:3], [0.01, 0.30, 0.02]), base[:3]),
             # +0.06, +0.11, +0.16 (mean/sd = 2.2): mean ± 1.96 sd, a 90 % interval or the sd with ddof=0
             # all exclude 0; the 95 % t-interval (mean/sd must exceed 4.30/√3 = 2.48) does not
             (_plus(base[:3], [0.06, 0.11, 0.16]), base[:3]),
             # −0.075, −0.105, −0.135 (|mean|/sd = 3.5): the 95 % t-interval excludes 0, a 99 % one (5.73) does not
             (_plus(base[3:6], [-0.075, -0.105, -0.135]), base[3:6]),
             # 8 seeds, |mean|/sd = 1.36: the t-interval (needs 2.36/√8 = 0.84) excludes 0, mean ± 1.96 sd does not
             (_plus(base, [-0.06, -0.01, -0.03, -0.08, 0.0, -0.04, -0.02, -0.05]), base)]
    return check_cases(fn, cases, lambda a, b: paired_difference(a, b).direction, lambda got, want: got == want,
                       f"Negative-transfer verdict: right on {len(cases)} cases.",
                       lambda case, got, want: (f"For multi-task {case[0]} vs single-task {case[1]} the answer is "
                                                f"{want}, you returned {got}. Take the per-seed differences (paired), "
                                                "and claim a direction only if their 95 % t-interval excludes 0."))
