"""Shared-Bottom, OMoE, MMoE (mtl_helpers.models.moe) and ESMM (mtl_helpers.models.esmm)."""

import pytest
import torch
import torch.nn.functional as F

from mtl_helpers.models import (
    ESMM,
    ConversionNet,
    HardSharing,
    MMoE,
    OMoE,
    esmm_loss,
    gate_mixture,
    matched_bottom_width,
    moe_parameter_count,
    product_logit,
    shared_bottom,
)
from mtl_helpers.tasks import Task
from mtl_helpers.train import fit
from mtl_helpers.utils import count_parameters

TASKS = [Task("a", "regression"), Task("b", "regression")]


def test_paper_sizes_and_matched_shared_bottom():
    mmoe = MMoE(100, TASKS)  # 8 experts of 16 units, towers of 8: the paper's synthetic setting
    assert count_parameters(mmoe) == moe_parameter_count(100, 2) == 14_834
    assert count_parameters(OMoE(100, TASKS)) == moe_parameter_count(100, 2, n_gates=1) == 14_834 - 808
    width = matched_bottom_width(100, 2, 14_834)
    assert width == 126
    sb = shared_bottom(100, TASKS, width)
    assert isinstance(sb, HardSharing) and abs(count_parameters(sb) - 14_834) < 117  # within one unit's parameters
    assert count_parameters(shared_bottom(100, TASKS, 113)) == 13_255  # the paper's 113: experts + towers, no gates
    with pytest.raises(ValueError):
        matched_bottom_width(0, 2, 100)
    with pytest.raises(ValueError):
        shared_bottom(100, [], 10)


def test_outputs_gates_and_mixture():
    torch.manual_seed(0)
    x = torch.randn(7, 10)
    for cls in (MMoE, OMoE):
        model = cls(10, TASKS, n_experts=3, expert_hidden=4, tower_hidden=2)
        out = model(x)
        assert set(out) == {"a", "b"} and all(v.shape == (7, 1) for v in out.values())
        gates = model.gate_weights(x)
        assert all(torch.allclose(g.sum(1), torch.ones(7)) and (g >= 0).all() for g in gates.values())
    omoe = OMoE(10, TASKS, n_experts=3)
    g = omoe.gate_weights(x)
    assert torch.equal(g["a"], g["b"])  # one gate for every task
    mmoe = MMoE(10, TASKS, n_experts=3)
    assert not torch.equal(mmoe.gate_weights(x)["a"], mmoe.gate_weights(x)["b"])
    experts = torch.rand(7, 3, 4)
    assert torch.allclose(gate_mixture(torch.zeros(7, 3), experts), experts.mean(1))  # a flat gate averages
    picked = gate_mixture(torch.tensor([[30.0, 0.0, 0.0]]).expand(7, 3), experts)
    assert torch.allclose(picked, experts[:, 0], atol=1e-6)
    with pytest.raises(ValueError):
        gate_mixture(torch.zeros(7, 2), experts)
    with pytest.raises(ValueError):
        mmoe(torch.randn(7, 2, 5))


def test_shared_and_task_parameters_partition_the_model():
    for model, shared_gate in ((MMoE(6, TASKS, 3, 4, 2), False), (OMoE(6, TASKS, 3, 4, 2), True)):
        shared = {id(p) for p in model.shared_parameters()}
        per_task = [{id(p) for p in model.task_parameters(t.name)} for t in TASKS]
        assert not shared & per_task[0] and not per_task[0] & per_task[1]
        assert shared | per_task[0] | per_task[1] == {id(p) for p in model.parameters()}
        assert ({id(p) for p in model.gates.parameters()} <= shared) == shared_gate
        assert {id(p) for p in model.task_parameters()} == per_task[0] | per_task[1]
        with pytest.raises(ValueError):
            list(model.task_parameters("c"))
    with pytest.raises(ValueError):
        MMoE(6, TASKS, n_experts=0)


def test_models_train_with_the_course_loop():
    torch.manual_seed(0)
    from mtl_helpers.data import Split
    x = torch.randn(256, 6)
    split = Split(x, {"a": x[:, 0], "b": x[:, 1] - x[:, 2]})
    for model in (MMoE(6, TASKS, 3, 8, 4), OMoE(6, TASKS, 3, 8, 4), shared_bottom(6, TASKS, 16, 4)):
        history = fit(model, split, TASKS, epochs=15, lr=1e-2, batch_size=64, verbose=False)
        first, last = history.records[0], history.records[-1]
        assert all(last[f"train_loss/{t.name}"] < first[f"train_loss/{t.name}"] for t in TASKS)


def test_product_logit_is_the_logit_of_the_product_and_stays_finite():
    a = torch.tensor([-30.0, -3.0, 0.0, 2.0, 8.0, 30.0])
    b = torch.tensor([-5.0, 1.0, 0.0, 4.0, 9.0, 30.0])
    got = product_logit(a, b)
    p = (torch.sigmoid(a.double()) * torch.sigmoid(b.double())).clamp(max=1 - 1e-6)
    assert torch.isfinite(got).all()
    assert torch.allclose(got.double(), torch.log(p / (1 - p)), rtol=1e-4, atol=1e-4)


def test_esmm_outputs_and_loss_match_the_course_tasks():
    torch.manual_seed(0)
    model = ESMM(5, embedding=6, tower=(4,))
    x = torch.randn(40, 5)
    out = model(x)
    assert set(out) == {"click", "purchase", "conversion"} and all(v.shape == (40,) for v in out.values())
    click = (torch.rand(40) < 0.5).float()
    conversion = (torch.rand(40) < 0.5).float()
    by_tasks = (Task("click", "binary").loss(out["click"], click)
                + Task("purchase", "binary").loss(out["purchase"], click * conversion))
    direct = esmm_loss(torch.sigmoid(out["click"]), torch.sigmoid(out["conversion"]), click, conversion)
    assert torch.allclose(by_tasks, direct, atol=1e-5)
    by_tasks.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.cvr.parameters())  # via the product
    assert {id(p) for p in model.task_parameters("purchase")} == {id(p) for p in model.task_parameters()}
    assert not {id(p) for p in model.shared_parameters()} & {id(p) for p in model.task_parameters()}
    with pytest.raises(ValueError):
        list(model.task_parameters("ctr"))
    with pytest.raises(ValueError):
        esmm_loss(torch.rand(3), torch.rand(4), click[:3], conversion[:3])
    naive = ConversionNet(5, embedding=6, tower=(4,))
    assert set(naive(x)) == {"conversion"}
    assert count_parameters(naive) == count_parameters(model) - count_parameters(model.ctr)


def test_esmm_loss_ignores_conversions_without_a_click():
    p_ctr, p_cvr = torch.full((4,), 0.3), torch.full((4,), 0.6)
    click = torch.tensor([1.0, 1.0, 0.0, 0.0])
    a = esmm_loss(p_ctr, p_cvr, click, torch.tensor([1.0, 0.0, 0.0, 0.0]))
    b = esmm_loss(p_ctr, p_cvr, click, torch.tensor([1.0, 0.0, 1.0, 1.0]))
    assert torch.equal(a, b)
    purchase = torch.tensor([1.0, 0.0, 0.0, 0.0])
    expected = F.binary_cross_entropy(p_ctr, click) + F.binary_cross_entropy(p_ctr * p_cvr, purchase)
    assert torch.allclose(a, expected)
