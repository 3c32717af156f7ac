"""Every student copy runs top to bottom: the only errors are NotImplementedError in exercise cells.

One test per course notebook: build its student copy (``mtl_helpers.lecture.student``), execute
it with nbclient as a learner's Run All does (an exercise cell's ``raises-exception`` tag lets the
run go on), then list precisely every error that is not a ``NotImplementedError`` raised in an
exercise cell, and every exercise cell that does not tell the learner that the exercise is not
implemented yet (``not_done_yet_problems``).

Each copy is run once per test session: where the browser test of the same notebook runs
(``tests/browser/test_lab_widgets.py``: Chromium is there and the test is selected), it runs the
student copy in JupyterLab and applies the same check, and the nbclient run here is skipped
(``tests/conftest.py``). With ``-m "not browser"`` or without Chromium, the copy runs here.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from mtl_helpers.lecture.execute import run_notebook
from mtl_helpers.lecture.student import SolutionRegionError, not_done_yet_problems, student_notebook

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9]*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_student_copy_raises_only_not_implemented_in_exercises(path: Path, tmp_path: Path):
    try:
        student, exercises = student_notebook(path)
    except SolutionRegionError as error:
        pytest.fail(f"no valid student copy of {path.name}:\n{error}", pytrace=False)
    assert exercises, f"{path.name} has no exercise cell (### BEGIN SOLUTION … ### END SOLUTION)"
    nbformat.write(student, tmp_path / path.name)

    run_notebook(student, tmp_path, allow_errors=True)  # every error is listed below, not only the first

    wrong = not_done_yet_problems(student, exercises)
    assert not wrong, f"{path.name}, student copy:\n" + "\n".join(wrong)
