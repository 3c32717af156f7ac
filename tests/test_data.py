import hashlib

import numpy as np
import pandas as pd
import pytest
import torch

from mtl_helpers.data import (
    ADULT_LEAKY,
    DATA_DIR,
    Budget,
    Split,
    gal_uw_data,
    gradnorm_toy_data,
    load_adult,
    load_income_and_regression,
    load_mnist_5k,
    load_multimnist,
    make_mmoe_data,
    read_adult_frames,
)
from mtl_helpers.data.multimnist import _overlay

CHECKSUMS = {
    "mnist_5k.csv.gz": "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d",
    "adult.data.gz": "0929e9d9c7845175493be1a8fd071b8e746a6b9f66d8bf359daabaac44713023",
    "adult.test.gz": "fcd5bcc9b18515fd2fd314e2bbd8444263ad0f2a0e638c060c34b0151555aaa2",
}


@pytest.mark.parametrize("name", sorted(CHECKSUMS))
def test_data_files_match_the_documented_checksums(name):
    assert hashlib.sha256((DATA_DIR / name).read_bytes()).hexdigest() == CHECKSUMS[name]


def test_row_counts_match_data_readme():
    images, labels = load_mnist_5k()
    assert images.shape == (5000, 28, 28) and torch.bincount(labels).tolist() == [500] * 10
    train, test = read_adult_frames()
    assert (len(train), len(test)) == (32561, 16281)


def test_multimnist_is_deterministic_and_well_formed():
    a = load_multimnist(200, 50, 50, seed=1)
    b = load_multimnist(200, 50, 50, seed=1)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y["right"], b.test.y["right"])
    assert a.train.x.shape == (200, 1, 18, 18)
    assert 0.0 <= a.train.x.min() and a.train.x.max() <= 1.0
    assert set(a.train.y) == {"left", "right"}
    assert not torch.equal(a.train.x, load_multimnist(200, 50, 50, seed=2).train.x)


def test_overlay_geometry_follows_sener_and_koltun():
    left, right = torch.full((1, 14, 14), 0.3), torch.full((1, 14, 14), 0.7)
    canvas = _overlay(left, right, canvas=18, offset=3)[0]
    assert torch.all(canvas[:3, :14] == 0.3)  # left digit alone at the top
    assert torch.all(canvas[3:17, 3:17] == 0.7)  # right digit on top where they overlap (max)
    assert canvas[17].sum() == 0 and canvas[:, 17].sum() == 0
    with pytest.raises(ValueError, match="does not fit"):
        _overlay(left, right, canvas=16, offset=3)
    with pytest.raises(ValueError, match="positive"):
        load_multimnist(0)


def test_adult_drops_leaky_columns_and_has_both_tasks():
    ds = load_adult()
    names = ds.info["feature_names"]
    assert not any(n.split("=")[0] in ADULT_LEAKY for n in names)
    assert ds.train.x.shape[1] == len(names) == ds.test.x.shape[1]
    assert 0.20 < ds.train.y["income"].mean() < 0.28
    assert 0.28 < ds.train.y["never_married"].mean() < 0.38
    assert len(ds.test) == 16281
    assert torch.isfinite(ds.train.x).all()
    numeric = ds.train.x[:, :6]
    assert torch.allclose(numeric.mean(0), torch.zeros(6), atol=1e-3)


def test_split_helpers_and_errors():
    split = Split(torch.arange(10.0)[:, None], {"a": torch.arange(10), "b": torch.arange(10)})
    assert len(split.take(4, seed=0)) == 4
    masked = split.with_label_fraction("a", 0.3)
    assert masked.masks["a"].sum() == 3
    with pytest.raises(ValueError, match="Unknown task"):
        split.with_label_fraction("c", 0.5)
    with pytest.raises(ValueError, match="rows"):
        Split(torch.zeros(3, 1), {"a": torch.zeros(4)})
    with pytest.raises(ValueError, match="at least one task"):
        Split(torch.zeros(3, 1), {})



def test_batches_are_the_rows_of_each_chunk_of_one_permutation_masks_included():
    split = Split(torch.arange(10.0)[:, None], {"a": torch.arange(10) * 2}).with_label_fraction("a", 0.5)
    batches = list(split.batches(4, torch.Generator().manual_seed(3)))
    chunks = torch.randperm(10, generator=torch.Generator().manual_seed(3)).split(4)
    assert [len(b) for b in batches] == [4, 4, 2]
    for batch, index in zip(batches, chunks, strict=True):
        assert torch.equal(batch.x, split.x[index])
        assert torch.equal(batch.y["a"], split.y["a"][index])
        assert torch.equal(batch.masks["a"], split.masks["a"][index])
        assert isinstance(batch, Split) and torch.equal(batch.labelled("a").x, split.x[index][split.masks["a"][index]])
    with pytest.raises(ValueError, match="batch_size"):
        next(split.batches(0, torch.Generator()))

def test_mmoe_generator_correlation_tracks_p():
    corr = []
    for p in (0.9, 0.1):
        ds = make_mmoe_data(p, n_train=5000, n_val=10, n_test=10, seed=0)
        y = torch.stack([ds.train.y["y1"], ds.train.y["y2"]])
        corr.append(torch.corrcoef(y)[0, 1].item())
    assert corr[0] > 0.75 and corr[1] < 0.35
    with pytest.raises(ValueError, match="correlation"):
        make_mmoe_data(1.5)


