"""Unit tests of the instructor's tools (mtl_helpers.lecture): fast, no kernel, no browser."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from mtl_helpers.lecture.fit import FitToSlidePreprocessor, split_code
from mtl_helpers.lecture.layout import BUDGET, LIVE_WIDGET_NOTE, WIDGET_MIME, cell_height, markdown_blocks
from mtl_helpers.lecture.student import (
    DEFAULT_HINT,
    SolutionRegionError,
    build_student_copies,
    clear_solutions,
    student_notebook,
    write_student_copy,
)

ROOT = Path(__file__).resolve().parent.parent
FUNCTION = '''def f(x):
    """Double x."""
    ### BEGIN SOLUTION
    y = 2 * x
    return y
    ### END SOLUTION


check(f)
'''


def test_function_body_becomes_an_indented_raise():
    source, regions = clear_solutions(FUNCTION)
    assert regions == 1
    assert source == f'def f(x):\n    """Double x."""\n    raise NotImplementedError("{DEFAULT_HINT}")\n\n\ncheck(f)\n'
    ast.parse(source)


def test_statement_block_and_several_regions():
    source, regions = clear_solutions(
        "### BEGIN SOLUTION\nleaky = ['a']\n### END SOLUTION\ncheck(leaky)\n"
        "for i in range(3):\n    ### HINT: add i to total\n"
        "    ### BEGIN SOLUTION\n    total += i\n    ### END SOLUTION\n")
    assert regions == 2
    assert source.splitlines() == [f'raise NotImplementedError("{DEFAULT_HINT}")', "check(leaky)",
                                   "for i in range(3):", '    raise NotImplementedError("add i to total")']
    ast.parse(source)


def test_hint_with_quotes_stays_a_valid_literal():
    source, _ = clear_solutions('def f():\n    ### HINT: use "mean", not \'sum\' \\ ok\n    ### BEGIN SOLUTION\n'
                                '    pass\n    ### END SOLUTION\n')
    with pytest.raises(NotImplementedError, match="use \"mean\", not 'sum' \\\\ ok"):
        namespace: dict = {}
        exec(source, namespace)
        namespace["f"]()


@pytest.mark.parametrize("source, message", [
    ("def f():\n    ### BEGIN SOLUTION\n    return 1\n", "never closed"),
    ("x = 1\n### END SOLUTION\n", "without a"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n", "inside the one"),
])
def test_malformed_regions_raise_a_clear_value_error(source, message):
    with pytest.raises(ValueError, match=message):
        clear_solutions(source, "nb.ipynb, cell 3")


def _notebook(tmp_path: Path, *cells) -> Path:
    nb = new_notebook(cells=list(cells), metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                  "language": "python"}})
    path = tmp_path / "course" / "07_demo.ipynb"
    path.parent.mkdir(exist_ok=True)
    nbformat.write(nb, path)
    return path


def test_student_copy_clears_exercise_outputs_keeps_the_rest_and_is_valid(tmp_path):
    figure = new_code_cell("%matplotlib inline\nplot()", execution_count=1,
                           outputs=[new_output("display_data", data={"text/plain": "<Figure>"})])
    exercise = new_code_cell(FUNCTION, execution_count=2,
                             outputs=[new_output("stream", name="stdout", text="✔ right\n")])
    path = _notebook(tmp_path, new_markdown_cell("# Title\n### BEGIN SOLUTION is text here"), figure, exercise)
    before = path.read_bytes()

    target = write_student_copy(path, tmp_path / "student")

    assert path.read_bytes() == before, "the course notebook must not change"
    student = nbformat.read(target, as_version=4)
    nbformat.validate(student)
    assert student.cells[0].source.startswith("# Title")          # Markdown is left alone
    assert student.cells[1].outputs and student.cells[1].execution_count == 1
    assert student.cells[2].outputs == [] and student.cells[2].execution_count is None
    assert "raise NotImplementedError" in student.cells[2].source and "2 * x" not in student.cells[2].source
    assert [c.id for c in student.cells] == [c.id for c in nbformat.read(path, as_version=4).cells]
    assert student_notebook(path)[1] == [2]
    assert student.cells[2].metadata.tags == ["raises-exception"]
    assert "tags" not in student.cells[1].metadata


def test_exercise_cell_keeps_its_tags_and_gets_raises_exception_once(tmp_path):
    exercise = new_code_cell(FUNCTION, metadata={"tags": ["keep", "raises-exception"]})
    path = _notebook(tmp_path, exercise)
    student, _ = student_notebook(path)
    assert student.cells[0].metadata.tags == ["keep", "raises-exception"]


def test_a_region_inside_a_literal_names_the_notebook_and_cell(tmp_path):
    path = _notebook(tmp_path, new_code_cell("x = 1"), new_code_cell(
        'answers = {\n    ### BEGIN SOLUTION\n    "a": True,\n    ### END SOLUTION\n}\ncheck(answers)'))
    with pytest.raises(SolutionRegionError, match=r"07_demo\.ipynb, cell 1: the student version is not valid Python"):
        write_student_copy(path, tmp_path / "student")
    written, problems = build_student_copies([path], tmp_path / "student")
    assert written == [] and len(problems) == 1 and "cell 1" in problems[0]
    assert not (tmp_path / "student" / path.name).exists()


def test_never_overwrites_the_course_notebook(tmp_path):
    path = _notebook(tmp_path, new_code_cell(FUNCTION))
    with pytest.raises(ValueError, match="refusing to overwrite"):
        write_student_copy(path, path.parent)


def test_every_course_notebook_transforms_or_reports_its_cells(tmp_path):
    """Each exercise cell of the course either becomes valid Python or is named in a clear error."""
    notebooks = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
    written, problems = build_student_copies(notebooks, tmp_path)
    assert len(written) + len(problems) == len(notebooks)
    for problem in problems:
        assert ".ipynb, cell " in problem and "not valid Python" in problem
    for path in written:
        for cell in nbformat.read(path, as_version=4).cells:  # markdown may explain the convention
            assert cell.cell_type != "code" or "BEGIN SOLUTION" not in cell.source


def test_command_line_writes_student_copies(tmp_path):
    notebook = _notebook(tmp_path, new_code_cell(FUNCTION))
    run = subprocess.run([sys.executable, "-m", "mtl_helpers", "student", str(tmp_path / "out"), str(notebook)],
                         capture_output=True, text=True, cwd=ROOT, check=False)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "out" / notebook.name).exists() and "1 of 1 notebooks" in run.stdout


# ---------------------------------------------------------------- slide fitting (estimates only)


def _fit(*cells) -> list:
    nb, resources = FitToSlidePreprocessor().preprocess(new_notebook(cells=list(cells)), {})
    return nb.cells


def _slide_type(cell) -> str:
    return cell.metadata.get("slideshow", {}).get("slide_type", "-")


def test_fitting_drops_skip_cells_and_replaces_widgets():
    skip = new_code_cell("import x", metadata={"slideshow": {"slide_type": "skip"}})
    widget = new_code_cell("slider_panel(draw, a=slider)", outputs=[
        new_output("display_data", data={WIDGET_MIME: {"model_id": "1"}, "text/plain": "VBox(children=(...))"})])
    cells = _fit(new_markdown_cell("# Title"), skip, widget)
    assert [c.source for c in cells] == ["# Title", "slider_panel(draw, a=slider)"]
    assert cells[1].outputs[0].data == {"text/html": LIVE_WIDGET_NOTE}


def test_links_to_notebooks_point_to_their_decks():
    cells = _fit(new_markdown_cell("[next](03_soft.ipynb), [part](02_x.ipynb#Exercise-1), "
                                   "[data](../data/README.md), [web](https://example.org/a.ipynb)"))
    assert cells[0].source == ("[next](03_soft.slides.html), [part](02_x.slides.html#Exercise-1), "
                               "[data](../data/README.md), [web](https://example.org/a.ipynb)")


def test_long_code_is_split_at_statements_onto_sub_slides():
    source = "\n".join(f"x{i} = {i}" for i in range(80)) + "\ndef f():\n    return 1\n"
    chunks = split_code(source, 30)
    assert all(len(c.splitlines()) <= 30 for c in chunks) and "\n".join(chunks).split() == source.split()
    assert all(not c.startswith("    return") for c in chunks)      # a cut never lands inside a statement
    cells = _fit(new_code_cell(source))
    assert len(cells) >= 3 and all(_slide_type(c) == "subslide" for c in cells[1:])
    assert len({c.id for c in cells}) == len(cells)
    assert all(cell_height(c) <= BUDGET for c in cells)


def test_tall_markdown_is_cut_between_blocks_and_cells_are_packed():
    items = "\n".join(f"- point number {i}, said in a full sentence that takes some room" for i in range(40))
    text = f"## Key takeaways\n\n{items}\n\n<details><summary>Answer</summary>\n\nlong\n\nanswer\n</details>"
    assert markdown_blocks(text)[-1].startswith("<details") and len(markdown_blocks(text)) == 42
    cells = _fit(new_markdown_cell(text), new_markdown_cell("short"), new_markdown_cell("short"))
    assert len(cells) >= 3 and all(cell_height(c) <= BUDGET for c in cells)
    sub_slides, height = [], 0.0
    for cell in cells:
        if _slide_type(cell) in ("slide", "subslide") and height:
            sub_slides.append(height); height = 0.0
        height += cell_height(cell)
    assert max(sub_slides + [height]) <= BUDGET


def test_tall_outputs_go_to_sub_slides_of_their_own():
    printed = new_output("stream", name="stdout", text="".join(f"line {i}\n" for i in range(100)))
    figure = new_output("display_data", data={"image/png": _png(900, 400), "text/plain": "<Figure>"})
    cells = _fit(new_code_cell("run()", outputs=[printed, figure, figure]))
    assert cells[0].source == "run()" and cells[0].outputs == []
    shown = [c for c in cells[1:] if c.metadata["transient"]["remove_source"]]
    assert len(shown) == len(cells) - 1 >= 4 and all(_slide_type(c) == "subslide" for c in shown)
    assert "".join(o.text for c in shown for o in c.outputs if o.output_type == "stream") == printed.text
    assert sum(o.output_type == "display_data" for c in shown for o in c.outputs) == 2
    assert all(cell_height(c) <= BUDGET for c in cells)


def _png(width: int, height: int) -> str:
    """A base64 PNG header of the given size (enough for the size estimate)."""
    import base64
    import struct
    header = (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">II", width, height)
              + b"\x08\x06\x00\x00\x00")
    return base64.b64encode(header + b"\x00" * 40).decode()


def _ran(source: str, *outputs) -> nbformat.NotebookNode:
    return new_code_cell(source, outputs=list(outputs))


def _error(ename: str, evalue: str = "x") -> nbformat.NotebookNode:
    return new_output("error", ename=ename, evalue=evalue, traceback=[])


NOT_DONE = _error("NotImplementedError", "compare the arg-max with the label")


@pytest.mark.parametrize("cells, expected", [
    ([_ran("x = 1"), _ran("def f():\n    raise NotImplementedError", NOT_DONE)], []),  # the right run
    ([_ran("1 / 0", _error("ZeroDivisionError")), _ran("f()", NOT_DONE)], ["cell 1: ZeroDivisionError"]),
    ([_ran("x = 1"), _ran("f()", _error("NameError"))], ["exercise cell 2: NameError", "exercise cell 2 does not say"]),
    ([_ran("x = 1"), _ran("f()", new_output("stream", name="stdout", text="✔ right\n"))],
     ["exercise cell 2 does not say 'not implemented'"]),
    ([_ran("x = 1"), _ran("f()")], ["exercise cell 2 does not say 'not implemented'"]),
    ([_ran("", _error("KeyError")), _ran("f()", new_output("stream", name="stdout", text="not implemented yet"))],
     ["cell 1: KeyError"]),
])
def test_not_done_yet_problems_accepts_only_not_implemented_in_exercises(cells, expected):
    """Cell 0 is Markdown, cell 2 the exercise: only a NotImplementedError there (or its
    message) is accepted; every other error, and a silent exercise cell, is listed."""
    from mtl_helpers.lecture import not_done_yet_problems

    problems = not_done_yet_problems(new_notebook(cells=[new_markdown_cell("# t"), *cells]), exercises=[2])
    assert len(problems) == len(expected), problems
    for problem, start in zip(problems, expected, strict=True):
        assert problem.startswith(start), problems
