"""Offline reveal.js decks that fit a 1280×720 slide, whatever the notebook's author did.

``export_deck`` is nbconvert's ``SlidesExporter`` with three changes:

1. **Local assets.** reveal.js, require.js and jQuery are vendored in ``assets/`` (with their
   licences); MathJax 2 comes from the ``jupyter-server-mathjax`` package. ``copy_assets``
   puts them in ``OUTDIR/assets/``, so the folder works offline and on another machine.
2. **A fitting preprocessor** (:class:`FitToSlidePreprocessor`). It drops ``skip`` cells,
   replaces live widgets (which need a kernel) by a note, cuts long code cells into chunks at
   top-level statements, puts the outputs of a tall code cell on their own sub-slide, cuts tall
   Markdown at block boundaries, and then packs cells greedily: a cell that would not fit
   under what the sub-slide already holds starts a new sub-slide. Heights are *estimated* from
   the sizes fixed by :data:`FIT_CSS` (line heights, the figure cap); the browser tests
   measure the real decks.
3. **Fitting CSS**: fixed font sizes, long code lines wrapped (never cut at the right),
   figures capped at ``FIGURE_MAX_HEIGHT`` pixels, prompts hidden to give code the full width.

Fragments keep their place: a ``fragment`` cell that still fits stays a fragment; one that does
not becomes a new sub-slide (a fragment takes its room on the slide even while hidden).
"""

from __future__ import annotations

import ast
import base64
import copy
import math
import re
import shutil
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path

import nbformat
from nbconvert.exporters import SlidesExporter
from nbconvert.preprocessors import Preprocessor
from nbformat import NotebookNode

SLIDE_WIDTH, SLIDE_HEIGHT = 1280, 720
CONTENT_WIDTH = SLIDE_WIDTH - 60          # the slide's padding and the cells' margins
BUDGET = SLIDE_HEIGHT - 80                # estimated height a sub-slide may hold (estimates err)
TEXT_PX, TEXT_LINE = 22, 1.45             # Markdown
CODE_PX, CODE_LINE = 16, 1.35             # code and text outputs
TABLE_ROW = 30                            # one row of a pandas table, padding included
OUTPUT_GAP = 24                           # margins around each output area
FIGURE_MAX_HEIGHT = 430                   # every image is scaled down to at most this height
CODE_CHARS = int(CONTENT_WIDTH / (0.6 * CODE_PX))    # characters per wrapped code line
TEXT_CHARS = int(CONTENT_WIDTH / (0.5 * TEXT_PX))    # characters per wrapped text line
HEADING_PX = {1: 40, 2: 34, 3: 28, 4: 24, 5: 22, 6: 22}
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
ASSETS = Path(__file__).with_name("assets")
TEMPLATES = Path(__file__).with_name("templates")

FIT_CSS = f"""
:root {{
  --jp-content-font-size1: {TEXT_PX}px;
  --jp-ui-font-size1: {TEXT_PX}px;
  --jp-code-font-size: {CODE_PX}px;
  --jp-code-line-height: {CODE_LINE};
  --jp-content-line-height: {TEXT_LINE};
}}
.reveal {{ font-size: {TEXT_PX}px; }}
.reveal .slides section {{ padding: 0; }}
.reveal .slides {{ text-align: left; }}
.reveal h1 {{ font-size: {HEADING_PX[1]}px; }}
.reveal h2 {{ font-size: {HEADING_PX[2]}px; }}
.reveal h3 {{ font-size: {HEADING_PX[3]}px; }}
.reveal h4, .reveal h5, .reveal h6 {{ font-size: {HEADING_PX[4]}px; }}
.reveal .slides h1, .reveal .slides h2, .reveal .slides h3, .reveal .slides h4 {{
  margin: 0 0 0.4em 0; line-height: 1.2; text-transform: none;
}}
.reveal p, .reveal li {{ line-height: {TEXT_LINE}; }}
.reveal p {{ margin: 0 0 0.5em 0; }}
.reveal pre, .reveal code, .jp-RenderedText pre {{
  font-size: {CODE_PX}px; line-height: {CODE_LINE};
  white-space: pre-wrap; overflow-wrap: anywhere; word-break: break-word;
}}
.reveal pre {{ width: 100%; box-sizing: border-box; max-width: 100%; }}
.reveal .jp-OutputArea-output > pre {{ width: 100%; }}
.reveal section img, .jp-RenderedImage img {{
  max-height: {FIGURE_MAX_HEIGHT}px; max-width: 100%; width: auto; height: auto; object-fit: contain;
}}
.reveal table {{ font-size: 15px; }}
.reveal .jp-RenderedHTMLCommon td, .reveal .jp-RenderedHTMLCommon th {{ padding: 2px 6px; }}
.jp-Cell {{ padding: 2px 0; }}
.jp-InputArea-editor {{ overflow: hidden; }}
/* MathJax's hidden MathML copy (for screen readers) asks for TeX web fonts that the MathJax
   package leaves out; it is never seen, so it keeps the page's font. */
.MJX_Assistive_MathML, .MJX_Assistive_MathML * {{ font-family: inherit !important; }}
.mtl-live-widget {{
  border-left: 4px solid #1a73e8; background: #eef4fd; padding: 6px 12px; font-size: 18px;
}}
"""

