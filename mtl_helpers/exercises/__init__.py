"""Checkers for the notebooks' exercises, one module per notebook (``nb00``, ``nb01``, …), and
the one toolkit they share.

A checker runs the learner's answer on cases with known results and prints either ✔ with what
was right or ✘ with what is wrong and a hint. It returns True/False (the tests use that to
prove every checker rejects plausible wrong answers); it never raises on a wrong answer, so a
learner can keep going. Reference answers come from the tested package (``mtl_helpers``), never
from a second implementation inside the checker.

The toolkit: :func:`attempt` runs the learner's function once and turns an exception into a
message (a ``NotImplementedError`` — the stub of a student copy — reads "not implemented
yet"); :func:`report` prints the verdict; :func:`check_cases` does both over a list of cases.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

NOT_IMPLEMENTED = "not implemented yet: write your solution in place of the `raise NotImplementedError`"


class Failed(Exception):
    """The learner's function raised: ``str(error)`` says what happened, for the report."""


def report(ok: bool, success: str, failure: str) -> bool:
    """Print the verdict of a checker and return it."""
    print(f"✔ {success}" if ok else f"✘ {failure}")
    return bool(ok)


def attempt(fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """Call the learner's function; raise :class:`Failed` with a readable message if it raises."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError as error:
        raise Failed(NOT_IMPLEMENTED) from error
    except Exception as error:  # a learner's bug: say what happened, do not crash the notebook
        raise Failed(f"your function raised {type(error).__name__}: {error}") from error


def check_cases(fn: Callable, cases: Sequence[tuple], expected: Callable[..., Any],
                same: Callable[[Any, Any], bool], success: str,
                hint: Callable[[tuple, Any, Any], str]) -> bool:
    """Run ``fn(*case)`` for every case and compare with ``expected(*case)`` (from the package).

    ``same(got, want)`` decides a match; on the first mismatch ``hint(case, got, want)`` says
    what is wrong. Returns the verdict, as :func:`report` does.
    """
    for case in cases:
        try:
            got = attempt(fn, *case)
        except Failed as failure:
            return report(False, "", str(failure))
        want = expected(*case)
        try:
            ok = same(got, want)
        except Exception:  # an answer of the wrong type cannot even be compared
            ok = False
        if not ok:
            return report(False, "", hint(case, got, want))
    return report(True, success, "")
