"""Tests of every architecture in mtl_helpers.models."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
from torch import nn

from mtl_helpers import seed_everything
from mtl_helpers.data import Budget, MultiTaskDataset, Split
from mtl_helpers.models import (
    ConvTrunk,
    CrossStitch,
    HardSharing,
    LowRankSharing,
    SharedTrunk,
    SoftSharing,
    coupling_penalty,
    cross_stitch_init,
    cross_stitch_mix,
    export_task_model,
    l2_coupling,
    layer_groups,
    load_task_model,
    make_cross_stitch,
    make_head,
    make_low_rank,
    make_soft_sharing,
    mlp,
    parameter_counts,
    save_task_models,
    split_model,
    standard_network,
    tower_distance,
    trunk_blocks,
    weight_decay_penalty,
)
from mtl_helpers.tasks import Task
from mtl_helpers.train import fit
from mtl_helpers.utils import count_parameters

BUDGETS = {"images": Budget(6, 128, (1e-2,), trunk_width=64, head_hidden=32),
           "vectors": Budget(5, 256, (1e-2,), trunk_width=64, head_hidden=16)}


def fake_dataset(kind: str, n: int = 48) -> MultiTaskDataset:
    """A tiny random dataset shaped like MultiMNIST (images) or Adult (vectors), budget attached."""
    g = torch.Generator().manual_seed(0)
    if kind == "images":
        tasks = [Task("left", "classification", 10), Task("right", "classification", 10)]

        def make() -> Split:
            return Split(torch.rand(n, 1, 18, 18, generator=g), {t.name: torch.arange(n) % 10 for t in tasks})
    else:
        tasks = [Task("income", "binary"), Task("never_married", "binary")]

        def make() -> Split:
            return Split(torch.randn(n, 94, generator=g), {t.name: (torch.arange(n) % 2).float() for t in tasks})
    return MultiTaskDataset(f"fake {kind}", tasks, make(), make(), make(), BUDGETS[kind])


MM, AD = fake_dataset("images"), fake_dataset("vectors")
TASKS = [Task("income", "binary"), Task("never_married", "binary")]


def tiny_adult(n: int = 96, dim: int = 10, seed: int = 0) -> MultiTaskDataset:
    g = torch.Generator().manual_seed(seed)

    def split(m: int) -> Split:
        x = torch.randn(m, dim, generator=g)
        return Split(x, {"income": (x[:, 0] + 0.3 * x[:, 2] > 0).float(), "never_married": (x[:, 1] > 0).float()})
    return MultiTaskDataset("tiny", TASKS, split(n), split(48), split(48), BUDGETS["vectors"])


def soft_model(n_tasks: int = 2, seed: int = 0, dim: int = 5) -> SoftSharing:
    torch.manual_seed(seed)
    names = [f"t{i}" for i in range(n_tasks)]
    return SoftSharing({n: mlp(dim, [4, 3]) for n in names}, {n: nn.Linear(3, 1) for n in names})


def flat(module: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()])


def trained_model(data=MM):
    seed_everything(0)
    return standard_network(data)


# --------------------------------------------------------------------------- trunks and hard sharing
def toy_hard() -> HardSharing:
    return HardSharing(mlp(5, [16]), {"cls": make_head(16, Task("cls", "classification", 3)),
                                      "reg": make_head(16, Task("reg", "regression"))})


def test_hard_sharing_outputs_one_entry_per_head_and_keeps_the_protocol():
    model = toy_hard()
    out = model(torch.randn(7, 5))
    assert set(out) == {"cls", "reg"} and out["cls"].shape == (7, 3) and out["reg"].shape == (7, 1)
    assert isinstance(model, SharedTrunk)
    shared, heads = list(model.shared_parameters()), list(model.task_parameters())
    assert sum(p.numel() for p in shared + heads) == count_parameters(model)
    with pytest.raises(ValueError, match="Unknown task"):
        list(model.task_parameters("nope"))
    with pytest.raises(ValueError, match="at least one head"):
        HardSharing(mlp(5, [4]), {})


def test_conv_trunk_shape_and_error():
    assert ConvTrunk(18)(torch.zeros(2, 1, 18, 18)).shape == (2, 64)
    with pytest.raises(ValueError, match="images of shape"):
        ConvTrunk(18)(torch.zeros(2, 18, 18))


def test_conv_trunk_pools_before_relu_with_the_same_outputs_and_gradients_as_relu_first():
    torch.manual_seed(0)
    trunk = ConvTrunk(18)
    conv1, pool1, relu1, conv2, pool2, relu2, flatten = trunk.features
    assert isinstance(pool1, nn.MaxPool2d) and isinstance(relu1, nn.ReLU)  # the order this test is about
    relu_first = nn.Sequential(conv1, relu1, pool1, conv2, relu2, pool2, flatten, trunk.project)
    x = torch.randn(16, 1, 18, 18)
    outputs = []
    for net in (trunk, relu_first):
        net.zero_grad()
        out = net(x)
        out.square().sum().backward()
        outputs.append((out.detach(), [p.grad.clone() for p in trunk.parameters()]))
    (out_a, grads_a), (out_b, grads_b) = outputs
    assert torch.equal(out_a, out_b)
    assert all(torch.equal(a, b) for a, b in zip(grads_a, grads_b))
    assert any(g.abs().sum() > 0 for g in grads_a)


def test_standard_network_is_chosen_by_the_data_shape_not_its_name():
    assert isinstance(standard_network(MM).trunk, ConvTrunk)
    assert isinstance(standard_network(AD).trunk, nn.Sequential)
    stl, mtl = standard_network(AD, ["income"]), standard_network(AD)
    assert count_parameters(mtl) < 2 * count_parameters(stl)
    assert standard_network(AD, width=32).trunk[0].out_features == 32
    with pytest.raises(ValueError, match="at least one task"):
        standard_network(AD, [])
    odd = MultiTaskDataset("odd", TASKS, *[Split(torch.zeros(4, 2, 3), {t.name: torch.zeros(4) for t in TASKS})] * 3,
                           budget=BUDGETS["vectors"])
    with pytest.raises(ValueError, match="No standard trunk"):
        standard_network(odd)
    with pytest.raises(ValueError, match="no budget"):
        standard_network(MultiTaskDataset("x", TASKS, AD.train, AD.val, AD.test))


def test_parameter_counts_formula():
    assert parameter_counts(3, 100, 10) == {"separate": 330, "shared": 130}
    with pytest.raises(ValueError):
        parameter_counts(0, 1, 1)


def test_layer_counts_of_the_course_networks():
    for data, (total, shared) in ((MM, (5, 3)), (AD, (4, 2))):
        assert len(layer_groups(standard_network(data, [data.tasks[0].name]))) == total
        assert len(layer_groups(standard_network(data).trunk)) == shared


@pytest.mark.parametrize("data", [MM, AD])
def test_layer_groups_rebuild_the_network_exactly(data):
    model = standard_network(data, [data.tasks[0].name])
    groups = layer_groups(model)
    assert all(isinstance(g[0], (nn.Linear, nn.Conv2d)) for g in groups)
    x = data.train.x[:5]
    assert torch.equal(nn.Sequential(*groups)(x), model(x)[data.tasks[0].name])


def test_layer_groups_rejects_a_network_without_a_first_layer():
    with pytest.raises(ValueError, match="starts with a Linear"):
        layer_groups(nn.Sequential(nn.ReLU(), nn.Linear(2, 2)))


@pytest.mark.parametrize("data", [MM, AD])
def test_split_model_spans_separate_towers_to_standard_hard_sharing(data):
    names = [t.name for t in data.tasks]
    stl = count_parameters(standard_network(data, [names[0]]))
    assert count_parameters(split_model(data, 0)) == 2 * stl  # separate towers
    standard_depth = len(layer_groups(standard_network(data).trunk))
    assert count_parameters(split_model(data, standard_depth)) == count_parameters(standard_network(data))
    depth = len(layer_groups(standard_network(data, [names[0]])))
    counts = [count_parameters(split_model(data, d)) for d in range(depth)]
    assert counts == sorted(counts, reverse=True)  # sharing more never adds parameters
    model = split_model(data, 1)
    out = model(data.train.x[:4])
    assert set(out) == set(names) and out[names[0]].shape[0] == 4
    assert len(list(split_model(data, 0).shared_parameters())) == 0


@pytest.mark.parametrize("data", [MM, AD])
def test_split_model_draws_its_weights_as_the_standard_and_the_single_task_networks_do(data):
    def seeded(build):
        seed_everything(3)
        return build()

    whole_trunk = len(layer_groups(standard_network(data).trunk))
    split, standard = seeded(lambda: split_model(data, whole_trunk)), seeded(lambda: standard_network(data))
    assert all(torch.equal(a, b) for a, b in zip(split.parameters(), standard.parameters(), strict=True))
    first = data.task_names[0]
    towers, alone = seeded(lambda: split_model(data, 0)), seeded(lambda: standard_network(data, [first]))
    assert all(torch.equal(a, b) for a, b in zip(towers.heads[first].parameters(), alone.parameters(), strict=True))


def test_split_model_rejects_bad_depths_and_empty_task_lists():
    with pytest.raises(ValueError, match="0..4"):
        split_model(MM, 5)
    with pytest.raises(ValueError, match="0..3"):
        split_model(AD, -1)
    with pytest.raises(ValueError, match="at least one task"):
        split_model(MM, 1, [])
    with pytest.raises(ValueError, match="Unknown task"):
        split_model(MM, 1, ["middle"])


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
    fresh = export_task_model(standard_network(AD), "income")
    loaded = load_task_model(paths["income"], fresh)
    x = AD.test.x
    assert torch.equal(loaded(x), model(x)["income"])
    with pytest.raises(RuntimeError):  # wrong architecture: strict loading refuses
        load_task_model(paths["income"], export_task_model(standard_network(MM), "left"))
    with pytest.raises(ValueError, match="not a directory"):
        save_task_models(model, tmp_path / "missing")


# --------------------------------------------------------------------------- soft sharing, cross-stitch, low rank
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
    single = standard_network(data, ["income"])
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