LIVE_WIDGET_NOTE = (
    '<div class="mtl-live-widget">▶ <b>Live widget.</b> A static deck has no kernel: present this '
    "notebook in JupyterLab with RISE (<i>Render as slideshow</i>) to move the slider; the figure "
    "above shows the same content for a few settings.</div>")


# ---------------------------------------------------------------- height estimates


def _wrapped_lines(text: str, width: int) -> int:
    """How many screen lines ``text`` takes when each line wraps at ``width`` characters."""
    return sum(max(1, math.ceil(len(line) / width)) for line in text.rstrip("\n").split("\n"))


def png_size(data: str) -> tuple[int, int]:
    """(width, height) in pixels of a base64-encoded PNG, read from its header."""
    header = base64.b64decode(data[:64])
    return struct.unpack(">II", header[16:24])


def _image_height(output: NotebookNode) -> float:
    """Displayed height of an image output: scaled to the content width, capped by the CSS."""
    data = output.get("data", {})
    if "image/png" not in data:
        return FIGURE_MAX_HEIGHT
    width, height = png_size(data["image/png"])
    meta = output.get("metadata", {}).get("image/png", {})
    width, height = meta.get("width", width), meta.get("height", height)
    return min(height * min(1.0, CONTENT_WIDTH / width), FIGURE_MAX_HEIGHT) + 8


def output_height(output: NotebookNode) -> float:
    """Estimated height of one output in pixels, with the gap between outputs."""
    return _output_content_height(output) + OUTPUT_GAP


def _output_content_height(output: NotebookNode) -> float:
    line = CODE_PX * CODE_LINE
    if output.output_type == "stream":
        return _wrapped_lines(output.text, CODE_CHARS) * line + 10
    if output.output_type == "error":
        return _wrapped_lines("\n".join(output.traceback), CODE_CHARS) * line + 10
    data = output.get("data", {})
    if "image/png" in data or "image/jpeg" in data or "image/svg+xml" in data:
        return _image_height(output)
    if "text/html" in data:
        html = data["text/html"]
        rows = html.count("<tr")
        if rows:
            return rows * TABLE_ROW + 20
        return _wrapped_lines(re.sub(r"<[^>]+>", "", html), TEXT_CHARS) * TEXT_PX * TEXT_LINE + 10
    if "text/markdown" in data:
        return markdown_height(data["text/markdown"])
    if "text/plain" in data:
        return _wrapped_lines(data["text/plain"], CODE_CHARS) * line + 10
    return 0.0


def code_height(source: str) -> float:
    """Estimated height of a code input in pixels."""
    return _wrapped_lines(source, CODE_CHARS) * CODE_PX * CODE_LINE + 20 if source.strip() else 0.0


def markdown_blocks(source: str) -> list[str]:
    """Cut Markdown into blocks that may go to different slides.

    A block is a paragraph, one list item (with its continuation lines), a heading, a fenced
    code block, a ``$$`` display or an HTML block such as ``<details>…</details>``, kept whole.
    """
    blocks: list[str] = []
    current: list[str] = []
    closing: str | None = None          # what closes the multi-line block we are in

    def flush() -> None:
        if current and any(line.strip() for line in current):
            blocks.append("\n".join(current).strip("\n"))
        current.clear()

    for line in source.split("\n"):
        stripped = line.strip()
        if closing is not None:
            current.append(line)
            if closing in stripped and not (closing == "$$" and stripped == "$$" and len(current) == 1):
                closing = None
                flush()
            continue
        if stripped.startswith("```") or stripped.startswith("~~~"):
            flush(); current.append(line); closing = stripped[:3]
        elif stripped.startswith("$$") and not (len(stripped) > 2 and stripped.endswith("$$")):
            flush(); current.append(line); closing = "$$"
        elif stripped.startswith("<details"):
            flush(); current.append(line); closing = "</details>"
            if closing in stripped:
                closing = None; flush()
        elif not stripped:
            flush()
        elif stripped.startswith("#") or re.match(r"^([-*+]|\d+[.)])\s", line):
            flush(); current.append(line)
            if stripped.startswith("#"):
                flush()
        else:
            current.append(line)
    flush()
    return blocks


