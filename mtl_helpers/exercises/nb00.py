"""Checkers for notebook 00 (start here)."""

from __future__ import annotations

from collections.abc import Callable

from . import report


def check_parameter_counts(fn: Callable[[int, int, int], dict[str, int]]) -> bool:
    """``fn(T, trunk, head)`` must return ``{"separate": T(trunk+head), "shared": trunk + T·head}``."""
    cases = [(1, 100, 10), (2, 1000, 50), (5, 300, 0), (7, 0, 12)]
    try:
        wrong = [c for c in cases if fn(*c) != {"separate": c[0] * (c[1] + c[2]), "shared": c[1] + c[0] * c[2]}]
    except Exception as exc:  # a learner's bug: say what happened
        return report(False, "", f"your function raised {type(exc).__name__}: {exc}")
    return report(not wrong, "right: the trunk is paid once, the heads T times.",
                  f"wrong for (T, trunk, head) = {wrong[0] if wrong else None}; separate nets pay for the trunk "
                  "T times, hard sharing once.")


def check_when_mtl_helps(answers: dict[str, bool]) -> bool:
    """Which situations make MTL likely to help (True) or not (False)?"""
    truth = {"one task has few labels, a related task has many": True,
             "two tasks need the same low-level features": True,
             "the tasks' labels are unrelated and each has plenty of data": False,
             "one task's loss is 1000x larger and weights are left equal": False,
             "you must serve several predictions per input under a tight latency budget": True}
    if set(answers) != set(truth):
        return report(False, "", f"answer exactly these situations: {sorted(truth)}")
    wrong = [k for k in truth if bool(answers[k]) != truth[k]]
    return report(not wrong, "all five right.", f"reconsider: {wrong}")


def check_glossary(pairs: dict[str, str]) -> bool:
    """Match each Chinese term to its English name."""
    truth = {"多任务学习": "multi-task learning", "硬参数共享": "hard parameter sharing",
             "软参数共享": "soft parameter sharing", "负迁移": "negative transfer",
             "梯度冲突": "gradient conflict", "任务权重": "task weighting"}
    norm = {k: str(v).strip().lower() for k, v in pairs.items()}
    wrong = [k for k in truth if norm.get(k) != truth[k]]
    return report(not wrong, "all terms matched.", f"check these terms in the glossary: {wrong}")