def test_select_gives_a_single_task_view():
    ds = load_multimnist(50, 10, 10)
    single = ds.select(["left"])
    assert [t.name for t in single.tasks] == ["left"] and list(single.train.y) == ["left"]
    with pytest.raises(ValueError, match="Unknown task"):
        ds.select(["middle"])


def test_label_mask_is_independent_of_the_training_batch_order():
    """fit(seed=s) shuffles with torch.randperm; the mask for the same s must not follow it,
    or every labelled row would sit in the first batches of the first epoch."""
    n = 1000
    split = Split(torch.zeros(n, 1), {"a": torch.zeros(n)})
    kept = split.with_label_fraction("a", 0.1, seed=0).masks["a"]
    first_batches = torch.randperm(n, generator=torch.Generator().manual_seed(0))[:100]
    assert kept[first_batches].sum() < 40  # ~10 expected by chance, 100 if the streams coincided


def test_budget_gives_fewer_rows_as_many_steps():
    budget = Budget(epochs=5, batch_size=100, lrs=(1e-3,))
    assert budget.max_epochs(1000, 1000) == 5
    assert budget.max_epochs(100, 1000) == 50  # 1 step per epoch: 50 steps, as 5 epochs of 10 steps
    assert budget.max_epochs(250, 1000) == 17  # 3 steps per epoch: ≥ 50 steps
    assert budget.max_epochs(5000, 1000) == 5  # never fewer than the budget's epochs
    with pytest.raises(ValueError, match="Budget"):
        Budget(epochs=0, batch_size=1, lrs=(1e-3,))
    with pytest.raises(ValueError, match="positive"):
        budget.max_epochs(0, 10)


def test_labelled_keeps_exactly_the_labelled_rows_as_a_single_task_split():
    split = Split(torch.arange(20.0)[:, None], {"a": torch.arange(20), "b": torch.arange(20)})
    masked = split.with_label_fraction("a", 0.25, seed=3)
    rows = masked.labelled("a")
    assert list(rows.y) == ["a"] and len(rows) == 5
    assert torch.equal(rows.x[:, 0].long(), masked.masks["a"].nonzero().squeeze(1))
    assert len(split.labelled("b")) == 20  # no mask: every row
    with pytest.raises(ValueError, match="Unknown task"):
        split.labelled("c")


def test_datasets_carry_an_explicit_budget():
    ds = load_multimnist(20, 10, 10)
    assert ds.budget is None
    with pytest.raises(ValueError, match="no budget"):
        ds.require_budget()
    budget = Budget(epochs=2, batch_size=8, lrs=(1e-2,))
    assert ds.with_budget(budget).require_budget() == budget


def test_income_and_regression_drops_its_target_from_the_features():
    ds = load_income_and_regression("age", n_train=500, budget=Budget(1, 64, (1e-3,)))
    assert [t.kind for t in ds.tasks] == ["binary", "regression"] and ds.budget.batch_size == 64
    assert "age" not in ds.info["feature_names"] and ds.name != "adult"
    assert len(ds.train) == 500 and ds.train.x.shape[1] == len(ds.info["feature_names"])
    assert ds.train.y["age"].min() >= 17  # raw units, not standardised
    with pytest.raises(ValueError, match="target"):
        load_income_and_regression("income")


def test_synthetic_generators_are_seeded_and_shaped():
    a, b = gal_uw_data(50, seed=1), gal_uw_data(50, seed=1)
    assert torch.equal(a.y["y1"], b.y["y1"]) and a.x.shape == (50, 1)
    toy = gradnorm_toy_data([1.0, 100.0], n=30)
    assert set(toy.y) == {"t0", "t1"} and toy.y["t1"].shape == (30, 100)
    assert toy.y["t1"].abs().max() > 10 * toy.y["t0"].abs().max()
    with pytest.raises(ValueError, match="sigmas"):
        gradnorm_toy_data([])


def test_adult_features_one_hot_train_categories_and_leave_unseen_ones_at_zero():
    from mtl_helpers.data.adult import ADULT_COLUMNS, adult_features

    def frame(workclass):
        n = len(workclass)
        columns = {c: ["x"] * n for c in ADULT_COLUMNS} | {c: [1.0 + i for i in range(n)] for c in
                                                            ("age", "fnlwgt", "education_num", "capital_gain",
                                                             "capital_loss", "hours_per_week")}
        return pd.DataFrame(columns | {"workclass": workclass})

    x_train, x_other, names = adult_features(frame(["Private", "State-gov", "Private"]), frame(["State-gov", "Never"]))
    cols = [names.index("workclass=Private"), names.index("workclass=State-gov")]
    assert x_train[:, cols].tolist() == [[1, 0], [0, 1], [1, 0]]
    assert x_other[:, cols].tolist() == [[0, 1], [0, 0]]  # an unseen category: no column set
    assert x_train.dtype == np.float32 and not any(n.startswith("marital_status") for n in names)