def block_height(block: str) -> float:
    """Estimated height in pixels of one Markdown block (see :func:`markdown_blocks`)."""
    line = TEXT_PX * TEXT_LINE
    first = block.lstrip()
    heading = re.match(r"^(#{1,6})\s", first)
    if heading:
        size = HEADING_PX[len(heading.group(1))]
        return math.ceil(len(first) / (CONTENT_WIDTH / (0.55 * size))) * size * 1.2 + 0.4 * size
    if first.startswith("<details"):
        summary = re.search(r"<summary>(.*?)</summary>", block, re.S)
        return _wrapped_lines(summary.group(1) if summary else "details", TEXT_CHARS) * line + 12
    if first.startswith("```") or first.startswith("~~~"):
        return (block.count("\n") - 1) * CODE_PX * CODE_LINE + 24
    if first.startswith("$$"):
        return 30 + 50 * max(1, block.count("\\\\") + 1)
    if first.startswith("|"):
        return block.count("\n") * (line + 6) + line
    text = re.sub(r"\]\([^)]*\)", "]", block)                  # links show their text only
    text = re.sub(r"\$([^$]+)\$", lambda m: "x" * max(1, len(m.group(1)) // 3), text)
    text = re.sub(r"<[^>]+>|[*_`]", "", text)
    bump = 1.15 if "$" in block else 1.0                         # inline maths is taller
    return _wrapped_lines(text, TEXT_CHARS - 4) * line * bump + 0.5 * TEXT_PX


def markdown_height(source: str) -> float:
    """Estimated height in pixels of a Markdown cell."""
    return sum(block_height(block) for block in markdown_blocks(source)) + 10


def cell_height(cell: NotebookNode) -> float:
    """Estimated height in pixels of a cell: its input (if shown) and its outputs."""
    if cell.cell_type == "markdown":
        return markdown_height(cell.source)
    if cell.cell_type != "code":
        return 0.0
    shown = not cell.metadata.get("transient", {}).get("remove_source", False)
    return (code_height(cell.source) if shown else 0.0) + sum(output_height(o) for o in cell.get("outputs", []))


# ---------------------------------------------------------------- cutting cells


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
        while count > 1 and _wrapped_lines("".join(lines[:count]), CODE_CHARS) > per_slide:
            count -= 1
        pieces.append(nbformat.v4.new_output("stream", name=output.name, text="".join(lines[:count])))
        lines = lines[count:]
    return pieces


def _output_groups(outputs: list[NotebookNode], budget: float) -> list[list[NotebookNode]]:
    """Consecutive outputs grouped so that each group's estimated height stays within ``budget``."""
    groups: list[list[NotebookNode]] = [[]]
    height = 0.0
    for output in (piece for output in outputs for piece in _split_stream(output, budget)):
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
            cell = _static_widget(cell)
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


# ---------------------------------------------------------------- export


def copy_assets(outdir: Path) -> Path:
    """Copy reveal.js, require.js, jQuery and MathJax into ``outdir/assets``; return that folder."""
    import jupyter_server_mathjax

    target = Path(outdir) / "assets"
    shutil.copytree(ASSETS, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("README.md"))
    mathjax = Path(jupyter_server_mathjax.__file__).parent / "static"
    shutil.copytree(mathjax, target / "mathjax", dirs_exist_ok=True)
    (target / "README.md").write_text((ASSETS / "README.md").read_text(encoding="utf-8"), encoding="utf-8")
    return target


def make_exporter() -> SlidesExporter:
    """nbconvert's SlidesExporter set up for offline decks (assets in ``./assets``) at 1280×720."""
    exporter = SlidesExporter(
        template_name="mtl_reveal",
        extra_template_basedirs=[str(TEMPLATES)],
        reveal_url_prefix="assets/reveal.js",
        reveal_theme="white",
        reveal_transition="none",
        reveal_number="c/t",
        reveal_width=str(SLIDE_WIDTH),
        reveal_height=str(SLIDE_HEIGHT),
        require_js_url="assets/requirejs/require.js",
        jquery_url="assets/jquery/jquery.min.js",
        mathjax_url="assets/mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe",
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
    return exporter


def export_deck(path: Path, outdir: Path, exporter: SlidesExporter | None = None) -> Path:
    """Write ``outdir/<notebook>.slides.html``; the assets must be in ``outdir/assets``."""
    path = Path(path)
    exporter = exporter or make_exporter()
    nb = nbformat.read(path, as_version=4)
    # Fitting runs first: nbconvert's own reveal preprocessor turns slide types into sections.
    nb, resources = FitToSlidePreprocessor().preprocess(nb, {"metadata": {"name": path.stem}, "fit_css": FIT_CSS})
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    target = Path(outdir) / f"{path.stem}.slides.html"
    target.write_text(body, encoding="utf-8")
    return target


def build_decks(notebooks: Iterable[Path], outdir: Path) -> tuple[list[Path], list[str]]:
    """One deck per notebook in ``outdir``, plus the assets; return the decks and any problems."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    copy_assets(outdir)
    exporter = make_exporter()
    written, problems = [], []
    for path in notebooks:
        try:
            written.append(export_deck(Path(path), outdir, exporter))
        except Exception as error:  # noqa: BLE001 - one bad notebook must not stop the others
            problems.append(f"{path}: {type(error).__name__}: {error}")
    return written, problems
