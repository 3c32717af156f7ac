import numpy as np
import pytest
import torch

from mtl_helpers.exercises import NOT_IMPLEMENTED, nb04
from mtl_helpers.metrics import pareto_front


# ------------------------------------------------------------------ the UW loss
def uw_right(losses, log_vars):
    return (0.5 * torch.exp(-log_vars) * losses + 0.5 * log_vars).sum()


def test_uw_checker_accepts_reference(capsys):
    assert nb04.check_uncertainty_loss(uw_right)
    assert "✔" in capsys.readouterr().out


def test_uw_checker_rejects_plausible_mistakes(capsys):
    wrong = [
        lambda L, s: (0.5 * torch.exp(s) * L + 0.5 * s).sum(),           # e^{+s}
        lambda L, s: (0.5 * torch.exp(-s) * L + s).sum(),                # no ½ on the regulariser
        lambda L, s: (torch.exp(-s) * L + s).sum(),                      # Gal's 2× form: right optimum, wrong value
        lambda L, s: (0.5 * torch.exp(-2 * s) * L + s).sum(),            # s taken as log σ, not log σ²
        lambda L, s: (0.5 * torch.exp(-s) * L + 0.5 * s).mean(),         # mean over tasks
        lambda L, s: (0.5 * torch.exp(-s) * L).sum(),                    # no regulariser: s → ∞
        lambda L, s: (0.5 * torch.exp(-s.detach()) * L + 0.5 * s.detach()).sum(),  # not differentiable in s
        lambda L, s: 0.5 * torch.exp(-s) * L + 0.5 * s,                  # not summed: one value per task
        lambda L, s: 1 / 0,
    ]
    for fn in wrong:
        assert not nb04.check_uncertainty_loss(fn)
    assert "✘" in capsys.readouterr().out


# ------------------------------------------------------------------ DWA
def dwa_right(history, temperature):
    k = len(history[0])
    if len(history) < 2:
        return torch.ones(k)
    return k * torch.softmax((history[-1] / history[-2]) / temperature, 0)


def test_dwa_checker_accepts_reference():
    assert nb04.check_dwa_weights(dwa_right)


def test_dwa_checker_rejects_plausible_mistakes():
    def no_k(h, t):
        return dwa_right(h, t) / len(h[0])

    def inverted(h, t):
        return dwa_right(h, t) if len(h) < 2 else len(h[0]) * torch.softmax((h[-2] / h[-1]) / t, 0)

    def no_temperature(h, t):
        return dwa_right(h, 1.0)

    def times_temperature(h, t):
        return dwa_right(h, 1.0 / t)

    def first_ratio(h, t):
        return dwa_right(h, t) if len(h) < 2 else len(h[0]) * torch.softmax((h[1] / h[0]) / t, 0)

    def uses_losses_not_ratio(h, t):
        return dwa_right(h, t) if len(h) < 2 else len(h[0]) * torch.softmax(h[-1] / t, 0)

    def starts_too_early(h, t):
        return len(h[0]) * torch.softmax(h[-1] / h[0] / t, 0)

    for fn in (no_k, inverted, no_temperature, times_temperature, first_ratio, uses_losses_not_ratio,
               starts_too_early):
        assert not nb04.check_dwa_weights(fn), fn.__name__


# ------------------------------------------------------------------ GradNorm
def gn_right(G, losses, initial, alpha):
    ratio = losses / initial
    r = ratio / ratio.mean()
    return (G - (G.mean() * r ** alpha).detach()).abs().sum()


def test_gradnorm_checker_accepts_reference():
    assert nb04.check_gradnorm_loss(gn_right)


def test_gradnorm_checker_rejects_plausible_mistakes(capsys):
    def no_mean_normalisation(G, L, L0, a):
        return (G - (G.mean() * (L / L0) ** a).detach()).abs().sum()

    def inverted_ratio(G, L, L0, a):
        ratio = L0 / L
        return (G - (G.mean() * (ratio / ratio.mean()) ** a).detach()).abs().sum()

    def squared(G, L, L0, a):
        ratio = L / L0
        return ((G - (G.mean() * (ratio / ratio.mean()) ** a).detach()) ** 2).sum()

    def target_not_detached(G, L, L0, a):
        ratio = L / L0
        return (G - G.mean() * (ratio / ratio.mean()) ** a).abs().sum()

    def no_alpha(G, L, L0, a):
        ratio = L / L0
        return (G - (G.mean() * (ratio / ratio.mean())).detach()).abs().sum()

    def raw_losses(G, L, L0, a):
        return (G - (G.mean() * (L / L.mean()) ** a).detach()).abs().sum()

    for fn in (no_mean_normalisation, inverted_ratio, squared, target_not_detached, no_alpha, raw_losses):
        assert not nb04.check_gradnorm_loss(fn), fn.__name__
    assert "detach" in capsys.readouterr().out


# ------------------------------------------------------------------ Pareto
def pareto_right(points):
    return pareto_front(points, [True] * points.shape[1])


def test_pareto_checker_accepts_reference_and_a_loop_version():
    def loop(points):
        keep = []
        for b in points:
            keep.append(not any((a >= b).all() and (a > b).any() for a in points))
        return np.array(keep)

    assert nb04.check_pareto_mask(pareto_right)
    assert nb04.check_pareto_mask(loop)


def test_pareto_checker_rejects_plausible_mistakes():
    def ties_dominate(points):
        return np.array([not any((a >= b).all() for j, a in enumerate(points) if j != i) for i, b in enumerate(points)])

    def strict_everywhere(points):
        return np.array([not any((a > b).all() for a in points) for b in points])

    def best_on_one_metric(points):
        return points[:, 0] == points[:, 0].max()

    def everything(points):
        return np.ones(len(points), dtype=bool)

    def inverted(points):
        return ~pareto_right(points)

    for fn in (ties_dominate, strict_everywhere, best_on_one_metric, everything, inverted):
        assert not nb04.check_pareto_mask(fn), fn.__name__


# ------------------------------------------------------------------ stubs of a student copy
def stub(*args, **kwargs):
    raise NotImplementedError("write your solution here")


@pytest.mark.parametrize("checker", [nb04.check_uncertainty_loss, nb04.check_dwa_weights, nb04.check_gradnorm_loss,
                                     nb04.check_pareto_mask])
def test_checkers_report_a_stub_as_not_implemented(checker, capsys):
    assert checker(stub) is False
    assert NOT_IMPLEMENTED in capsys.readouterr().out
