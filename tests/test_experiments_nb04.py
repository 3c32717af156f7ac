"""Notebook 04's experiments module: standardising, arms, the batched grid, the front over seeds
and its widget figure, the toys."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from mtl_helpers.data import Budget, MultiTaskDataset, Split
from mtl_helpers.experiments.nb04 import (
    AffineOutput,
    GridResult,
    ScaledLosses,
    StackedNetworks,
    TrackGradNorms,
    balancer_of,
    draw_front,
    draw_weight_choice,
    fit_gal_example,
    fit_gradnorm_toy,
    grid_runner,
    measurable_tradeoffs,
    relative_score,
    standardised_network,
    static_weights_of,
    target_stats,
    weighting_arm,
)
from mtl_helpers.models import standard_network
from mtl_helpers.protocol import compare, run, sequential_runner
from mtl_helpers.tasks import Task
from mtl_helpers.utils import seed_everything
from mtl_helpers.weighting import DWA, StaticWeighting, UncertaintyWeighting, last_shared_layer

TASKS = [Task("income", "binary"), Task("hours", "regression")]


def fake_pair(n: int = 64) -> MultiTaskDataset:
    """A tiny random dataset with a binary and a raw-unit regression task, and a budget."""
    g = torch.Generator().manual_seed(0)

    def split() -> Split:
        x = torch.randn(n, 10, generator=g)
        return Split(x, {"income": (x[:, 0] > 0).float(), "hours": 40 + 10 * x[:, 1] + 3 * torch.randn(n, generator=g)})

    budget = Budget(epochs=3, batch_size=32, lrs=(1e-2,), trunk_width=8, head_hidden=4)
    return MultiTaskDataset("fake", TASKS, split(), split(), split(), budget)


def static(ds, lams=(0.1, 0.5), standardise=False):
    return weighting_arm("static", ds, lambda model, lam: StaticWeighting((1 - lam, lam)), settings=lams,
                         standardise=standardise)


# ------------------------------------------------------------------ standardising
def test_target_stats_use_the_training_split_only():
    ds = fake_pair()
    mean, std = target_stats(ds)["hours"]
    y = ds.train.y["hours"]
    assert (mean, std) == pytest.approx((y.mean().item(), y.std().item()))
    assert set(target_stats(ds)) == {"hours"}  # the binary task is not a regression target


def test_standardised_network_answers_in_units_and_its_scaled_loss_is_the_standardised_mse():
    ds = fake_pair()
    stats = target_stats(ds)
    mean, std = stats["hours"]
    seed_everything(0)
    plain = standard_network(ds)
    seed_everything(0)
    model = standardised_network(ds, stats)
    x, y = ds.train.x, ds.train.y["hours"]
    with torch.no_grad():
        z = model.heads["hours"][0](model.trunk(x)).squeeze(-1)
        hours = model(x)["hours"].squeeze(-1)
        assert torch.allclose(z, plain(x)["hours"].squeeze(-1))  # same initial weights as the plain network
    assert torch.allclose(hours, mean + std * z)
    raw_mse = ((hours - y) ** 2).mean()
    assert torch.allclose(raw_mse / std ** 2, ((z - (y - mean) / std) ** 2).mean(), rtol=1e-4)
    assert not list(model.heads["hours"][1].parameters())  # the affine output is fixed
    with pytest.raises(ValueError):
        AffineOutput(0.0, 0.0)


def test_scaled_losses_feed_the_inner_balancer_scaled_losses_and_epoch_means():
    inner = UncertaintyWeighting(2)
    scaled = ScaledLosses(inner, [1.0, 0.01])
    L = torch.tensor([0.5, 200.0])
    assert torch.allclose(scaled(L), inner(torch.tensor([0.5, 2.0])))
    assert list(scaled.parameters()) == list(inner.parameters())  # fit trains the log-variances
    dwa = DWA(2)
    wrapped = ScaledLosses(dwa, [1.0, 1e-3])
    wrapped.epoch_end(torch.tensor([1.0, 1000.0]))
    assert torch.allclose(dwa.epoch_losses[0], torch.tensor([1.0, 1.0]))
    ScaledLosses(StaticWeighting([1, 1]), [1, 1]).epoch_end(torch.ones(2))  # no epoch_end inside: nothing happens
    with pytest.raises(ValueError):
        ScaledLosses(inner, [1.0, 0.0])


def test_standardised_arm_trains_on_the_standardised_loss_and_reports_in_units():
    ds = fake_pair()
    r = run(weighting_arm("std", ds, "uw", standardise=True), ds, lr=1e-2, seed=0)
    assert isinstance(r.options["weighting"], ScaledLosses) and isinstance(balancer_of(r), UncertaintyWeighting)
    mean, std = target_stats(ds)["hours"]
    assert r.options["weighting"].scales.tolist() == pytest.approx([1.0, 1 / std ** 2])
    assert 2 < r.test["hours"] < 20  # RMSE in hours, not in units of σ
    weights = static_weights_of(static(ds, standardise=True).fit_options(standard_network(ds), 0.5)["weighting"])
    assert weights.tolist() == pytest.approx([0.5, 0.5 / std ** 2])


# ------------------------------------------------------------------ arms
def test_weighting_arm_by_name_trains_and_gives_back_its_balancer():
    ds = fake_pair()
    r = run(weighting_arm("UW", ds, "uw", init=0.0), ds, lr=1e-2, seed=0)
    uw = balancer_of(r)
    assert isinstance(uw, UncertaintyWeighting) and uw.forms == ["binary", "regression"]
    assert uw.log_vars[1].item() > 0.05  # the big raw regression loss pushes its log-variance up
    assert set(r.test) == {"income", "hours"} and 1 <= r.best_epoch <= r.max_epochs == 3


def test_tracking_records_norms_every_k_steps_and_changes_nothing():
    ds = fake_pair()
    tracked = run(weighting_arm("t", ds, lambda model, _: TrackGradNorms(last_shared_layer(model), every=2)), ds,
                  lr=1e-2, seed=0)
    plain = run(weighting_arm("equal", ds, "equal"), ds, lr=1e-2, seed=0)
    assert balancer_of(tracked).norms.shape == (3, 2)  # 3 epochs × 2 batches, every 2nd step, one norm per task
    assert balancer_of(tracked).steps == [0, 2, 4]
    assert tracked.test == pytest.approx(plain.test)


def test_weighting_arm_and_balancer_of_reject_bad_input():
    ds = fake_pair()
    with pytest.raises(ValueError, match="Unknown loss weighting"):
        weighting_arm("x", ds, "magic")
    with pytest.raises(ValueError):
        weighting_arm("x", ds, lambda model, _: None, alpha=1.0)
    r = run(weighting_arm("equal", ds, "equal"), ds, lr=1e-2, seed=0)
    r.options = None
    with pytest.raises(ValueError, match="no balancer"):
        balancer_of(r)
    with pytest.raises(ValueError):
        TrackGradNorms(torch.ones(2))
    with pytest.raises(ValueError, match="not a static weighting"):
        static_weights_of(DWA(2))


def test_relative_score_is_unit_free_and_signed():
    score = relative_score({"income": 0.8, "hours": 10.0}, TASKS)
    assert score({"income": 0.8, "hours": 10.0}) == pytest.approx(0.0)
    assert score({"income": 0.88, "hours": 10.0}) == pytest.approx(0.05)  # +10 % AUC, halved
    assert score({"income": 0.8, "hours": 9.0}) == pytest.approx(0.05)  # −10 % RMSE is a gain
    with pytest.raises(ValueError):
        relative_score({"income": 0.8}, TASKS)
    with pytest.raises(ValueError):
        relative_score({"income": 0.8, "hours": 0.0}, TASKS)


# ------------------------------------------------------------------ the batched grid
@pytest.mark.parametrize("standardise", [False, True])
def test_grid_runner_trains_every_setting_as_its_own_run_would(standardise):
    ds = fake_pair()
    arm = static(ds, (0.1, 0.5, 0.9), standardise)
    batched = grid_runner(arm, ds, 1e-2, arm.settings, [0, 1])
    alone = sequential_runner(arm, ds, 1e-2, arm.settings, [0, 1])
    key = {(r.setting, r.seed): r for r in alone}
    assert len(batched) == 6
    for r in batched:
        twin = key[r.setting, r.seed]
        assert r.best_epoch == twin.best_epoch and r.val == pytest.approx(twin.val, rel=1e-4)
        assert r.test == pytest.approx(twin.test, rel=1e-4)
        assert len(r.history.records) == 3 and "val/hours" in r.history.records[0]
        assert torch.allclose(static_weights_of(r.options["weighting"]), static_weights_of(twin.options["weighting"]))


def test_grid_runner_works_as_the_protocols_runner():
    ds = fake_pair()
    result = compare([static(ds)], ds, seeds=(0, 1), runner=grid_runner)
    assert [r.seed for r in result.runs["static"]] == [0, 1]
    assert result.tuned["static"].n_runs == 2 and result.runs["static"][0].setting in (0.1, 0.5)


def test_stacked_networks_unstack_and_errors():
    ds = fake_pair()
    models = []
    for seed in (0, 1):
        seed_everything(seed)
        models.append(standardised_network(ds, target_stats(ds)))
    stacked = StackedNetworks(models)
    x = ds.val.x
    out = stacked(x)
    assert set(out) == {f"{t}#{r}" for t in ("income", "hours") for r in (0, 1)}
    for r, model in enumerate(models):
        assert torch.allclose(out[f"hours#{r}"], model(x)["hours"], atol=1e-5)
        copy_out = stacked.unstack(r)
        assert all(torch.equal(a, b) for a, b in zip(copy_out.state_dict().values(), model.state_dict().values()))
    with pytest.raises(ValueError):
        stacked.unstack(2)
    with pytest.raises(ValueError):
        StackedNetworks([standard_network(ds), standard_network(ds, ["income"])])
    with pytest.raises(ValueError):
        StackedNetworks([standard_network(ds), standardised_network(ds, {"hours": (0.0, 2.0)})])


# ------------------------------------------------------------------ the front over seeds
def grid_of(per_seed) -> GridResult:
    lams = [0.1, 0.5, 0.9][: len(per_seed)]
    return GridResult([(1 - v, v) for v in lams], per_seed, ["income", "hours"], [True, False])


def test_grid_result_from_runs_averages_over_seeds_and_pairs_them():
    ds = fake_pair()
    arm = static(ds)
    runs = grid_runner(arm, ds, 1e-2, arm.settings, [0, 1, 2])
    grid = GridResult.from_runs(runs, TASKS)
    assert grid.per_seed.shape == (2, 3, 2) and [w[1] for w in grid.weights] == [0.1, 0.5]
    mine = [r.val["hours"] for r in runs if r.setting == 0.5]
    assert grid.metrics[1, 1] == pytest.approx(np.mean(mine))
    assert len(grid.curves) == 2 and len(grid.curves[0]["income"]) == 3
    d = grid.difference(0, 1, "hours")
    assert d.values == pytest.approx(tuple(grid.per_seed[0, :, 1] - grid.per_seed[1, :, 1]))
    with pytest.raises(ValueError, match="one run per"):
        GridResult.from_runs(runs[:-1], TASKS)
    with pytest.raises(ValueError):
        GridResult.from_runs([], TASKS)
    with pytest.raises(ValueError):
        GridResult([(0.9, 0.1)], [[1.0, 2.0, 3.0]], ["a", "b"], [True, False])


def test_measurable_tradeoffs_need_both_intervals_to_exclude_zero():
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1e-3, size=(2, 5, 2))
    # setting 0: better AUC, worse RMSE than setting 1, by far more than the noise: a real trade-off
    real = grid_of(np.array([[0.87, 11.5], [0.85, 11.0]])[:, None, :] + noise)
    assert real.front.tolist() == [True, True]
    assert measurable_tradeoffs(real) == [(0, 1)]
    # the same means, with seed noise larger than the gaps: no measurable trade-off
    noisy = grid_of(np.array([[0.87, 11.5], [0.85, 11.0]])[:, None, :] + rng.normal(0, 1.0, size=(2, 5, 2)))
    assert measurable_tradeoffs(noisy) == []
    # one setting better on both: dominance, not a trade-off
    dominated = grid_of(np.array([[0.87, 11.0], [0.85, 11.5]])[:, None, :] + noise)
    assert measurable_tradeoffs(dominated) == [] and dominated.front.tolist() == [True, False]
    assert measurable_tradeoffs(real, among=np.array([True, False])) == []


def test_figures_and_their_errors():
    grid = GridResult(weights=[(0.9, 0.1), (0.5, 0.5), (0.1, 0.9)],
                      per_seed=[[[0.85, 11.0]], [[0.8, 11.2]], [[0.86, 11.1]]], task_names=["income", "hours"],
                      higher_is_better=[True, False], curves=[{"income": [0.8, 0.85], "hours": [12.0, 11.0]}] * 3)
    assert grid.per_seed.shape == (3, 1, 2) and grid.front.tolist() == [True, False, True]
    for fig in (draw_weight_choice(grid, 2), draw_front(grid)):
        assert isinstance(fig, plt.Figure)
        plt.close(fig)
    with pytest.raises(ValueError):
        draw_weight_choice(grid, 3)


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
