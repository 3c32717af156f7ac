"""Make every sub-slide of a deck fit 1280×720 without touching the notebook.

:class:`FitToSlidePreprocessor` drops ``skip`` cells, replaces live widgets (they need a kernel)
by a note, cuts long code cells at top-level statements, moves the outputs of a tall code cell to
sub-slides of their own (a long printed text cut between lines), cuts tall Markdown between
blocks, and then packs cells greedily: a cell that would not fit under what the sub-slide
already holds starts a new sub-slide. A ``fragment`` that still fits stays a fragment; one that
does not starts a sub-slide (a fragment takes its room even while hidden).
"""

from __future__ import annotations

import ast
import copy
import re
from collections.abc import Iterator

import nbformat
from nbconvert.preprocessors import Preprocessor
from nbformat import NotebookNode

from mtl_helpers.lecture.layout import (
    BUDGET,
    CODE_CHARS,
    CODE_LINE,
    CODE_PX,
    LIVE_WIDGET_NOTE,
    OUTPUT_GAP,
    WIDGET_MIME,
    block_height,
    cell_height,
    code_height,
    markdown_blocks,
    markdown_height,
    output_height,
    wrapped_lines,
)


def _slide_type(cell: NotebookNode) -> str:
    return cell.metadata.get("slideshow", {}).get("slide_type", "-") or "-"


def _with_slide_type(cell: NotebookNode, slide_type: str) -> NotebookNode:
    cell.metadata.setdefault("slideshow", {})["slide_type"] = slide_type
    return cell


def _statement_starts(source: str) -> list[int]:
    """0-based line numbers where a top-level statement starts (decorators included)."""
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        tree = ast.parse(TransformerManager().transform_cell(source))
    except SyntaxError:
        return []
    starts = []
    for node in tree.body:
        lines = [node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])]
        starts.append(min(lines) - 1)
    return starts


def split_code(source: str, max_lines: int) -> list[str]:
    """Cut code into chunks of at most ``max_lines`` lines at top-level statement boundaries.

    A single statement longer than ``max_lines`` stays whole (it wraps the slide's budget, and
    the browser test will say so). Blank lines at a cut are dropped.
    """
    lines = source.split("\n")
    if len(lines) <= max_lines:
        return [source]
    starts = [s for s in _statement_starts(source) if s > 0] + [len(lines)]
    chunks, begin = [], 0
    while begin < len(lines):
        fitting = [s for s in starts if begin < s <= begin + max_lines]
        end = max(fitting) if fitting else min((s for s in starts if s > begin), default=len(lines))
        chunk = "\n".join(lines[begin:end]).strip("\n")
        if chunk:
            chunks.append(chunk)
        begin = end
    return chunks


def _part(cell: NotebookNode, index: int) -> NotebookNode:
    """A copy of ``cell`` to hold its ``index``-th piece (a fresh id after the first)."""
    part = copy.deepcopy(cell)
    if index and "id" in part:
        part.id = f"{cell.id[:56]}-part{index}"
    return part


