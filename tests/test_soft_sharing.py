"""Tests of mtl_helpers.soft_sharing: L2 coupling, cross-stitch, low-rank sharing, batched replicas."""

from __future__ import annotations

import copy
import itertools

import matplotlib
import pytest
import torch
from torch import nn

matplotlib.use("Agg")

from mtl_helpers import ConvTrunk, MultiTaskDataset, Split, Task, count_parameters, fit, mlp, seed_everything  # noqa: E402
from mtl_helpers.baselines import make_model  # noqa: E402
from mtl_helpers.soft_sharing import (  # noqa: E402
    CrossStitch,
    LowRankSharing,
    Replicas,
    SoftSharing,
    coupling_penalty,
    cross_stitch_init,
    cross_stitch_mix,
    grid_frame,
    l2_coupling,
    make_cross_stitch,
    make_low_rank,
    make_soft_sharing,
    per_task_lr_scale,
    plot_alpha_panel,
    plot_tower_scatter,
    replicate_split,
    replicate_tasks,
    tower_distance,
    train_grid,
    train_replicas,
    trunk_blocks,
    weight_decay_penalty,
)

TASKS = [Task("income", "binary"), Task("never_married", "binary")]


def tiny_adult(n: int = 96, dim: int = 10, seed: int = 0) -> MultiTaskDataset:
    """A synthetic stand-in for Adult (same name, so the standard budget and network apply)."""
    g = torch.Generator().manual_seed(seed)

    def split(m: int) -> Split:
        x = torch.randn(m, dim, generator=g)
        return Split(x, {"income": (x[:, 0] + 0.3 * x[:, 2] > 0).float(), "never_married": (x[:, 1] > 0).float()})
    return MultiTaskDataset("adult", TASKS, split(n), split(48), split(48))


def soft_model(n_tasks: int = 2, seed: int = 0, dim: int = 5) -> SoftSharing:
    torch.manual_seed(seed)
    names = [f"t{i}" for i in range(n_tasks)]
    return SoftSharing({n: mlp(dim, [4, 3]) for n in names}, {n: nn.Linear(3, 1) for n in names})


def flat(module: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()])


# --------------------------------------------------------------------------- SoftSharing
def test_soft_sharing_forward_returns_one_output_per_task():
    model = soft_model(3)
    out = model(torch.randn(7, 5))
    assert set(out) == {"t0", "t1", "t2"} and all(v.shape == (7, 1) for v in out.values())
    assert model.task_names == ["t0", "t1", "t2"]
    assert len(model.coupled_parameters()) == 4 and all(len(g) == 3 for g in model.coupled_parameters())


def test_soft_sharing_rejects_bad_towers():
    with pytest.raises(ValueError, match="identical shapes"):
        SoftSharing({"a": mlp(5, [4]), "b": mlp(5, [6])}, {"a": nn.Linear(4, 1), "b": nn.Linear(6, 1)})
    with pytest.raises(ValueError, match="same tasks"):
        SoftSharing({"a": mlp(5, [4])}, {"b": nn.Linear(4, 1)})
    with pytest.raises(ValueError, match="at least one tower"):
        SoftSharing({}, {})


def test_penalty_is_zero_for_identical_towers_and_positive_otherwise():
    model = soft_model()
    assert coupling_penalty(model, 3.0).item() > 0
    model.towers["t1"].load_state_dict(model.towers["t0"].state_dict())
    assert coupling_penalty(model, 3.0).item() == 0.0


def test_penalty_matches_the_two_task_formula_and_scales_with_alpha():
    model = soft_model()
    a, b = model.towers.values()
    direct = sum(((pa - pb) ** 2).sum() for pa, pb in zip(a.parameters(), b.parameters(), strict=True))
    assert torch.allclose(coupling_penalty(model, 1.0), direct)
    assert torch.allclose(coupling_penalty(model, 0.25), 0.25 * direct)
    assert torch.allclose(coupling_penalty(model, 1.0, mode="mean"), direct / 2)
    assert coupling_penalty(model, 0.0).item() == 0.0


def test_pairs_mode_sums_over_all_pairs_for_three_tasks():
    model = soft_model(3)
    towers = list(model.towers.values())
    brute = sum(((flat(a) - flat(b)) ** 2).sum() for a, b in itertools.combinations(towers, 2))
    assert torch.allclose(coupling_penalty(model, 1.0), brute, rtol=1e-5)
    mean = torch.stack([flat(t) for t in towers]).mean(0)
    to_mean = sum(((flat(t) - mean) ** 2).sum() for t in towers)
    assert torch.allclose(coupling_penalty(model, 1.0, mode="mean"), to_mean, rtol=1e-5)


