"""Tests of the CAGrad 2-D toy (mtl_helpers.toy)."""

import matplotlib.pyplot as plt
import pytest
import torch

from mtl_helpers.conflict import cagrad, combine, mgda_weights, nash_mtl_weights, normalized_sum, pcgrad
from mtl_helpers.toy import (
    MEAN_MINIMUM,
    STARTS,
    TASK_MINIMA,
    TOY_METHODS,
    distance_to_pareto_set,
    pareto_set,
    plot_toy,
    toy_direction,
    toy_gradients,
    toy_losses,
    toy_trajectories,
    toy_trajectory,
)


def test_losses_shape_and_bad_input():
    assert toy_losses(torch.zeros(2)).shape == (2,)
    assert toy_losses(torch.zeros(5, 3, 2)).shape == (5, 3, 2)
    with pytest.raises(ValueError):
        toy_losses(torch.zeros(3))


def test_analytic_gradients_match_autograd():
    torch.manual_seed(0)
    for _ in range(30):
        x = (torch.rand(2, dtype=torch.float64) * 20 - 10).requires_grad_()
        f = toy_losses(x)
        g1 = torch.autograd.grad(f[0], x, retain_graph=True)[0]
        g2 = torch.autograd.grad(f[1], x)[0]
        assert torch.allclose(torch.tensor(toy_gradients(*x.tolist()), dtype=torch.float64), torch.cat([g1, g2]),
                              atol=1e-7)


def test_minima_and_pareto_set():
    grid = torch.linspace(-10, 10, 401, dtype=torch.float64)
    xx, yy = torch.meshgrid(grid, grid, indexing="xy")
    f = toy_losses(torch.stack([xx, yy], -1))
    for i, minimum in enumerate(TASK_MINIMA):
        k = f[..., i].argmin()
        assert abs(xx.flatten()[k] - minimum[0]) < 0.06 and abs(yy.flatten()[k] - minimum[1]) < 0.06
    k = f.mean(-1).argmin()
    assert abs(xx.flatten()[k] - MEAN_MINIMUM[0]) < 0.06 and abs(yy.flatten()[k] - MEAN_MINIMUM[1]) < 0.06
    front = pareto_set(21)
    assert front.shape == (21, 2)
    for x1, x2 in front[1:-1].tolist():  # anti-parallel gradients on the Pareto set
        a1, a2, b1, b2 = toy_gradients(x1, x2)
        assert abs(a1 * b2 - a2 * b1) < 1e-6 and a1 * b1 + a2 * b2 < 0
    assert distance_to_pareto_set(MEAN_MINIMUM) < 1e-3
    assert abs(distance_to_pareto_set((0.0, 0.0)) - 8.355) < 1e-2


@pytest.mark.parametrize("method", ["mean", "pcgrad", "mgda", "cagrad", "nash", "normalized"])
def test_float_directions_match_the_tensor_methods(method):
    reference = {"mean": lambda g: g.mean(0), "pcgrad": lambda g: pcgrad(g, reduction="mean"),
                 "mgda": lambda g: combine(mgda_weights(g), g), "cagrad": lambda g: cagrad(g, c=0.5),
                 "nash": lambda g: combine(nash_mtl_weights(g, ridge=0.0), g), "normalized": normalized_sum}[method]
    torch.manual_seed(1)
    fn = toy_direction(method)
    for _ in range(40):
        g = torch.randn(2, 2, dtype=torch.float64) * torch.rand(2, 1, dtype=torch.float64) * 5
        got = torch.tensor(fn(*g.flatten().tolist()), dtype=torch.float64)
        assert torch.allclose(got, reference(g), atol=1e-6), (method, g)


def test_trajectory_shape_and_errors():
    path = toy_trajectory("mean", (1.0, 2.0), steps=10, lr=1e-2)
    assert path.shape == (11, 2) and path[0].tolist() == [1.0, 2.0]
    paths = toy_trajectories(TOY_METHODS, STARTS[:2], steps=5)
    assert set(paths) == set(TOY_METHODS) and all(p.shape == (6, 2) for runs in paths.values() for p in runs)
    with pytest.raises(ValueError):
        toy_trajectory("sgd", (0.0, 0.0), 10)
    with pytest.raises(ValueError):
        toy_trajectory("mean", (0.0, float("nan")), 10)
    with pytest.raises(ValueError):
        toy_trajectory("mean", (0.0, 0.0), 10, lr=0.0)


def test_paper_setting_cagrad_reaches_the_centre():
    path = toy_trajectory("cagrad", (9.0, 9.0), steps=100_000, lr=1e-3)
    assert (path[-1] - torch.tensor(MEAN_MINIMUM, dtype=torch.float64)).norm() < 0.05


def test_mean_stalls_with_the_paper_setting():
    end = toy_trajectory("mean", (-8.5, 7.5), steps=100_000, lr=1e-3)[-1]
    assert end[1] > 0 and distance_to_pareto_set(end.tolist()) > 5


def test_plot_toy():
    ax = plot_toy({"mean": [toy_trajectory("mean", STARTS[0], 20, 1e-2)]}, title="t")
    assert ax.get_title() == "t"
    plt.close("all")


def test_widget_setting_keeps_the_outcomes():
    from mtl_helpers.toy import WIDGET_LR, WIDGET_STEPS, plot_cagrad_c
    stalled = toy_trajectory("cagrad", STARTS[0], WIDGET_STEPS, WIDGET_LR, c=0.0)[-1]
    centre = toy_trajectory("cagrad", STARTS[0], WIDGET_STEPS, WIDGET_LR, c=0.5)[-1]
    assert stalled[1] > 0
    assert (centre - torch.tensor(MEAN_MINIMUM, dtype=torch.float64)).norm() < 0.1
    ax = plot_cagrad_c(0.5, steps=50)
    assert ax.get_title() == "c = 0.5"
    with pytest.raises(ValueError):
        plot_cagrad_c(-1.0)
    plt.close("all")


def test_every_registered_method_runs_on_the_toy():
    """A method added to the registry works on the toy at once (through its tensor version
    when the toy has no float closed form for it)."""
    from mtl_helpers.conflict import GRADIENT_METHODS, make_direction
    for name in GRADIENT_METHODS:
        fn = toy_direction(name)
        g = torch.tensor([[1.0, 0.5], [-0.8, 0.3]], dtype=torch.float64)
        got = torch.tensor(fn(*g.flatten().tolist()), dtype=torch.float64)
        if name not in ("pcgrad", "cagrad"):  # the toy uses PCGrad's mean reduction, CAGrad with its c
            assert torch.allclose(got, make_direction(name)(g), atol=1e-6), name
    path = toy_trajectory("sum", STARTS[0], steps=5, lr=1e-2)
    assert path.shape == (6, 2)
