"""Tests of mtl_helpers.conflict on hand-checkable gradients."""

import itertools
import math

import pytest
import torch

from mtl_helpers.conflict import (
    METHODS,
    ConflictRecorder,
    cagrad,
    cagrad_weights,
    check_grads,
    clip_norm,
    combine,
    conflicts,
    gradient_cosine,
    gram,
    make_direction,
    mgda_weights,
    min_norm_weights,
    nash_mtl_weights,
    normalized_sum,
    pcgrad,
    per_task_gradients,
    weights_to_direction,
)
from mtl_helpers.data import Split
from mtl_helpers.models import HardSharing, make_head, mlp
from mtl_helpers.tasks import Task
from mtl_helpers.train import fit

D = torch.float64


def G(*rows):
    return torch.tensor(rows, dtype=D)


def simplex_grid(T, n):
    rows = [[*idx, n - sum(idx)] for idx in itertools.product(range(n + 1), repeat=T - 1) if sum(idx) <= n]
    return torch.tensor(rows, dtype=D) / n


# ------------------------------------------------------------------ existing contract
def test_per_task_gradients_and_cosine():
    w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    grads = per_task_gradients([(w ** 2).sum(), -(w[0] * 3)], [w])
    assert torch.allclose(grads, torch.tensor([[2.0, 4.0], [-3.0, 0.0]]))
    cos = gradient_cosine(grads)
    assert cos.shape == (2, 2) and torch.allclose(cos.diagonal(), torch.ones(2))
    assert cos[0, 1] < 0


@pytest.mark.parametrize("fn", [pcgrad, mgda_weights, cagrad, nash_mtl_weights, gradient_cosine, normalized_sum,
                                cagrad_weights])
@pytest.mark.parametrize("bad", [torch.zeros(3), torch.zeros(0, 4), torch.zeros(2, 0),
                                 torch.tensor([[1.0, float("nan")], [0.0, 1.0]]),
                                 torch.tensor([[1.0, float("inf")], [0.0, 1.0]]), [[1.0, 2.0]]])
def test_bad_input_raises(fn, bad):
    with pytest.raises(ValueError):
        fn(bad)


def test_conflicts_and_combine():
    g = G([1, 0], [-1, 1])
    assert conflicts(g, torch.tensor([1.0, 0.0], dtype=D)).tolist() == [False, True]
    assert torch.allclose(combine(torch.tensor([0.5, 0.5]), g), G([0, 0.5])[0])
    with pytest.raises(ValueError):
        combine(torch.ones(3), g)
    with pytest.raises(ValueError):
        conflicts(g, torch.ones(3))


# ------------------------------------------------------------------ PCGrad
def test_pcgrad_hand_cases():
    assert torch.allclose(pcgrad(G([1, 0], [0, 2])), G([1, 2])[0])  # orthogonal: unchanged sum
    assert torch.allclose(pcgrad(G([1, 1], [1, 1])), G([2, 2])[0])  # identical
    assert torch.allclose(pcgrad(G([1, -2], [-1, 2])), torch.zeros(2, dtype=D))  # opposite: both vanish
    # conflicting: g1=(1,0), g2=(-1,1): g1' = (1,0) + 0.5(-1,1) = (0.5,0.5); g2' = (-1,1) + (1,0) = (0,1)
    assert torch.allclose(pcgrad(G([1, 0], [-1, 1])), G([0.5, 1.5])[0])
    assert torch.allclose(pcgrad(G([1, 0], [-1, 1]), reduction="mean"), G([0.25, 0.75])[0])
    with pytest.raises(ValueError):
        pcgrad(G([1, 0], [0, 1]), reduction="max")


def test_pcgrad_two_tasks_never_conflicts_and_order_free():
    torch.manual_seed(0)
    for _ in range(50):
        g = torch.randn(2, 5, dtype=D)
        d = pcgrad(g)
        assert not conflicts(g, d).any()
        assert torch.allclose(d, pcgrad(g.flip(0)))


