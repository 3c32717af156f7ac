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
"""Exercise 2's situations and whether MTL is likely to help in each (the table of section 3)."""

GLOSSARY: dict[str, set[str]] = {
    "多任务学习": {"multi-task learning", "multitask learning", "multi-task learning (MTL)", "MTL"},
    "硬参数共享": {"hard parameter sharing", "hard sharing"},
    "软参数共享": {"soft parameter sharing", "soft sharing"},
    "负迁移": {"negative transfer"},
    "梯度冲突": {"gradient conflict", "conflicting gradients"},
    "任务权重": {"task weighting", "task weights", "loss weights", "loss weighting"},
}
"""Exercise 3's terms and the English names the glossary (section 6) accepts for each."""


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


def check_when_mtl_helps(fn: Callable[[], dict[str, bool]]) -> bool:
    """``fn()`` must map each of :data:`SITUATIONS` to True (MTL likely helps) or False."""
    try:
        answers = attempt(fn)
    except Failed as failure:
        return report(False, "", str(failure))
    if not isinstance(answers, dict) or set(answers) != set(SITUATIONS):
        return report(False, "", f"return a dict with exactly these situations as keys: {list(SITUATIONS)}")
    wrong = [k for k, helps in SITUATIONS.items() if bool(answers[k]) != helps]
    return report(not wrong, f"all {len(SITUATIONS)} right.", f"reconsider: {wrong}")


def check_glossary(fn: Callable[[], dict[str, str]]) -> bool:
    """``fn()`` must map each Chinese term of :data:`GLOSSARY` to one of its English names
    (case, hyphens and spacing are ignored: "Multitask learning" counts as "multi-task learning")."""
    try:
        pairs = attempt(fn)
    except Failed as failure:
        return report(False, "", str(failure))
    if not isinstance(pairs, dict):
        return report(False, "", f"return a dict {{Chinese term: English name}}, got {type(pairs).__name__}.")
    wrong = [term for term, names in GLOSSARY.items()
             if normalise_term(pairs.get(term, "")) not in {normalise_term(n) for n in names}]
    return report(not wrong, "all terms matched.", f"check these terms in the glossary: {wrong}")
