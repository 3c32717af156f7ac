import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn

from mtl_helpers.baselines import make_model
from mtl_helpers.data import MultiTaskDataset, Split
from mtl_helpers.models import HardSharing, mlp
from mtl_helpers.tasks import Task
from mtl_helpers.train import fit
from mtl_helpers.weighting import (
    DWA,
    GradNorm,
    GridResult,
    StaticWeighting,
    TrackGradNorms,
    UncertaintyWeighting,
    balanced_choice,
    check_losses,
    draw_weight_choice,
    fit_gal_example,
    fit_gradnorm_toy,
    gal_uw_data,
    gradnorm_toy_data,
    last_shared_layer,
    load_income_and_regression,
    pareto_front,
    run_weighted,
    spearman,
    task_gradient_norms,
    time_per_step,
    two_task_grid,
)


def fake_pair(n: int = 64) -> MultiTaskDataset:
    """A tiny random "adult"-named dataset with a binary and a raw-unit regression task."""
    g = torch.Generator().manual_seed(0)
    tasks = [Task("income", "binary"), Task("hours", "regression")]
    make = lambda: Split(torch.randn(n, 10, generator=g),  # noqa: E731
                         {"income": (torch.arange(n) % 2).float(), "hours": 40 + 10 * torch.randn(n, generator=g)})
    return MultiTaskDataset("adult", tasks, make(), make(), make())


# ------------------------------------------------------------------ inputs
def test_check_losses_accepts_tensor_and_list():
    a, b = torch.tensor(1.0, requires_grad=True), torch.tensor(2.0)
    out = check_losses([a, b])
    assert out.shape == (2,) and out.requires_grad
    assert check_losses(torch.tensor([1.0, 2.0]), 2).shape == (2,)


@pytest.mark.parametrize("bad", [torch.tensor([]), [], torch.ones(2, 2), torch.tensor([1.0, float("nan")]),
                                 [torch.tensor(1.0), torch.tensor(float("inf"))], [torch.ones(2)]])
def test_check_losses_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        check_losses(bad)


def test_check_losses_counts_tasks():
    with pytest.raises(ValueError, match="expected 3"):
        check_losses(torch.ones(2), 3)


# ------------------------------------------------------------------ static weights, grid, front
def test_static_weighting():
    w = StaticWeighting([0.25, 2.0])
    assert w(torch.tensor([4.0, 1.0])).item() == pytest.approx(3.0)
    with pytest.raises(ValueError):
        StaticWeighting([-1.0, 1.0])
    with pytest.raises(ValueError):
        StaticWeighting([])
    with pytest.raises(ValueError):
        w(torch.tensor([1.0, 2.0, 3.0]))


def test_two_task_grid():
    assert two_task_grid([0.0, 0.25]) == [(1.0, 0.0), (0.75, 0.25)]
    with pytest.raises(ValueError):
        two_task_grid([1.5])
    with pytest.raises(ValueError):
        two_task_grid([])


def test_pareto_front_directions_and_ties():
    pts = np.array([[0.9, 12.0], [0.8, 11.0], [0.7, 11.5], [0.9, 12.0]])  # AUC ↑, RMSE ↓
    assert pareto_front(pts, [True, False]).tolist() == [True, True, False, True]
    assert pareto_front(pts, [True, True]).tolist() == [True, False, False, True]
    assert pareto_front([[1.0, 1.0]], [True, True]).tolist() == [True]


@pytest.mark.parametrize("pts, hib", [(np.zeros((0, 2)), [True, True]), (np.ones((2, 2)), [True]),
                                      (np.array([[np.nan, 1.0]]), [True, True]), (np.ones(3), [True])])
def test_pareto_front_rejects_bad_input(pts, hib):
    with pytest.raises(ValueError):
        pareto_front(pts, hib)


def test_balanced_choice_picks_a_front_compromise():
    pts = np.array([[0.87, 11.5], [0.866, 11.0], [0.80, 10.95], [0.75, 12.0]])
    i = balanced_choice(pts, [True, False])
    assert i == 1 and pareto_front(pts, [True, False])[i]