def test_pcgrad_three_tasks_depends_on_order_but_is_seedable():
    g = G([1, 0], [-1, 1], [-1, -1.5])
    results = {tuple(pcgrad(g, torch.Generator().manual_seed(s)).round(decimals=6).tolist()) for s in range(20)}
    assert len(results) > 1  # the random order matters for T > 2
    a = pcgrad(g, torch.Generator().manual_seed(3))
    assert torch.equal(a, pcgrad(g, torch.Generator().manual_seed(3)))


# ------------------------------------------------------------------ MGDA
def test_mgda_two_task_hand_cases():
    assert torch.allclose(mgda_weights(G([1, 0], [0, 1])), G([0.5, 0.5])[0])
    assert torch.allclose(mgda_weights(G([1, 0], [0, 2])), G([0.8, 0.2])[0])  # smaller gradient gets more weight
    assert torch.allclose(mgda_weights(G([1, 0], [3, 0])), G([1.0, 0.0])[0])  # rescaled: min norm is g1 (clipped)
    assert torch.allclose(mgda_weights(G([1, 1], [1, 1])), G([0.5, 0.5])[0])  # identical
    w = mgda_weights(G([1, -2], [-1, 2]))
    assert torch.allclose(combine(w, G([1, -2], [-1, 2])), torch.zeros(2, dtype=D))  # opposite: Pareto stationary


def test_mgda_is_common_descent_and_on_simplex():
    torch.manual_seed(1)
    for T in (2, 3, 5):
        for _ in range(10):
            g = torch.randn(T, 8, dtype=D)
            w = mgda_weights(g)
            assert w.min() >= 0 and abs(w.sum().item() - 1) < 1e-9
            d = combine(w, g)
            assert ((g @ d) >= d @ d - 1e-7).all()  # g_i·d ≥ ‖d‖² : every task improves


def test_mgda_three_tasks_matches_brute_force():
    torch.manual_seed(2)
    for _ in range(5):
        g = torch.randn(3, 4, dtype=D)
        m = g @ g.T
        W = simplex_grid(3, 120)
        best = ((W @ m) * W).sum(1).min().item()
        w = mgda_weights(g)
        assert (w @ m @ w).item() <= best + 1e-9


def test_mgda_normalisations():
    g = G([1, 0], [0, 10])
    assert torch.allclose(mgda_weights(g, normalize="l2"), G([0.5, 0.5])[0])
    with pytest.raises(ValueError):
        mgda_weights(g, normalize="loss")
    assert torch.allclose(mgda_weights(g, normalize="loss", losses=torch.tensor([1.0, 1.0])), mgda_weights(g))
    assert torch.allclose(mgda_weights(g, normalize="loss+", losses=torch.tensor([2.0, 2.0])),
                          mgda_weights(g, normalize="l2"))
    with pytest.raises(ValueError):
        mgda_weights(g, normalize="max")
    with pytest.raises(ValueError):
        mgda_weights(g, normalize="loss", losses=torch.tensor([1.0, -1.0]))
    assert torch.allclose(min_norm_weights(torch.eye(1)), torch.ones(1, dtype=D))


# ------------------------------------------------------------------ CAGrad
def test_cagrad_hand_cases():
    g = G([1, 0], [-1, 1])
    assert torch.allclose(cagrad(g, c=0.0), g.mean(0))  # c = 0 is the mean gradient
    assert torch.allclose(cagrad(G([1, 2], [1, 2])), G([1, 2])[0])  # identical: d = g(1+c)/(1+c)
    assert torch.allclose(cagrad(G([1, 0], [0, 1])), G([0.5, 0.5])[0])  # symmetric orthogonal: the mean
    assert torch.allclose(cagrad(G([1, -2], [-1, 2])), torch.zeros(2, dtype=D))  # opposite: g0 = 0
    d = cagrad(g, c=0.5, rescale=False)
    assert torch.allclose(cagrad(g, c=0.5), d / 1.5)
    with pytest.raises(ValueError):
        cagrad(g, c=-1.0)


