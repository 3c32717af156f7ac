import math

import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn.functional as F

from mtl_helpers.course import reference_baselines
from mtl_helpers.data import Budget, MultiTaskDataset, Split
from mtl_helpers.experiments.nb02 import (
    MASK_SEED_OFFSET,
    cost_table,
    draw_architecture,
    draw_depth_panels,
    draw_split_depth,
    label_fraction_sweep,
    low_data_arms,
    mtl_arm,
    outcome,
    softmax_ce_floor,
    split_depth_sweep,
    step_and_forward_timers,
    with_stored_baselines,
)
from mtl_helpers.models import standard_network
from mtl_helpers.protocol import Comparison, Run
from mtl_helpers.tasks import Task

BUDGET = Budget(epochs=1, batch_size=16, lrs=(1e-2,), trunk_width=8, head_hidden=4)


def tiny_adult(n: int = 48) -> MultiTaskDataset:
    """A tiny random dataset shaped like Adult (94 features, two binary tasks), named "adult"."""
    g = torch.Generator().manual_seed(0)
    tasks = [Task("income", "binary"), Task("never_married", "binary")]

    def make() -> Split:
        return Split(torch.randn(n, 94, generator=g), {t.name: (torch.arange(n) % 2).float() for t in tasks})
    return MultiTaskDataset("adult", tasks, make(), make(), make(), budget=BUDGET)


AD = tiny_adult()


def test_low_data_arms_draw_the_same_rows_apart_from_the_training_seed():
    stl, mtl = low_data_arms(AD, "income", 0.25)
    masked = mtl.train(3)
    want = AD.train.with_label_fraction("income", 0.25, seed=3 + MASK_SEED_OFFSET)
    assert torch.equal(masked.masks["income"], want.masks["income"]) and "never_married" not in masked.masks
    rows = stl.train(3)
    assert len(rows) == 12 and list(rows.y) == ["income"] and stl.tasks == ["income"]
    assert torch.equal(rows.x, AD.train.x[want.masks["income"]])
    assert list(mtl.build(None).heads) == ["income", "never_married"] and mtl.tasks is None
    with pytest.raises(ValueError, match="Unknown task"):
        low_data_arms(AD, "age", 0.5)
    with pytest.raises(ValueError, match="fraction"):
        low_data_arms(AD, "income", 0.0)


def test_label_fraction_sweep_gives_the_single_task_arm_the_full_data_steps():
    curves = label_fraction_sweep(AD, "income", [0.25, 1.0], [0, 1], stl_lr=1e-2, mtl_lr=1e-2)
    assert set(curves) == {"STL", "MTL"} and set(curves["STL"]) == {0.25, 1.0}
    assert all(len(runs) == 2 for runs in curves["MTL"].values())
    stl, mtl = curves["STL"][0.25][0], curves["MTL"][0.25][0]
    assert set(stl.test) == {"income"} and set(mtl.test) == {"income", "never_married"}
    assert (stl.max_epochs, mtl.max_epochs) == (3, 1)  # 12 rows: 1 step per epoch; 48 rows: 3 steps
    with pytest.raises(ValueError, match="at least one fraction"):
        label_fraction_sweep(AD, "income", [], [0], 1e-2, 1e-2)


def test_split_depth_sweep_structure():
    sweep = split_depth_sweep(AD, [0, 3], [0, 1], lr=1e-2)
    assert set(sweep) == {0, 3} and len(sweep[0]["test"]["income"]) == 2
    assert sweep[0]["params"] > sweep[3]["params"]
    with pytest.raises(ValueError, match="at least one depth"):
        split_depth_sweep(AD, [], [0], 1e-2)


def fake_runs(arm: str, values: list[float]) -> list[Run]:
    return [Run(arm, s, 1e-2, None, {}, {"income": v, "never_married": v}, 1, 5, 1, 0.0)
            for s, v in enumerate(values)]


