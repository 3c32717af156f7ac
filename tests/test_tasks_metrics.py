import pytest
import torch

from mtl_helpers.metrics import (
    accuracy,
    auc,
    balanced_choice,
    format_mean_std,
    mean_std,
    paired_difference,
    pareto_front,
    rmse,
    spearman,
)
from mtl_helpers.tasks import Task, check_tasks, get_task


def test_task_kinds_and_metric_directions():
    assert Task("a", "classification", 3).metric_name == "accuracy"
    assert Task("b", "binary").higher_is_better
    assert not Task("c", "regression").higher_is_better


@pytest.mark.parametrize("kwargs, match", [
    (dict(name="x", kind="ranking"), "unknown kind"),
    (dict(name="x", kind="classification", n_outputs=1), "n_outputs >= 2"),
    (dict(name="x", kind="binary", n_outputs=2), "exactly one logit"),
])
def test_task_rejects_bad_definitions(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Task(**kwargs)


def test_losses_match_torch():
    logits, y = torch.randn(5, 3), torch.tensor([0, 1, 2, 1, 0])
    assert torch.isclose(Task("c", "classification", 3).loss(logits, y), torch.nn.functional.cross_entropy(logits, y))
    s, b = torch.randn(5, 1), torch.tensor([0.0, 1, 1, 0, 1])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(s.squeeze(1), b)
    assert torch.isclose(Task("b", "binary").loss(s, b), expected)
    r, t = torch.randn(5, 1), torch.randn(5)
    assert torch.isclose(Task("r", "regression").loss(r, t), ((r.squeeze(1) - t) ** 2).mean())


def test_mismatched_head_raises_value_error():
    task = Task("digit", "classification", 10)
    with pytest.raises(ValueError, match="give the head 10 outputs"):
        task.loss(torch.randn(4, 3), torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="batch sizes must match"):
        task.loss(torch.randn(3, 10), torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="1-D integer"):
        task.loss(torch.randn(4, 10), torch.randn(4, 10))
    with pytest.raises(ValueError, match="value"):
        Task("r", "regression").loss(torch.randn(4, 2), torch.randn(4))


def test_unknown_task_name_and_empty_list():
    tasks = [Task("a", "binary"), Task("b", "binary")]
    assert get_task(tasks, "b").name == "b"
    with pytest.raises(ValueError, match="Unknown task 'c'"):
        get_task(tasks, "c")
    with pytest.raises(ValueError, match="empty"):
        check_tasks([])
    with pytest.raises(ValueError, match="unique"):
        check_tasks([Task("a", "binary"), Task("a", "binary")])


def test_metrics_on_hand_checked_cases():
    assert accuracy(torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]]), torch.tensor([0, 1, 1])) == pytest.approx(2 / 3)
    assert auc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1])) == pytest.approx(0.75)
    assert rmse(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 4.0])) == pytest.approx(2 ** 0.5)
    with pytest.raises(ValueError, match="both classes"):
        auc(torch.tensor([0.1, 0.2]), torch.tensor([1, 1]))


def test_mean_std_uses_sample_std():
    m, s = mean_std([1.0, 2.0, 3.0])
    assert (m, s) == pytest.approx((2.0, 1.0))
    assert format_mean_std([1.0, 2.0, 3.0], 2) == "2.00 ± 1.00"
    with pytest.raises(ValueError):
        mean_std([])


def test_paired_difference_is_a_t_interval_over_seeds():
    a, b = [0.90, 0.92, 0.91, 0.93, 0.95], [0.89, 0.90, 0.90, 0.91, 0.92]
    d = paired_difference(a, b)
    diffs = torch.tensor(a, dtype=torch.float64) - torch.tensor(b, dtype=torch.float64)
    half = 2.7764451 * diffs.std().item() / 5 ** 0.5  # t quantile 0.975 with 4 degrees of freedom
    assert d.mean == pytest.approx(diffs.mean().item())
    assert (d.low, d.high) == pytest.approx((d.mean - half, d.mean + half), rel=1e-6)
    assert d.direction == 1 and "[" in str(d)
    assert paired_difference(b, a).direction == -1


def test_paired_difference_says_nothing_without_evidence():
    assert paired_difference([0.9, 0.8, 0.95], [0.85, 0.9, 0.9]).direction == 0  # interval contains zero
    one = paired_difference([0.9], [0.1])
    assert one.direction == 0 and one.low == float("-inf")  # one seed supports no direction
    with pytest.raises(ValueError, match="equal-length"):
        paired_difference([0.9, 0.8], [0.9])
    with pytest.raises(ValueError, match="NaN"):
        paired_difference([float("nan")], [0.1])


def test_pareto_front_balanced_choice_and_spearman():
    points = [[0.9, 10.0], [0.8, 9.0], [0.85, 12.0], [0.7, 8.0]]  # AUC ↑, RMSE ↓
    assert pareto_front(points, [True, False]).tolist() == [True, True, False, True]
    assert balanced_choice(points, [True, False]) in (0, 1)
    assert spearman([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="higher_is_better"):
        pareto_front(points, [True])


@pytest.mark.parametrize("seed", range(5))
def test_auc_and_the_t_quantile_match_scikit_learn_and_scipy(seed):
    """Oracles: scikit-learn's roc_auc_score (with ties: scores rounded to one decimal) and
    scipy.stats' t distribution for the interval's half-width."""
    from scipy import stats
    from sklearn.metrics import roc_auc_score

    g = torch.Generator().manual_seed(seed)
    target = (torch.rand(300, generator=g) < 0.3).long()
    scores = torch.randn(300, generator=g) + target
    for s in (scores, scores.round(decimals=1)):
        assert auc(s, target) == pytest.approx(roc_auc_score(target.numpy(), s.numpy()), abs=1e-12)
    a, b = torch.rand(seed + 2, generator=g).tolist(), torch.rand(seed + 2, generator=g).tolist()
    d = torch.tensor(a, dtype=torch.float64) - torch.tensor(b, dtype=torch.float64)
    half = stats.t.ppf(0.975, len(a) - 1) * d.std().item() / len(a) ** 0.5
    diff = paired_difference(a, b)
    assert (diff.low, diff.high) == pytest.approx((d.mean().item() - half, d.mean().item() + half), abs=1e-12)


def test_auc_needs_one_score_per_target():
    with pytest.raises(ValueError, match="one score per target"):
        auc(torch.tensor([0.1, 0.2, 0.3]), torch.tensor([0, 1]))
