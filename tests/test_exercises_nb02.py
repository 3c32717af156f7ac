import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mtl_helpers.data import Split
from mtl_helpers.exercises import NOT_IMPLEMENTED
from mtl_helpers.exercises.nb02 import (
    check_export,
    check_hard_sharing,
    check_head_losses,
    check_labelled_rows,
    check_parameter_ratio,
    reference_parameter_ratio,
    reference_scratch_model,
)
from mtl_helpers.models import HardSharing, export_task_model
from mtl_helpers.train import task_losses


def stub(*args):
    raise NotImplementedError("write it")


# ---------------------------------------------------------------- 1. parameter ratio
def test_parameter_ratio_accepts_the_reference():
    assert check_parameter_ratio(reference_parameter_ratio)
    assert check_parameter_ratio(lambda t, h, n: (t + n * h) / (n * t + n * h))


def test_parameter_ratio_accepts_any_single_number():
    def ratio(t, h, n):
        return (t + n * h) / (n * (t + h))
    assert check_parameter_ratio(lambda t, h, n: torch.tensor(ratio(t, h, n)))  # 0-d float32 tensor
    assert check_parameter_ratio(lambda t, h, n: torch.tensor(ratio(t, h, n), dtype=torch.float64))
    assert check_parameter_ratio(lambda t, h, n: np.float32(ratio(t, h, n)))


def test_parameter_ratio_rejects_plausible_wrong_answers(capsys):
    assert not check_parameter_ratio(lambda t, h, n: (t + h) / (n * (t + h)))  # one head only
    assert "one head per task" in capsys.readouterr().out
    assert not check_parameter_ratio(lambda t, h, n: (n * (t + h)) / (t + n * h))  # inverted
    assert "inverted" in capsys.readouterr().out
    assert not check_parameter_ratio(lambda t, h, n: (t + n * h) / (t + h))  # one single-task net
    assert "not one" in capsys.readouterr().out
    assert not check_parameter_ratio(lambda t, h, n: (t + n * h) // (n * (t + h)))  # integer division
    assert "//" in capsys.readouterr().out
    assert not check_parameter_ratio(lambda t, h, n: "0.5")  # not a number
    assert not check_parameter_ratio(lambda t, h, n: 1 / 0)  # raises: reported, not raised
    assert "ZeroDivisionError" in capsys.readouterr().out


@pytest.mark.parametrize("answer", [[0.56], (0.56,), torch.tensor([0.56]), np.array([0.56]), True, None])
def test_parameter_ratio_rejects_non_numbers_without_crashing(answer, capsys):
    assert not check_parameter_ratio(lambda t, h, n: answer)
    assert "return one number" in capsys.readouterr().out


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


# ---------------------------------------------------------------- 3. hard sharing from scratch
def scratch_model(in_dim, hidden, outputs):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.trunk = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU())
            self.heads = nn.ModuleDict({t: nn.Linear(hidden, n) for t, n in outputs.items()})

        def forward(self, x):
            z = self.trunk(x)
            return {t: head(z) for t, head in self.heads.items()}
    return Net()


def scratch_loss(outputs, batch, tasks):
    total = 0.0
    for task in tasks:
        out, y = outputs[task.name], batch.y[task.name]
        mask = batch.masks.get(task.name)
        if mask is not None:
            if not mask.any():
                continue
            out, y = out[mask], y[mask]
        total = total + task.loss(out, y)
    return total


def test_hard_sharing_accepts_the_reference_and_variants():
    assert check_hard_sharing(scratch_model, scratch_loss)
    assert check_hard_sharing(scratch_model, lambda o, b, t: task_losses(o, b, t).sum())  # the package's loss

    def package_model(in_dim, hidden, outputs):  # the package's module, heads registered first
        heads = {t: nn.Linear(hidden, n) for t, n in outputs.items()}
        return HardSharing(nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU()), heads)
    assert check_hard_sharing(package_model, scratch_loss)

    def squeezed(in_dim, hidden, outputs):  # a binary head giving (N,) instead of (N, 1)
        model = scratch_model(in_dim, hidden, outputs)
        forward = model.forward
        model.forward = lambda x: {t: v.squeeze(1) if v.shape[1] == 1 else v for t, v in forward(x).items()}
        return model
    assert check_hard_sharing(squeezed, scratch_loss)
    assert isinstance(reference_scratch_model(), HardSharing)


