import math

import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mtl_helpers.baselines import make_model
from mtl_helpers.data import MultiTaskDataset, Split
from mtl_helpers.hard_sharing import (
    draw_architecture,
    draw_depth_panels,
    draw_split_depth,
    export_task_model,
    fit_and_test,
    label_fraction_sweep,
    labelled_rows,
    layer_groups,
    load_task_model,
    measure_latency,
    measure_training_step,
    n_layers,
    outcome,
    save_task_models,
    softmax_ce_floor,
    split_depth_sweep,
    split_model,
    standard_shared_layers,
    training_seconds,
)
from mtl_helpers.tasks import Task
from mtl_helpers.train import History
from mtl_helpers.utils import count_parameters, seed_everything


def fake_dataset(name: str, n: int = 48) -> MultiTaskDataset:
    """A tiny random dataset with the name (hence the standard network) of a course dataset."""
    g = torch.Generator().manual_seed(0)
    if name == "multimnist":
        tasks = [Task("left", "classification", 10), Task("right", "classification", 10)]
        make = lambda: Split(torch.rand(n, 1, 18, 18, generator=g),  # noqa: E731
                             {t.name: torch.arange(n) % 10 for t in tasks})
    else:
        tasks = [Task("income", "binary"), Task("never_married", "binary")]
        make = lambda: Split(torch.randn(n, 94, generator=g),  # noqa: E731
                             {t.name: (torch.arange(n) % 2).float() for t in tasks})
    return MultiTaskDataset(name, tasks, make(), make(), make())


MM, AD = fake_dataset("multimnist"), fake_dataset("adult")


@pytest.mark.parametrize("data", [MM, AD])
def test_layer_groups_rebuild_the_network_exactly(data):
    model = make_model(data, [data.tasks[0].name])
    groups = layer_groups(model)
    assert all(isinstance(g[0], (nn.Linear, nn.Conv2d)) for g in groups)
    x = data.train.x[:5]
    assert torch.equal(nn.Sequential(*groups)(x), model(x)[data.tasks[0].name])


def test_layer_groups_rejects_a_network_without_a_first_layer():
    with pytest.raises(ValueError, match="starts with a Linear"):
        layer_groups(nn.Sequential(nn.ReLU(), nn.Linear(2, 2)))


def test_layer_counts_of_the_course_networks():
    assert (n_layers(MM), standard_shared_layers(MM)) == (5, 3)
    assert (n_layers(AD), standard_shared_layers(AD)) == (4, 2)


@pytest.mark.parametrize("data", [MM, AD])
def test_split_model_spans_separate_towers_to_standard_hard_sharing(data):
    names = [t.name for t in data.tasks]
    stl = count_parameters(make_model(data, [names[0]]))
    assert count_parameters(split_model(data, 0)) == 2 * stl  # separate towers
    assert count_parameters(split_model(data, standard_shared_layers(data))) == count_parameters(make_model(data))
    counts = [count_parameters(split_model(data, d)) for d in range(n_layers(data))]
    assert counts == sorted(counts, reverse=True)  # sharing more never adds parameters
    model = split_model(data, 1)
    out = model(data.train.x[:4])
    assert set(out) == set(names) and out[names[0]].shape[0] == 4
    assert len(list(split_model(data, 0).shared_parameters())) == 0


def test_split_model_rejects_bad_depths_and_empty_task_lists():
    with pytest.raises(ValueError, match="0..4"):
        split_model(MM, 5)
    with pytest.raises(ValueError, match="0..3"):
        split_model(AD, -1)
    with pytest.raises(ValueError, match="at least one task"):
        split_model(MM, 1, [])
    with pytest.raises(ValueError, match="Unknown task"):
        split_model(MM, 1, ["middle"])


def test_fit_and_test_and_split_depth_sweep():
    run = fit_and_test(lambda: split_model(AD, 1), AD, ["income", "never_married"], 1e-2, seed=0, epochs=1)
    assert set(run["test"]) == {"income", "never_married"} and run["seconds"] > 0
    sweep = split_depth_sweep(AD, [0, 3], [0, 1], 1e-2, epochs=1)
    assert set(sweep) == {0, 3} and len(sweep[0]["test"]["income"]) == 2
    assert sweep[0]["params"] > sweep[3]["params"]
    with pytest.raises(ValueError, match="at least one depth"):
        split_depth_sweep(AD, [], [0], 1e-2)


def test_same_seed_gives_the_same_run():
    a = fit_and_test(lambda: split_model(AD, 2), AD, ["income"], 1e-2, seed=3, epochs=1)
    b = fit_and_test(lambda: split_model(AD, 2), AD, ["income"], 1e-2, seed=3, epochs=1)
    assert a["test"] == b["test"]


