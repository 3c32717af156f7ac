"""Tests of notebook 03's studies (mtl_helpers.experiments.nb03): arms, controls, tables, figures."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
import torch
from torch import nn

from mtl_helpers.batched import batched_runner
from mtl_helpers.data import Budget, MultiTaskDataset, Split, make_mmoe_data
from mtl_helpers.experiments.nb03 import (
    Penalties,
    alpha_axis,
    best_on_validation,
    combine,
    grid_frame,
    mean_mixing,
    per_seed,
    plot_alpha_panel,
    plot_tower_scatter,
    runner,
    shuffle_labels,
    stitch_shares,
    sweep_of,
    weighted_penalty,
    with_penalty_weights,
)
from mtl_helpers.models import (
    SoftSharing,
    coupling_penalty,
    make_cross_stitch,
    make_soft_sharing,
    mlp,
    standard_network,
    weight_decay_penalty,
)
from mtl_helpers.protocol import Arm, Comparison, compare, run, sequential_runner, tune


def tiny() -> MultiTaskDataset:
    """Two small regression tasks (MMoE's generator) with a tiny budget: 3 epochs of 3 steps."""
    return make_mmoe_data(0.5, n_train=96, n_val=48, n_test=48, dim=10,
                          budget=Budget(epochs=3, batch_size=32, lrs=(1e-2,), trunk_width=8, head_hidden=4))


def soft_model(n_tasks: int = 2, seed: int = 0) -> SoftSharing:
    torch.manual_seed(seed)
    names = [f"t{i}" for i in range(n_tasks)]
    return SoftSharing({n: mlp(5, [4, 3]) for n in names}, {n: nn.Linear(3, 1) for n in names})


@pytest.fixture(scope="module")
def coupled():
    """A coupling arm tuned over two lrs with seeds (0, 1): every (lr, α) has two runs."""
    data = tiny()
    arm = Arm("L2", lambda alpha: make_soft_sharing(data), settings=[0.0, 5.0], penalty=coupling_penalty)
    return data, arm, tune(arm, data, seeds=[0, 1], runner=runner, lrs=[3e-3, 1e-2])


# --------------------------------------------------------------------------- arms
def test_penalties_weigh_coupling_and_decay_per_model():
    model = with_penalty_weights(soft_model(), Penalties(coupling=2.0, decay=0.5))
    want = coupling_penalty(model, 2.0) + weight_decay_penalty(model, 0.5)
    assert torch.allclose(weighted_penalty(model), want)
    assert float(Penalties(3.0, 1.0)) == 1.0  # the protocol's weight of the penalty: the model holds the two
    assert str(Penalties(0.1, 0.003)) == "α=0.1, λ=0.003"
    assert Penalties(1.0, 0.0) == Penalties(1.0, 0.0) and len({Penalties(1.0, 0.0), Penalties(1.0, 0.0)}) == 1
    with pytest.raises(ValueError, match=">= 0"):
        Penalties(-1.0, 0.0)


def test_an_arm_with_two_penalty_weights_trains_batched_as_it_does_alone():
    data = tiny()
    settings = [Penalties(0.0, 0.0), Penalties(5.0, 0.0), Penalties(0.0, 0.1), Penalties(5.0, 0.1)]
    arm = Arm("both", lambda s: with_penalty_weights(make_soft_sharing(data), s), settings=settings,
              penalty=weighted_penalty)
    batched = {r.setting: r for r in batched_runner(arm, data, 1e-2, settings, [1])}
    for setting in settings[1:]:
        alone = run(arm, data, lr=1e-2, seed=1, setting=setting)
        assert alone.test == pytest.approx(batched[setting].test, abs=1e-4)
    # the weights act: coupling pulls the towers together, decay shrinks them
    with torch.no_grad():
        distance = {s: float(coupling_penalty(batched[s].model)) for s in settings}
        size = {s: float(weight_decay_penalty(batched[s].model)) for s in settings}
    assert distance[settings[1]] < distance[settings[0]] and size[settings[2]] < size[settings[0]]


def test_shuffle_labels_keeps_the_labels_and_breaks_their_link_to_the_inputs():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 3, generator=g)
    split = Split(x, {"a": (x[:, 0] > 0).float(), "b": x[:, 1]}).with_label_fraction("a", 0.5, seed=0)
    shuffled = shuffle_labels(split, "a", seed=1)
    labelled = split.masks["a"]
    assert torch.equal(shuffled.y["b"], split.y["b"]) and torch.equal(shuffled.x, split.x)
    assert torch.equal(shuffled.masks["a"], labelled)
    assert torch.equal(shuffled.y["a"][~labelled], split.y["a"][~labelled])  # unlabelled rows untouched
    assert sorted(shuffled.y["a"][labelled].tolist()) == sorted(split.y["a"][labelled].tolist())
    agreement = float((shuffled.y["a"][labelled] == (x[labelled, 0] > 0).float()).float().mean())
    assert 0.35 < agreement < 0.65  # was 1.0: the label no longer follows the input
    assert not torch.equal(shuffle_labels(split, "a", seed=2).y["a"], shuffled.y["a"])  # one permutation per seed
    with pytest.raises(ValueError, match="Unknown task"):
        shuffle_labels(split, "c")


