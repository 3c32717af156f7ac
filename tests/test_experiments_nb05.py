"""Tests of notebook 05's studies (mtl_helpers.experiments.nb05), on tiny data."""

import pytest
import torch

from mtl_helpers.conflict import within_and_between_cosines
from mtl_helpers.costs import step_cost_table
from mtl_helpers.data import Budget, MultiTaskDataset, Split
from mtl_helpers.experiments.nb05 import (
    EQUAL,
    STATIC,
    comparison_arms,
    gradient_arms,
    gradients_on_batches,
    grid_comparison,
    mean_over_tasks,
    mean_task_difference,
    reusing_runner,
    static_validation,
    static_weight_arm,
    static_weights,
    summary,
    training_subset,
)
from mtl_helpers.models import HardSharing, make_head, mlp
from mtl_helpers.protocol import Comparison, Run, run, sequential_runner
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


def test_static_weights_put_lambda_on_the_second_task():
    assert static_weights(0.5).weights.tolist() == [1.0, 1.0]  # the plain sum, exactly
    assert static_weights(0.25).weights.tolist() == [1.5, 0.5]
    with pytest.raises(ValueError):
        static_weights(1.5)


def test_static_arm_at_one_half_is_equal_weights_bit_for_bit(dataset):
    arm = static_weight_arm(dataset, (0.3, 0.5))
    assert arm.name == STATIC and arm.settings == (0.3, 0.5)
    assert arm.fit_options(None, 0.3)["weighting"].weights.tolist() == pytest.approx([1.4, 0.6])
    equal = run(gradient_arms(dataset)[0], dataset, lr=1e-2, seed=1)
    half = run(arm, dataset, lr=1e-2, seed=1, setting=0.5)
    other = run(arm, dataset, lr=1e-2, seed=1, setting=0.3)
    assert half.val == equal.val and half.test == equal.test
    assert other.val != equal.val
    with pytest.raises(ValueError):
        static_weight_arm(dataset.select(["a"]))  # one task: no λ to weigh
    with pytest.raises(ValueError):
        static_weight_arm(dataset, (0.5, 2.0))


def test_training_subset_keeps_validation_test_and_budget(dataset):
    small = training_subset(dataset, 20, seed=3)
    assert len(small.train) == 20 and small.val is dataset.val and small.test is dataset.test
    assert small.budget == dataset.budget and small.info["training subset"] == 20
    assert torch.equal(small.train.x, training_subset(dataset, 20, seed=3).train.x)  # the same rows for a seed
    assert len(dataset.train) == 64
    with pytest.raises(ValueError):
        training_subset(dataset, 65)


def test_reusing_runner_trains_an_aliased_run_once(dataset):
    calls = []

    def counting(arm, data, lr, settings, seeds, device=None):
        calls.append((arm.name, lr, tuple(settings), tuple(seeds)))
        return sequential_runner(arm, data, lr, settings, seeds, device=device)

    equal, static = gradient_arms(dataset)[0], static_weight_arm(dataset, (0.3, 0.5))
    runner = reusing_runner({(STATIC, 0.5): EQUAL}, counting)
    first = runner(equal, dataset, 1e-2, [None], [0, 1])
    again = runner(static, dataset, 1e-2, [0.3, 0.5], [0, 1, 2])
    assert calls == [(EQUAL, 1e-2, (None,), (0,)), (EQUAL, 1e-2, (None,), (1,)),
                     (STATIC, 1e-2, (0.3,), (0,)), (STATIC, 1e-2, (0.3,), (1,)), (STATIC, 1e-2, (0.3,), (2,)),
                     (STATIC, 1e-2, (0.5,), (2,))]  # seed 2 of λ = ½ was never run as equal weights
    reused = [r for r in again if r.setting == 0.5]
    assert [r.arm for r in reused] == [STATIC] * 3 and [r.seed for r in reused] == [0, 1, 2]
    assert reused[0].test == first[0].test and reused[1].test == first[1].test
    runner(static, training_subset(dataset, 32), 1e-2, [0.5], [0])  # another dataset: trained, not reused
    assert calls[-1] == (STATIC, 1e-2, (0.5,), (0,))


def test_comparison_arms_costs_and_grid_comparison(dataset):
    arms = comparison_arms(dataset, lambdas=(0.4, 0.5))
    assert [a.name for a in arms] == [EQUAL, STATIC, "PCGrad", "MGDA", "MGDA-UB", "CAGrad", "Nash-MTL"]
    table = step_cost_table(arms, dataset, reference=EQUAL, repeats=1)
    passes = table["trunk backward passes"]
    assert passes[EQUAL] == passes[STATIC] == passes["MGDA-UB"] == 1
    assert all(passes[m] == 2 for m in ("PCGrad", "MGDA", "CAGrad", "Nash-MTL"))
    result = grid_comparison(dataset, seeds=(0, 1), lambdas=(0.4, 0.5), lrs=[1e-2])
    assert set(result.runs) == {a.name for a in arms} and all(len(r) == 2 for r in result.runs.values())
    assert set(result.tuned[STATIC].runs) == {(1e-2, 0.4), (1e-2, 0.5)}
    assert result.tuned[STATIC].runs[(1e-2, 0.5)][0].test == result.runs[EQUAL][0].test  # reused
    validation = static_validation(result)
    assert list(validation.columns) == [0.4, 0.5] and list(validation.index) == [1e-2]
    table = summary(result)
    assert "mean of tasks" in table.columns and table.loc[EQUAL, f"Δ mean vs {EQUAL}"] == ""


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
