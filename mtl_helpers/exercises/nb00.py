"""Checkers for notebook 00 (start here)."""

from __future__ import annotations

import re
from collections.abc import Callable

from ..models import parameter_counts
from . import Failed, attempt, check_cases, report

SITUATIONS: dict[str, bool] = {
    "one task has few labels, a related task has many": True,
    "two tasks need the same low-level features": True,
    "the tasks' labels are unrelated and each has plenty of data": False,
    "one task's loss is 1000x larger and weights are left equal": False,
    "you must serve several predictions per input under a tight latency budget": True,
}
"""Exercise 2's situations and whether MTL is a good bet in each (the table of section 3)."""

GLOSSARY: dict[str, set[str]] = {
    "多任务学习": {"multi-task learning", "multitask learning", "multi-task learning (MTL)", "MTL"},
    "硬参数共享": {"hard parameter sharing", "hard sharing"},
    "软参数共享": {"soft parameter sharing", "soft sharing"},
    "负迁移": {"negative transfer"},
    "梯度冲突": {"gradient conflict", "conflicting gradients"},
    "任务权重": {"task weighting", "task weights", "loss weights", "loss weighting"},
    "迁移学习": {"transfer learning"},
    "任务相关性": {"task relatedness", "task relationship", "task relationships", "task correlation"},
    "任务不平衡": {"task imbalance", "imbalanced tasks"},
    "串行架构": {"serial architecture", "serial structure", "cascade architecture", "cascaded architecture"},
    "并行架构": {"parallel architecture", "parallel structure"},
    "分支架构": {"branch architecture", "branched architecture", "branching architecture", "branch structure"},
    "多门控混合专家": {"multi-gate mixture-of-experts", "MMoE"},
}
"""Exercise 3's terms and the English names the glossary (section 9) accepts for each."""

GLOSSARY_HINTS: dict[str, str] = {
    "硬参数共享": "硬 = hard: one shared trunk; 软 = soft: one network per task, pulled together",
    "软参数共享": "软 = soft: one network per task, pulled together; 硬 = hard: one shared trunk",
    "负迁移": "负迁移 is the failure, negative transfer; 迁移学习 is the paradigm, transfer learning",
    "迁移学习": "迁移学习 is the paradigm, transfer learning; 负迁移 is the failure, negative transfer",
    "任务权重": "权重 = weights: the λ_t of Σ λ_t L_t",
    "梯度冲突": "冲突 = conflict: task gradients pointing apart",
    "任务相关性": "相关性 = relatedness (how much the tasks have in common); 不平衡 = imbalance",
    "任务不平衡": "不平衡 = imbalance (one task dominating the loss or the data); 相关性 = relatedness",
    "串行架构": "串行 = in series: one task's output feeds the next, a cascade",
    "并行架构": "并行 = side by side: one network per task, possibly exchanging features",
    "分支架构": "分支 = branch: one shared trunk that splits into task heads",
    "多门控混合专家": "多门控 = multi-gate, one gate per task (MMoE); one shared gate is OMoE, and a plain "
                "mixture of experts has no per-task gates",
}
"""What exercise 3's checker says about a wrong answer for a term (the characters that decide it)."""

TRANSFER_SCENARIOS: dict[str, str] = {
    "phone camera": "a phone camera must output a face box, landmarks and a smile flag for every frame; "
                    "all three are labelled on the same photos",
    "chest X-rays": "you have 500 labelled chest X-rays for one disease and a network pre-trained on millions "
                    "of photos",
    "shop ranking": "a shop ranks items by click and purchase probability at once; both are logged for every "
                    "impression",
    "partner's model": "a partner may share a trained model's weights but not its data, and you need one new "
                       "prediction from your own small data set",
    "auxiliary task": "only one task matters, but an auxiliary task is labelled on the same inputs and can be "
                      "trained at the same time",
}
"""Exercise 4's scenarios, by a short name."""

TRANSFER_OR_MTL: dict[str, str] = {"phone camera": "multi-task", "chest X-rays": "transfer",
                                   "shop ranking": "multi-task", "partner's model": "transfer",
                                   "auxiliary task": "multi-task"}
