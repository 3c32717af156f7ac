"""Checkers for notebook 04 (task weighting). The reference answers come from the package:
:class:`~mtl_helpers.weighting.UncertaintyWeighting`, :class:`~mtl_helpers.weighting.DWA`,
:class:`~mtl_helpers.weighting.GradNorm` and :func:`~mtl_helpers.metrics.pareto_front`; the DWA range
of exercise 5 is read off the package's DWA at the two extreme ratio patterns."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..metrics import pareto_front
from ..weighting import DWA, GradNorm, UncertaintyWeighting
from . import Failed, attempt, check_cases, report


def _close(got: float, want: float) -> bool:
    return abs(got - want) <= 1e-4 * max(1.0, abs(want))


def _rounded(t: Tensor) -> list[float]:
    return [round(v, 4) for v in t.tolist()]


def where_they_differ(got: Tensor, want: Tensor, atol: float = 1e-4) -> str:
    """Where a wrong vector differs from the expected one, with just enough decimals to *see* the
    difference (never two identical-looking numbers): e.g. "task 1: expected 1.02072, got 1.0207"."""
    if got.shape != want.shape:
        return f"expected {want.numel()} weights, got shape {tuple(got.shape)}"
    bad = (~torch.isclose(got, want, rtol=0.0, atol=atol)).nonzero().flatten().tolist()
    if not bad:
        return "the values agree"
    parts = []
    for k in bad[:3]:
        g, w = got[k].item(), want[k].item()
        digits = next((d for d in range(4, 9) if round(g, d) != round(w, d)), 9)
        parts.append(f"task {k}: expected {w:.{digits}f}, got {g:.{digits}f}")
    return "; ".join(parts) + (f" (and {len(bad) - 3} more)" if len(bad) > 3 else "")


# --------------------------------------------------------------------------- exercise 1: the UW loss
def reference_uncertainty_loss(losses: Tensor, log_vars: Tensor) -> float:
    """Σ_i ½·e^{−s_i}·L_i + ½·s_i: the package's UncertaintyWeighting (regression form) at s."""
    uw = UncertaintyWeighting(len(losses))
    with torch.no_grad():
        uw.log_vars.copy_(log_vars)
        return uw(losses).item()


def check_uncertainty_loss(fn: Callable[[Tensor, Tensor], Tensor]) -> bool:
    """``fn(losses (T,), log_vars (T,))`` must return Σ_i ½·e^{−s_i}·L_i + ½·s_i (regression form),
    differentiable in ``log_vars``: its gradient must vanish at the fixed point e^{s} = L."""
    g = torch.Generator().manual_seed(4)
    cases = [(torch.tensor([0.5, 200.0]), torch.tensor([0.0, 0.0])),
             (torch.tensor([0.3, 150.0, 2.0]), torch.tensor([-1.0, 4.0, 0.5])),
             (torch.rand(4, generator=g) * 10, torch.randn(4, generator=g))]
    for L, s in cases:
        try:
            got = float(attempt(fn, L.clone(), s.clone()))
        except Failed as failure:
            return report(False, "", str(failure))
        except (TypeError, ValueError, RuntimeError) as error:
            return report(False, "", f"return one number, the summed loss (a 0-d tensor) ({error}).")
        want = reference_uncertainty_loss(L, s)
        if not _close(got, want):
            return report(False, "", f"for L = {L.tolist()}, s = {s.tolist()} got {got:.4f}, expected {want:.4f}: the "
                                     "precision is e^{−s} (s = log σ²), both terms carry ½, and the tasks are summed.")
    s = torch.zeros(2, requires_grad=True)  # the learned part: at L = 1, s = 0 the gradient in s must vanish
    try:
        (grad,) = torch.autograd.grad(attempt(fn, torch.tensor([1.0, 1.0]), s), s)
    except Failed as failure:
        return report(False, "", str(failure))
    except RuntimeError as error:
        return report(False, "", f"the result must be differentiable w.r.t. log_vars (do not detach s): {error}")
    return report(torch.allclose(grad, torch.zeros(2), atol=1e-5),
                  "right: ½·e^{−s}·L + ½·s per task, summed; its minimum over s is at e^{s} = L.",
                  f"the values are right but the gradient in s at L = 1, s = 0 is {grad.tolist()}, not 0.")