def test_cagrad_large_c_approaches_mgda():
    g = G([1, 0], [-1, 3])
    mgda = combine(mgda_weights(g), g)
    d = cagrad(g, c=1000.0)
    cos = (d @ mgda) / (d.norm() * mgda.norm())
    assert cos > 0.999


def test_cagrad_solves_its_primal():
    """d maximises min_i g_i·d over the ball ‖d − g0‖ ≤ c‖g0‖ (checked against random points)."""
    torch.manual_seed(3)
    for T in (2, 3, 4):
        g = torch.randn(T, 3, dtype=D)
        c = 0.5
        d = cagrad(g, c=c, rescale=False)
        g0 = g.mean(0)
        assert (d - g0).norm() <= c * g0.norm() + 1e-9
        u = torch.randn(20000, 3, dtype=D)
        u = u / u.norm(dim=1, keepdim=True) * torch.rand(20000, 1, dtype=D) ** (1 / 3)
        candidates = g0 + c * g0.norm() * u
        assert (g @ d).min() >= (candidates @ g.T).min(dim=1).values.max() - 1e-6


def test_cagrad_dual_matches_brute_force_three_tasks():
    torch.manual_seed(4)
    g = torch.randn(3, 5, dtype=D)
    m = g @ g.T
    b, k = m.mean(1), 0.5 * m.sum().sqrt() / 3
    W = simplex_grid(3, 120)
    best = (W @ b + k * ((W @ m) * W).sum(1).sqrt()).min().item()
    w = cagrad_weights(g)
    assert (w @ b + k * torch.sqrt(w @ m @ w)).item() <= best + 1e-9


# ------------------------------------------------------------------ Nash-MTL
def test_nash_solves_its_equation():
    torch.manual_seed(5)
    for T in (2, 3, 5):
        g = torch.randn(T, 10, dtype=D)
        a = nash_mtl_weights(g, ridge=0.0)
        m = g @ g.T
        assert (a > 0).all()
        assert torch.allclose(a * (m @ a), torch.ones(T, dtype=D), atol=1e-7)
        assert abs(combine(a, g).norm().item() - math.sqrt(T)) < 1e-6  # ‖Gᵀα‖² = T


def test_nash_hand_cases():
    assert torch.allclose(nash_mtl_weights(G([2, 0], [0, 4]), ridge=0.0), G([0.5, 0.25])[0])  # orthogonal: 1/‖g‖
    same = nash_mtl_weights(G([3, 4], [3, 4]), ridge=0.0)
    assert torch.allclose(same, torch.full((2,), 1 / (5 * math.sqrt(2)), dtype=D))
    torch.manual_seed(6)
    g = torch.randn(2, 4, dtype=D)
    n = g.norm(dim=1)
    cos = (g[0] @ g[1]) / (n[0] * n[1])
    assert torch.allclose(nash_mtl_weights(g), 1 / (n * torch.sqrt(1 + cos)), rtol=1e-6)
    assert torch.allclose(nash_mtl_weights(3 * g), nash_mtl_weights(g) / 3, rtol=1e-6)  # scale-free direction
    opposite = nash_mtl_weights(G([1, 0], [-1, 0]))  # no exact solution: the ridge keeps α finite
    assert torch.isfinite(opposite).all()
    normed = nash_mtl_weights(g, gram_normalize=True)
    assert torch.allclose(normed, nash_mtl_weights(g) * (g @ g.T).norm().sqrt(), rtol=1e-5)


