"""Tests of notebook 06's studies (mtl_helpers.experiments.nb06), on tiny data."""

import dataclasses
import json

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from mtl_helpers import workers
from mtl_helpers.data import Budget
from mtl_helpers.experiments import nb06
from mtl_helpers.protocol import run, tune
from mtl_helpers.train import selection_score

TINY = Budget(epochs=2, batch_size=64, lrs=(3e-3, 1e-2))


@pytest.fixture(scope="module")
def datasets():
    return nb06.correlation_datasets((1.0, 0.5), TINY, n_train=256, n_val=64, n_test=64, dim=12)


@pytest.fixture(scope="module")
def study(datasets):
    arms = nb06.moe_arms(datasets, n_experts=3, expert_hidden=4, tower_hidden=2)
    assert list(arms)[:3] == list(nb06.MODELS) and len(arms) == 7
    return nb06.correlation_study(datasets, seeds=(0, 1), n_experts=3, expert_hidden=4, tower_hidden=2)


def test_only_the_second_task_moves_with_p(datasets):
    a, b = datasets[1.0], datasets[0.5]
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.train.y["y1"], b.train.y["y1"])
    assert not torch.equal(a.train.y["y2"], b.train.y["y2"])
    for ds in (a, b):  # standardised on the training split
        assert abs(float(ds.train.y["y2"].mean())) < 1e-5 and abs(float(ds.train.y["y2"].std()) - 1) < 1e-5
        assert "target_mean_std" in ds.info
    assert nb06.label_correlation(a) > 0.95 > nb06.label_correlation(b)
    with pytest.raises(ValueError):
        nb06.correlation_datasets(())


def test_over_correlations_matches_separate_protocol_runs(datasets):
    arm = nb06.moe_arms(datasets, n_experts=3, expert_hidden=4, tower_hidden=2)["MMoE"]
    batched = nb06.over_correlations(arm, datasets, lr=1e-2, seed=1)
    for p, result in batched.items():
        alone = run(arm, datasets[p], lr=1e-2, seed=1)
        assert result.setting == p and result.best_epoch == alone.best_epoch
        assert result.test == pytest.approx(alone.test, abs=1e-4)
    shifted = dict(datasets)
    shifted[0.5] = nb06.correlation_datasets((0.5,), TINY, n_train=256, n_val=64, n_test=64, dim=12, seed=7)[0.5]
    with pytest.raises(ValueError):
        nb06.over_correlations(arm, shifted, lr=1e-2, seed=0)  # inputs differ: not one data draw


def test_sweep_records_its_search_and_round_trips(study, tmp_path):
    mmoe = study["MMoE"]
    assert set(mmoe.val_by_lr) == set(TINY.lrs) and mmoe.lr == max(mmoe.val_by_lr, key=mmoe.val_by_lr.get)
    assert mmoe.seeds == [0, 1] and len(mmoe.values(0.5, "y2")) == 2
    back = nb06.ArmSweep.from_record("MMoE", mmoe.record())
    assert back.losses == mmoe.losses and back.lr == mmoe.lr and back.best_epochs == mmoe.best_epochs
    reference = study["single-task net · y1"]
    assert reference.values(1.0, "y1") == reference.values(0.5, "y1")  # trained once, filed under every p
    assert set(study["single-task MoE · y2"].losses["y2"]) == {1.0, 0.5}
    with pytest.raises(ValueError):
        mmoe.values(0.3, "y1")
    with pytest.raises(ValueError):
        mmoe.at_every([1.0])


def test_differences_are_paired(study):
    sb = study["Shared-Bottom"]
    diff = nb06.loss_difference(sb, 0.5, sb, 1.0, "y1")
    assert diff.values == pytest.approx(tuple(nb06.degradation(sb, "y1", 0.5)))
    t = nb06.transfer(study, "OMoE", "y2", 0.5)
    ref = study["single-task MoE · y2"].values(0.5, "y2")
    assert t.mean == pytest.approx(np.mean(study["OMoE"].values(0.5, "y2")) - np.mean(ref))
    assert nb06.reference(study, "Shared-Bottom", "y1").name == "single-task net · y1"
    with pytest.raises(ValueError):
        nb06.reference(study, "PLE", "y1")
    other = nb06.ArmSweep("x", 0.1, [5, 6], sb.losses)
    with pytest.raises(ValueError):
        nb06.loss_difference(other, 1.0, sb, 1.0, "y1")


def test_tables_gates_and_figures(study, datasets):
    table = nb06.sweep_table(study, "y1")
    assert list(table.columns) == ["p = 1", "p = 0.5", "lr"] and "single-task net · y1" in table.index
    assert "single-task net · y1" not in nb06.sweep_table(study, "y2").index
    gates = nb06.gate_summary(study["MMoE"], datasets)
    usage = np.array(gates["usage"][1.0])
    assert usage.shape == (2, 2, 3) and np.allclose(usage.sum(-1), 1, atol=1e-5)
    assert all(0 <= a <= 1 for a in gates["agreement"][0.5])
    omoe = study["OMoE"].runs[1.0][0].model
    assert nb06.gate_agreement(omoe, datasets[1.0].test.x) == pytest.approx(1.0)
    nb06.plot_sweep(study)
    nb06.plot_gates({p: torch.tensor(v[0]) for p, v in gates["usage"].items()})
    nb06.draw_correlation(study, {p: torch.tensor(v[0]) for p, v in gates["usage"].items()}, 0.5)
    plt.close("all")
    loaded = nb06.ArmSweep.from_record("MMoE", study["MMoE"].record())
    with pytest.raises(ValueError):
        nb06.gate_summary(loaded, datasets)


