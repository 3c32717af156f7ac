"""Tests of the fair-comparison protocol (mtl_helpers.protocol)."""

from __future__ import annotations

import pytest
import torch

from mtl_helpers.data import Budget, MultiTaskDataset, Split
from mtl_helpers.metrics import PairedDifference
from mtl_helpers.models import standard_network
from mtl_helpers.protocol import Arm, Comparison, Run, claim_difference, compare, run, tune
from mtl_helpers.tasks import Task
from mtl_helpers.utils import ClaimError

TASKS = [Task("a", "binary"), Task("b", "binary")]


def tiny(n: int = 128) -> MultiTaskDataset:
    g = torch.Generator().manual_seed(0)

    def split(m: int) -> Split:
        x = torch.randn(m, 6, generator=g)
        return Split(x, {"a": (x[:, 0] > 0).float(), "b": (x[:, 0] + x[:, 1] > 0).float()})
    return MultiTaskDataset("tiny", TASKS, split(n), split(64), split(64),
                            Budget(epochs=3, batch_size=32, lrs=(1e-3, 3e-2), trunk_width=8, head_hidden=4))


DATA = tiny()
MTL = Arm("MTL", lambda _: standard_network(DATA))
STL = Arm("STL a", lambda _: standard_network(DATA, ["a"]), tasks=["a"])


def test_run_is_seeded_and_keeps_the_best_validation_epoch():
    r1, r2 = run(MTL, DATA, lr=3e-2, seed=1), run(MTL, DATA, lr=3e-2, seed=1)
    assert isinstance(r1, Run) and r1.test == r2.test and r1.val == r2.val
    assert 1 <= r1.best_epoch <= r1.max_epochs == 3
    assert r1.steps == r1.best_epoch * 4  # 128 rows / 32 per batch
    curve = [rec["val/a"] + rec["val/b"] for rec in r1.history.records]
    assert r1.best_epoch == 1 + max(range(3), key=lambda i: curve[i])


def test_an_arm_on_fewer_rows_gets_as_many_steps():
    few = Arm("few", lambda _: standard_network(DATA, ["a"]), tasks=["a"],
              train=lambda seed: DATA.train.take(32, seed=seed))
    r = run(few, DATA, lr=3e-2, seed=0)
    assert r.max_epochs == 12  # 1 step per epoch over 32 rows: 12 steps = 3 epochs of 4 steps


def test_tune_searches_lr_times_setting_on_validation_only():
    seen = []
    arm = Arm("knob", lambda width: standard_network(DATA, width=width), settings=[4, 8],
              options=lambda model, width: seen.append(width) or {})
    tuned = tune(arm, DATA, seeds=(0,))
    assert set(tuned.runs) == {(lr, w) for lr in (1e-3, 3e-2) for w in (4, 8)} and tuned.n_runs == 4
    best = max(tuned.runs, key=lambda k: sum(tuned.runs[k][0].val.values()))
    assert (tuned.lr, tuned.setting) == best
    assert sorted(seen) == [4, 4, 8, 8] and "2 lrs × 2 settings" in tuned.budget_text()


def test_compare_pairs_the_seeds_and_reports_differences():
    result = compare([MTL, STL], DATA, seeds=(0, 1, 2))
    assert isinstance(result, Comparison) and result.seeds == [0, 1, 2]
    assert [r.seed for r in result.runs["STL a"]] == [0, 1, 2]
    assert len({r.lr for r in result.runs["MTL"]}) == 1  # one tuned setting for every seed
    d = result.difference("MTL", "STL a", "a")
    assert isinstance(d, PairedDifference) and len(d.values) == 3
    assert d.mean == pytest.approx(sum(result.values("MTL", "a")) / 3 - sum(result.values("STL a", "a")) / 3)
    table, diffs = result.table(), result.differences("STL a")
    assert set(table.index) == {"MTL", "STL a"} and "search" in table.columns
    assert list(diffs.index) == ["MTL"] and list(diffs.columns) == ["a"]  # only the shared task
    with pytest.raises(ValueError, match="Unknown arm"):
        result.values("nope", "a")


def test_compare_rejects_bad_input():
    with pytest.raises(ValueError, match="at least one arm"):
        compare([], DATA)
    with pytest.raises(ValueError, match="unique"):
        compare([MTL, MTL], DATA)
    with pytest.raises(ValueError, match="at least one value"):
        Arm("x", lambda _: standard_network(DATA), settings=())
    with pytest.raises(ValueError, match="no budget"):
        run(MTL, MultiTaskDataset("x", TASKS, DATA.train, DATA.val, DATA.test), lr=1e-2, seed=0)


def test_claim_difference_needs_the_interval_to_exclude_zero(capsys):
    better = PairedDifference((0.02, 0.03, 0.025), 0.025, 0.01, 0.04)
    unclear = PairedDifference((0.02, -0.01, 0.01), 0.007, -0.03, 0.04)
    claim_difference("A beats B", better, +1)
    claim_difference("no measurable difference", unclear, 0)
    assert "✔ A beats B" in capsys.readouterr().out
    with pytest.raises(ClaimError):
        claim_difference("A beats B", unclear, +1)
    with pytest.raises(ClaimError):
        claim_difference("B beats A", better, -1)
    with pytest.raises(ValueError, match="expected"):
        claim_difference("x", better, 2)


def test_a_penalty_arm_weights_its_penalty_by_the_setting():
    arm = Arm("p", lambda _: standard_network(DATA), settings=[0.0, 5.0],
              penalty=lambda m: sum((p ** 2).sum() for p in m.trunk.parameters()))
    options = arm.fit_options(standard_network(DATA), 5.0)
    model = standard_network(DATA)
    assert options["penalty"](model).item() == pytest.approx(5 * arm.penalty(model).item())


def test_every_arm_can_get_the_same_smaller_grid():
    result = compare([MTL, STL], DATA, seeds=(0, 1), lrs=[3e-2])
    assert all(r.lr == 3e-2 for runs in result.runs.values() for r in runs)
    assert result.tuned["MTL"].n_runs == 1 and result.table().loc["MTL", "search"].startswith("lr 0.03")
    with pytest.raises(ValueError, match="at least one learning rate"):
        tune(MTL, DATA, lrs=[])


def test_a_runners_own_device_is_kept_unless_one_is_given():
    """``partial(sequential_runner, device="cuda")`` must train on the GPU: tune and compare once
    passed their own ``device=None`` on, which overrode it and trained every run on the CPU."""
    from mtl_helpers.protocol import reusing_runner, sequential_runner

    seen = []

    def spy(arm, dataset, lr, settings, seeds, device="the runner's own"):
        seen.append(device)
        return sequential_runner(arm, dataset, lr, settings, seeds)

    for runner in (spy, reusing_runner({}, spy)):
        seen.clear()
        compare([STL], DATA, seeds=(0, 1), runner=runner)
        assert seen and set(seen) == {"the runner's own"}
        seen.clear()
        compare([STL], DATA, seeds=(0, 1), runner=runner, device="cpu")
        assert seen and set(seen) == {"cpu"}