def test_penalty_gradient_pulls_the_towers_together():
    model = soft_model()
    a, b = model.towers.values()
    coupling_penalty(model, 0.5).backward()
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.allclose(pa.grad, 2 * 0.5 * (pa - pb).detach())  # ∇_A = 2α(θ_A − θ_B)
        assert torch.allclose(pb.grad, -pa.grad)
    before = tower_distance(model, relative=False)
    with torch.no_grad():
        for p in model.towers.parameters():
            p -= 0.1 * p.grad
    assert tower_distance(model, relative=False) < before


def test_weight_decay_penalty_couples_nothing():
    model = soft_model()
    weight_decay_penalty(model, 1.0).backward()
    grad_a = [p.grad.clone() for p in model.towers["t0"].parameters()]
    assert all(torch.allclose(g, 2 * p.detach()) for g, p in zip(grad_a, model.towers["t0"].parameters(), strict=True))
    # moving tower B does not change tower A's gradient: no coupling at all
    other = copy.deepcopy(model)
    with torch.no_grad():
        for p in other.towers["t1"].parameters():
            p.add_(1.0)
    weight_decay_penalty(other, 1.0).backward()
    assert all(torch.allclose(g, p.grad) for g, p in zip(grad_a, other.towers["t0"].parameters(), strict=True))


@pytest.mark.parametrize("alpha", [-1.0, float("nan"), float("inf"), "1"])
def test_bad_alpha_is_rejected(alpha):
    with pytest.raises(ValueError, match="alpha"):
        coupling_penalty(soft_model(), alpha)
    with pytest.raises(ValueError, match="alpha"):
        l2_coupling(alpha)


def test_bad_mode_and_model_are_rejected():
    with pytest.raises(ValueError, match="mode"):
        coupling_penalty(soft_model(), 1.0, mode="max")
    with pytest.raises(ValueError, match="SoftSharing"):
        coupling_penalty(nn.Linear(2, 2), 1.0)
    with pytest.raises(ValueError, match="SoftSharing"):
        weight_decay_penalty(nn.Linear(2, 2), 1.0)


def test_tower_distance():
    model = soft_model()
    rel = tower_distance(model)
    assert rel > 0.5  # independent random towers are far apart (≈ √2 for large towers)
    with torch.no_grad():
        for p in model.towers.parameters():
            p.mul_(0.5)
    assert tower_distance(model) == pytest.approx(rel, rel=1e-5)  # scale-free
    model.towers["t1"].load_state_dict(model.towers["t0"].state_dict())
    assert tower_distance(model) == 0.0
    with pytest.raises(ValueError, match="two towers"):
        tower_distance(soft_model(1))


def test_l2_coupling_plugs_into_fit_and_large_alpha_merges_towers():
    data = tiny_adult()
    distances = {}
    for alpha in (0.0, 10.0):
        seed_everything(0)
        model = make_soft_sharing(data)
        fit(model, data.train, data.tasks, epochs=10, lr=0.01, batch_size=16, penalty=l2_coupling(alpha),
            verbose=False)
        distances[alpha] = tower_distance(model)
    assert distances[10.0] < 0.2 * distances[0.0]


def test_make_soft_sharing_is_one_single_task_net_per_task():
    data = tiny_adult()
    model = make_soft_sharing(data)
    single = make_model(data, ["income"])
    assert count_parameters(model) == 2 * count_parameters(single)
    assert tower_distance(model) > 0.5  # built one after the other: different initial weights
    with pytest.raises(ValueError, match="at least one task"):
        make_soft_sharing(data, [])


# --------------------------------------------------------------------------- cross-stitch
def test_cross_stitch_init():
    a = cross_stitch_init(4, 2)
    assert a.shape == (4, 2, 2)
    assert torch.allclose(a[0], torch.tensor([[0.9, 0.1], [0.1, 0.9]]))
    assert torch.allclose(cross_stitch_init(3, 3, 1.0, 1.0), torch.ones(3, 3, 3))  # LibMTL / MTAN style
    assert torch.allclose(cross_stitch_init(2, 3)[1].sum(1), torch.ones(3))
    with pytest.raises(ValueError):
        cross_stitch_init(0, 2)


def test_cross_stitch_mix_matches_the_per_channel_formula():
    g = torch.Generator().manual_seed(0)
    xa, xb = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    a = torch.rand(3, 2, 2, generator=g)
    ya, yb = cross_stitch_mix(torch.stack([xa, xb]), a)
    assert torch.allclose(ya, a[:, 0, 0] * xa + a[:, 0, 1] * xb)
    assert torch.allclose(yb, a[:, 1, 0] * xa + a[:, 1, 1] * xb)
    images = torch.randn(2, 5, 3, 4, 4, generator=g)  # (T, B, C, H, W)
    mixed = cross_stitch_mix(images, a)
    assert torch.allclose(mixed[0], a[:, 0, 0, None, None] * images[0] + a[:, 0, 1, None, None] * images[1])
    with pytest.raises(ValueError, match="mixing"):
        cross_stitch_mix(torch.stack([xa, xb]), torch.rand(4, 2, 2))