# ------------------------------------------------------------------ simple remedies and hooks
def test_normalized_sum_and_clip():
    g = G([100, 0], [-1, 1])
    assert conflicts(g, g.sum(0)).tolist() == [False, True]  # the big gradient drowns task 2
    assert not conflicts(g, normalized_sum(g)).any()  # normalising fixes that
    d = g.sum(0)
    clipped = clip_norm(d, 1.0)
    assert abs(clipped.norm().item() - 1) < 1e-9 and conflicts(g, clipped).tolist() == [False, True]
    assert torch.equal(clip_norm(d, 1e6), d)
    three = G([1, 0], [-1, 0.2], [-1, -0.2])  # a majority still pushes task 1 uphill
    assert conflicts(three, normalized_sum(three))[0]
    assert torch.allclose(normalized_sum(G([1, 0], [0, 1])), G([1, 1])[0])
    with pytest.raises(ValueError):
        clip_norm(d, 0.0)


def test_make_direction_names():
    g = G([1, 0], [-1, 1])
    assert torch.allclose(make_direction("sum")(g), g.sum(0))
    assert torch.allclose(make_direction("mean")(g), g.mean(0))
    assert torch.allclose(make_direction("pcgrad")(g), pcgrad(g))
    assert torch.allclose(make_direction("mgda")(g), combine(mgda_weights(g), g))
    assert torch.allclose(make_direction("cagrad", c=0.3)(g), cagrad(g, c=0.3))
    assert torch.allclose(make_direction("nash")(g), combine(nash_mtl_weights(g), g))
    assert torch.allclose(make_direction("normalized")(g), normalized_sum(g))
    assert set(METHODS) >= {"sum", "pcgrad", "mgda", "cagrad", "nash"}
    assert weights_to_direction(mgda_weights)(g).shape == (2,)
    with pytest.raises(ValueError):
        make_direction("famo")


def _tiny():
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    split = Split(x, {"a": (x[:, 0] > 0).float(), "b": x[:, 1] - x[:, 2]})
    tasks = [Task("a", "binary"), Task("b", "regression")]
    model = HardSharing(mlp(4, [8]), {t.name: make_head(8, t) for t in tasks})
    return model, split, tasks


@pytest.mark.parametrize("name", ["pcgrad", "mgda", "cagrad", "nash"])
@pytest.mark.parametrize("wrt", ["parameters", "representation"])
def test_methods_train_through_fit(name, wrt):
    model, split, tasks = _tiny()
    recorder = ConflictRecorder(keep_every=2)
    history = fit(model, split, tasks, epochs=2, batch_size=16, gradient_method=make_direction(name),
                  gradients_wrt=wrt, on_step=recorder, verbose=False)
    assert len(history.records) == 2 and len(recorder.cosines) == 8 and len(recorder.kept) == 4
    assert 0.0 <= recorder.conflict_rate() <= 1.0
    assert recorder.cosine().shape == (8,) and recorder.norm_ratio().shape == (8,)


def test_recorder_needs_gradients():
    model, split, tasks = _tiny()
    recorder = ConflictRecorder()
    with pytest.raises(ValueError):
        recorder.cosine()
    with pytest.raises(ValueError):
        fit(model, split, tasks, epochs=1, on_step=recorder, verbose=False)
    assert check_grads(G([1, 0])).shape == (1, 2)


def test_gram_reads_non_finite_gradients_off_its_trace():
    """gram(check=True) tests one number, the trace Σ‖g_i‖², for NaN/inf in any row; a finite G
    whose squares overflow float64 is not an error (the exact test on G decides)."""
    g = torch.tensor([[3.0, 4.0], [1.0, -2.0]])
    assert torch.equal(gram(g, check=True), torch.tensor([[25.0, -5.0], [-5.0, 5.0]], dtype=torch.float64))
    for bad in (float("nan"), float("inf"), -float("inf")):
        broken = g.clone()
        broken[1, 0] = bad
        with pytest.raises(ValueError, match="NaN or inf"):
            gram(broken, check=True)
    huge = torch.tensor([[1e200, 0.0], [0.0, 1.0]], dtype=torch.float64)
    assert gram(huge, check=True)[0, 0] == float("inf")
