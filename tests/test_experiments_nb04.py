"""Notebook 04's experiments module: arms, the grid and its widget figure, the toys, the cost table."""

import matplotlib.pyplot as plt
import pytest
import torch

from mtl_helpers.data import Budget, MultiTaskDataset, Split
from mtl_helpers.experiments.nb04 import (
    GridResult,
    TrackGradNorms,
    balancer_of,
    draw_weight_choice,
    fit_gal_example,
    fit_gradnorm_toy,
    relative_score,
    weighting_arm,
)
from mtl_helpers.protocol import run, sequential_runner
from mtl_helpers.tasks import Task
from mtl_helpers.weighting import StaticWeighting, UncertaintyWeighting, last_shared_layer

TASKS = [Task("income", "binary"), Task("hours", "regression")]


def fake_pair(n: int = 64) -> MultiTaskDataset:
    """A tiny random dataset with a binary and a raw-unit regression task, and a budget."""
    g = torch.Generator().manual_seed(0)

    def split() -> Split:
        return Split(torch.randn(n, 10, generator=g),
                     {"income": (torch.arange(n) % 2).float(), "hours": 40 + 10 * torch.randn(n, generator=g)})

    budget = Budget(epochs=3, batch_size=32, lrs=(1e-2,), trunk_width=8, head_hidden=4)
    return MultiTaskDataset("fake", TASKS, split(), split(), split(), budget)


# ------------------------------------------------------------------ arms
def test_weighting_arm_by_name_trains_and_remembers_its_balancer():
    ds = fake_pair()
    r = run(weighting_arm("UW", ds, "uw", init=0.0), ds, lr=1e-2, seed=0)
    uw = balancer_of(r)
    assert isinstance(uw, UncertaintyWeighting) and uw.forms == ["binary", "regression"]
    assert uw.log_vars[1].item() > 0.05  # the big regression loss pushes its log-variance up
    assert set(r.test) == {"income", "hours"} and 1 <= r.best_epoch <= r.max_epochs == 3


def test_static_grid_arm_has_lambda_as_its_setting():
    ds = fake_pair()
    arm = weighting_arm("static", ds, lambda model, lam: StaticWeighting((1 - lam, lam)), settings=(0.1, 0.5))
    runs = sequential_runner(arm, ds, 1e-2, arm.settings, [0])
    assert [r.setting for r in runs] == [0.1, 0.5]
    assert torch.allclose(torch.stack([balancer_of(r).weights for r in runs]), torch.tensor([[0.9, 0.1], [0.5, 0.5]]))
    grid = GridResult.from_runs(runs, TASKS)
    assert [w[1] for w in grid.weights] == [0.1, 0.5] and grid.metrics.shape == (2, 2)
    assert grid.higher_is_better == [True, False] and len(grid.curves[0]["hours"]) == 3


def test_tracking_records_norms_and_changes_nothing():
    ds = fake_pair()
    tracked = run(weighting_arm("t", ds, lambda model, _: TrackGradNorms(last_shared_layer(model))), ds, lr=1e-2,
                  seed=0)
    plain = run(weighting_arm("equal", ds, "equal"), ds, lr=1e-2, seed=0)
    assert balancer_of(tracked).norms.shape == (6, 2)  # 3 epochs × 2 batches, one norm per task
    assert tracked.test == pytest.approx(plain.test)


def test_weighting_arm_and_balancer_of_reject_bad_input():
    ds = fake_pair()
    with pytest.raises(ValueError, match="Unknown loss weighting"):
        weighting_arm("x", ds, "magic")
    with pytest.raises(ValueError):
        weighting_arm("x", ds, lambda model, _: None, alpha=1.0)
    r = run(weighting_arm("equal", ds, "equal"), ds, lr=1e-2, seed=0)
    r.model = None
    with pytest.raises(ValueError, match="not trained by a weighting_arm"):
        balancer_of(r)
    with pytest.raises(ValueError):
        TrackGradNorms(torch.ones(2))


def test_relative_score_is_unit_free_and_signed():
    score = relative_score({"income": 0.8, "hours": 10.0}, TASKS)
    assert score({"income": 0.8, "hours": 10.0}) == pytest.approx(0.0)
    assert score({"income": 0.88, "hours": 10.0}) == pytest.approx(0.05)  # +10 % AUC, halved
    assert score({"income": 0.8, "hours": 9.0}) == pytest.approx(0.05)  # −10 % RMSE is a gain
    with pytest.raises(ValueError):
        relative_score({"income": 0.8}, TASKS)
    with pytest.raises(ValueError):
        relative_score({"income": 0.8, "hours": 0.0}, TASKS)


# ------------------------------------------------------------------ the grid's figure
def test_grid_result_and_draw():
    grid = GridResult(weights=[(0.9, 0.1), (0.5, 0.5), (0.99, 0.01)], metrics=[[0.85, 11.0], [0.8, 11.2], [0.86, 11.1]],
                      task_names=["income", "hours"], higher_is_better=[True, False],
                      curves=[{"income": [0.8, 0.85], "hours": [12.0, 11.0]}] * 3)
    assert grid.front.tolist() == [True, False, True]
    fig = draw_weight_choice(grid, 2)
    assert isinstance(fig, plt.Figure)
    plt.close(fig)
    with pytest.raises(ValueError):
        draw_weight_choice(grid, 3)
    with pytest.raises(ValueError):
        GridResult(weights=[(0.9, 0.1)], metrics=[[1.0, 2.0, 3.0]], task_names=["a", "b"],
                   higher_is_better=[True, False])
    with pytest.raises(ValueError):
        GridResult.from_runs([], TASKS)


# ------------------------------------------------------------------ the papers' toys
def test_gal_example_shapes_and_errors():
    out = fit_gal_example(seeds=(0, 1), steps=5, hidden=8)
    assert out["sigmas"].shape == (2, 2) and out["train_rmse"].shape == (2, 2)
    assert out["true"].tolist() == [10.0, 1.0] and len(out["balancers"]) == 2
    with pytest.raises(ValueError):
        fit_gal_example(seeds=(), steps=5)


def test_gradnorm_toy_raises_the_small_task_weight():
    gn = fit_gradnorm_toy([1, 100], epochs=2, n=200)  # 4 steps
    w = gn.history[-1]
    assert len(gn.history) == 4
    assert w[0] > 1.0 > w[1] and w.sum().item() == pytest.approx(2.0, rel=1e-5)