# --------------------------------------------------------------------------- exercise 2: DWA
def reference_dwa_weights(epoch_losses: Sequence[Tensor], temperature: float) -> Tensor:
    """The weights the package's DWA uses after seeing these epoch-mean losses."""
    dwa = DWA(len(epoch_losses[0]), temperature)
    for means in epoch_losses:
        dwa.epoch_end(means)
    return dwa.weights


def check_dwa_weights(fn: Callable[[Sequence[Tensor], float], Tensor]) -> bool:
    """``fn(epoch_losses, temperature)`` → the DWA weights for the next epoch (ones before two epochs)."""
    cases = [([torch.tensor([1.0, 2.0])], 2.0),
             ([torch.tensor([1.0, 2.0]), torch.tensor([0.5, 1.9])], 2.0),
             ([torch.tensor([3.0, 1.0, 9.0]), torch.tensor([2.0, 0.9, 3.0]), torch.tensor([1.0, 0.8, 2.9])], 2.0),
             ([torch.tensor([1.0, 100.0]), torch.tensor([0.5, 95.0])], 0.5),
             ([torch.tensor([0.8, 0.9]), torch.tensor([0.79, 0.9]), torch.tensor([0.7, 0.9])], 2.0)]

    def answer(history: Sequence[Tensor], temperature: float) -> Tensor:
        return torch.as_tensor(fn([h.clone() for h in history], temperature), dtype=torch.float32).reshape(-1)

    return check_cases(answer, cases, reference_dwa_weights,
                       lambda got, want: got.shape == want.shape and torch.allclose(got, want, atol=1e-4),
                       "right: λ = K·softmax(w/T) with w_k = L̄_k(t−1)/L̄_k(t−2), and λ = 1 until two epochs exist.",
                       lambda case, got, want: (
                           f"for the epoch losses {[_rounded(h) for h in case[0]]} (temperature {case[1]}), "
                           f"{where_they_differ(got, want)}: ratio = last / previous epoch, divide by the "
                           "temperature, softmax, times the number of tasks; all ones before the second epoch ends."))


# --------------------------------------------------------------------------- exercise 3: GradNorm's loss
def reference_gradnorm_loss(G: Tensor, losses: Tensor, initial_losses: Tensor, alpha: float) -> Tensor:
    """Σ_i |G_i − Ḡ·r_i^α| with the package's GradNorm targets (held constant)."""
    balancer = GradNorm(len(G), nn.Parameter(torch.zeros(1)), alpha=alpha)
    balancer.initial_losses = initial_losses
    return (G - balancer.targets(G, losses)).abs().sum()


def check_gradnorm_loss(fn: Callable[[Tensor, Tensor, Tensor, float], Tensor]) -> bool:
    """``fn(G, losses, initial_losses, alpha)`` must return Σ_i |G_i − Ḡ·r_i^α| with the target constant."""
    cases = [(torch.tensor([2.0, 0.5]), torch.tensor([0.5, 50.0]), torch.tensor([0.7, 1800.0]), 1.5),
             (torch.tensor([1.0, 3.0, 0.2]), torch.tensor([0.9, 0.4, 0.1]), torch.tensor([1.0, 1.0, 1.0]), 0.12),
             (torch.tensor([0.3, 0.4, 5.0, 1.0]), torch.tensor([2.0, 1.0, 3.0, 0.5]),
              torch.tensor([4.0, 4.0, 4.0, 1.0]), 1.0)]
    for G, L, L0, a in cases:
        mine, ref = G.clone().requires_grad_(True), G.clone().requires_grad_(True)
        try:
            value = attempt(fn, mine, L.clone(), L0.clone(), a)
            (grad,) = torch.autograd.grad(value, mine)
        except Failed as failure:
            return report(False, "", str(failure))
        except Exception as error:
            return report(False, "", f"the result must be differentiable in G ({type(error).__name__}: {error}).")
        want = reference_gradnorm_loss(ref, L, L0, a)
        (want_grad,) = torch.autograd.grad(want, ref)
        if not _close(float(value.detach()), want.item()):
            return report(False, "", f"got {float(value.detach()):.4f}, expected {want.item():.4f}: L̃_i = L_i/L_i(0), "
                                     "r_i = L̃_i/mean(L̃), target = mean(G)·r^α, then Σ|G − target|.")
        if not torch.allclose(grad, want_grad, atol=1e-5):
            return report(False, "", "the value is right but gradient flows into the target Ḡ·r^α: detach it — "
                                     "the paper holds the target constant so the weights chase it rather than "
                                     "move it.")
    return report(True, "right: r_i = L̃_i / mean(L̃) with L̃ = L/L(0); target Ḡ·r^α held constant; L1 distance.",
                  "")


