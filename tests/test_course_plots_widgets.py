"""Tests of the course configuration (budgets, datasets, stored baselines), plots and widgets."""

import matplotlib.pyplot as plt
import pytest
import torch

from mtl_helpers.course import (
    BUDGETS,
    DATASETS,
    load_course_dataset,
    reference_baselines,
    single_task_arm,
)
from mtl_helpers.plots import (
    draw_hard_sharing,
    draw_parameter_scaling,
    plot_history,
    plot_learning_curve,
    plot_tuning,
    results_table,
    show_images,
)
from mtl_helpers.protocol import run
from mtl_helpers.train import History
from mtl_helpers.widgets import slider_panel


def test_course_datasets_come_with_their_budgets():
    assert load_course_dataset("multimnist").budget == BUDGETS["multimnist"]
    pair = load_course_dataset("adult_income_hours")
    assert pair.budget == BUDGETS["adult"] and [t.kind for t in pair.tasks] == ["binary", "regression"]
    assert len(pair.train) == 12_000 and set(DATASETS) >= {"multimnist", "adult"}
    with pytest.raises(ValueError, match="Unknown course dataset"):
        load_course_dataset("cifar")


def test_reference_baselines_structure():
    stored = reference_baselines()
    assert set(stored["results"]) == {"multimnist", "adult"} and "best epoch" in stored["protocol"]
    adult = reference_baselines("adult")
    assert set(adult) == {"income", "never_married"}
    for record in adult.values():
        assert len(record["test"]) == 3 and record["lr"] in BUDGETS["adult"].lrs
        assert all(1 <= e <= record["max_epochs"] for e in record["best_epoch"])
        assert set(record["val_curves"]) == {str(lr) for lr in BUDGETS["adult"].lrs}
    with pytest.raises(ValueError, match="No stored baselines"):
        reference_baselines("cifar")


def test_the_stored_seed_0_baseline_is_reproduced():
    ds = load_course_dataset("adult")
    stored = reference_baselines("adult")["income"]
    result = run(single_task_arm(ds, "income"), ds, lr=stored["lr"], seed=0)
    assert result.best_epoch == stored["best_epoch"][0]
    assert result.test["income"] == pytest.approx(stored["test"][0], abs=1e-3)


def test_plot_tuning_draws_every_learning_rate():
    axes = plot_tuning(reference_baselines("adult"), lr=BUDGETS["adult"].lrs[0])
    assert len(axes) == 2 and len(axes[0].lines) == len(BUDGETS["adult"].lrs)
    plt.close("all")


def test_plots_draw_and_validate_inputs():
    history = History([{"epoch": 1, "seconds": 0.1, "val/a": 0.5}, {"epoch": 2, "seconds": 0.1, "val/a": 0.7}])
    assert plot_history({"run": history}, "val/a").get_ylabel() == "val/a"
    with pytest.raises(ValueError, match="has no"):
        plot_history({"run": history}, "val/b")
    plot_learning_curve([10, 100], {"stl": [[0.5, 0.6], [0.8, 0.82]]}, "acc")
    with pytest.raises(ValueError, match="sizes"):
        plot_learning_curve([10, 100], {"stl": [[0.5]]}, "acc")
    draw_hard_sharing(["a", "b", "c"])
    ax = draw_parameter_scaling(4, 1000, 10)
    assert "T = 4" in ax.get_title()
    fig = show_images(torch.rand(3, 1, 8, 8), ["x", "y", "z"], ncols=2)
    assert len(fig.axes) == 4
    plt.close("all")


def test_results_table_formats_mean_std():
    table = results_table({"STL": {"left": [0.9, 0.92]}, "MTL": {"left": [0.91, 0.93]}})
    assert table.loc["MTL", "left"] == "0.920 ± 0.014"


def test_slider_panel_calls_draw_and_needs_a_slider():
    import ipywidgets as widgets

    seen = []
    panel = slider_panel(lambda t: seen.append(t), t=widgets.IntSlider(value=2, min=1, max=3))
    panel.children[0].value = 3
    assert 3 in seen
    with pytest.raises(ValueError, match="at least one slider"):
        slider_panel(lambda: None)


def test_slider_labels_are_shown_in_full():
    import ipywidgets as widgets

    slider = widgets.SelectionSlider(options=[1, 2], description="shared layers")
    slider_panel(lambda n: None, n=slider)
    assert slider.style.description_width == "initial"
