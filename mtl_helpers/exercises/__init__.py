"""Checkers for the notebooks' exercises, one module per notebook (``nb01``, ``nb02``, …).

A checker runs the learner's answer on cases with known results and prints either ✔ with what
was right or ✘ with what is wrong and a hint. It returns True/False (the tests use that to
prove every checker rejects plausible wrong answers); it never raises on a wrong answer, so a
learner can keep going.
"""

from __future__ import annotations


def report(ok: bool, success: str, failure: str) -> bool:
    """Print the verdict of a checker and return it."""
    print(f"✔ {success}" if ok else f"✘ {failure}")
    return bool(ok)