# ------------------------------------------------------------------ uncertainty weighting
def test_uw_forms_values_and_parameter():
    uw = UncertaintyWeighting(2, forms=["classification", "regression"])
    assert isinstance(uw.log_vars, nn.Parameter) and uw.log_vars.shape == (2,)
    with torch.no_grad():
        uw.log_vars.copy_(torch.tensor([0.5, 2.0]))
    L = torch.tensor([0.7, 150.0])
    want = math.exp(-0.5) * 0.7 + 0.25 + 0.5 * math.exp(-2.0) * 150 + 1.0
    assert uw(L).item() == pytest.approx(want, rel=1e-5)
    assert uw([torch.tensor(0.7), torch.tensor(150.0)]).item() == pytest.approx(want, rel=1e-5)
    assert torch.allclose(uw.sigmas, torch.exp(torch.tensor([0.25, 1.0])))
    assert torch.allclose(uw.weights, torch.tensor([math.exp(-0.5), 0.5 * math.exp(-2.0)]))


def test_uw_default_is_regression_form_and_binary_is_classification():
    assert UncertaintyWeighting(3).forms == ["regression"] * 3
    assert UncertaintyWeighting(2, ["binary", "regression"]).coef.tolist() == [1.0, 0.5]


def test_uw_fixed_point_is_the_loss():
    uw = UncertaintyWeighting(2)
    L = torch.tensor([0.5, 300.0])
    with torch.no_grad():
        uw.log_vars.copy_(torch.log(L))
    (grad,) = torch.autograd.grad(uw(L), uw.log_vars)
    assert torch.allclose(grad, torch.zeros(2), atol=1e-6)


def test_uw_classification_is_regression_shifted_by_log2():
    L = torch.tensor([0.4, 2.0])
    s = torch.tensor([0.3, -0.2])
    cls, reg = UncertaintyWeighting(2, ["classification"] * 2), UncertaintyWeighting(2)
    with torch.no_grad():
        cls.log_vars.copy_(s + math.log(2))
        reg.log_vars.copy_(s)
    assert cls(L).item() == pytest.approx(reg(L).item() + math.log(2), rel=1e-6)


def test_uw_warm_start_sets_the_fixed_point_once():
    uw = UncertaintyWeighting(2, ["binary", "regression"], init="first_loss")
    uw(torch.tensor([0.5, 100.0]))
    assert torch.allclose(uw.log_vars.detach(), torch.log(torch.tensor([1.0, 100.0])), atol=1e-6)
    uw(torch.tensor([5.0, 5.0]))
    assert torch.allclose(uw.log_vars.detach(), torch.log(torch.tensor([1.0, 100.0])), atol=1e-6)


@pytest.mark.parametrize("kwargs", [dict(n_tasks=0), dict(n_tasks=2, forms=["regression"]),
                                    dict(n_tasks=1, forms=["ranking"]), dict(n_tasks=1, init="zero")])
def test_uw_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        UncertaintyWeighting(**kwargs)


def test_uw_rejects_non_finite_losses():
    uw = UncertaintyWeighting(2)
    with pytest.raises(ValueError):
        uw(torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError):
        uw(torch.tensor([float("inf"), 1.0]))


def test_uw_log_vars_are_trained_by_fit():
    ds = fake_pair()
    model = HardSharing(mlp(10, [8]), {"income": nn.Linear(8, 1), "hours": nn.Linear(8, 1)})
    uw = UncertaintyWeighting(2)
    fit(model, ds.train, ds.tasks, epochs=2, batch_size=16, lr=1e-2, weighting=uw, verbose=False)
    assert uw.log_vars[1].item() > 0.05  # the big regression loss pushes its log-variance up


def test_gal_data_and_example():
    d = gal_uw_data(50, seed=1)
    assert d.x.shape == (50, 1) and set(d.y) == {"y1", "y2"}
    assert d.y["y1"].std() > 3 * d.y["y2"].std()
    out = fit_gal_example(seeds=(0, 1), steps=5, hidden=8)
    assert out["sigmas"].shape == (2, 2) and out["train_rmse"].shape == (2, 2)
    assert out["true"].tolist() == [10.0, 1.0]
    with pytest.raises(ValueError):
        fit_gal_example(seeds=(), steps=5)


# ------------------------------------------------------------------ GradNorm
def small_model(T: int = 2) -> HardSharing:
    torch.manual_seed(0)
    return HardSharing(mlp(6, [8, 5]), {f"t{i}": nn.Linear(5, 1) for i in range(T)})


def test_last_shared_layer_and_errors():
    model = small_model()
    assert last_shared_layer(model) is model.trunk[2].weight
    with pytest.raises(ValueError):
        last_shared_layer(nn.Linear(2, 2))
    with pytest.raises(ValueError):
        last_shared_layer(HardSharing(nn.ReLU(), {"a": nn.Linear(2, 1)}))


