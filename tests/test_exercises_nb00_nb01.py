from pathlib import Path

import nbformat
import torch

from mtl_helpers.exercises import NOT_IMPLEMENTED, nb00, nb01, report

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def stub(*args):
    raise NotImplementedError("write your solution here")


def test_report_returns_the_verdict(capsys):
    assert report(True, "yes", "no") is True
    assert report(False, "yes", "no") is False
    assert capsys.readouterr().out.splitlines() == ["✔ yes", "✘ no"]


def test_every_checker_reports_a_stub_as_not_implemented(capsys):
    checkers = [nb00.check_parameter_counts, nb00.check_when_mtl_helps, nb00.check_glossary,
                nb00.check_mtl_or_transfer, nb01.check_accuracy, nb01.check_mean_std, nb01.check_leaky_columns,
                nb01.check_majority_baseline]
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


RIGHT_GLOSSARY = {"多任务学习": "multi-task learning", "硬参数共享": "hard parameter sharing",
                  "软参数共享": "soft parameter sharing", "负迁移": "negative transfer",
                  "梯度冲突": "gradient conflict", "任务权重": "task weighting", "迁移学习": "transfer learning",
                  "任务相关性": "task relatedness", "任务不平衡": "task imbalance",
                  "串行架构": "serial architecture", "并行架构": "parallel architecture",
                  "分支架构": "branch architecture", "多门控混合专家": "multi-gate mixture-of-experts"}


def test_glossary_checker_accepts_synonyms():
    right = RIGHT_GLOSSARY
    assert set(right) == set(nb00.GLOSSARY)
    assert nb00.check_glossary(lambda: right)
    synonyms = {"任务权重": ("task weights", "loss weights", "Task Weighting"),
                "多任务学习": ("multitask learning", "Multi-Task Learning", "multi task learning", "MTL"),
                "硬参数共享": ("Hard-parameter sharing ",),
                "多门控混合专家": ("MMoE", "multi-gate mixture of experts", "Multi-Gate Mixture-of-Experts"),
                "串行架构": ("cascade architecture", "Serial architecture"),
                "分支架构": ("branched architecture", "branching architecture"),
                "任务相关性": ("task relationships", "task correlation"),
                "任务不平衡": ("imbalanced tasks",)}
    for term, names in synonyms.items():
        for name in names:
            assert nb00.check_glossary(lambda t=term, n=name: {**right, t: n}), (term, name)


def test_glossary_checker_rejects_wrong_pairs(capsys):
    right = RIGHT_GLOSSARY
    wrong_answers = [
        {"负迁移": "positive transfer"},
        {"硬参数共享": "soft parameter sharing", "软参数共享": "hard parameter sharing"},
        {"任务权重": "gradient conflict", "梯度冲突": "task weighting"},
        {"迁移学习": "negative transfer", "负迁移": "transfer learning"},   # the paradigm vs the failure
        {"串行架构": "parallel architecture", "并行架构": "serial architecture"},
        {"分支架构": "parallel architecture"},
        {"多门控混合专家": "mixture of experts"},                           # no gate per task: MoE, not MMoE
        {"多门控混合专家": "OMoE"},
        {"任务相关性": "task imbalance", "任务不平衡": "task relatedness"},
        {"迁移学习": "multi-task learning"},
    ]
    for change in wrong_answers:
        assert not nb00.check_glossary(lambda c=change: {**right, **c}), change
        out = capsys.readouterr().out
        assert all(term in out for term in change), (change, out)
    assert not nb00.check_glossary(lambda: {k: v for k, v in right.items() if k != "负迁移"})
    assert "exactly these Chinese terms" in capsys.readouterr().out
    assert not nb00.check_glossary(lambda: list(right.values()))
    capsys.readouterr()
    assert not nb00.check_glossary(lambda: {**right, "多门控混合专家": "MoE"})
    assert "多门控 = multi-gate" in capsys.readouterr().out


def test_notebook_00_glossary_table_gives_an_accepted_name_for_every_term():
    cells = nbformat.read(NOTEBOOKS / "00_start_here.ipynb", as_version=4).cells
    table = "\n".join(c.source for c in cells if "9 · Glossary" in c.source.split("\n")[0])  # and its continuation
    rows = [line for line in table.splitlines() if line.startswith("|")]
    for term, names in nb00.GLOSSARY.items():
        row = next((r for r in rows if term in r.split("|")[2].replace(" ", "")), None)
        assert row is not None, f"{term} is not in the glossary table"
        english = nb00.normalise_term(row.split("|")[1])
        assert any(nb00.normalise_term(n) in english for n in names), (term, row)


def test_mtl_or_transfer_checker(capsys):
    assert set(nb00.TRANSFER_OR_MTL) == set(nb00.TRANSFER_SCENARIOS)
    assert set(nb00.TRANSFER_OR_MTL.values()) == {"multi-task", "transfer"}
    assert nb00.check_mtl_or_transfer(lambda: dict(nb00.TRANSFER_OR_MTL))
    variants = {k: {"multi-task": "MTL", "transfer": "Transfer learning"}[v] for k, v in nb00.TRANSFER_OR_MTL.items()}
    assert nb00.check_mtl_or_transfer(lambda: variants)
    capsys.readouterr()
    assert not nb00.check_mtl_or_transfer(lambda: dict.fromkeys(nb00.TRANSFER_OR_MTL, "multi-task"))
    assert not nb00.check_mtl_or_transfer(lambda: dict.fromkeys(nb00.TRANSFER_OR_MTL, "transfer"))
    flipped = {k: "transfer" if v == "multi-task" else "multi-task" for k, v in nb00.TRANSFER_OR_MTL.items()}
    assert not nb00.check_mtl_or_transfer(lambda: flipped)
    capsys.readouterr()
    # the classic confusion: an auxiliary task serves one target, yet it is trained jointly
    assert not nb00.check_mtl_or_transfer(lambda: {**nb00.TRANSFER_OR_MTL, "auxiliary task": "transfer"})
    out = capsys.readouterr().out
    assert "auxiliary task" in out and "multi-task learning even if only one task counts" in out
    assert not nb00.check_mtl_or_transfer(lambda: {**nb00.TRANSFER_OR_MTL, "chest X-rays": "fine-tuning"})
    assert not nb00.check_mtl_or_transfer(lambda: {"phone camera": "multi-task"})  # missing scenarios
    assert not nb00.check_mtl_or_transfer(lambda: list(nb00.TRANSFER_OR_MTL))


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
