import torch

from mtl_helpers.exercises import nb00, nb01, report


def test_report_returns_the_verdict(capsys):
    assert report(True, "yes", "no") is True
    assert report(False, "yes", "no") is False
    assert capsys.readouterr().out.splitlines() == ["✔ yes", "✘ no"]


def test_parameter_count_checker():
    assert nb00.check_parameter_counts(lambda t, f, h: {"separate": t * (f + h), "shared": f + t * h})
    assert not nb00.check_parameter_counts(lambda t, f, h: {"separate": t * f + h, "shared": f + t * h})
    assert not nb00.check_parameter_counts(lambda t, f, h: {"separate": t * (f + h), "shared": t * (f + h)})
    assert not nb00.check_parameter_counts(lambda t, f, h: 1 / 0)


def test_when_mtl_helps_checker():
    right = {"one task has few labels, a related task has many": True,
             "two tasks need the same low-level features": True,
             "the tasks' labels are unrelated and each has plenty of data": False,
             "one task's loss is 1000x larger and weights are left equal": False,
             "you must serve several predictions per input under a tight latency budget": True}
    assert nb00.check_when_mtl_helps(right)
    assert not nb00.check_when_mtl_helps({k: True for k in right})  # "MTL always helps"
    assert not nb00.check_when_mtl_helps({"two tasks need the same low-level features": True})


def test_glossary_checker():
    right = {"多任务学习": "multi-task learning", "硬参数共享": "hard parameter sharing",
             "软参数共享": "soft parameter sharing", "负迁移": "negative transfer",
             "梯度冲突": "gradient conflict", "任务权重": "task weighting"}
    assert nb00.check_glossary(right)
    assert not nb00.check_glossary({**right, "负迁移": "positive transfer"})
    swapped = {**right, "硬参数共享": "soft parameter sharing", "软参数共享": "hard parameter sharing"}
    assert not nb00.check_glossary(swapped)


def test_accuracy_checker():
    assert nb01.check_accuracy(lambda x, y: (x.argmax(1) == y).float().mean())
    assert not nb01.check_accuracy(lambda x, y: (x.argmax(0)[: len(y)] == y).float().mean())
    assert not nb01.check_accuracy(lambda x, y: (x.softmax(1).max(1).values > 0.5).float().mean())


def test_mean_std_checker():
    assert nb01.check_mean_std(lambda v: (torch.tensor(v).mean(), torch.tensor(v).std()))
    assert not nb01.check_mean_std(lambda v: (torch.tensor(v).mean(), torch.tensor(v).std(unbiased=False)))


def test_leaky_columns_checker():
    assert nb01.check_leaky_columns(["marital_status", "relationship"])
    assert not nb01.check_leaky_columns(["marital_status"])
    assert not nb01.check_leaky_columns(["marital_status", "relationship", "sex"])


def test_majority_baseline_checker():
    assert nb01.check_majority_baseline(lambda y: torch.bincount(y).max().item() / len(y))
    assert not nb01.check_majority_baseline(lambda y: 1 / len(torch.unique(y)))
    assert not nb01.check_majority_baseline(lambda y: torch.bincount(y).max().item())