def test_cross_stitch_with_identity_units_is_two_independent_nets():
    data = tiny_adult()
    seed_everything(0)
    model = make_cross_stitch(data, same=1.0, cross=0.0)
    seed_everything(0)
    soft = make_soft_sharing(data)
    out, ref = model(data.val.x), soft(data.val.x)
    assert all(torch.allclose(out[k], ref[k], atol=1e-6) for k in ref)
    assert count_parameters(model) == count_parameters(soft) + 2 * 2 * (64 + 32)


def test_cross_stitch_units_learn_faster_by_the_reparametrisation():
    data = tiny_adult()
    moves = {}
    for scale in (1.0, 10.0):
        seed_everything(0)
        model = make_cross_stitch(data, unit_lr_scale=scale)
        before = model.mixing(0).detach().clone()
        fit(model, data.train, data.tasks, epochs=1, lr=1e-3, batch_size=96, verbose=False)  # one Adam step
        moves[scale] = (model.mixing(0).detach() - before).abs().max().item()
    assert moves[1.0] == pytest.approx(1e-3, rel=0.05)
    assert moves[10.0] == pytest.approx(1e-2, rel=0.05)


def test_cross_stitch_rejects_bad_configuration():
    blocks = {"a": [nn.Linear(3, 4)], "b": [nn.Linear(3, 4)]}
    heads = {"a": nn.Linear(4, 1), "b": nn.Linear(4, 1)}
    with pytest.raises(ValueError, match="one block per entry"):
        CrossStitch(blocks, heads, [4, 4])
    with pytest.raises(ValueError, match="same"):
        CrossStitch(blocks, {"a": nn.Linear(4, 1)}, [4])
    with pytest.raises(ValueError, match="unit_lr_scale"):
        CrossStitch(blocks, heads, [4], unit_lr_scale=0)


def test_trunk_blocks_compose_to_the_trunk():
    x = torch.randn(3, 10)
    trunk = mlp(10, [8, 4])
    blocks = trunk_blocks(trunk)
    assert len(blocks) == 2
    assert torch.allclose(nn.Sequential(*blocks)(x), trunk(x))
    conv = ConvTrunk(image_size=12, channels=(2, 3), out_dim=5)
    images = torch.randn(2, 1, 12, 12)
    assert torch.allclose(nn.Sequential(*trunk_blocks(conv))(images), conv(images))
    with pytest.raises(ValueError, match="blocks"):
        trunk_blocks(nn.Linear(2, 2))


# --------------------------------------------------------------------------- low rank
def test_low_rank_shapes_and_parameter_count():
    model = LowRankSharing(10, [8, 4], TASKS, rank=3)
    out = model(torch.randn(6, 10))
    assert set(out) == {"income", "never_married"} and out["income"].shape == (6, 1)
    trunk = (10 * 3 + 2 * (3 * 8 + 8)) + (8 * 3 + 2 * (3 * 4 + 4))
    heads = 2 * (4 + 1)
    assert count_parameters(model) == trunk + heads
    assert count_parameters(make_low_rank(tiny_adult(), 4)) < count_parameters(make_low_rank(tiny_adult(), 8))
    with pytest.raises(ValueError, match="rank"):
        LowRankSharing(10, [8], TASKS, rank=0)


# --------------------------------------------------------------------------- replicas
def test_replicas_train_like_separate_runs():
    data = tiny_adult()
    models = []
    for s in (0, 1):
        seed_everything(s)
        models.append(make_soft_sharing(data))
    alphas = [0.0, 1.0]
    result = train_replicas([copy.deepcopy(m) for m in models], data, lr=0.01, epochs=2, batch_size=32,
                            penalty_terms=[(coupling_penalty, alphas)], device="cpu")
    for model, alpha, run in zip(models, alphas, result["runs"], strict=True):
        fit(model, data.train, data.tasks, epochs=2, lr=0.01, batch_size=32, penalty=l2_coupling(alpha),
            verbose=False)
        assert torch.allclose(flat(model), flat(run["model"]), atol=1e-4)
        assert set(run["test"]) == {"income", "never_married"}
    assert result["seconds"] > 0


