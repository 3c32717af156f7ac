"""Each offline deck (``python -m mtl_helpers slides``) renders without a network and fits its slides.

For every notebook's deck, opened from the file system with every non-file request refused:
reveal.js initialises, MathJax typesets the maths (no raw TeX left, no MathJax error), no
request leaves the machine, the console stays free of errors, and no slide's content is
taller or wider than the 1280×720 slide (nor cut at the right inside a code box). The tallest
slide of each deck is printed (run with ``-s``).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from probes import deck_state, measure_slides, open_deck

from mtl_helpers.lecture.slides import SLIDE_HEIGHT, SLIDE_WIDTH, build_decks

pytestmark = pytest.mark.browser
NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("[0-9]*.ipynb"))


@pytest.fixture(scope="module")
def decks(browser, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All decks, built once into a scratch folder (with their assets)."""
    outdir = tmp_path_factory.mktemp("decks")
    written, problems = build_decks(NOTEBOOKS, outdir)
    assert not problems, problems
    return outdir


def _has_maths(notebook: Path) -> bool:
    cells = nbformat.read(notebook, as_version=4).cells
    return any(c.cell_type == "markdown" and "$" in c.source
               and c.metadata.get("slideshow", {}).get("slide_type") != "skip" for c in cells)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_deck_renders_offline_and_every_slide_fits(browser, decks, notebook):
    deck = decks / f"{notebook.stem}.slides.html"
    page = browser.new_page()
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: console_errors.append(f"page error: {e}"))
    try:
        refused = open_deck(page, deck, SLIDE_WIDTH, SLIDE_HEIGHT)
        state = deck_state(page)
        assert state["reveal"] and state["mathjax"], f"{deck.name}: reveal.js or MathJax did not load: {state}"
        if _has_maths(notebook):
            assert state["typeset"] > 0, f"{deck.name}: no formula typeset"
        assert not state["raw_tex"] and not state["errors"], f"{deck.name}: maths not typeset: {state}"

        sizes = measure_slides(page)
        tallest = max(sizes, key=lambda s: s.height)
        print(f"\n{deck.name}: {len(sizes)} slides, tallest {tallest.height} px ({tallest.title[:40]!r}), "
              f"widest {max(s.width for s in sizes)} px, {state['typeset']} formulas")
        too_big = [f"slide {s.h}.{s.v} {s.title[:50]!r}: {s.width}×{s.height} px" + (f", cut: {s.cut}" if s.cut else "")
                   for s in sizes if s.height > SLIDE_HEIGHT or s.width > SLIDE_WIDTH or s.cut]
        assert not too_big, f"{deck.name}: slides larger than {SLIDE_WIDTH}×{SLIDE_HEIGHT}:\n" + "\n".join(too_big)
        assert not refused, f"{deck.name}: asked the network for {refused}"
        assert not console_errors, f"{deck.name}: console errors: {console_errors}"
    finally:
        page.close()
