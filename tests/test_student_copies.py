"""Every student copy runs top to bottom: the only errors are NotImplementedError in exercise cells.

One test per course notebook: build its student copy (``mtl_helpers.lecture.student``), execute
it with nbclient (errors allowed, as a learner who runs everything), then list precisely every
error that is not a ``NotImplementedError`` raised in an exercise cell, and every exercise cell
that does not tell the learner that the exercise is not implemented yet.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from mtl_helpers.lecture.execute import run_notebook
from mtl_helpers.lecture.student import SolutionRegionError, student_notebook

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9]*.ipynb"))
NOT_IMPLEMENTED = ("NotImplementedError", "not implemented")


def _text(output) -> str:
    """The text a learner sees in one output."""
    if output.output_type == "stream":
        return output.text
    if output.output_type == "error":
        return f"{output.ename}: {output.evalue}"
    return str(output.get("data", {}).get("text/plain", ""))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_student_copy_raises_only_not_implemented_in_exercises(path: Path, tmp_path: Path):
    try:
        student, exercises = student_notebook(path)
    except SolutionRegionError as error:
        pytest.fail(f"no valid student copy of {path.name}:\n{error}", pytrace=False)
    assert exercises, f"{path.name} has no exercise cell (### BEGIN SOLUTION … ### END SOLUTION)"
    target = tmp_path / path.name
    nbformat.write(student, target)

    run_notebook(student, tmp_path, allow_errors=True)  # waits in 1 s slices: see lecture/execute.py

    wrong = []
    for index, cell in enumerate(student.cells):
        if cell.cell_type != "code":
            continue
        errors = [o for o in cell.outputs if o.output_type == "error"]
        for error in errors:
            if index not in exercises or error.ename != "NotImplementedError":
                where = "exercise cell" if index in exercises else "cell"
                wrong.append(f"{where} {index}: {error.ename}: {error.evalue}\n    {cell.source.splitlines()[0]}")
        if index in exercises and not any(m in _text(o) for o in cell.outputs for m in NOT_IMPLEMENTED):
            shown = " | ".join(_text(o).strip() for o in cell.outputs)[:200]
            wrong.append(f"exercise cell {index} does not say 'not implemented': {shown!r}")
    assert not wrong, f"{path.name}, student copy:\n" + "\n".join(wrong)
