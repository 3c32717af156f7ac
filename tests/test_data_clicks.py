"""The impression → click → conversion generator (mtl_helpers.data.clicks)."""

import pytest
import torch

from mtl_helpers.data import click_probabilities, make_click_data


def test_seeded_shapes_labels_and_masks():
    a = make_click_data(2000, 500, 800, dim=6, seed=3)
    b = make_click_data(2000, 500, 800, dim=6, seed=3)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y["purchase"], b.test.y["purchase"])
    assert a.task_names == ["click", "conversion", "purchase"] and a.train.x.shape == (2000, 6)
    for name in ("train", "val", "test"):
        split = getattr(a, name)
        assert torch.equal(split.y["purchase"], split.y["click"] * split.y["conversion"])
        truth = a.info["truth"][name]
        assert ((truth["ctr"] > 0) & (truth["ctr"] < 1) & (truth["cvr"] > 0) & (truth["cvr"] < 1)).all()
    assert torch.equal(a.train.masks["conversion"], a.train.y["click"].bool())  # revealed only on a click
    assert torch.equal(a.val.masks["conversion"], a.val.y["click"].bool())
    assert "conversion" not in a.test.masks  # ground truth on every test impression
    assert not torch.equal(make_click_data(100, 10, 10, seed=4).train.x, make_click_data(100, 10, 10, seed=3).train.x)


def test_labels_follow_the_true_probabilities():
    data = make_click_data(40_000, 10, 10, dim=4, seed=0)
    truth, y = data.info["truth"]["train"], data.train.y
    assert abs(y["click"].mean() - truth["ctr"].mean()) < 0.01
    clicked = y["click"].bool()
    # no hidden confounder: among clicked impressions the conversion rate is their mean true pCVR
    assert abs(y["conversion"][clicked].mean() - truth["cvr"][clicked].mean()) < 0.02
    assert abs(y["conversion"].mean() - truth["cvr"].mean()) < 0.01


def test_selection_bias_direction_follows_rho():
    for rho, sign in ((-0.8, -1), (0.8, 1)):
        data = make_click_data(20_000, 10, 10, dim=4, rho=rho, bend=0.0, seed=1)
        truth, clicked = data.info["truth"]["train"], data.train.y["click"].bool()
        gap = truth["cvr"][clicked].mean() - truth["cvr"].mean()
        assert gap * sign > 0.02  # clicked impressions convert less (ρ < 0) or more (ρ > 0) than all


def test_probabilities_and_bad_input():
    u1, u2 = torch.eye(3)[0], torch.eye(3)[1]
    x = torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 0.0]])
    ctr, cvr = click_probabilities(x, u1, u2, ctr_bias=-1.0, ctr_scale=2.0, cvr_bias=0.5, cvr_scale=1.0, rho=0.0,
                                   bend=1.0)
    assert torch.allclose(ctr, torch.sigmoid(torch.tensor([-1.0, 1.0])))
    assert torch.allclose(cvr, torch.sigmoid(torch.tensor([0.5, 0.5 + 2.0 - 1.0])))
    with pytest.raises(ValueError):
        make_click_data(10, 10, 10, dim=1)
    with pytest.raises(ValueError):
        make_click_data(10, 10, 10, rho=1.5)
    with pytest.raises(ValueError):
        make_click_data(0, 10, 10)
