import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mtl_helpers.data import Split
from mtl_helpers.exercises import NOT_IMPLEMENTED
from mtl_helpers.exercises.nb02 import (
    check_export,
    check_head_losses,
    check_labelled_rows,
    check_parameter_ratio,
    reference_parameter_ratio,
)
from mtl_helpers.models import export_task_model


def stub(*args):
    raise NotImplementedError("write it")


# ---------------------------------------------------------------- 1. parameter ratio
def test_parameter_ratio_accepts_the_reference():
    assert check_parameter_ratio(reference_parameter_ratio)
    assert check_parameter_ratio(lambda t, h, n: (t + n * h) / (n * t + n * h))


def test_parameter_ratio_rejects_plausible_wrong_answers(capsys):
    assert not check_parameter_ratio(lambda t, h, n: (t + h) / (n * (t + h)))  # one head only
    assert "one head per task" in capsys.readouterr().out
    assert not check_parameter_ratio(lambda t, h, n: (n * (t + h)) / (t + n * h))  # inverted
    assert not check_parameter_ratio(lambda t, h, n: (t + n * h) / (t + h))  # one single-task net
    assert not check_parameter_ratio(lambda t, h, n: "0.5")  # not a number
    assert not check_parameter_ratio(lambda t, h, n: 1 / 0)  # raises: reported, not raised
    assert "ZeroDivisionError" in capsys.readouterr().out


# ---------------------------------------------------------------- 2. labelled rows
def test_labelled_rows_accepts_the_reference_and_variants():
    assert check_labelled_rows(lambda split, task: split.labelled(task))

    def keep_mask(split: Split, task: str) -> Split:  # keeps the other task and an all-True mask
        if task not in split.masks:
            return split
        return split.subset(split.masks[task].nonzero().squeeze(1))
    assert check_labelled_rows(keep_mask)


def test_labelled_rows_rejects_plausible_wrong_answers(capsys):
    assert not check_labelled_rows(lambda split, task: split)  # ignores the mask
    assert "kept every row" in capsys.readouterr().out
    assert not check_labelled_rows(lambda s, t: s.subset((~s.masks[t]).nonzero().squeeze(1)))  # inverted mask
    assert "unlabelled rows" in capsys.readouterr().out
    assert not check_labelled_rows(lambda s, t: s.take(int(s.masks[t].sum())))  # right count, wrong rows
    assert not check_labelled_rows(lambda s, t: s.subset(s.masks[t].nonzero().squeeze(1)))  # fails without a mask
    assert "KeyError" in capsys.readouterr().out
    assert not check_labelled_rows(lambda s, t: s.x[s.masks[t]])  # not a Split
    assert "Return a Split" in capsys.readouterr().out


# ---------------------------------------------------------------- 3. export
def test_export_accepts_the_reference():
    assert check_export(export_task_model)
    assert check_export(lambda m, t: nn.Sequential(copy.deepcopy(m.trunk), copy.deepcopy(m.heads[t])))


def test_export_rejects_plausible_wrong_answers(capsys):
    assert not check_export(lambda m, t: m)  # the joint model: returns a dict
    assert "returns a dict" in capsys.readouterr().out
    assert not check_export(lambda m, t: nn.Sequential(m.trunk, m.heads[t]))  # shares the weights
    assert "deep-copy" in capsys.readouterr().out

    class WithAllHeads(nn.Module):
        def __init__(self, model, task):
            super().__init__()
            self.model, self.task = copy.deepcopy(model), task

        def forward(self, x):
            return self.model(x)[self.task]
    assert not check_export(WithAllHeads)  # carries the other heads
    assert "leave the other heads out" in capsys.readouterr().out
    assert not check_export(lambda m, t: copy.deepcopy(m.heads[t]))  # forgets the trunk: calling it fails
    assert "Calling the exported" in capsys.readouterr().out
    assert not check_export(lambda m, t: nn.Sequential(copy.deepcopy(m.trunk), copy.deepcopy(m.heads["odd"])))
    assert not check_export(lambda m, t: "model")
    assert "Return an nn.Module" in capsys.readouterr().out


# ---------------------------------------------------------------- 4. head ↔ loss
def good_classification(logits, y):
    return F.cross_entropy(logits, y)


def good_binary(logits, y):
    return F.binary_cross_entropy_with_logits(logits.reshape(y.shape), y)


def good_regression(pred, y):
    return F.mse_loss(pred.reshape(y.shape), y)


def test_head_losses_accept_the_reference():
    assert check_head_losses(good_classification, good_binary, good_regression)


def test_head_losses_reject_plausible_wrong_answers(capsys):
    assert not check_head_losses(lambda z, y: F.cross_entropy(z.softmax(1), y), good_binary, good_regression)
    assert "softmax before" in capsys.readouterr().out
    assert not check_head_losses(lambda z, y: F.nll_loss(z, y), good_binary, good_regression)
    naive = lambda z, y: F.binary_cross_entropy(torch.sigmoid(z).reshape(y.shape), y)
    assert not check_head_losses(good_classification, naive, good_regression)
    assert "saturates" in capsys.readouterr().out
    double = lambda z, y: F.binary_cross_entropy_with_logits(torch.sigmoid(z).reshape(y.shape), y)
    assert not check_head_losses(good_classification, double, good_regression)
    unshaped = lambda z, y: F.binary_cross_entropy_with_logits(z, y)  # (N, 1) vs (N,): raises
    assert not check_head_losses(good_classification, unshaped, good_regression)
    assert "ValueError" in capsys.readouterr().out
    broadcast = lambda p, y: F.mse_loss(p, y)  # (N, 1) vs (N,): broadcasts to (N, N)
    with pytest.warns(UserWarning, match="target size"):  # torch's own warning about this very mistake
        assert not check_head_losses(good_classification, good_binary, broadcast)
    assert "broadcasts" in capsys.readouterr().out
    assert not check_head_losses(good_classification, good_binary, lambda p, y: F.l1_loss(p.reshape(y.shape), y))
    assert not check_head_losses(good_classification, good_binary, lambda p, y: (p.reshape(y.shape) - y) ** 2)


# ---------------------------------------------------------------- stubs of a student copy
@pytest.mark.parametrize("check, n_args", [(check_parameter_ratio, 1), (check_labelled_rows, 1),
                                           (check_export, 1), (check_head_losses, 3)])
def test_every_checker_reports_a_stub_as_not_implemented(check, n_args, capsys):
    assert not check(*[stub] * n_args)
    assert NOT_IMPLEMENTED in capsys.readouterr().out


def test_head_losses_stub_in_a_later_function_is_reported_too(capsys):
    assert not check_head_losses(good_classification, good_binary, stub)
    assert NOT_IMPLEMENTED in capsys.readouterr().out
