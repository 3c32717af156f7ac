"""The notebook 06 checkers accept the reference and reject plausible wrong answers."""

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.special import stdtrit

from mtl_helpers.exercises.nb06 import (
    check_esmm_loss,
    check_mmoe_gate,
    check_mmoe_parameters,
    check_negative_transfer,
)
from mtl_helpers.metrics import paired_difference


def gate_reference(x, w, experts):
    g = torch.softmax(x @ w, dim=-1)
    return (g.unsqueeze(-1) * experts).sum(1)


def test_gate_checker():
    assert check_mmoe_gate(gate_reference)
    assert not check_mmoe_gate(lambda x, w, e: ((x @ w).unsqueeze(-1) * e).sum(1))  # no softmax
    assert not check_mmoe_gate(lambda x, w, e: (torch.softmax(x @ w, 0).unsqueeze(-1) * e).sum(1))  # over the batch
    assert not check_mmoe_gate(lambda x, w, e: e.mean(1))  # ignores the gate
    assert not check_mmoe_gate(lambda x, w, e: (torch.sigmoid(x @ w).unsqueeze(-1) * e).sum(1))  # not a softmax
    assert not check_mmoe_gate(lambda x, w, e: gate_reference(x, w, e).T)  # wrong shape


def mmoe_count(d, n, h, t, T):
    return n * (d * h + h) + T * (d * n + n) + T * (h * t + t + t + 1)


def test_parameter_checker():
    assert check_mmoe_parameters(mmoe_count)
    assert not check_mmoe_parameters(lambda d, n, h, t, T: n * d * h + T * d * n + T * (h * t + t))  # no biases
    assert not check_mmoe_parameters(lambda d, n, h, t, T: mmoe_count(d, n, h, t, 1) + (T - 1) * (h * t + 2 * t + 1))
    assert not check_mmoe_parameters(lambda d, n, h, t, T: n * (d * h + h) + T * (d * n + n))  # no towers


def esmm_reference(p_ctr, p_cvr, click, conversion):
    return F.binary_cross_entropy(p_ctr, click) + F.binary_cross_entropy(p_ctr * p_cvr, click * conversion)


def test_esmm_checker():
    assert check_esmm_loss(esmm_reference)

    def naive(p_ctr, p_cvr, click, conversion):  # CVR fitted on the clicked rows only
        seen = click.bool()
        return F.binary_cross_entropy(p_ctr, click) + F.binary_cross_entropy(p_cvr[seen], conversion[seen])

    assert not check_esmm_loss(naive)
    assert not check_esmm_loss(lambda a, b, c, v: F.binary_cross_entropy(a, c) + F.binary_cross_entropy(a * b, v))
    assert not check_esmm_loss(lambda a, b, c, v: F.binary_cross_entropy(a * b, c * v))  # no CTR term
    assert not check_esmm_loss(lambda a, b, c, v: F.binary_cross_entropy(a, c, reduction="sum")
                               + F.binary_cross_entropy(a * b, c * v, reduction="sum"))


def test_negative_transfer_checker():
    assert check_negative_transfer(lambda a, b: paired_difference(a, b).direction)
    assert not check_negative_transfer(lambda a, b: int(sum(a) > sum(b)) - int(sum(a) < sum(b)))  # means only
    assert not check_negative_transfer(lambda a, b: -paired_difference(a, b).direction)  # sign reversed
    assert not check_negative_transfer(lambda a, b: 1 if min(a) > max(b) else -1 if max(a) < min(b) else 0)  # unpaired


def interval_verdict(half_width: Callable[[int], float], ddof: int = 1) -> Callable[[list, list], int]:
    """A verdict from mean ± half_width(n)·sd of the per-seed differences (sd with ``ddof``)."""
    def verdict(a: list, b: list) -> int:
        d = np.subtract(a, b)
        half = half_width(len(d)) * d.std(ddof=ddof)
        return 1 if d.mean() - half > 0 else -1 if d.mean() + half < 0 else 0
    return verdict


def t_quantile(level: float) -> Callable[[int], float]:
    return lambda n: float(stdtrit(n - 1, (1 + level) / 2)) / math.sqrt(n)


@pytest.mark.parametrize("wrong", [
    interval_verdict(lambda n: 1.96 / math.sqrt(n)),  # a z-interval: 1.96 instead of the t quantile
    interval_verdict(lambda n: 1.96),  # mean ± 1.96 sd: the spread of a seed, not of the mean
    interval_verdict(t_quantile(0.90)),  # a 90 % interval
    interval_verdict(t_quantile(0.99)),  # a 99 % interval
    interval_verdict(t_quantile(0.95), ddof=0),  # the sd with ddof=0
    lambda a, b: int(all(x > y for x, y in zip(a, b))) - int(all(x < y for x, y in zip(a, b))),  # same sign
], ids=["z-interval", "1.96 sd", "90 %", "99 %", "ddof=0", "same sign on every seed"])
def test_negative_transfer_checker_rejects_the_wrong_interval(wrong):
    assert not check_negative_transfer(wrong)


def not_implemented(*args):
    raise NotImplementedError("write your solution here")


def test_stubs_and_errors_are_reported_not_raised(capsys):
    for checker in (check_mmoe_gate, check_mmoe_parameters, check_esmm_loss, check_negative_transfer):
        assert not checker(not_implemented)
        assert "not implemented yet" in capsys.readouterr().out
        assert not checker(lambda *args: 1 / 0)
        assert "ZeroDivisionError" in capsys.readouterr().out
    assert not check_mmoe_gate(lambda x, w, e: None)
    assert not check_esmm_loss(lambda *args: "0.5")


def test_in_place_edits_cannot_fool_the_gate_checker():
    def in_place(x, w, e):
        w.zero_()  # makes the gate uniform, then answers for the edited weights
        return gate_reference(x, w, e)

    assert not check_mmoe_gate(in_place)
