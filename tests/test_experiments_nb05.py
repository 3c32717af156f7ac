"""Tests of notebook 05's studies (mtl_helpers.experiments.nb05), on tiny data."""

import pytest
import torch

from mtl_helpers.conflict import within_and_between_cosines
from mtl_helpers.data import Budget, MultiTaskDataset, Split
from mtl_helpers.experiments.nb05 import (
    EQUAL,
    cost_table,
    fixed_lr_budget,
    gradient_arms,
    gradients_on_batches,
    mean_over_tasks,
    mean_task_difference,
)
from mtl_helpers.models import HardSharing, make_head, mlp
from mtl_helpers.protocol import Comparison, Run, run
from mtl_helpers.tasks import Task


def _split(n: int, seed: int) -> Split:
    x = torch.randn(n, 3, generator=torch.Generator().manual_seed(seed))
    return Split(x, {"a": x[:, 0] - x[:, 1], "b": x[:, 1] + 0.5 * x[:, 2]})


@pytest.fixture(scope="module")
def dataset() -> MultiTaskDataset:
    tasks = [Task("a", "regression"), Task("b", "regression")]
    budget = Budget(epochs=2, batch_size=16, lrs=(1e-3, 1e-2), trunk_width=8, head_hidden=4)
    return MultiTaskDataset("tiny", tasks, _split(64, 0), _split(32, 1), _split(32, 2), budget)


def test_gradients_on_batches_and_noise_floor():
    torch.manual_seed(0)
    split = _split(64, 0)
    tasks = [Task("a", "regression"), Task("b", "regression")]
    model = HardSharing(mlp(3, [5]), {t.name: make_head(5, t) for t in tasks})
    stack = gradients_on_batches(model, split, tasks, batch_size=16, n_batches=4)
    assert stack.shape == (4, 2, sum(p.numel() for p in model.shared_parameters()))
    assert model.training  # left in training mode
    result = within_and_between_cosines(stack)
    assert result["between"].shape == (4,) and result["within"].shape == (12,)
    with pytest.raises(ValueError):
        gradients_on_batches(model, split, tasks, batch_size=64, n_batches=2)  # more rows than the split has
    with pytest.raises(ValueError):
        gradients_on_batches(model, split, tasks, batch_size=16, n_batches=1)


def test_gradient_arms_name_their_registry_methods(dataset):
    arms = {a.name: a for a in gradient_arms(dataset, c=0.3)}
    assert list(arms) == [EQUAL, "PCGrad", "MGDA", "MGDA-UB", "CAGrad", "Nash-MTL"]
    assert arms[EQUAL].fit_options(None, None) == {}
    assert arms["PCGrad"].fit_options(None, None) == {"gradient_method": "pcgrad"}
    assert arms["MGDA-UB"].fit_options(None, None) == {"gradient_method": "mgda", "gradients_wrt": "representation"}
    assert arms["CAGrad"].settings == (0.3,)
    cagrad = arms["CAGrad"].fit_options(None, 0.3)["gradient_method"]
    assert cagrad(torch.eye(2)).shape == (2,)
    for arm in arms.values():  # every arm trains through the protocol
        result = run(arm, dataset, lr=1e-2, seed=0, setting=arm.settings[0], max_epochs=1)
        assert set(result.test) == {"a", "b"} and result.best_epoch == 1


def test_fixed_lr_budget(dataset):
    small = fixed_lr_budget(dataset, 3e-3, 1)
    assert small.budget.lrs == (3e-3,) and small.budget.epochs == 1
    assert small.budget.batch_size == dataset.budget.batch_size and dataset.budget.lrs == (1e-3, 1e-2)
    with pytest.raises(ValueError):
        fixed_lr_budget(dataset, 0.0, 2)
    with pytest.raises(ValueError):
        fixed_lr_budget(dataset, 1e-3, 0)


def test_cost_table_counts_trunk_backward_passes(dataset):
    table = cost_table(gradient_arms(dataset), dataset, repeats=1)
    passes = table["trunk backward passes"]
    assert passes[EQUAL] == 1 and passes["MGDA-UB"] == 1
    assert all(passes[m] == 2 for m in ("PCGrad", "MGDA", "CAGrad", "Nash-MTL"))
    flops = table[f"FLOPs × {EQUAL}"]
    assert flops[EQUAL] == 1.0 and flops["PCGrad"] > flops["MGDA-UB"] >= 1.0
    assert (table["measured ms / step"] > 0).all()
    with pytest.raises(ValueError):
        cost_table(gradient_arms(dataset)[1:], dataset)  # no reference arm


def _fake_run(arm, seed, a, b):
    return Run(arm, seed, 1e-3, None, {}, {"a": a, "b": b}, 1, 1, 1, 0.0)


def test_mean_over_tasks_and_difference():
    comparison = Comparison([0, 1, 2], {
        EQUAL: [_fake_run(EQUAL, s, 0.5, 0.7) for s in range(3)],
        "X": [_fake_run("X", s, 0.6 + 0.01 * s, 0.8) for s in range(3)]})
    assert mean_over_tasks(comparison, EQUAL) == pytest.approx([0.6, 0.6, 0.6])
    diff = mean_task_difference(comparison, "X", EQUAL)
    assert diff.mean == pytest.approx(0.105) and diff.direction == 1
    with pytest.raises(ValueError):
        mean_over_tasks(comparison, "Y")
