"""The checkers of notebook 03 accept the reference answers and reject plausible wrong ones."""

from __future__ import annotations

import pytest
import torch

from mtl_helpers.exercises.nb03 import (
    check_choose_alpha,
    check_coupling_penalty,
    check_cross_stitch,
    check_low_rank_count,
)


def _pairs(model):
    a, b = model.towers.values()
    return zip(a.parameters(), b.parameters(), strict=True)


# --------------------------------------------------------------------------- coupling penalty
def test_coupling_checker_accepts_the_reference():
    assert check_coupling_penalty(lambda m, alpha: alpha * sum(((pa - pb) ** 2).sum() for pa, pb in _pairs(m)))


def test_coupling_checker_rejects_weight_decay(capsys):
    assert not check_coupling_penalty(lambda m, alpha: alpha * sum((p ** 2).sum() for p in m.towers.parameters()))
    assert "weight decay" in capsys.readouterr().out


def test_coupling_checker_rejects_other_mistakes():
    wrong = [
        lambda m, alpha: alpha * sum((pa - pb).norm() for pa, pb in _pairs(m)),  # not squared
        lambda m, alpha: alpha * sum(((pa - pb) ** 2).mean() for pa, pb in _pairs(m)),  # mean, not sum
        lambda m, alpha: sum(((pa - pb) ** 2).sum() for pa, pb in _pairs(m)),  # forgot alpha
        lambda m, alpha: alpha * sum(((pa - pb) ** 2).sum() for pa, pb in _pairs(m) if pa.ndim == 2),  # no biases
        lambda m, alpha: torch.tensor(alpha * sum(((pa - pb) ** 2).sum().item() for pa, pb in _pairs(m))),  # detached
        lambda m, alpha: 1 / 0,  # crashes
    ]
    for fn in wrong:
        assert not check_coupling_penalty(fn)


# --------------------------------------------------------------------------- cross-stitch
def test_cross_stitch_checker():
    assert check_cross_stitch(lambda xa, xb, a: (a[:, 0, 0] * xa + a[:, 0, 1] * xb, a[:, 1, 0] * xa + a[:, 1, 1] * xb))


def test_cross_stitch_checker_rejects_mistakes(capsys):
    transposed = lambda xa, xb, a: (a[:, 0, 0] * xa + a[:, 1, 0] * xb, a[:, 0, 1] * xa + a[:, 1, 1] * xb)
    assert not check_cross_stitch(transposed)
    assert "row i" in capsys.readouterr().out
    averaged = lambda xa, xb, a: (a[:, 0, 0].mean() * xa + a[:, 0, 1].mean() * xb,
                                  a[:, 1, 0].mean() * xa + a[:, 1, 1].mean() * xb)
    assert not check_cross_stitch(averaged)
    assert not check_cross_stitch(lambda xa, xb, a: (xa, xb))  # no mixing
    assert not check_cross_stitch(lambda xa, xb, a: a[:, 0, 0] * xa + a[:, 0, 1] * xb)  # one output only
    assert not check_cross_stitch(lambda xa, xb, a: (torch.einsum("cij,bc->bi", a, xa), xb))  # wrong shapes


# --------------------------------------------------------------------------- choose alpha
def _mean(values):
    return sum(values) / len(values)


def test_choose_alpha_checker():
    assert check_choose_alpha(lambda r: max(r, key=lambda a: _mean(r[a]["val"])))


def test_choose_alpha_checker_accepts_the_sum_over_seeds():
    assert check_choose_alpha(lambda r: max(r, key=lambda a: sum(r[a]["val"])))  # same ranking as the mean


@pytest.mark.parametrize(("wrong", "hint"), [
    (lambda r: max(r, key=lambda a: _mean(r[a]["test"])), "TEST"),
    (lambda r: max(r, key=lambda a: max(r[a]["val"])), "best single seed"),  # the luckiest seed
    (lambda r: max(r, key=lambda a: r[a]["val"][-1]), "last seed"),
    (lambda r: max(r, key=lambda a: r[a]["val"][0]), "first seed"),
    (lambda r: min(r, key=lambda a: _mean(r[a]["val"])), "higher-is-better"),
    (lambda r: max(range(len(r)), key=lambda i: _mean(list(r.values())[i]["val"])), "not its position"),
])
def test_choose_alpha_checker_rejects_mistakes(wrong, hint, capsys):
    assert not check_choose_alpha(wrong)
    assert hint in capsys.readouterr().out


# --------------------------------------------------------------------------- low-rank count
def test_low_rank_count_checker():
    assert check_low_rank_count(lambda d, h, k, t: d * k + t * (k * h + h))


def test_low_rank_count_checker_rejects_mistakes(capsys):
    assert not check_low_rank_count(lambda d, h, k, t: t * (d * k + k * h + h))
    assert "shared" in capsys.readouterr().out
    assert not check_low_rank_count(lambda d, h, k, t: d * k + t * k * h)
    assert not check_low_rank_count(lambda d, h, k, t: t * (d * h + h))
    assert not check_low_rank_count(lambda d, h, k, t: d * k + k * h + h)


# --------------------------------------------------------------------------- student-copy stubs
def _stub(*args):
    raise NotImplementedError("write your solution here")


@pytest.mark.parametrize("checker", [check_coupling_penalty, check_cross_stitch, check_choose_alpha,
                                     check_low_rank_count])
def test_checkers_report_a_stub_as_not_implemented(checker, capsys):
    assert not checker(_stub)
    assert "not implemented yet" in capsys.readouterr().out


def test_checkers_survive_answers_of_the_wrong_type(capsys):
    assert not check_choose_alpha(lambda r: [0.1])  # unhashable
    assert "Return one of the α keys" in capsys.readouterr().out
    assert not check_low_rank_count(lambda d, h, k, t: "many")
    assert not check_cross_stitch(lambda xa, xb, a: (xa.tolist(), xb))
    assert not check_coupling_penalty(lambda m, alpha: 3.0)
    assert "scalar tensor" in capsys.readouterr().out
