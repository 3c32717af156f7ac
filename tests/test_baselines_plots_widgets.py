import matplotlib.pyplot as plt
import pytest
import torch

from mtl_helpers.baselines import learning_curve, plot_tuning, reference_baselines, run_baselines
from mtl_helpers.data import load_adult
from mtl_helpers.models import parameter_counts
from mtl_helpers.plots import (
    draw_hard_sharing,
    draw_parameter_scaling,
    plot_history,
    plot_learning_curve,
    results_table,
    show_images,
)
from mtl_helpers.train import History
from mtl_helpers.widgets import slider_panel


@pytest.fixture(scope="module")
def small_adult():
    return load_adult(n_train=1500)


def test_parameter_counts_formula():
    assert parameter_counts(3, 100, 10) == {"separate": 330, "shared": 130}
    with pytest.raises(ValueError):
        parameter_counts(0, 100, 10)


def test_run_baselines_and_learning_curve_on_small_data(small_adult):
    results = run_baselines(small_adult, seeds=(0, 1))
    assert set(results) == {"income", "never_married"}
    r = results["income"]
    assert r["lr"] in (1e-3, 3e-3, 1e-2) and len(r["test"]) == 2 and all(0.5 < v <= 1 for v in r["test"])
    assert len(r["val_curves"]) == 3 and len(r["val_curves"][str(r["lr"])]) == 5
    axes = plot_tuning(results, lr=r["lr"])
    assert len(axes) == 2
    plt.close("all")
    curve = learning_curve(small_adult, "income", [300], r["lr"], seeds=(0,))
    assert list(curve) == [300] and 0.5 < curve[300][0] <= 1


def test_reference_baselines_structure():
    stored = reference_baselines()
    assert set(stored["results"]) == {"multimnist", "adult"}
    with pytest.raises(ValueError, match="No stored baselines"):
        reference_baselines("cifar")


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