def test_labelled_rows_keeps_exactly_the_labelled_rows():
    masked = AD.train.with_label_fraction("income", 0.25, seed=1)
    rows = labelled_rows(masked, "income")
    keep = masked.masks["income"]
    assert len(rows) == int(keep.sum()) == 12
    assert torch.equal(rows.x, AD.train.x[keep]) and torch.equal(rows.y["income"], AD.train.y["income"][keep])
    assert list(rows.y) == ["income"] and not rows.masks
    assert labelled_rows(AD.train, "income") is AD.train  # no mask: every row is labelled
    with pytest.raises(ValueError, match="Unknown task"):
        labelled_rows(masked, "age")


def test_label_fraction_sweep_structure_and_errors():
    curves = label_fraction_sweep(AD, "income", [0.5, 1.0], [0, 1], 1e-2, 3e-3, epochs=1)
    assert set(curves) == {"STL", "MTL"} and set(curves["STL"]) == {0.5, 1.0}
    assert all(len(v) == 2 for v in curves["MTL"].values())
    with pytest.raises(ValueError, match="Unknown task"):
        label_fraction_sweep(AD, "age", [0.5], [0], 1e-2, 1e-2)
    with pytest.raises(ValueError, match="at least one fraction"):
        label_fraction_sweep(AD, "income", [], [0], 1e-2, 1e-2)


def trained_model(data=MM):
    seed_everything(0)
    return make_model(data)


def test_export_task_model_is_exact_independent_and_single_task():
    model = trained_model()
    x = MM.test.x
    model.eval()
    for task in model.task_names:
        part = export_task_model(model, task)
        assert torch.equal(part(x), model(x)[task])
        assert count_parameters(part) == count_parameters(model.trunk) + count_parameters(model.heads[task])
    part = export_task_model(model, "left")
    with torch.no_grad():
        next(part.parameters()).add_(1.0)
    assert not torch.equal(part(x), model(x)["left"])  # the copy owns its weights
    with pytest.raises(ValueError, match="Unknown task"):
        export_task_model(model, "middle")
    with pytest.raises(ValueError, match="HardSharing"):
        export_task_model(nn.Linear(2, 2), "left")


def test_save_and_load_round_trip(tmp_path):
    model = trained_model(AD).eval()
    paths = save_task_models(model, tmp_path)
    assert set(paths) == {"income", "never_married"} and all(p.stat().st_size > 0 for p in paths.values())
    fresh = export_task_model(make_model(AD), "income")
    loaded = load_task_model(paths["income"], fresh)
    x = AD.test.x
    assert torch.equal(loaded(x), model(x)["income"])
    with pytest.raises(RuntimeError):  # wrong architecture: strict loading refuses
        load_task_model(paths["income"], export_task_model(make_model(MM), "left"))
    with pytest.raises(ValueError, match="not a directory"):
        save_task_models(model, tmp_path / "missing")


def test_measure_latency():
    a, b = nn.Linear(8, 8), nn.Linear(8, 8)
    times = measure_latency({"one": a, "two": [a, b]}, torch.randn(16, 8), repeats=5)
    assert set(times) == {"one", "two"} and all(t > 0 for t in times.values())
    with pytest.raises(ValueError, match="at least one model"):
        measure_latency({}, torch.randn(2, 8))
    with pytest.raises(ValueError, match="repeats"):
        measure_latency({"one": a}, torch.randn(2, 8), repeats=0)


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


def test_training_seconds_is_epochs_times_the_median_epoch():
    quick = History([{"epoch": e, "seconds": 1.0} for e in (1, 2, 3)])
    burst = History([{"epoch": 1, "seconds": 1.2}, {"epoch": 2, "seconds": 50.0}, {"epoch": 3, "seconds": 0.9}])
    assert training_seconds([quick, burst]) == 3 * 1.0
    with pytest.raises(ValueError, match="at least one"):
        training_seconds([])


def test_measure_training_step_leaves_the_models_alone():
    joint, single = make_model(AD), make_model(AD, ["income"])
    before = [p.clone() for p in joint.parameters()]
    times = measure_training_step({"MTL": joint, "STL": [single]}, AD.train.subset(torch.arange(16)), AD.tasks,
                                  repeats=3)
    assert set(times) == {"MTL", "STL"} and all(t > 0 for t in times.values())
    assert all(torch.equal(a, b) for a, b in zip(before, joint.parameters(), strict=True))
    with pytest.raises(ValueError, match="no Task given"):
        measure_training_step({"MTL": joint}, AD.train, AD.tasks[:1])
    with pytest.raises(ValueError, match="HardSharing"):
        measure_training_step({"x": nn.Linear(2, 2)}, AD.train, AD.tasks)
    with pytest.raises(ValueError, match="at least one model"):
        measure_training_step({}, AD.train, AD.tasks)
