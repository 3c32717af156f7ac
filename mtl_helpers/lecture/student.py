"""Student copies: every solution region replaced by ``raise NotImplementedError(hint)``.

The semantics are nbgrader's ``ClearSolutions`` + ``ClearOutput`` on exercise cells:

- a code cell is an *exercise cell* when it holds a region between a ``### BEGIN SOLUTION``
  and a ``### END SOLUTION`` line; the region (both marker lines included) becomes one line
  ``raise NotImplementedError("<hint>")`` at the indentation of ``### BEGIN SOLUTION``, so a
  region that is a whole function body or a statement block stays valid Python;
- an optional ``### HINT: text`` line just above ``### BEGIN SOLUTION`` gives the hint (the
  line is removed); otherwise the hint is :data:`DEFAULT_HINT`;
- the outputs and execution count of exercise cells are cleared; every other cell is kept as
  it is, outputs included (the learner reads the figures before running anything);
- exercise cells get Jupyter's ``raises-exception`` tag, so that *Run All* in JupyterLab (and
  nbclient) goes on past an exercise not done yet instead of stopping the whole notebook there.

The result must parse (``ast.parse`` after IPython's own magic transform), otherwise a
:class:`SolutionRegionError` names the notebook and the cell. The course's notebooks are only
read, never written.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable
from pathlib import Path

import nbformat
from nbconvert.exporters import NotebookExporter
from nbconvert.preprocessors import Preprocessor
from nbformat import NotebookNode

BEGIN = "### BEGIN SOLUTION"
RAISES = "raises-exception"  # the tag with which JupyterLab and nbclient run on past a cell's error
END = "### END SOLUTION"
HINT = "### HINT:"
DEFAULT_HINT = "your code here: replace this line with your solution, then run the cell"
NOT_DONE_YET = ("NotImplementedError", "not implemented")  # what an exercise not done yet shows


class SolutionRegionError(ValueError):
    """A solution region that is not terminated, nested, or whose removal breaks the cell."""


def clear_solutions(source: str, where: str = "this cell") -> tuple[str, int]:
    """Replace every solution region of ``source``; return the new source and the region count.

    ``where`` names the cell in error messages (e.g. ``"02_hard.ipynb, cell 8"``).

    >>> print(clear_solutions("def f():\\n    ### HINT: one line\\n    ### BEGIN SOLUTION\\n    return 1\\n"
    ...                       "    ### END SOLUTION\\n")[0], end="")
    def f():
        raise NotImplementedError("one line")
    """
    out: list[str] = []
    inside_since: int | None = None
    regions = 0
    for number, line in enumerate(source.splitlines(keepends=True), start=1):
        stripped = line.strip()
        if stripped.startswith(BEGIN):
            if inside_since is not None:
                raise SolutionRegionError(f"{where}: line {number} opens a solution region inside the one "
                                          f"opened on line {inside_since}; close it with '{END}' first.")
            inside_since = number
            hint = DEFAULT_HINT
            if out and out[-1].strip().startswith(HINT):
                hint = out.pop().strip()[len(HINT):].strip() or DEFAULT_HINT
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}raise NotImplementedError({_quote(hint)})\n")
        elif stripped.startswith(END):
            if inside_since is None:
                raise SolutionRegionError(f"{where}: line {number} has '{END}' without a '{BEGIN}' above it.")
            inside_since = None
            regions += 1
        elif inside_since is None:
            out.append(line)
    if inside_since is not None:
        raise SolutionRegionError(f"{where}: the solution region opened on line {inside_since} is never closed; "
                                  f"add a '{END}' line.")
    result = "".join(out)
    if not source.endswith("\n") and result.endswith("\n"):
        result = result[:-1]
    return result, regions


def check_python(source: str, where: str) -> None:
    """Raise :class:`SolutionRegionError` if ``source`` (IPython magics allowed) is not valid Python."""
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        ast.parse(TransformerManager().transform_cell(source))
    except SyntaxError as error:
        raise SolutionRegionError(
            f"{where}: the student version is not valid Python ({error.msg}, line {error.lineno}). "
            "Make each solution region a whole function body or a whole statement block "
            "(not, e.g., the entries of a dict literal):\n" + source) from error


def _quote(hint: str) -> str:
    """A double-quoted Python string literal for ``hint`` (JSON's escapes are Python's too)."""
    return json.dumps(hint, ensure_ascii=False)


class ClearSolutionsPreprocessor(Preprocessor):
    """nbconvert preprocessor: clear the solution regions and the outputs of exercise cells.

    ``resources["student"]["exercise_cells"]`` lists the indices of the exercise cells.
    """

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        """Clear every exercise cell; collect the problems of all cells before raising."""
        resources.setdefault("student", {"exercise_cells": []})
        problems = []
        for index, cell in enumerate(nb.cells):
            try:
                nb.cells[index], resources = self.preprocess_cell(cell, resources, index)
            except SolutionRegionError as error:
                problems.append(str(error))
        if problems:
            raise SolutionRegionError("\n\n".join(problems))
        return nb, resources

    def preprocess_cell(self, cell: NotebookNode, resources: dict, index: int) -> tuple[NotebookNode, dict]:
        """Clear one cell if it is an exercise cell."""
        if cell.cell_type != "code" or BEGIN not in cell.source:
            return cell, resources
        where = f"{resources.get('metadata', {}).get('name', 'notebook')}.ipynb, cell {index}"
        cell.source, _ = clear_solutions(cell.source, where)
        check_python(cell.source, where)
        cell.outputs = []
        cell.execution_count = None
        tags = cell.metadata.setdefault("tags", [])
        if RAISES not in tags:
            tags.append(RAISES)
        resources["student"]["exercise_cells"].append(index)
        return cell, resources


def student_notebook(path: Path) -> tuple[NotebookNode, list[int]]:
    """The student version of the notebook at ``path`` and the indices of its exercise cells."""
    exporter = NotebookExporter()
    exporter.register_preprocessor(ClearSolutionsPreprocessor(), enabled=True)
    nb = nbformat.read(path, as_version=4)
    body, resources = exporter.from_notebook_node(nb, resources={"metadata": {"name": path.stem}})
    student = nbformat.reads(body, as_version=4)
    nbformat.validate(student)
    return student, resources["student"]["exercise_cells"]


def not_done_yet_problems(executed: NotebookNode, exercises: Iterable[int]) -> list[str]:
    """What is wrong in a student copy after a Run All: an empty list when nothing is.

    ``executed`` is the student copy with its outputs after running every cell, ``exercises`` the
    indices of its exercise cells (``student_notebook``'s second value). A learner who has done no
    exercise yet must see each exercise cell say that it is not implemented, and no other error:
    any error outside an exercise cell, or one other than ``NotImplementedError`` in it, is listed.
    """
    exercises = set(exercises)
    problems = []
    for index, cell in enumerate(executed.cells):
        if cell.cell_type != "code":
            continue
        for error in (o for o in cell.outputs if o.output_type == "error"):
            if index not in exercises or error.ename != "NotImplementedError":
                where = "exercise cell" if index in exercises else "cell"
                first_line = (cell.source.splitlines() or [""])[0]
                problems.append(f"{where} {index}: {error.ename}: {error.evalue}\n    {first_line}")
        shown = [_output_text(o) for o in cell.outputs]
        if index in exercises and not any(m in text for text in shown for m in NOT_DONE_YET):
            problems.append(f"exercise cell {index} does not say 'not implemented': {' | '.join(shown)[:200]!r}")
    return problems


def _output_text(output: NotebookNode) -> str:
    """The text a learner reads in one output."""
    if output.output_type == "stream":
        return output.text.strip()
    if output.output_type == "error":
        return f"{output.ename}: {output.evalue}"
    return str(output.get("data", {}).get("text/plain", "")).strip()


def write_student_copy(path: Path, outdir: Path) -> Path:
    """Write the student copy of ``path`` into ``outdir`` (same file name); return its path."""
    student, _ = student_notebook(Path(path))
    outdir.mkdir(parents=True, exist_ok=True)
    target = outdir / Path(path).name
    if target.resolve() == Path(path).resolve():
        raise ValueError(f"refusing to overwrite the course notebook {path}: choose another OUTDIR")
    nbformat.write(student, target)
    return target


def build_student_copies(notebooks: Iterable[Path], outdir: Path) -> tuple[list[Path], list[str]]:
    """Write a student copy of every notebook; return the copies written and the problems found.

    A notebook with a problem (see :class:`SolutionRegionError`) is not written; the others are.
    """
    written, problems = [], []
    for path in notebooks:
        try:
            written.append(write_student_copy(Path(path), Path(outdir)))
        except SolutionRegionError as error:
            problems.append(str(error))
    return written, problems