def test_replicas_forward_keys_and_errors():
    models = [soft_model(seed=s) for s in (0, 1, 2)]
    rep = Replicas(models)
    out = rep(torch.randn(4, 5))
    assert set(out) == {f"t{i}#{r}" for i in range(2) for r in range(3)}
    x = torch.randn(4, 5)
    assert torch.allclose(rep(x)["t1#2"], models[2](x)["t1"], atol=1e-6)
    assert torch.allclose(flat(rep.unstack(1)), flat(models[1]))
    with pytest.raises(ValueError, match="one finite weight"):
        rep.penalty(coupling_penalty, [1.0, 2.0])
    with pytest.raises(ValueError, match="index"):
        rep.unstack(3)
    with pytest.raises(ValueError, match="same architecture"):
        Replicas([soft_model(dim=5), soft_model(dim=6)])
    with pytest.raises(ValueError, match="at least one"):
        Replicas([])
    penalty = rep.penalty(coupling_penalty, [1.0, 0.0, 2.0])(rep)
    assert torch.allclose(penalty, coupling_penalty(models[0]) + 2 * coupling_penalty(models[2]), rtol=1e-5)


def test_per_task_lr_scale():
    scale = per_task_lr_scale({"income": 0.01, "never_married": 0.003}, lr=0.01)
    assert scale("towers.never_married.0.weight") == pytest.approx(0.3)
    assert scale("heads.income.1.bias") == 1.0
    assert scale("bases.0.weight") == 1.0  # shared: the base lr
    with pytest.raises(ValueError, match="> 0"):
        per_task_lr_scale({"income": 0.0}, lr=0.01)


def test_replicas_lr_scale_is_a_larger_learning_rate():
    data = tiny_adult()
    seed_everything(0)
    model = make_soft_sharing(data)
    result = train_replicas([model], data, lr=1e-3, epochs=1, batch_size=96, device="cpu",
                            task_lrs={"income": 1e-3, "never_married": 1e-2})  # one Adam step
    trained = result["runs"][0]["model"]
    move = {t: (flat(trained.towers[t]) - flat(model.towers[t])).abs().max().item() for t in model.task_names}
    assert move["income"] == pytest.approx(1e-3, rel=0.05)
    assert move["never_married"] == pytest.approx(1e-2, rel=0.05)
    with pytest.raises(ValueError, match="lr_scale"):
        Replicas([model], lambda name: -1.0)


def test_train_grid_and_frame():
    data = tiny_adult()
    grid = train_grid(lambda: make_soft_sharing(data), data, [0, 1], [0.0, 5.0], penalty=coupling_penalty,
                      lr=0.01, epochs=4, batch_size=16, device="cpu")
    assert set(grid) == {0.0, 5.0} and len(grid[0.0]["test"]["income"]) == 2 and len(grid[5.0]["models"]) == 2
    # same seed -> same initial weights for every setting: α = 0 run equals a plain run of that seed
    seed_everything(1)
    alone = make_soft_sharing(data)
    fit(alone, data.train, data.tasks, epochs=4, lr=0.01, batch_size=16, verbose=False)
    assert torch.allclose(flat(alone), flat(grid[0.0]["models"][1]), atol=1e-4)
    frame = grid_frame(grid)
    assert list(frame.columns) == ["income", "never_married", "tower distance"]
    assert frame.loc[5.0, "tower distance"] < frame.loc[0.0, "tower distance"]
    hard = train_grid(lambda: make_model(data), data, [0], lr=0.01, epochs=1, device="cpu")
    assert list(grid_frame(hard).columns) == ["income", "never_married"]
    with pytest.raises(ValueError, match="at least one seed"):
        train_grid(lambda: make_model(data), data, [], lr=0.01)


def test_replicate_split_and_tasks():
    data = tiny_adult().train.with_label_fraction("income", 0.5)
    rep = replicate_split(data, 2)
    assert set(rep.y) == {"income#0", "income#1", "never_married#0", "never_married#1"}
    assert set(rep.masks) == {"income#0", "income#1"}
    assert [t.name for t in replicate_tasks(TASKS, 2)] == ["income#0", "never_married#0", "income#1",
                                                          "never_married#1"]


# --------------------------------------------------------------------------- figures
def test_figures_draw_and_reject_bad_input():
    model = soft_model()
    ax = plot_tower_scatter(model)
    assert ax.get_xlabel() == "tower t0"
    with pytest.raises(ValueError, match="layer"):
        plot_tower_scatter(model, layer=9)
    with pytest.raises(ValueError, match="two towers"):
        plot_tower_scatter(soft_model(3))
    sweep = {a: {"models": [soft_model(seed=i)], "test": {"t0": [0.8, 0.81]}} for i, a in enumerate([0.0, 0.1, 1.0])}
    fig = plot_alpha_panel(sweep, 0.1, "t0", reference=0.8, hard=0.81)
    assert len(fig.axes) == 2
    with pytest.raises(ValueError, match="precomputed"):
        plot_alpha_panel(sweep, 0.5, "t0")
    import matplotlib.pyplot as plt
    plt.close("all")
