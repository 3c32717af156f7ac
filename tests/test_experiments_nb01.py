import matplotlib.pyplot as plt
import pytest
import torch

from mtl_helpers.course import baseline_record, run_baselines
from mtl_helpers.data import Budget, load_adult
from mtl_helpers.experiments.nb01 import baseline_table, learning_curve, majority_accuracy, subset_arm
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
