"""The slide's geometry, the CSS that fixes it, and estimates of how tall a cell renders.

Heights are *estimated* in the slide's pixels from the sizes :data:`FIT_CSS` fixes (font sizes,
line heights, the figure cap, wrapped code lines): a deliberate over-estimate, checked against
the real decks by the browser tests (``tests/browser/test_decks.py``).
"""

from __future__ import annotations

import base64
import math
import re
import struct

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


def wrapped_lines(text: str, width: int) -> int:
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
        return wrapped_lines(output.text, CODE_CHARS) * line + 10
    if output.output_type == "error":
        return wrapped_lines("\n".join(output.traceback), CODE_CHARS) * line + 10
    data = output.get("data", {})
    if "image/png" in data or "image/jpeg" in data or "image/svg+xml" in data:
        return _image_height(output)
    if "text/html" in data:
        html = data["text/html"]
        rows = html.count("<tr")
        if rows:
            return rows * TABLE_ROW + 20
        return wrapped_lines(re.sub(r"<[^>]+>", "", html), TEXT_CHARS) * TEXT_PX * TEXT_LINE + 10
    if "text/markdown" in data:
        return markdown_height(data["text/markdown"])
    if "text/plain" in data:
        return wrapped_lines(data["text/plain"], CODE_CHARS) * line + 10
    return 0.0


def code_height(source: str) -> float:
    """Estimated height of a code input in pixels."""
    return wrapped_lines(source, CODE_CHARS) * CODE_PX * CODE_LINE + 20 if source.strip() else 0.0


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
        return wrapped_lines(summary.group(1) if summary else "details", TEXT_CHARS) * line + 12
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
    return wrapped_lines(text, TEXT_CHARS - 4) * line * bump + 0.5 * TEXT_PX


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