def _code_cells(cell: NotebookNode, budget: float) -> list[NotebookNode]:
    """A code cell as one or more cells that each fit: code chunks, then its outputs if tall."""
    max_lines = int((budget - 20) // (CODE_PX * CODE_LINE))
    chunks = split_code(cell.source, max_lines) if code_height(cell.source) > budget else [cell.source]
    cells = []
    for i, chunk in enumerate(chunks):
        part = _part(cell, i)
        part.source, part.outputs = chunk, []
        cells.append(part if i == 0 else _with_slide_type(part, "subslide"))
    outputs = cell.get("outputs", [])
    if outputs and code_height(chunks[-1]) + sum(map(output_height, outputs)) <= budget:
        cells[-1].outputs = outputs
    elif outputs:                       # the outputs go to sub-slides of their own, as many as needed
        for group in _output_groups(outputs, budget):
            only = _part(cell, len(cells))
            only.source, only.outputs = "", group
            only.metadata["transient"] = {"remove_source": True}
            cells.append(_with_slide_type(only, "subslide"))
    return cells


def _split_stream(output: NotebookNode, budget: float) -> list[NotebookNode]:
    """A printed text taller than ``budget`` as several outputs, cut between lines."""
    if output.output_type != "stream" or output_height(output) <= budget:
        return [output]
    per_slide = max(1, int((budget - OUTPUT_GAP - 10) // (CODE_PX * CODE_LINE)))
    lines = output.text.splitlines(keepends=True)
    pieces = []
    while lines:
        count = per_slide
        while count > 1 and wrapped_lines("".join(lines[:count]), CODE_CHARS) > per_slide:
            count -= 1
        pieces.append(nbformat.v4.new_output("stream", name=output.name, text="".join(lines[:count])))
        lines = lines[count:]
    return pieces


def _output_groups(outputs: list[NotebookNode], budget: float) -> list[list[NotebookNode]]:
    """Consecutive outputs grouped so that each group's estimated height stays within ``budget``."""
    groups: list[list[NotebookNode]] = [[]]
    height = 0.0
    for output in (piece for whole in outputs for piece in _split_stream(whole, budget)):
        h = output_height(output)
        if groups[-1] and height + h > budget:
            groups.append([])
            height = 0.0
        groups[-1].append(output)
        height += h
    return groups


def _markdown_cells(cell: NotebookNode, budget: float) -> list[NotebookNode]:
    """A Markdown cell as one or more cells, cut between blocks, each within ``budget``."""
    if markdown_height(cell.source) <= budget:
        return [cell]
    groups: list[list[str]] = [[]]
    height = 10.0
    for block in markdown_blocks(cell.source):
        h = block_height(block)
        if groups[-1] and height + h > budget:
            groups.append([])
            height = 10.0
        groups[-1].append(block)
        height += h
    cells = []
    for i, group in enumerate(groups):
        part = _part(cell, i)
        part.source = "\n\n".join(group)
        part.pop("attachments", None) if i else None
        cells.append(part if i == 0 else _with_slide_type(part, "subslide"))
    return cells


def _deck_links(cell: NotebookNode) -> NotebookNode:
    """Point Markdown links to a sibling notebook (``[next](03_x.ipynb)``) at its deck instead."""
    if cell.cell_type == "markdown":
        cell.source = re.sub(r"\]\(([^()/:#\s]+)\.ipynb(#[^()\s]*)?\)", r"](\1.slides.html\2)", cell.source)
    return cell


def _static_widget(cell: NotebookNode) -> NotebookNode:
    """Replace live-widget outputs (they need a kernel) by a note pointing to RISE."""
    if cell.cell_type != "code":
        return cell
    outputs = []
    for output in cell.get("outputs", []):
        if WIDGET_MIME in output.get("data", {}):
            output = nbformat.v4.new_output("display_data", data={"text/html": LIVE_WIDGET_NOTE})
        outputs.append(output)
    cell.outputs = outputs
    return cell


class FitToSlidePreprocessor(Preprocessor):
    """Make every sub-slide of a deck fit ``BUDGET`` estimated pixels (see the module docstring).

    ``resources["fit"]`` receives the estimated height of each sub-slide.
    """

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        """Drop skipped cells, neutralise widgets, cut tall cells, then pack into sub-slides."""
        nb.metadata.pop("widgets", None)
        cells: list[NotebookNode] = []
        for cell in nb.cells:
            if _slide_type(cell) == "skip":
                continue
            cell = _deck_links(_static_widget(cell))
            if cell.cell_type == "markdown":
                cells.extend(_markdown_cells(cell, BUDGET))
            elif cell.cell_type == "code":
                cells.extend(_code_cells(cell, BUDGET))
            else:
                cells.append(cell)
        nb.cells = list(self._pack(cells, resources.setdefault("fit", [])))
        return nb, resources

    @staticmethod
    def _pack(cells: list[NotebookNode], heights: list[float]) -> Iterator[NotebookNode]:
        """Start a new sub-slide where the next cell would not fit under the current one."""
        used = None
        for cell in cells:
            height, kind = cell_height(cell), _slide_type(cell)
            if kind == "notes":
                yield cell
                continue
            if used is None or kind in ("slide", "subslide") or used + height > BUDGET:
                if used is not None and kind not in ("slide", "subslide"):
                    _with_slide_type(cell, "subslide")
                if used is not None:
                    heights.append(used)
                used = 0.0
            used += height
            yield cell
        if used is not None:
            heights.append(used)