# --------------------------------------------------------------------------- exercise 4: the Pareto front
def check_pareto_mask(fn: Callable[[np.ndarray], np.ndarray]) -> bool:
    """``fn(points (N, M))`` → boolean mask of the non-dominated rows, every metric higher-is-better."""
    cases = [(np.array([[0.9, 0.1], [0.8, 0.5], [0.7, 0.4], [0.5, 0.9]]),),
             (np.array([[1.0, 1.0], [1.0, 1.0], [0.5, 0.5]]),),  # ties do not dominate each other
             (np.array([[0.5, 0.5], [0.5, 0.6], [0.4, 0.7]]),),  # equal on one metric, better on the other
             (np.array([[0.1, 0.2, 0.3], [0.3, 0.2, 0.1], [0.1, 0.1, 0.1]]),)]
    return check_cases(lambda p: np.asarray(fn(p.copy()), dtype=bool).reshape(-1), cases,
                       lambda p: pareto_front(p, [True] * p.shape[1]),
                       lambda got, want: got.shape == want.shape and bool((got == want).all()),
                       "right: a point is on the front unless another is at least as good everywhere and better "
                       "somewhere.",
                       lambda case, got, want: (
                           f"on {case[0].tolist()} expected {want.tolist()}, got {got.tolist()}: b is dominated if "
                           "some a is >= on every metric and > on at least one (identical points do not dominate "
                           "each other)."))


# --------------------------------------------------------------------------- exercise 5: DWA's range, from scratch
def reference_dwa_weight_range(a: float, b: float, n_tasks: int, temperature: float) -> tuple[float, float]:
    """The package's DWA at the two extreme ratio patterns: task 0's weight when its ratio is a and
    every other is b (the smallest it can get), and when its ratio is b and every other is a."""
    extremes = []
    for mine, others in ((a, b), (b, a)):
        dwa = DWA(n_tasks, temperature)
        dwa.epoch_end(torch.ones(n_tasks))
        dwa.epoch_end(torch.tensor([mine] + [others] * (n_tasks - 1)))
        extremes.append(dwa.weights[0].item())
    return extremes[0], extremes[1]


def _pair(value: object) -> tuple[float, float]:
    low, high = value  # a (low, high) pair, or this raises
    return float(low), float(high)


def _visible(got: float, want: float) -> tuple[str, str]:
    """Both numbers with just enough decimals (at least 4) to show that they differ."""
    digits = next((d for d in range(4, 9) if round(got, d) != round(want, d)), 9)
    return f"{got:.{digits}f}", f"{want:.{digits}f}"


def check_dwa_weight_range(fn: Callable[[float, float, int, float], tuple[float, float]]) -> bool:
    """``fn(a, b, n_tasks, temperature)`` → (smallest, largest) DWA weight of one task when every
    loss ratio lies in [a, b]."""
    cases = [(0.8, 1.0, 2, 2.0), (0.5, 1.5, 2, 2.0), (0.9, 1.1, 3, 2.0), (0.3, 1.2, 5, 1.0), (0.7, 0.7, 4, 2.0)]

    def same(got: object, want: tuple[float, float]) -> bool:
        return all(_close(g, w) for g, w in zip(_pair(got), want))

    def hint(case: tuple, got: object, want: tuple[float, float]) -> str:
        a, b, k, t = case
        try:
            shown = [_visible(g, w) for g, w in zip(_pair(got), want)]
            result = f"expected ({shown[0][1]}, {shown[1][1]}), got ({shown[0][0]}, {shown[1][0]})"
        except (TypeError, ValueError):
            result = f"expected a pair (low, high), got {got!r}"
        return (f"for ratios in [{a}, {b}], K = {k} tasks, T = {t}: {result}. A weight is smallest when its own "
                "ratio is a and the K − 1 others are b: K·e^{a/T} / (e^{a/T} + (K−1)·e^{b/T}).")

    return check_cases(fn, cases, reference_dwa_weight_range, same,
                       "right: λ_k ∈ [K/(1 + (K−1)·e^{(b−a)/T}), K/(1 + (K−1)·e^{−(b−a)/T})]; K = 2 gives "
                       "section 6's [2/(1+e^{(b−a)/T}), 2/(1+e^{−(b−a)/T})].", hint)
