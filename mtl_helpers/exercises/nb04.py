"""Checkers for notebook 04 (task weighting)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from . import report


def _reference_uw(losses: Tensor, log_vars: Tensor) -> Tensor:
    return (0.5 * torch.exp(-log_vars) * losses + 0.5 * log_vars).sum()


def check_uncertainty_loss(fn: Callable[[Tensor, Tensor], Tensor]) -> bool:
    """``fn(losses (T,), log_vars (T,))`` must return Σ_i ½·e^{−s_i}·L_i + ½·s_i (regression form)."""
    g = torch.Generator().manual_seed(4)
    cases = [(torch.tensor([0.5, 200.0]), torch.tensor([0.0, 0.0])),
             (torch.tensor([0.3, 150.0, 2.0]), torch.tensor([-1.0, 4.0, 0.5])),
             (torch.rand(4, generator=g) * 10, torch.randn(4, generator=g))]
    try:
        got = [float(fn(L.clone(), s.clone())) for L, s in cases]
    except Exception as exc:
        return report(False, "", f"your function raised {type(exc).__name__}: {exc}")
    want = [_reference_uw(L, s).item() for L, s in cases]
    ok = all(abs(a - b) <= 1e-4 * max(1.0, abs(b)) for a, b in zip(got, want, strict=True))
    if ok:  # the learned part: the gradient w.r.t. s must reach the fixed point e^{s} = L
        s = torch.zeros(2, requires_grad=True)
        try:
            total = fn(torch.tensor([1.0, 1.0]), s)
            (grad,) = torch.autograd.grad(total, s)
            ok = torch.allclose(grad, torch.zeros(2), atol=1e-5)
        except Exception as exc:
            return report(False, "", "the result must be differentiable w.r.t. log_vars "
                                     f"({type(exc).__name__}: {exc}).")
    return report(ok, "right: ½·e^{−s}·L + ½·s per task, summed; its minimum over s is at e^{s} = L.",
                  f"got {[round(v, 4) for v in got]}, expected {[round(v, 4) for v in want]}: the precision is "
                  "e^{−s} (s = log σ²), both terms carry ½, and the tasks are summed.")


def _reference_dwa(history: Sequence[Tensor], temperature: float) -> Tensor:
    k = len(history[0])
    if len(history) < 2:
        return torch.ones(k)
    ratio = history[-1] / history[-2]
    return k * torch.softmax(ratio / temperature, dim=0)


def check_dwa_weights(fn: Callable[[Sequence[Tensor], float], Tensor]) -> bool:
    """``fn(epoch_losses, temperature)`` → the DWA weights for the next epoch (ones before two epochs)."""
    cases = [([torch.tensor([1.0, 2.0])], 2.0),
             ([torch.tensor([1.0, 2.0]), torch.tensor([0.5, 1.9])], 2.0),
             ([torch.tensor([3.0, 1.0, 9.0]), torch.tensor([2.0, 0.9, 3.0]), torch.tensor([1.0, 0.8, 2.9])], 2.0),
             ([torch.tensor([1.0, 100.0]), torch.tensor([0.5, 95.0])], 0.5)]
    try:
        got = [torch.as_tensor(fn([h.clone() for h in hist], temp), dtype=torch.float32).reshape(-1)
               for hist, temp in cases]
    except Exception as exc:
        return report(False, "", f"your function raised {type(exc).__name__}: {exc}")
    want = [_reference_dwa(hist, temp) for hist, temp in cases]
    ok = all(a.shape == b.shape and torch.allclose(a, b, atol=1e-4) for a, b in zip(got, want, strict=True))
    return report(ok, "right: λ = K·softmax(w/T) with w_k = L̄_k(t−1)/L̄_k(t−2), and λ = 1 until two epochs exist.",
                  f"for the losses {[h.tolist() for h in cases[2][0]]} expected {want[2].numpy().round(4).tolist()}, "
                  f"got {got[2].numpy().round(4).tolist()}: ratio = last / previous epoch, divide by the "
                  "temperature, softmax, times the number of tasks; all ones before the second epoch ends.")


def _reference_gradnorm(G: Tensor, losses: Tensor, initial: Tensor, alpha: float) -> Tensor:
    ratio = losses / initial
    r = ratio / ratio.mean()
    target = (G.mean() * r ** alpha).detach()
    return (G - target).abs().sum()


def check_gradnorm_loss(fn: Callable[[Tensor, Tensor, Tensor, float], Tensor]) -> bool:
    """``fn(G, losses, initial_losses, alpha)`` must return Σ_i |G_i − Ḡ·r_i^α| with the target constant."""
    cases = [(torch.tensor([2.0, 0.5]), torch.tensor([0.5, 50.0]), torch.tensor([0.7, 1800.0]), 1.5),
             (torch.tensor([1.0, 3.0, 0.2]), torch.tensor([0.9, 0.4, 0.1]), torch.tensor([1.0, 1.0, 1.0]), 0.12),
             (torch.tensor([0.3, 0.4, 5.0, 1.0]), torch.tensor([2.0, 1.0, 3.0, 0.5]),
              torch.tensor([4.0, 4.0, 4.0, 1.0]), 1.0)]
    got, grads = [], []
    try:
        for G, L, L0, a in cases:
            Gp = G.clone().requires_grad_(True)
            value = fn(Gp, L.clone(), L0.clone(), a)
            got.append(float(value.detach()))
            (g,) = torch.autograd.grad(value, Gp)
            grads.append(g)
    except Exception as exc:
        return report(False, "", f"your function raised {type(exc).__name__} (it must be differentiable in G): {exc}")
    want = [_reference_gradnorm(*c).item() for c in cases]
    want_grads = [torch.sign(G - (G.mean() * ((L / L0) / (L / L0).mean()) ** a)) for G, L, L0, a in cases]
    values_ok = all(abs(x - y) <= 1e-4 * max(1.0, abs(y)) for x, y in zip(got, want, strict=True))
    grads_ok = all(torch.allclose(g, w, atol=1e-5) for g, w in zip(grads, want_grads, strict=True))
    if values_ok and not grads_ok:
        return report(False, "", "the value is right but gradient flows into the target Ḡ·r^α: detach it — the "
                                 "paper holds the target constant so the weights chase it rather than move it.")
    return report(values_ok and grads_ok,
                  "right: r_i = L̃_i / mean(L̃) with L̃ = L/L(0); target Ḡ·r^α held constant; L1 distance.",
                  f"got {[round(v, 4) for v in got]}, expected {[round(v, 4) for v in want]}: L̃_i = L_i/L_i(0), "
                  "r_i = L̃_i/mean(L̃), target = mean(G)·r^α, then Σ|G − target|.")


def check_pareto_mask(fn: Callable[[np.ndarray], np.ndarray]) -> bool:
    """``fn(points (N, M))`` → boolean mask of the non-dominated rows, every metric higher-is-better."""
    cases = [np.array([[0.9, 0.1], [0.8, 0.5], [0.7, 0.4], [0.5, 0.9]]),
             np.array([[1.0, 1.0], [1.0, 1.0], [0.5, 0.5]]),  # ties do not dominate each other
             np.array([[0.5, 0.5], [0.5, 0.6], [0.4, 0.7]]),  # equal on one metric, better on the other
             np.array([[0.1, 0.2, 0.3], [0.3, 0.2, 0.1], [0.1, 0.1, 0.1]])]
    want = [np.array([True, True, False, True]), np.array([True, True, False]), np.array([False, True, True]),
            np.array([True, True, False])]
    try:
        got = [np.asarray(fn(p.copy()), dtype=bool).reshape(-1) for p in cases]
    except Exception as exc:
        return report(False, "", f"your function raised {type(exc).__name__}: {exc}")
    wrong = [i for i, (g, w) in enumerate(zip(got, want, strict=True)) if g.shape != w.shape or (g != w).any()]
    ok = not wrong
    bad = wrong[0] if wrong else None
    hint = ("" if bad is None else
            f"on {cases[bad].tolist()} expected {want[bad].tolist()}, got {got[bad].tolist()}: b is dominated if "
            "some a is >= on every metric and > on at least one (identical points do not dominate each other).")
    return report(ok, "right: a point is on the front unless another is at least as good everywhere and better "
                      "somewhere.", hint)