"""The paradigm that fits each of exercise 4's scenarios (the table of section 4)."""

_PARADIGMS = {"multitask": "multi-task", "multitasklearning": "multi-task", "mtl": "multi-task",
              "transfer": "transfer", "transferlearning": "transfer"}


def normalise_term(text: str) -> str:
    """Compare terms by their letters only: case, hyphens, spaces and brackets do not matter."""
    return re.sub(r"[^a-z]", "", str(text).lower())


def check_parameter_counts(fn: Callable[[int, int, int], dict[str, int]]) -> bool:
    """``fn(T, trunk, head)`` must return ``{"separate": T(trunk+head), "shared": trunk + T·head}``
    (the reference is :func:`mtl_helpers.models.parameter_counts`)."""
    return check_cases(fn, [(1, 100, 10), (2, 1000, 50), (5, 300, 0), (7, 0, 12)], parameter_counts,
                       lambda got, want: dict(got) == want, "right: the trunk is paid once, the heads T times.",
                       lambda case, got, want: f"for (T, trunk, head) = {case} you returned {got}, expected {want}: "
                                               "separate nets pay for the trunk T times, hard sharing once.")


def _keyed_answers(fn: Callable[[], dict], keys: dict, what: str) -> dict | None:
    """Run ``fn()``: its answer must be a dict with exactly ``keys``; otherwise report why and return None."""
    try:
        answers = attempt(fn)
    except Failed as failure:
        report(False, "", str(failure))
        return None
    if not isinstance(answers, dict) or set(answers) != set(keys):
        got = sorted(map(str, answers)) if isinstance(answers, dict) else type(answers).__name__
        report(False, "", f"return a dict with exactly these {what} as keys: {list(keys)} (got {got})")
        return None
    return answers


def check_when_mtl_helps(fn: Callable[[], dict[str, bool]]) -> bool:
    """``fn()`` must map each of :data:`SITUATIONS` to True (MTL is a good bet) or False."""
    answers = _keyed_answers(fn, SITUATIONS, "situations")
    if answers is None:
        return False
    wrong = [k for k, helps in SITUATIONS.items() if bool(answers[k]) != helps]
    return report(not wrong, f"all {len(SITUATIONS)} right.", f"reconsider: {wrong}")


def check_glossary(fn: Callable[[], dict[str, str]]) -> bool:
    """``fn()`` must map each Chinese term of :data:`GLOSSARY` to one of its English names
    (case, hyphens and spacing are ignored: "Multitask learning" counts as "multi-task learning")."""
    pairs = _keyed_answers(fn, GLOSSARY, "Chinese terms")
    if pairs is None:
        return False
    wrong = [term for term, names in GLOSSARY.items()
             if normalise_term(pairs[term]) not in {normalise_term(n) for n in names}]
    hints = "; ".join(f"{term} is not {pairs[term]!r} ({GLOSSARY_HINTS.get(term, 'see the glossary')})"
                      for term in wrong)
    return report(not wrong, f"all {len(GLOSSARY)} terms matched.", f"check these terms: {hints}")


def check_mtl_or_transfer(fn: Callable[[], dict[str, str]]) -> bool:
    """``fn()`` must map each scenario of :data:`TRANSFER_SCENARIOS` (by its short name) to ``"multi-task"`` or
    ``"transfer"`` (``"MTL"``, ``"multitask"`` and ``"transfer learning"`` count too)."""
    answers = _keyed_answers(fn, TRANSFER_OR_MTL, "scenarios")
    if answers is None:
        return False
    wrong = [k for k, want in TRANSFER_OR_MTL.items() if _PARADIGMS.get(normalise_term(answers[k])) != want]
    hint = ("ask whether the tasks' labels are at hand to train on together (multi-task), or a source "
            "reaches you only as pre-trained weights or is too big to train with, and one target matters (transfer)")
    if "auxiliary task" in wrong:
        hint += "; an auxiliary task trained at the same time is multi-task learning even if only one task counts"
    return report(not wrong, f"all {len(TRANSFER_OR_MTL)} right: joint training when the tasks' labels are at "
                             "hand together; pre-train then fine-tune for one target.",
                  f"reconsider {wrong}: {hint}.")