def test_click_study_views_and_report():
    data = nb06.click_dataset(Budget(epochs=1, batch_size=128, lrs=(1e-2,)), n_train=600, n_val=300, n_test=400)
    clicked = nb06.clicked_only(data)
    assert clicked.task_names == ["conversion"] and len(clicked.test) == 400
    assert len(clicked.val) == int(data.val.y["click"].sum())
    arms = nb06.esmm_arms(data)
    assert list(arms) == ["CVR net, clicked only", "CVR net, random impressions", "ESMM"]
    naive_arm, naive_data = arms["CVR net, clicked only"]
    assert len(naive_arm.train(0)) == int(data.train.y["click"].sum())
    random_arm, random_data = arms["CVR net, random impressions"]
    rows = random_arm.train(0)
    assert len(rows) == len(naive_arm.train(0)) and len(random_data.val) == len(naive_data.val)
    assert not torch.equal(rows.x, naive_arm.train(0).x)  # the same number of labels, other rows
    assert len(random_data.test) == 400 and set(nb06.oracle_report(data)) == {"AUC, clicked", "AUC, all"}
    results = {}
    for name, (arm, ds) in arms.items():
        results[name] = run(arm, ds, lr=1e-2, seed=0)
        report = nb06.cvr_report(results[name].model, data)
        assert set(report) == {"AUC, clicked", "AUC, all", "mean pCVR − truth", "mean |pCVR − truth|"}
        assert 0 <= report["AUC, all"] <= 1 and report["mean |pCVR − truth|"] >= 0
        by_ctr = nb06.cvr_error_by_ctr(results[name].model, data)
        assert set(by_ctr) == {"rarely clicked", "often clicked"} and min(by_ctr.values()) >= 0
        halves = nb06.cvr_error_by_ctr(results[name].model, data, share=0.5)  # the two halves average to the whole
        assert (halves["rarely clicked"] + halves["often clicked"]) / 2 == pytest.approx(report["mean |pCVR − truth|"])
    assert results["CVR net, clicked only"].max_epochs > results["ESMM"].max_epochs  # same steps, fewer rows
    with pytest.raises(ValueError, match="share"):
        nb06.cvr_error_by_ctr(results["ESMM"].model, data, share=0.9)
    nb06.plot_calibration({name: [r.model] for name, r in results.items()}, data)
    plt.close("all")


def test_stored_sweep_loads():
    if not nb06.STORED_FILE.exists():
        pytest.skip("no stored sweep yet: python -m mtl_helpers.experiments.nb06")
    study, stored = nb06.load_sweep()
    assert list(study)[:3] == list(nb06.MODELS)
    assert all(r.seeds == list(nb06.STORED_SEEDS) for r in study.values())
    assert set(stored["label_correlation"]) == {str(p) for p in nb06.CORRELATIONS}
    assert set(study["MMoE"].correlations) == set(nb06.CORRELATIONS)
    assert stored["budget"] == json.loads(json.dumps(dataclasses.asdict(nb06.STORED_BUDGET)))  # the notebook re-runs it


def test_usage_entropy_is_one_when_uniform_and_zero_on_one_expert():
    assert nb06.usage_entropy(torch.full((2, 8), 1 / 8)) == pytest.approx(1.0)
    assert nb06.usage_entropy(torch.eye(4)[:2]) == pytest.approx(0.0, abs=1e-12)
    assert 0 < nb06.usage_entropy(torch.tensor([[0.7, 0.1, 0.1, 0.1]])) < 1


def test_gates_at_init_are_the_trained_runs_starting_gates(datasets):
    untrained = nb06.gates_at_init(datasets, seeds=(0, 1))
    assert set(untrained) == {"agreement", "entropy"} and all(len(v) == 2 for v in untrained.values())
    assert untrained == nb06.gates_at_init(datasets, seeds=(0, 1))  # seeded: the same initial weights
    assert untrained["agreement"][0] != untrained["agreement"][1]  # and each seed its own
    model = workers.build_seeded(nb06.moe_arms(datasets)["MMoE"].build, None, 1)
    assert untrained["agreement"][1] == nb06.gate_agreement(model, datasets[1.0].test.x)
    assert all(0 <= a <= 1 for a in untrained["agreement"]) and all(0.9 < e <= 1 for e in untrained["entropy"])


def test_searched_lrs_lists_every_lr_with_its_score_and_kept_epochs(datasets):
    arm = nb06.moe_arms(datasets, n_experts=3, expert_hidden=4, tower_hidden=2)["MMoE"]
    data = datasets[1.0]
    tuned = tune(arm, data, seeds=(0, 1))
    rows = nb06.searched_lrs(tuned, arm, data)
    assert list(rows) == ["lr 0.003", "lr 0.01"]
    for (lr, _), runs in tuned.runs.items():
        score = float(np.mean([selection_score(r.val, arm.task_list(data)) for r in runs]))
        assert rows[f"lr {lr:g}"] == f"{score:.4f} (epoch {runs[0].best_epoch}, {runs[1].best_epoch})"