def test_runner_batches_several_settings_and_runs_one_alone():
    data = tiny()
    arm = Arm("L2", lambda alpha: make_soft_sharing(data), settings=[0.0, 5.0], penalty=coupling_penalty)
    several = runner(arm, data, 1e-2, [0.0, 5.0], [0])
    one = runner(arm, data, 1e-2, [5.0], [0])
    assert [r.setting for r in several] == [0.0, 5.0] and several[0].history is None  # batched: no history
    assert one[0].history is not None  # an ordinary run
    assert one[0].test == pytest.approx(several[1].test, abs=1e-4)


def test_combine_keeps_the_pairing_and_refuses_what_cannot_pair():
    data = tiny()
    arms = [Arm("hard", lambda _: standard_network(data)), Arm("soft", lambda _: make_soft_sharing(data))]
    a, b = (compare([arm], data, seeds=[0, 1], runner=sequential_runner) for arm in arms)
    both = combine(a, b)
    assert list(both.runs) == ["hard", "soft"] and both.seeds == [0, 1] and set(both.tuned) == {"hard", "soft"}
    assert both.difference("soft", "hard", "y1").values == pytest.approx(
        [s.test["y1"] - h.test["y1"] for s, h in zip(b.runs["soft"], a.runs["hard"])])
    with pytest.raises(ValueError, match="same seeds"):
        combine(a, Comparison([0], {"x": b.runs["soft"][:1]}))
    with pytest.raises(ValueError, match="unique"):
        combine(a, a)


# --------------------------------------------------------------------------- reading runs
def test_sweep_of_groups_one_learning_rate_by_setting(coupled):
    _, _, tuned = coupled
    chosen = sweep_of(tuned)
    assert list(chosen) == [0.0, 5.0] and all(r.lr == tuned.lr for runs in chosen.values() for r in runs)
    assert all([r.seed for r in runs] == [0, 1] for runs in chosen.values())
    assert all(r.lr == 3e-3 for runs in sweep_of(tuned, 3e-3).values() for r in runs)
    with pytest.raises(ValueError, match="No runs at lr"):
        sweep_of(tuned, 0.5)


def test_grid_frame_and_choice_on_validation(coupled):
    data, _, tuned = coupled
    result = sweep_of(tuned)
    frame = grid_frame(result)
    assert list(frame.columns) == ["y1", "y2", "tower distance"]
    assert frame.loc[5.0, "tower distance"] < frame.loc[0.0, "tower distance"]
    scores = per_seed(result, "y2")
    assert scores[5.0]["val"] == [r.val["y2"] for r in result[5.0]]
    assert len(scores[0.0]["test"]) == 2
    hard = compare([Arm("hard", lambda _: standard_network(data))], data, seeds=[0], runner=sequential_runner)
    assert list(grid_frame(sweep_of(hard.tuned["hard"])).columns) == ["y1", "y2"]  # no towers: no distance


