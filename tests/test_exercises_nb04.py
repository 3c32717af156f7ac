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

    def differences_not_ratios(h, t):
        return dwa_right(h, t) if len(h) < 2 else len(h[0]) * torch.softmax((h[-1] - h[-2]) / t, 0)

    def sums_to_one(h, t):
        return dwa_right(h, t) / len(h[0])

    def epsilon_in_the_ratio(h, t):  # a small bias: wrong by about 1e-4 on one case, right on others
        return dwa_right(h, t) if len(h) < 2 else len(h[0]) * torch.softmax((h[-1] / (h[-2] + 2e-3)) / t, 0)

    for fn in (no_k, inverted, no_temperature, times_temperature, first_ratio, uses_losses_not_ratio,
               starts_too_early, differences_not_ratios, sums_to_one, epsilon_in_the_ratio):
        assert not nb04.check_dwa_weights(fn), fn.__name__


def test_dwa_checker_never_shows_identical_numbers_for_a_wrong_answer(capsys):
    import re

    def slightly_off(h, t):  # right to 3 decimals, wrong at the 4th or 5th
        return dwa_right(h, t * 1.0015)

    assert not nb04.check_dwa_weights(slightly_off)
    out = capsys.readouterr().out
    pairs = re.findall(r"expected ([0-9.]+), got ([0-9.]+)", out)
    assert pairs and all(a != b for a, b in pairs), out


def test_where_they_differ_rounds_just_enough():
    got, want = torch.tensor([1.0, 1.00012]), torch.tensor([1.0, 1.00031])
    assert nb04.where_they_differ(got, want) == "task 1: expected 1.0003, got 1.0001"
    # with a tighter tolerance 4 decimals would print the same number twice: it takes a 5th
    assert nb04.where_they_differ(torch.tensor([1.00012]), torch.tensor([1.00014]), atol=1e-5) == (
        "task 0: expected 1.00014, got 1.00012")
    assert "shape" in nb04.where_they_differ(torch.ones(3), torch.ones(2))


# ------------------------------------------------------------------ DWA's range, from scratch
def range_right(a, b, n, t):
    spread = np.exp((b - a) / t)
    return n / (1 + (n - 1) * spread), n / (1 + (n - 1) / spread)


def test_dwa_range_checker_accepts_the_formula_and_matches_the_k2_bound(capsys):
    assert nb04.check_dwa_weight_range(range_right)
    low, high = nb04.reference_dwa_weight_range(0.6, 1.0, 2, 2.0)
    assert (low, high) == pytest.approx((2 / (1 + np.exp(0.2)), 2 / (1 + np.exp(-0.2))), rel=1e-6)


def test_dwa_range_checker_rejects_plausible_mistakes(capsys):
    def two_task_formula(a, b, n, t):  # right for K = 2 only
        return 2 / (1 + np.exp((b - a) / t)), 2 / (1 + np.exp(-(b - a) / t))

    def no_k(a, b, n, t):
        low, high = range_right(a, b, n, t)
        return low / n, high / n

    def no_temperature(a, b, n, t):
        return range_right(a, b, n, 1.0)

    def times_temperature(a, b, n, t):
        return range_right(a, b, n, 1 / t)

    def swapped(a, b, n, t):
        return range_right(a, b, n, t)[::-1]

    def k_instead_of_k_minus_1(a, b, n, t):
        spread = np.exp((b - a) / t)
        return n / (1 + n * spread), n / (1 + n / spread)

    def half_the_spread(a, b, n, t):
        return range_right(a, b, n, 2 * t)

    def one_number(a, b, n, t):
        return range_right(a, b, n, t)[0]

    for fn in (two_task_formula, no_k, no_temperature, times_temperature, swapped, k_instead_of_k_minus_1,
               half_the_spread, one_number):
        assert not nb04.check_dwa_weight_range(fn), fn.__name__
    assert "expected a pair" in capsys.readouterr().out


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
                                     nb04.check_pareto_mask, nb04.check_dwa_weight_range])
def test_checkers_report_a_stub_as_not_implemented(checker, capsys):
    assert checker(stub) is False
    assert NOT_IMPLEMENTED in capsys.readouterr().out
