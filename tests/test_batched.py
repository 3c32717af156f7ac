"""Tests of batched training (mtl_helpers.batched): R copies must train as R separate runs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mtl_helpers.batched import Replicas, batched_runner, replicate_split, replicate_tasks
from mtl_helpers.data import Budget, MultiTaskDataset, Split
from mtl_helpers.models import SoftSharing, coupling_penalty, make_soft_sharing, mlp
from mtl_helpers.protocol import Arm, sequential_runner
from mtl_helpers.tasks import Task

TASKS = [Task("income", "binary"), Task("never_married", "binary")]


def tiny(n: int = 96, seed: int = 0) -> MultiTaskDataset:
    g = torch.Generator().manual_seed(seed)

    def split(m: int) -> Split:
        x = torch.randn(m, 10, generator=g)
        return Split(x, {"income": (x[:, 0] + 0.3 * x[:, 2] > 0).float(), "never_married": (x[:, 1] > 0).float()})
    return MultiTaskDataset("tiny", TASKS, split(n), split(48), split(48),
                            Budget(epochs=4, batch_size=32, lrs=(1e-2,), trunk_width=8, head_hidden=4))


def soft_model(seed: int = 0, dim: int = 5) -> SoftSharing:
    torch.manual_seed(seed)
    return SoftSharing({n: mlp(dim, [4, 3]) for n in ("t0", "t1")}, {n: nn.Linear(3, 1) for n in ("t0", "t1")})


def flat(module: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()])


def test_replicas_forward_keys_penalty_and_errors():
    models = [soft_model(seed=s) for s in (0, 1, 2)]
    rep = Replicas(models)
    x = torch.randn(4, 5)
    out = rep(x)
    assert set(out) == {f"t{i}#{r}" for i in range(2) for r in range(3)}
    assert torch.allclose(out["t1#2"], models[2](x)["t1"], atol=1e-6)
    assert torch.allclose(flat(rep.unstack(1)), flat(models[1]))
    penalty = rep.penalty(coupling_penalty, [1.0, 0.0, 2.0])(rep)
    assert torch.allclose(penalty, coupling_penalty(models[0]) + 2 * coupling_penalty(models[2]), rtol=1e-5)
    with pytest.raises(ValueError, match="one finite weight"):
        rep.penalty(coupling_penalty, [1.0, 2.0])
    with pytest.raises(ValueError, match="index"):
        rep.unstack(3)
    with pytest.raises(ValueError, match="same architecture"):
        Replicas([soft_model(dim=5), soft_model(dim=6)])
    with pytest.raises(ValueError, match="at least one"):
        Replicas([])


def test_replicate_split_and_tasks_name_every_copy():
    split = Split(torch.zeros(3, 1), {"a": torch.zeros(3)}, {"a": torch.tensor([True, False, True])})
    twice = replicate_split(split, 2)
    assert set(twice.y) == {"a#0", "a#1"} and set(twice.masks) == {"a#0", "a#1"}
    assert [t.name for t in replicate_tasks([Task("a", "regression")], 2)] == ["a#0", "a#1"]


def test_batched_runner_equals_the_sequential_runs():
    data = tiny()
    arm = Arm("coupling", lambda a: make_soft_sharing(data), settings=[0.0, 1.0], penalty=coupling_penalty)
    batched = batched_runner(arm, data, 1e-2, [0.0, 1.0], [0, 1])
    sequential = sequential_runner(arm, data, 1e-2, [0.0, 1.0], [0, 1])
    assert sorted((r.setting, r.seed) for r in batched) == [(0.0, 0), (0.0, 1), (1.0, 0), (1.0, 1)]
    for b, s in zip(sorted(batched, key=lambda r: (r.seed, r.setting)),
                    sorted(sequential, key=lambda r: (r.seed, r.setting)), strict=True):
        assert (b.seed, b.setting, b.best_epoch, b.max_epochs) == (s.seed, s.setting, s.best_epoch, s.max_epochs)
        assert b.val == pytest.approx(s.val, abs=1e-5) and b.test == pytest.approx(s.test, abs=1e-5)
        assert torch.allclose(flat(b.model), flat(s.model), atol=1e-4)


def test_batched_runner_refuses_setting_dependent_options():
    data = tiny()
    arm = Arm("wd", lambda s: make_soft_sharing(data), settings=[0.0, 0.1], options=lambda m, s: {"weight_decay": s})
    with pytest.raises(ValueError, match="sequential runner"):
        batched_runner(arm, data, 1e-2, [0.0, 0.1], [0])
