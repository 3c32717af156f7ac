"""Tests of notebook 03's studies (mtl_helpers.experiments.nb03): sweeps, tables, figures."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
import torch
from torch import nn

from mtl_helpers.data import Budget, MultiTaskDataset, make_mmoe_data
from mtl_helpers.experiments.nb03 import (
    alpha_axis,
    best_on_validation,
    grid_frame,
    mean_mixing,
    per_seed,
    plot_alpha_panel,
    plot_tower_scatter,
    searched,
    sweep,
)
from mtl_helpers.models import (
    SoftSharing,
    coupling_penalty,
    make_cross_stitch,
    make_soft_sharing,
    mlp,
    standard_network,
)
from mtl_helpers.protocol import Arm, Comparison, run, sequential_runner


def tiny() -> MultiTaskDataset:
    """Two small regression tasks (MMoE's generator) with a tiny budget: 3 epochs of 3 steps."""
    return make_mmoe_data(0.5, n_train=96, n_val=48, n_test=48, dim=10,
                          budget=Budget(epochs=3, batch_size=32, lrs=(1e-2,), trunk_width=8, head_hidden=4))


def soft_model(n_tasks: int = 2, seed: int = 0) -> SoftSharing:
    torch.manual_seed(seed)
    names = [f"t{i}" for i in range(n_tasks)]
    return SoftSharing({n: mlp(5, [4, 3]) for n in names}, {n: nn.Linear(3, 1) for n in names})


@pytest.fixture(scope="module")
def coupled_sweep():
    data = tiny()
    arm = Arm("L2", lambda alpha: make_soft_sharing(data), settings=[0.0, 5.0], penalty=coupling_penalty)
    return data, arm, sweep(arm, data, 1e-2, [0, 1])


def test_sweep_groups_runs_by_setting_in_seed_order(coupled_sweep):
    data, arm, result = coupled_sweep
    assert list(result) == [0.0, 5.0]
    assert all([r.seed for r in runs] == [0, 1] and {r.setting for r in runs} == {s} for s, runs in result.items())
    assert all(r.lr == 1e-2 and 1 <= r.best_epoch <= 3 for runs in result.values() for r in runs)
    # α = 0 of seed 1 is exactly the protocol's ordinary run of that seed (batched = sequential)
    alone = run(arm, data, lr=1e-2, seed=1, setting=0.0)
    assert alone.best_epoch == result[0.0][1].best_epoch
    assert alone.test == pytest.approx(result[0.0][1].test, abs=1e-4)
    with pytest.raises(ValueError, match="at least one seed"):
        sweep(arm, data, 1e-2, [])


def test_sweep_with_the_sequential_runner_and_no_setting():
    data = tiny()
    result = sweep(Arm("hard", lambda _: standard_network(data)), data, 1e-2, [0], runner=sequential_runner)
    assert list(result) == [None] and len(result[None]) == 1
    assert list(grid_frame(result).columns) == ["y1", "y2"]  # no towers: no distance column


def test_grid_frame_and_choice_on_validation(coupled_sweep):
    _, _, result = coupled_sweep
    frame = grid_frame(result)
    assert list(frame.columns) == ["y1", "y2", "tower distance"]
    assert frame.loc[5.0, "tower distance"] < frame.loc[0.0, "tower distance"]
    scores = per_seed(result, "y2")
    assert scores[5.0]["val"] == [r.val["y2"] for r in result[5.0]]
    assert len(scores[0.0]["test"]) == 2


def test_best_on_validation_ignores_the_test_split():
    results = {0.0: {"val": [0.8, 0.9], "test": [0.99, 0.99]}, 1.0: {"val": [0.86, 0.86], "test": [0.5, 0.5]}}
    assert best_on_validation(results) == 1.0
    with pytest.raises(ValueError, match="at least one setting"):
        best_on_validation({})


def test_searched_records_the_sweep_for_the_comparison_table(coupled_sweep):
    _, _, result = coupled_sweep
    tuned = searched("L2", result, 5.0)
    assert (tuned.lr, tuned.setting, tuned.n_runs) == (1e-2, 5.0, 4)
    assert tuned.budget_text() == "1 lrs × 2 settings, best epoch of ≤ 3"
    table = Comparison([0, 1], {"L2": result[5.0]}, {"L2": tuned}).table()
    assert table.loc["L2", "search"] == tuned.budget_text()
    with pytest.raises(ValueError, match="not in the sweep"):
        searched("L2", result, 0.5)


def test_alpha_axis_puts_zero_a_decade_left():
    assert alpha_axis([0.0, 0.01, 1.0]) == [0.001, 0.01, 1.0]
    with pytest.raises(ValueError, match="α > 0"):
        alpha_axis([0.0])


def test_mean_mixing_averages_channels_and_models():
    data = tiny()
    models = [make_cross_stitch(data, same=s, cross=c) for s, c in [(0.9, 0.1), (0.7, 0.3)]]
    mixing = mean_mixing(models)
    assert len(mixing) == len(models[0].units) and mixing[0].shape == (2, 2)
    assert torch.allclose(mixing[0], torch.tensor([[0.8, 0.2], [0.2, 0.8]]), atol=1e-6)
    with pytest.raises(ValueError, match="at least one"):
        mean_mixing([])


def test_figures_draw_and_reject_bad_input(coupled_sweep):
    model = soft_model()
    ax = plot_tower_scatter(model)
    assert ax.get_xlabel() == "tower t0"
    with pytest.raises(ValueError, match="layer"):
        plot_tower_scatter(model, layer=9)
    with pytest.raises(ValueError, match="two towers"):
        plot_tower_scatter(soft_model(3))
    _, _, result = coupled_sweep
    fig = plot_alpha_panel(result, 5.0, "y1", reference=0.8, hard=0.81)
    assert len(fig.axes) == 2
    assert [t.get_text() for t in fig.axes[1].get_legend().get_texts()] == [
        "L2 coupling", "independent towers (α = 0)", "hard sharing"]
    with pytest.raises(ValueError, match="precomputed"):
        plot_alpha_panel(result, 0.5, "y1")
    plt.close("all")