def test_with_stored_baselines_pairs_the_stored_runs_by_seed():
    stored = reference_baselines("adult")
    mtl = Comparison([0, 1, 2], {"MTL": fake_runs("MTL", [0.9, 0.9, 0.9])})
    both = with_stored_baselines(mtl, AD)
    assert list(both.runs) == ["STL income", "STL never_married", "MTL"]
    assert both.values("STL income", "income") == stored["income"]["test"]
    diff = both.difference("MTL", "STL income", "income")
    assert math.isclose(diff.mean, 0.9 - sum(stored["income"]["test"]) / 3)
    assert "3 lrs" in both.table().loc["STL income", "search"]
    with pytest.raises(ValueError, match="same seeds"):
        with_stored_baselines(Comparison([0, 1], {"MTL": fake_runs("MTL", [0.9, 0.9])}), AD)


def test_costs_are_counted_and_timers_leave_the_models_alone():
    entries = {"STL ×2": [standard_network(AD, [t]) for t in AD.task_names], "MTL": standard_network(AD)}
    table = cost_table(entries, AD)
    assert table["MTL"]["parameters"] < table["STL ×2"]["parameters"]
    assert 0 < table["MTL"]["train FLOPs / step"] < table["STL ×2"]["train FLOPs / step"]
    assert 0 < table["MTL"]["inference FLOPs"] < table["STL ×2"]["inference FLOPs"]
    before = [p.clone() for p in entries["MTL"].parameters()]
    steps, forwards = step_and_forward_timers(entries, AD)
    assert set(steps) == set(forwards) == set(entries)
    for fn in [*steps.values(), *forwards.values()]:
        fn()
    assert all(torch.equal(a, b) for a, b in zip(before, entries["MTL"].parameters(), strict=True))
    with pytest.raises(ValueError, match="at least one model"):
        cost_table({}, AD)
    with pytest.raises(ValueError, match="at least one model"):
        step_and_forward_timers({}, AD)


def test_mtl_arm_builds_the_standard_network():
    assert list(mtl_arm(AD).build(None).heads) == AD.task_names


def test_outcome_reports_values_warnings_and_errors():
    assert outcome(lambda: torch.tensor(0.5)) == "value 0.5000"
    logits = torch.tensor([2.0, -3.0])
    assert outcome(lambda: F.binary_cross_entropy(logits, torch.ones(2))).startswith("error: RuntimeError")
    text = outcome(lambda: F.mse_loss(torch.zeros(3, 1), torch.ones(3)))
    assert text.startswith("value 1.0000 (warning:")


def test_softmax_ce_floor_matches_cross_entropy_on_saturated_probabilities():
    probs = torch.eye(10)[:3]  # softmax of "perfect" logits
    value = F.cross_entropy(probs, torch.arange(3)).item()
    assert math.isclose(value, softmax_ce_floor(10), rel_tol=1e-5)
    with pytest.raises(ValueError):
        softmax_ce_floor(1)


def test_figures_draw_and_reject_bad_depths():
    ax = draw_architecture(5, 3, ["left", "right"])
    assert len(ax.patches) == 1 + 3 + 2 * 2
    with pytest.raises(ValueError, match="n_shared"):
        draw_architecture(3, 3, ["a"])
    with pytest.raises(ValueError, match="task name"):
        draw_architecture(3, 1, [])
    results = {d: {"test": {"a": [0.5, 0.6], "b": [0.7, 0.7]}, "params": 100 - d} for d in range(3)}
    fig = draw_split_depth(results, 1)
    assert len(fig.axes) == 2
    with pytest.raises(ValueError, match="No results"):
        draw_split_depth(results, 7)
    fig = draw_depth_panels([0, 2], 3, ["a", "b"], titles={2: "two shared"})
    assert len(fig.axes) == 2 and fig.axes[1].get_title() == "two shared"
    with pytest.raises(ValueError, match="at least one depth"):
        draw_depth_panels([], 3, ["a"])
    plt.close("all")
