import math
from dataclasses import replace

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mtl_helpers.course import reference_baselines, single_task_arm
from mtl_helpers.data import Budget, MultiTaskDataset, Split, load_adult
from mtl_helpers.experiments.nb02 import (
    MASK_SEED_OFFSET,
    auxiliary_head_auc,
    chosen_depth,
    cost_table,
    depth_results,
    depth_sweep,
    draw_architecture,
    draw_depth_panels,
    draw_low_data,
    draw_split_depth,
    linear_arm,
    load_adult_married,
    low_data_arms,
    low_data_comparison,
    mtl_arm,
    outcome,
    softmax_ce_floor,
    step_and_forward_timers,
    with_stored_baselines,
)
from mtl_helpers.models import HardSharing, split_model, standard_network
from mtl_helpers.protocol import Arm, Comparison, Run, run, sequential_runner
from mtl_helpers.tasks import Task

BUDGET = Budget(epochs=1, batch_size=16, lrs=(1e-2,), trunk_width=8, head_hidden=4)


def tiny_adult(n: int = 48, aux: str = "never_married") -> MultiTaskDataset:
    """A tiny random dataset shaped like Adult (94 features, two binary tasks), named "adult";
    the same rows for every ``aux``: only the auxiliary task's name and labels change."""
    g = torch.Generator().manual_seed(0)
    tasks = [Task("income", "binary"), Task(aux, "binary")]
    flip = 0 if aux == "never_married" else 1

    def make() -> Split:
        x = torch.randn(n, 94, generator=g)
        return Split(x, {"income": (torch.arange(n) % 2).float(), aux: ((torch.arange(n) // 2 + flip) % 2).float()})
    return MultiTaskDataset("adult", tasks, make(), make(), make(), budget=BUDGET)


AD = tiny_adult()
AM = tiny_adult(aux="married")


def test_low_data_arms_draw_the_same_rows_apart_from_the_training_seed():
    stl, mtl = low_data_arms(AD, "income", 0.25)
    masked = mtl.train(3)
    want = AD.train.with_label_fraction("income", 0.25, seed=3 + MASK_SEED_OFFSET)
    assert torch.equal(masked.masks["income"], want.masks["income"]) and "never_married" not in masked.masks
    rows = stl.train(3)
    assert len(rows) == 12 and list(rows.y) == ["income"] and stl.tasks == ["income"]
    assert torch.equal(rows.x, AD.train.x[want.masks["income"]])
    assert list(mtl.build(None).heads) == ["income", "never_married"] and mtl.tasks is None
    assert mtl.score({"income": 0.7, "never_married": 0.1}) == 0.7  # selected on the starved task alone
    assert low_data_arms(AD, "income", 0.5, mtl_name="MTL + x")[1].name == "MTL + x"
    with pytest.raises(ValueError, match="Unknown task"):
        low_data_arms(AD, "age", 0.5)
    with pytest.raises(ValueError, match="fraction"):
        low_data_arms(AD, "income", 0.0)


def test_low_data_runs_give_the_single_task_arm_the_full_data_steps():
    stl, mtl = low_data_arms(AD, "income", 0.25)
    one, joint = run(stl, AD, lr=1e-2, seed=0), run(mtl, AD, lr=1e-2, seed=0)
    assert set(one.test) == {"income"} and set(joint.test) == {"income", "never_married"}
    assert (one.max_epochs, joint.max_epochs) == (3, 1)  # 12 rows: 1 step per epoch; 48 rows: 3 steps


def test_linear_arm_is_a_linear_model_on_the_given_rows():
    stl, _ = low_data_arms(AD, "income", 0.25)
    arm = linear_arm(AD, "income", train=stl.train)
    model = arm.build(None)
    assert isinstance(model, HardSharing) and not any(p.requires_grad for p in model.trunk.parameters())
    assert [tuple(p.shape) for p in model.parameters()] == [(1, 94), (1,)]
    assert arm.name == "LogReg income" and arm.tasks == ["income"] and torch.equal(arm.train(2).x, stl.train(2).x)
    images = MultiTaskDataset("mm", [Task("d", "classification", 3)], *[Split(torch.randn(4, 1, 2, 3),
                              {"d": torch.zeros(4, dtype=torch.long)})] * 3, budget=BUDGET)
    model = linear_arm(images, "d").build(None)  # images: multinomial logistic regression on the pixels
    assert [tuple(p.shape) for p in model.parameters()] == [(3, 6), (3,)]
    assert model(images.train.x)["d"].shape == (4, 3)


def test_adult_married_has_the_rows_and_features_of_adult():
    adult, married = load_adult(budget=BUDGET), load_adult_married(BUDGET)
    for part in ("train", "val", "test"):
        a, m = getattr(adult, part), getattr(married, part)
        assert torch.equal(a.x, m.x) and torch.equal(a.y["income"], m.y["income"])
        assert set(m.y) == {"income", "married"}
        assert not bool((m.y["married"].bool() & a.y["never_married"].bool()).any())  # never married ⇒ not married
    assert 0.3 < married.train.y["married"].mean().item() < 0.6
    assert married.task_names == ["income", "married"] and married.budget == BUDGET


def test_low_data_comparison_pairs_every_arm_on_the_same_rows():
    c = low_data_comparison({"never_married": AD, "married": AM}, "income", 0.25, seeds=[0, 1], lrs=[1e-2])
    assert list(c.runs) == ["STL income", "LogReg income", "MTL + never_married", "MTL + married"]
    assert c.seeds == [0, 1] and all(len(runs) == 2 for runs in c.runs.values())
    assert set(c.runs["MTL + married"][0].test) == {"income", "married"}
    assert "lr 0.01" in c.table().loc["LogReg income", "search"]
    assert set(c.differences("STL income").index) == {"LogReg income", "MTL + never_married", "MTL + married"}
    other = tiny_adult(aux="married")
    other.train = Split(other.train.x + 1, other.train.y)
    with pytest.raises(ValueError, match="same rows"):
        low_data_comparison({"never_married": AD, "married": other}, "income", 0.25, seeds=[0], lrs=[1e-2])
    with pytest.raises(ValueError, match="at least one dataset"):
        low_data_comparison({}, "income", 0.25, seeds=[0])


def test_auxiliary_head_auc_scores_the_auxiliary_logit_oriented_by_the_label_correlation():
    g = torch.Generator().manual_seed(1)
    y = (torch.rand(200, generator=g) < 0.5).float()
    x = torch.stack([y, torch.randn(200, generator=g)], 1)
    tasks = [Task("income", "binary"), Task("aux", "binary")]
    for sign in (1.0, -1.0):  # the auxiliary label equals income, or its opposite
        split = Split(x, {"income": y, "aux": y if sign > 0 else 1 - y})
        data = MultiTaskDataset("toy", tasks, split, split, split, budget=BUDGET)
        head = nn.Linear(2, 1)
        with torch.no_grad():
            head.weight[:] = torch.tensor([[sign * 5.0, 0.0]])
            head.bias.zero_()
        model = HardSharing(nn.Identity(), {"income": nn.Linear(2, 1), "aux": head})
        runs = [Run("MTL", 0, 1e-2, None, {}, {}, 1, 1, 1, 0.0, model=model)]
        assert auxiliary_head_auc(runs, data, "aux", "income") == [1.0]
    with pytest.raises(ValueError, match="kept no model"):
        auxiliary_head_auc([Run("MTL", 0, 1e-2, None, {}, {}, 1, 1, 1, 0.0)], data, "aux", "income")


def test_separate_towers_train_exactly_like_single_task_nets():
    towers = run(Arm("towers", lambda _: split_model(AD, 0)), AD, lr=1e-2, seed=0, max_epochs=1)
    alone = run(single_task_arm(AD, "income"), AD, lr=1e-2, seed=0, max_epochs=1)
    assert towers.test["income"] == pytest.approx(alone.test["income"], abs=1e-6)


def test_depth_sweep_tunes_every_depth_alike_and_runs_it_with_the_same_seeds():
    comparison = depth_sweep(AD, [0, 3], [0, 1], lrs=[1e-2, 3e-3])
    assert list(comparison.runs) == ["k=0", "k=3"] and comparison.seeds == [0, 1]
    for name in ("k=0", "k=3"):  # each depth its own search: both lrs with seed 0
        assert set(comparison.tuned[name].runs) == {(1e-2, None), (3e-3, None)}
        assert "2 lrs" in comparison.table().loc[name, "search"]
        assert {r.lr for r in comparison.runs[name]} == {comparison.tuned[name].lr}
    results = depth_results(comparison, AD)
    assert set(results) == {0, 3} and len(results[0]["test"]["income"]) == 2 and "val" in results[3]
    assert results[0]["params"] > results[3]["params"]
    mean_val = {k: np.mean([np.mean(v) for v in results[k]["val"].values()]) for k in (0, 3)}
    assert chosen_depth(comparison, AD) == max(mean_val, key=mean_val.get)
    with pytest.raises(ValueError, match="at least one depth"):
        depth_sweep(AD, [], [0])


def test_chosen_depth_is_the_best_mean_validation_score_not_the_best_seed():
    def runs(arm, vals):
        return [Run(arm, s, 1e-2, None, {"income": v, "never_married": v}, {}, 1, 5, 1, 0.0)
                for s, v in enumerate(vals)]
    comparison = Comparison([0, 1], {"k=0": runs("k=0", [0.90, 0.70]), "k=2": runs("k=2", [0.85, 0.84])}, {})
    assert chosen_depth(comparison, AD) == 2  # k=0 has the best single seed, k=2 the best mean


def test_depth_sweep_reuses_the_standard_networks_runs_for_the_whole_trunk_split():
    calls = []

    def counting(arm, data, lr, settings, seeds, device=None):
        calls.append((arm.name, tuple(seeds)))
        return sequential_runner(arm, data, lr, settings, seeds, device=device)

    standard = [run(mtl_arm(AD), AD, lr=1e-2, seed=s) for s in (0, 1)]
    whole_trunk = 2  # the MLP trunk's two layers
    reused = depth_sweep(AD, [0, whole_trunk], [0, 1], lrs=[1e-2], runner=counting, standard_runs=standard)
    assert sorted(calls) == [("k=0", (0,)), ("k=0", (1,))]  # the whole-trunk split was not trained again
    trained = depth_sweep(AD, [whole_trunk], [0, 1], lrs=[1e-2])
    for got, want in zip(reused.runs[f"k={whole_trunk}"], trained.runs[f"k={whole_trunk}"], strict=True):
        assert got.arm == f"k={whole_trunk}"
        assert got.val == want.val and got.test == want.test and got.best_epoch == want.best_epoch
    with pytest.raises(ValueError, match="one arm's runs"):
        depth_sweep(AD, [0], [0], lrs=[1e-2], standard_runs=[standard[0], replace(standard[1], arm="other")])


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


def test_draw_low_data_draws_one_column_per_arm():
    c = Comparison([0, 1, 2], {"STL": fake_runs("STL", [0.8, 0.81, 0.82]), "MTL": fake_runs("MTL", [0.83, 0.8, 0.84])})
    ax = draw_low_data(c, "income", {"STL, all labels": 0.87})
    assert [t.get_text() for t in ax.get_xticklabels()] == ["STL", "MTL"]
    assert ax.get_legend() is not None
    with pytest.raises(ValueError, match="No arm"):
        draw_low_data(c, "age")
    plt.close("all")