def test_hard_sharing_rejects_wrong_models(capsys):
    def towers(in_dim, hidden, outputs):
        return nn.ModuleDict({t: nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, n))
                              for t, n in outputs.items()})
    assert not check_hard_sharing(towers, scratch_loss)
    assert "one tower per task" in capsys.readouterr().out

    def no_relu(in_dim, hidden, outputs):
        model = scratch_model(in_dim, hidden, outputs)
        model.trunk = nn.Sequential(model.trunk[0])
        return model
    assert not check_hard_sharing(no_relu, scratch_loss)
    assert "without its ReLU" in capsys.readouterr().out

    def softmax_head(in_dim, hidden, outputs):
        model = scratch_model(in_dim, hidden, outputs)
        model.heads["digit"] = nn.Sequential(model.heads["digit"], nn.Softmax(dim=1))
        return model
    assert not check_hard_sharing(softmax_head, scratch_loss)
    assert "raw logits" in capsys.readouterr().out

    def sigmoid_head(in_dim, hidden, outputs):
        model = scratch_model(in_dim, hidden, outputs)
        model.heads["odd"] = nn.Sequential(model.heads["odd"], nn.Sigmoid())
        return model
    assert not check_hard_sharing(sigmoid_head, scratch_loss)
    assert "sigmoid" in capsys.readouterr().out

    def trunk_per_head(in_dim, hidden, outputs):
        model = scratch_model(in_dim, hidden, outputs)
        model.forward = lambda x: {t: head(model.trunk(x)) for t, head in model.heads.items()}
        return model
    assert not check_hard_sharing(trunk_per_head, scratch_loss)
    assert "ran 2 times" in capsys.readouterr().out

    def as_tuple(in_dim, hidden, outputs):
        model = scratch_model(in_dim, hidden, outputs)
        forward = model.forward
        model.forward = lambda x: tuple(forward(x).values())
        return model
    assert not check_hard_sharing(as_tuple, scratch_loss)
    assert "return a dict" in capsys.readouterr().out

    def one_output_layer(in_dim, hidden, outputs):  # one 4-way layer sliced into the two tasks
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.trunk = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU())
                self.head = nn.Linear(hidden, 4)

            def forward(self, x):
                out = self.head(self.trunk(x))
                return {"digit": out[:, :3], "odd": out[:, 3:]}
        return Net()
    assert not check_hard_sharing(one_output_layer, scratch_loss)
    assert "one Linear(hidden, n_outputs) head per task" in capsys.readouterr().out
    assert not check_hard_sharing(lambda *a: "model", scratch_loss)
    assert "nn.Module" in capsys.readouterr().out


def test_hard_sharing_rejects_wrong_losses(capsys):
    assert not check_hard_sharing(scratch_model, lambda o, b, t: task_losses(o, b, t).mean())
    assert "add them" in capsys.readouterr().out
    ignore_masks = lambda o, b, t: sum(task.loss(o[task.name], b.y[task.name]) for task in t)  # noqa: E731
    assert not check_hard_sharing(scratch_model, ignore_masks)
    assert "ignored the masks" in capsys.readouterr().out

    def mean_of_nothing(outputs, batch, tasks):
        total = 0.0
        for task in tasks:
            mask = batch.masks.get(task.name, torch.ones(len(batch), dtype=torch.bool))
            total = total + task.loss(outputs[task.name][mask], batch.y[task.name][mask])
        return total
    assert not check_hard_sharing(scratch_model, mean_of_nothing)
    assert "not the mean of nothing" in capsys.readouterr().out

    def divided_by_batch(outputs, batch, tasks):
        total = 0.0
        for task in tasks:
            mask = batch.masks.get(task.name, torch.ones(len(batch), dtype=torch.bool)).float()
            out, y = outputs[task.name], batch.y[task.name]
            per_row = (F.cross_entropy(out, y, reduction="none") if task.kind == "classification" else
                       F.binary_cross_entropy_with_logits(out.reshape(y.shape), y, reduction="none"))
            total = total + (per_row * mask).mean()
        return total
    assert not check_hard_sharing(scratch_model, divided_by_batch)
    assert "number of labelled rows" in capsys.readouterr().out
    assert not check_hard_sharing(scratch_model, lambda o, b, t: scratch_loss(o, b, t).detach())
    assert "no gradient" in capsys.readouterr().out
    assert not check_hard_sharing(scratch_model, lambda o, b, t: float(scratch_loss(o, b, t).detach()))
    assert "one-element tensor" in capsys.readouterr().out

    def unshaped(outputs, batch, tasks):  # BCE on an (N, 1) logit against (N,) targets: raises
        return sum(F.binary_cross_entropy_with_logits(outputs[t.name], batch.y[t.name].float()) if t.kind == "binary"
                   else F.cross_entropy(outputs[t.name], batch.y[t.name]) for t in tasks)
    assert not check_hard_sharing(scratch_model, unshaped)
    assert "ValueError" in capsys.readouterr().out


# ---------------------------------------------------------------- 4. export
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


# ---------------------------------------------------------------- 5. head ↔ loss
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
                                           (check_hard_sharing, 2), (check_export, 1), (check_head_losses, 3)])
def test_every_checker_reports_a_stub_as_not_implemented(check, n_args, capsys):
    assert not check(*[stub] * n_args)
    assert NOT_IMPLEMENTED in capsys.readouterr().out


def test_head_losses_stub_in_a_later_function_is_reported_too(capsys):
    assert not check_head_losses(good_classification, good_binary, stub)
    assert NOT_IMPLEMENTED in capsys.readouterr().out


def test_hard_sharing_stub_loss_is_reported_too(capsys):
    assert not check_hard_sharing(scratch_model, stub)
    assert NOT_IMPLEMENTED in capsys.readouterr().out
