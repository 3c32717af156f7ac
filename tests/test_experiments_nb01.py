import matplotlib.pyplot as plt
import pytest
import torch

from mtl_helpers.course import baseline_record, run_baselines
from mtl_helpers.data import Budget, load_adult
from mtl_helpers.experiments.nb01 import (
    baseline_table,
    curve_table,
    fraction_sizes,
    learning_curve,
    majority_accuracy,
    step_gains,
    subset_arm,
)
from mtl_helpers.plots import plot_tuning

BUDGET = Budget(epochs=2, batch_size=256, lrs=(1e-3, 1e-2), trunk_width=16, head_hidden=8)


@pytest.fixture(scope="module")
def small_adult():
    return load_adult(n_train=1000, budget=BUDGET)


def test_majority_accuracy():
    assert majority_accuracy(torch.tensor([3, 1, 1, 1, 0, 3])) == 0.5
    assert majority_accuracy(torch.tensor([0, 0, 0, 1])) == 0.75
    for bad in (torch.tensor([]), torch.tensor([0.0, 1.0]), torch.zeros(2, 2, dtype=torch.long)):
        with pytest.raises(ValueError, match="integer labels"):
            majority_accuracy(bad)


def test_run_baselines_table_and_tuning_figure_on_small_data(small_adult):
    comparison = run_baselines(small_adult, seeds=(0, 1))
    table = baseline_table(comparison, small_adult)
    assert list(table.index) == ["STL income", "STL never_married"]
    assert set(table["metric"]) == {"AUC"} and set(table["search"]) == {"2 lrs, best epoch of ≤ 2"}
    records = baseline_record(comparison, small_adult)
    r = records["income"]
    assert r["lr"] in BUDGET.lrs and len(r["test"]) == 2 and all(0.5 < v <= 1 for v in r["test"])
    assert len(r["val_curves"]) == 2 and len(r["val_curves"][str(r["lr"])]) == 2
    assert len(plot_tuning(records, lr=r["lr"])) == 2
    plt.close("all")


def test_learning_curve_gives_every_size_the_steps_of_the_full_set(small_adult):
    curve = learning_curve(small_adult, "income", [250, 1000], lr=1e-2, seeds=(0, 1))
    table = curve_table(curve, small_adult, "income")
    assert list(table.index) == ["250 rows", "1,000 rows"] and list(table["share"]) == ["25%", "100%"]
    assert list(table["epochs × steps"]) == ["8 × 1", "2 × 4"]
    assert table.iloc[0]["gain over the previous size"] == ""
    assert table.iloc[1]["gain over the previous size"] == str(step_gains(
        {n: [r.test["income"] for r in runs] for n, runs in curve.items()})[(250, 1000)])
    assert list(curve) == [250, 1000] and all(len(runs) == 2 for runs in curve.values())
    full_steps = BUDGET.epochs * BUDGET.steps_per_epoch(len(small_adult.train))
    for n, runs in curve.items():
        assert runs[0].max_epochs * BUDGET.steps_per_epoch(n) >= full_steps
        assert all(1 <= r.best_epoch <= r.max_epochs and 0.5 < r.test["income"] <= 1 for r in runs)
    assert curve[250][0].max_epochs == 8  # 250 rows: 1 batch per epoch, 2 epochs × 4 batches of the full set
    assert curve[250][0].test != curve[250][1].test  # another seed, other rows


def test_subset_arm_trains_on_n_rows_that_depend_on_the_seed(small_adult):
    arm = subset_arm(small_adult, "income", 100)
    assert arm.tasks == ["income"] and len(arm.train(0)) == 100
    assert not torch.equal(arm.train(0).x, arm.train(1).x)
    with pytest.raises(ValueError, match="n_rows"):
        subset_arm(small_adult, "income", 0)
    with pytest.raises(ValueError, match="Unknown task"):
        subset_arm(small_adult, "salary", 10)
    with pytest.raises(ValueError, match="at least one size"):
        learning_curve(small_adult, "income", [], lr=1e-2)


def test_fraction_sizes_keep_as_many_rows_as_a_label_fraction_keeps_labels(small_adult):
    sizes = fraction_sizes(small_adult, [0.01, 0.0004, 0.5, 1.0])
    assert sizes == [10, 1, 500, 1000]
    split = small_adult.train.with_label_fraction("income", 0.01, seed=3)
    assert int(split.masks["income"].sum()) == sizes[0]
    for bad in ([], [0.0], [1.5]):
        with pytest.raises(ValueError, match="fractions"):
            fraction_sizes(small_adult, bad)


def test_step_gains_are_paired_differences_between_consecutive_sizes():
    curve = {1000: [0.90, 0.92, 0.91], 10: [0.70, 0.75, 0.72], 100: [0.80, 0.84, 0.83]}
    gains = step_gains(curve)
    assert list(gains) == [(10, 100), (100, 1000)]
    assert gains[(10, 100)].values == pytest.approx((0.10, 0.09, 0.11))
    assert gains[(100, 1000)].mean == pytest.approx((0.10 + 0.08 + 0.08) / 3)
    assert gains[(10, 100)].direction == 1
    flat = step_gains({1: [0.5, 0.6, 0.7], 2: [0.6, 0.5, 0.7]})[(1, 2)]
    assert flat.direction == 0  # no measurable gain
    with pytest.raises(ValueError, match="two sizes"):
        step_gains({10: [0.7]})