def test_best_on_validation_ignores_the_test_split():
    results = {0.0: {"val": [0.8, 0.9], "test": [0.99, 0.99]}, 1.0: {"val": [0.86, 0.86], "test": [0.5, 0.5]}}
    assert best_on_validation(results) == 1.0
    with pytest.raises(ValueError, match="at least one setting"):
        best_on_validation({})


def test_mean_mixing_averages_channels_and_models():
    data = tiny()
    models = [make_cross_stitch(data, same=s, cross=c) for s, c in [(0.9, 0.1), (0.7, 0.3)]]
    mixing = mean_mixing(models)
    assert len(mixing) == len(models[0].units) and mixing[0].shape == (2, 2)
    assert torch.allclose(mixing[0], torch.tensor([[0.8, 0.2], [0.2, 0.8]]), atol=1e-6)
    with pytest.raises(ValueError, match="at least one"):
        mean_mixing([])


def test_stitch_shares_scale_each_weight_by_the_activation_it_multiplies():
    data = tiny()
    model = make_cross_stitch(data, same=1.0, cross=1.0)
    x = data.val.x
    shares = stitch_shares(model, x)
    assert len(shares) == len(model.units) and all(s.shape == (2, 2) for s in shares)
    assert all(torch.allclose(s.sum(1), torch.ones(2)) for s in shares)
    # equal weights: the shares are the ratio of the towers' mean activation sizes
    names = model.task_names
    first = torch.stack([model.blocks[n][0](x) for n in names]).abs().mean(1).sum(1)  # Σ_c mean|x_j,c|
    assert torch.allclose(shares[0][0], first / first.sum(), atol=1e-5)
    # scaling one tower's output scales what it passes on; the raw weights would not change
    with torch.no_grad():
        model.blocks[names[1]][0][0].weight.mul_(3.0)
        model.blocks[names[1]][0][0].bias.mul_(3.0)
    assert float(stitch_shares(model, x)[0][0, 1]) > float(shares[0][0, 1]) + 0.1
    # a unit that passes nothing across gives a zero cross share
    with torch.no_grad():
        model.units[0].copy_(torch.eye(2).expand_as(model.units[0]) / model.unit_lr_scale)
    assert torch.allclose(stitch_shares(model, x)[0], torch.eye(2))
    with pytest.raises(ValueError, match="CrossStitch"):
        stitch_shares(soft_model(), x)


# --------------------------------------------------------------------------- figures
def test_alpha_axis_puts_zero_a_decade_left():
    assert alpha_axis([0.0, 0.01, 1.0]) == [0.001, 0.01, 1.0]
    with pytest.raises(ValueError, match="α > 0"):
        alpha_axis([0.0])


def test_figures_draw_and_reject_bad_input(coupled):
    model = soft_model()
    ax = plot_tower_scatter(model)
    assert ax.get_xlabel() == "tower t0"
    with pytest.raises(ValueError, match="layer"):
        plot_tower_scatter(model, layer=9)
    with pytest.raises(ValueError, match="two towers"):
        plot_tower_scatter(soft_model(3))
    result = sweep_of(coupled[2])
    fig = plot_alpha_panel(result, 5.0, "y1", reference=0.8, hard=0.81)
    assert len(fig.axes) == 2
    assert [t.get_text() for t in fig.axes[1].get_legend().get_texts()] == [
        "L2 coupling", "independent towers (α = 0)", "hard sharing"]
    with pytest.raises(ValueError, match="precomputed"):
        plot_alpha_panel(result, 0.5, "y1")
    plt.close("all")
