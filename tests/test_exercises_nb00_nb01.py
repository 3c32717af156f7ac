import torch

from mtl_helpers.exercises import NOT_IMPLEMENTED, nb00, nb01, report


def stub(*args):
    raise NotImplementedError("write your solution here")


def test_report_returns_the_verdict(capsys):
    assert report(True, "yes", "no") is True
    assert report(False, "yes", "no") is False
    assert capsys.readouterr().out.splitlines() == ["✔ yes", "✘ no"]


def test_every_checker_reports_a_stub_as_not_implemented(capsys):
    checkers = [nb00.check_parameter_counts, nb00.check_when_mtl_helps, nb00.check_glossary, nb01.check_accuracy,
                nb01.check_mean_std, nb01.check_leaky_columns, nb01.check_majority_baseline]
    for check in checkers:
        assert check(stub) is False, check.__name__
        assert NOT_IMPLEMENTED in capsys.readouterr().out, check.__name__


def test_parameter_count_checker():
    assert nb00.check_parameter_counts(lambda t, f, h: {"separate": t * (f + h), "shared": f + t * h})
    assert not nb00.check_parameter_counts(lambda t, f, h: {"separate": t * f + h, "shared": f + t * h})
    assert not nb00.check_parameter_counts(lambda t, f, h: {"separate": t * (f + h), "shared": t * (f + h)})
    assert not nb00.check_parameter_counts(lambda t, f, h: (t * (f + h), f + t * h))  # not a dict
    assert not nb00.check_parameter_counts(lambda t, f, h: 1 / 0)


def test_when_mtl_helps_checker(capsys):
    assert nb00.check_when_mtl_helps(lambda: dict(nb00.SITUATIONS))
    assert not nb00.check_when_mtl_helps(lambda: dict.fromkeys(nb00.SITUATIONS, True))  # "MTL always helps"
    assert not nb00.check_when_mtl_helps(lambda: {"two tasks need the same low-level features": True})
    latency = "you must serve several predictions per input under a tight latency budget"
    assert not nb00.check_when_mtl_helps(lambda: {**nb00.SITUATIONS, latency: False})
    assert "reconsider" in capsys.readouterr().out


def test_glossary_checker_accepts_synonyms_and_rejects_wrong_pairs():
    right = {"多任务学习": "multi-task learning", "硬参数共享": "hard parameter sharing",
             "软参数共享": "soft parameter sharing", "负迁移": "negative transfer",
             "梯度冲突": "gradient conflict", "任务权重": "task weighting"}
    assert nb00.check_glossary(lambda: right)
    for synonym in ("task weights", "loss weights", "Task Weighting"):
        assert nb00.check_glossary(lambda s=synonym: {**right, "任务权重": s}), synonym
    for synonym in ("multitask learning", "Multi-Task Learning", "multi task learning", "MTL"):
        assert nb00.check_glossary(lambda s=synonym: {**right, "多任务学习": s}), synonym
    assert nb00.check_glossary(lambda: {**right, "硬参数共享": "Hard-parameter sharing "})
    assert not nb00.check_glossary(lambda: {**right, "负迁移": "positive transfer"})
    swapped = {**right, "硬参数共享": "soft parameter sharing", "软参数共享": "hard parameter sharing"}
    assert not nb00.check_glossary(lambda: swapped)
    assert not nb00.check_glossary(lambda: {**right, "任务权重": "gradient conflict", "梯度冲突": "task weighting"})
    assert not nb00.check_glossary(lambda: {k: v for k, v in right.items() if k != "负迁移"})
    assert not nb00.check_glossary(lambda: list(right.values()))


def test_accuracy_checker():
    assert nb01.check_accuracy(lambda x, y: (x.argmax(1) == y).float().mean())
    assert not nb01.check_accuracy(lambda x, y: (x.argmax(0)[: len(y)] == y).float().mean())
    assert not nb01.check_accuracy(lambda x, y: (x.softmax(1).max(1).values > 0.5).float().mean())
    assert not nb01.check_accuracy(lambda x, y: (x.argmax(1) == y).sum())  # a count, not a fraction


def test_mean_std_checker():
    assert nb01.check_mean_std(lambda v: (torch.tensor(v).mean(), torch.tensor(v).std()))
    assert not nb01.check_mean_std(lambda v: (torch.tensor(v).mean(), torch.tensor(v).std(unbiased=False)))
    assert not nb01.check_mean_std(lambda v: torch.tensor(v).mean())  # no std at all


def test_leaky_columns_checker():
    assert nb01.check_leaky_columns(lambda: ["marital_status", "relationship"])
    assert nb01.check_leaky_columns(lambda: (" Relationship", "marital_status"))
    assert not nb01.check_leaky_columns(lambda: ["marital_status"])
    assert not nb01.check_leaky_columns(lambda: ["marital_status", "relationship", "sex"])
    assert not nb01.check_leaky_columns(lambda: None)


def test_majority_baseline_checker():
    assert nb01.check_majority_baseline(lambda y: torch.bincount(y).max().item() / len(y))
    assert not nb01.check_majority_baseline(lambda y: 1 / len(torch.unique(y)))
    assert not nb01.check_majority_baseline(lambda y: torch.bincount(y).max().item())
    assert not nb01.check_majority_baseline(lambda y: (y == y[0]).float().mean())  # the first label's share
