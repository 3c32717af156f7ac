import math

import numpy as np
import pytest
import torch
from torch import nn

from mtl_helpers.data import Split
from mtl_helpers.metrics import balanced_choice, pareto_front
from mtl_helpers.models import HardSharing, make_head, mlp
from mtl_helpers.tasks import Task
from mtl_helpers.train import fit
from mtl_helpers.weighting import (
    DWA,
    WEIGHTINGS,
    GradNorm,
    LossWeighting,
    StaticWeighting,
    UncertaintyWeighting,
    check_losses,
    last_shared_layer,
    make_weighting,
    task_gradient_norms,
    two_task_grid,
)

PAIR_TASKS = [Task("income", "binary"), Task("hours", "regression")]


def fake_pair(n: int = 64) -> Split:
    """A tiny random split with a binary and a raw-unit regression task."""
    g = torch.Generator().manual_seed(0)
    return Split(torch.randn(n, 10, generator=g),
                 {"income": (torch.arange(n) % 2).float(), "hours": 40 + 10 * torch.randn(n, generator=g)})


def pair_model() -> HardSharing:
    torch.manual_seed(0)
    return HardSharing(mlp(10, [16, 8]), {t.name: make_head(8, t) for t in PAIR_TASKS})


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
    fit(model, ds, PAIR_TASKS, epochs=2, batch_size=16, lr=1e-2, weighting=uw, verbose=False)
    assert uw.log_vars[1].item() > 0.05  # the big regression loss pushes its log-variance up


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
    fit(model, ds, PAIR_TASKS, epochs=3, batch_size=32, lr=1e-2, weighting=dwa, verbose=False)
    assert len(dwa.epoch_losses) == 3 and dwa.weights.sum().item() == pytest.approx(2.0, rel=1e-5)


# ------------------------------------------------------------------ the registry: every balancer
OPTIONS = {"static": {"weights": [0.3, 0.7]}}


@pytest.mark.parametrize("name", list(WEIGHTINGS))
def test_every_registered_balancer_keeps_the_contract(name):
    """A scalar attached to the graph, non-negative effective weights, a clear error for a
    wrong number of losses or a NaN, and it trains through fit by name."""
    model = pair_model()
    balancer = make_weighting(name, model, PAIR_TASKS, **OPTIONS.get(name, {}))
    assert isinstance(balancer, LossWeighting)
    batch = fake_pair(16)
    out = model(batch.x)
    losses = torch.stack([t.loss(out[t.name], batch.y[t.name]) for t in PAIR_TASKS])
    total = balancer(losses)
    assert total.ndim == 0 and torch.isfinite(total) and total.requires_grad
    (weights,) = torch.autograd.grad(total, losses, retain_graph=True)
    assert (weights >= 0).all()  # no balancer rewards a task for getting worse
    with pytest.raises(ValueError):
        balancer(losses[:1])
    with pytest.raises(ValueError):
        balancer(torch.tensor([1.0, float("nan")]))
    fit(pair_model(), fake_pair(), PAIR_TASKS, epochs=2, batch_size=16, weighting=name if name not in OPTIONS
        else make_weighting(name, model, PAIR_TASKS, **OPTIONS[name]), verbose=False)


def test_make_weighting_errors():
    with pytest.raises(ValueError, match="Unknown loss weighting"):
        make_weighting("famo", pair_model(), PAIR_TASKS)
    with pytest.raises(ValueError, match="task list"):
        make_weighting("equal", pair_model(), [])
    assert make_weighting("uw", pair_model(), PAIR_TASKS).forms == ["binary", "regression"]

