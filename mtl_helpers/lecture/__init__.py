"""Tools for the instructor: student copies of the notebooks, offline slide decks, and
:func:`run_notebook` to execute either.

``python -m mtl_helpers student OUTDIR`` and ``python -m mtl_helpers slides OUTDIR`` call
:func:`build_student_copies` and :func:`build_decks`; ``docs/teaching.md`` says how to use them.
"""

from mtl_helpers.lecture.execute import run_notebook
from mtl_helpers.lecture.slides import build_decks, export_deck
from mtl_helpers.lecture.student import (
    SolutionRegionError,
    build_student_copies,
    clear_solutions,
    not_done_yet_problems,
    write_student_copy,
)

__all__ = [
    "SolutionRegionError",
    "build_decks",
    "build_student_copies",
    "clear_solutions",
    "export_deck",
    "not_done_yet_problems",
    "run_notebook",
    "write_student_copy",
]