def test_task_gradient_norms_match_manual():
    model = small_model()
    x = torch.randn(7, 6)
    out = model(x)
    losses = torch.stack([(out["t0"] ** 2).mean(), (100 * out["t1"]).abs().mean()])
    W = last_shared_layer(model)
    norms = task_gradient_norms(losses, W)
    for i in range(2):
        (g,) = torch.autograd.grad(losses[i], W, retain_graph=True)
        assert norms[i].item() == pytest.approx(g.norm().item(), rel=1e-6)


def test_gradnorm_weight_gradient_equals_create_graph_version():
    """G_i = w_i ‖∇_W L_i‖ gives the same ∂L_grad/∂w as differentiating through autograd.grad."""
    model = small_model()
    out = model(torch.randn(9, 6))
    losses = torch.stack([(out["t0"] - 1).pow(2).mean(), (out["t1"] - 50).pow(2).mean()])
    W = last_shared_layer(model)
    w = torch.tensor([1.3, 0.7], requires_grad=True)
    initial = losses.detach() * torch.tensor([1.5, 3.0])
    gn = GradNorm(2, W, alpha=1.5)
    gn.initial_losses = initial
    # the second-order route of the public codes
    G2 = torch.stack([torch.autograd.grad(w[i] * losses[i], W, retain_graph=True, create_graph=True)[0].norm()
                      for i in range(2)])
    target = gn.targets(G2, losses)
    (grad_ref,) = torch.autograd.grad((G2 - target).abs().sum(), w, retain_graph=True)
    # ours
    G1 = w * task_gradient_norms(losses, W).detach()
    (grad_ours,) = torch.autograd.grad((G1 - gn.targets(G1, losses)).abs().sum(), w)
    assert torch.allclose(grad_ours, grad_ref, atol=1e-5)


def test_gradnorm_call_renormalises_and_returns_detached_total():
    model = small_model(3)
    gn = GradNorm(3, last_shared_layer(model), alpha=1.0, lr=0.1)
    for _ in range(3):
        out = model(torch.randn(8, 6))
        losses = torch.stack([(out["t0"] - 1).pow(2).mean(), (out["t1"] - 10).pow(2).mean(),
                              (out["t2"] - 100).pow(2).mean()])
        total = gn(losses)
        assert total.requires_grad
        assert gn.weights.sum().item() == pytest.approx(3.0, rel=1e-5)
        assert (gn.weights > 0).all()
    assert len(gn.history) == 3
    grads = torch.autograd.grad(total, [gn.weights], allow_unused=True)
    assert grads[0] is None  # the network's loss does not train w


def test_gradnorm_accepts_a_module_and_rejects_bad_input():
    model = small_model()
    gn = GradNorm(2, model.trunk[2])
    assert gn.layer is model.trunk[2].weight
    with pytest.raises(ValueError):
        GradNorm(2, nn.ReLU())
    with pytest.raises(ValueError):
        GradNorm(0, model.trunk[2])
    with pytest.raises(ValueError):
        GradNorm(2, model.trunk[2], alpha=-1)
    with pytest.raises(ValueError):
        gn(torch.tensor([1.0, float("nan")]))


def test_gradnorm_toy_data():
    d = gradnorm_toy_data([1, 100], n=20)
    assert d.x.shape == (20, 250) and d.y["t1"].shape == (20, 100)
    assert torch.allclose(d.x.norm(dim=1), torch.ones(20), atol=1e-5)
    assert d.y["t0"].abs().max() <= 1.0 and d.y["t1"].abs().max() > 50
    with pytest.raises(ValueError):
        gradnorm_toy_data([])
    with pytest.raises(ValueError):
        gradnorm_toy_data([1, -2])


def test_gradnorm_toy_raises_the_small_task_weight():
    gn = fit_gradnorm_toy([1, 100], epochs=2, n=200)  # 4 steps
    w = gn.history[-1]
    assert w[0] > 1.0 > w[1] and w.sum().item() == pytest.approx(2.0, rel=1e-5)


def test_spearman():
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 5, 3], [10, 50, 30]) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        spearman([1], [1])


# ------------------------------------------------------------------ DWA
def test_dwa_weights_schedule():
    dwa = DWA(2)
    assert dwa(torch.tensor([2.0, 3.0])).item() == pytest.approx(5.0)
    dwa.epoch_end(torch.tensor([1.0, 1.0]))
    assert dwa.weights.tolist() == [1.0, 1.0]
    dwa.epoch_end(torch.tensor([0.5, 1.0]))
    ratio = torch.tensor([0.5, 1.0])
    assert torch.allclose(dwa.weights, 2 * torch.softmax(ratio / 2.0, 0))
    assert dwa.weights[1] > dwa.weights[0]  # the task that learned slower gets more weight
    assert len(dwa.history) == 2 and dwa.history[1].tolist() == [1.0, 1.0]


def test_dwa_is_scale_free():
    a, b = DWA(2), DWA(2)
    for m in (torch.tensor([1.0, 2.0]), torch.tensor([0.6, 1.9])):
        a.epoch_end(m)
        b.epoch_end(m * torch.tensor([1.0, 1000.0]))
    assert torch.allclose(a.weights, b.weights)


def test_dwa_rejects_bad_input():
    with pytest.raises(ValueError):
        DWA(0)
    with pytest.raises(ValueError):
        DWA(2, temperature=0)
    with pytest.raises(ValueError):
        DWA(2).epoch_end(torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError):
        DWA(2)(torch.tensor([1.0, 2.0, 3.0]))


def test_dwa_epoch_end_is_called_by_fit():
    ds = fake_pair()
    model = HardSharing(mlp(10, [8]), {"income": nn.Linear(8, 1), "hours": nn.Linear(8, 1)})
    dwa = DWA(2)
    fit(model, ds.train, ds.tasks, epochs=3, batch_size=32, lr=1e-2, weighting=dwa, verbose=False)
    assert len(dwa.epoch_losses) == 3 and dwa.weights.sum().item() == pytest.approx(2.0, rel=1e-5)


# ------------------------------------------------------------------ data and runners
def test_load_income_and_regression():
    ds = load_income_and_regression(n_train=300)
    assert [t.name for t in ds.tasks] == ["income", "hours_per_week"]
    assert len(ds.train) == 300 and ds.train.x.shape[1] == len(ds.info["feature_names"])
    assert "hours_per_week" not in ds.info["feature_names"]
    assert ds.train.y["hours_per_week"].mean() > 30  # raw units, not standardised
    with pytest.raises(ValueError):
        load_income_and_regression(target="income")
    with pytest.raises(ValueError):
        load_income_and_regression(n_train=0)


def test_run_weighted_and_tracker():
    ds = fake_pair()
    run = run_weighted(ds, lambda m: TrackGradNorms(last_shared_layer(m)), lr=1e-2, seed=0, per_epoch_val=True)
    assert set(run.test) == {"income", "hours"} and run.steps == 5  # 5 epochs, one batch each
    assert run.weighting.norms.shape == (5, 2)
    assert run.seconds_per_step > 0 and "val/income" in run.history.frame()
    plain = run_weighted(ds, None, lr=1e-2, seed=0)
    assert plain.test == pytest.approx(run.test)  # tracking does not change training


def test_time_per_step():
    ds = fake_pair(128)
    times = time_per_step(ds, {"equal": None, "dwa": lambda m: DWA(2)}, lr=1e-2, n_steps=2, repeats=1)
    assert set(times) == {"equal", "dwa"} and all(t > 0 for t in times.values())
    with pytest.raises(ValueError):
        time_per_step(ds, {}, lr=1e-2)


def test_grid_result_and_draw():
    grid = GridResult(weights=two_task_grid([0.1, 0.5, 0.01]), metrics=[[0.85, 11.0], [0.8, 11.2], [0.86, 11.1]],
                      task_names=["income", "hours"], higher_is_better=[True, False],
                      curves=[{"income": [0.8, 0.85], "hours": [12.0, 11.0]}] * 3)
    assert grid.front.tolist() == [True, False, True]
    fig = draw_weight_choice(grid, 2)
    assert isinstance(fig, plt.Figure)
    plt.close(fig)
    with pytest.raises(ValueError):
        draw_weight_choice(grid, 3)
    with pytest.raises(ValueError):
        GridResult(weights=two_task_grid([0.1]), metrics=[[1.0, 2.0, 3.0]], task_names=["a", "b"],
                   higher_is_better=[True, False])


def test_make_model_accepts_the_pair():
    ds = fake_pair()
    assert set(make_model(ds)(ds.train.x)) == {"income", "hours"}
