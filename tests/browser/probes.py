"""What the browser tests measure in a page, as small functions on a Playwright ``Page``.

Kept apart from the tests so that the same measurement gives the numbers of the README and
``docs/teaching.md`` (``python tests/browser/probes.py DECK.html ...`` prints them).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

# One entry per leaf slide (a vertical sub-slide, or a horizontal slide without any): its
# content's height and width in the slide's own pixels (before reveal's scaling), and the
# elements whose content is cut on the right (a <pre> or an output scrolling sideways).
MEASURE_SLIDES_JS = r"""
async () => {
  const R = window.Reveal;
  const frames = () => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  const mathjax = () => new Promise(r => (window.MathJax && MathJax.Hub) ? MathJax.Hub.Queue(r) : r());
  // MathJax 2 pauses 50 ms between sections and 10 ms between updates to keep a page responsive;
  // the queue still ends when the typesetting does, so every slide's size is the same (checked
  // on all seven decks, 2026-12-06), measured 3x sooner: 2-5 s per deck instead of 7-15 s.
  if (window.MathJax && MathJax.Hub) { MathJax.Hub.processSectionDelay = 0; MathJax.Hub.processUpdateDelay = 0; }
  const result = [];
  const horizontals = R.getHorizontalSlides();
  for (let h = 0; h < horizontals.length; h++) {
    const n = Math.max(1, horizontals[h].querySelectorAll(':scope > section').length);
    for (let v = 0; v < n; v++) {
      R.slide(h, v, 1000);                       // every fragment shown: they take room anyway
      await frames(); await mathjax(); await frames();
      const slide = R.getCurrentSlide();
      const box = slide.getBoundingClientRect();
      const scale = R.getScale();
      let right = 0, bottom = 0;
      const cut = [];
      for (const el of slide.querySelectorAll('*')) {
        const b = el.getBoundingClientRect();
        if (b.width === 0 && b.height === 0) continue;
        if (el.closest('aside.notes')) continue;
        right = Math.max(right, (b.right - box.left) / scale);
        bottom = Math.max(bottom, (b.bottom - box.top) / scale);
        const style = getComputedStyle(el);
        if (el.closest('.MathJax, .MathJax_Display, .MathJax_SVG')) continue;   // MathJax clips its own glyph boxes
        if (['auto', 'scroll', 'hidden', 'clip'].includes(style.overflowX) && el.scrollWidth > el.clientWidth + 1) {
          cut.push(el.tagName.toLowerCase() + ': ' + (el.textContent || '').trim().slice(0, 60));
        }
      }
      const title = (slide.querySelector('h1, h2, h3, h4') || slide).textContent.trim().slice(0, 60);
      result.push({h, v, title, height: Math.round(Math.max(slide.scrollHeight, bottom)),
                   width: Math.round(Math.max(slide.scrollWidth, right)), cut});
    }
  }
  return result;
}
"""

# Whether the deck rendered: reveal initialised, MathJax loaded and done, how much maths it typeset.
DECK_STATE_JS = r"""
async () => {
  const mathjax = () => new Promise(r => (window.MathJax && MathJax.Hub) ? MathJax.Hub.Queue(r) : r());
  await mathjax();
  // the text of the Markdown with every typeset formula (and its TeX source script) taken out
  const rendered = [...document.querySelectorAll('.jp-RenderedMarkdown')].map(e => {
    const copy = e.cloneNode(true);
    copy.querySelectorAll('.MathJax, .MathJax_Display, .MathJax_Preview, .MathJax_SVG, script, code, pre')
        .forEach(x => x.remove());
    return copy.textContent;
  }).join('\n');
  return {
    reveal: !!(window.Reveal && window.Reveal.isReady && window.Reveal.isReady()),
    mathjax: !!(window.MathJax && window.MathJax.Hub),
    typeset: document.querySelectorAll('.MathJax, .MathJax_Display, .MathJax_SVG').length,
    errors: document.querySelectorAll('.MathJax_Error, .MathJax_Preview merror').length
            + (document.body.innerText.includes('Math Processing Error') ? 1 : 0),
    raw_tex: (rendered.match(/\$[^$\n]{1,40}\$|\\[a-zA-Z]{2,}/g) || []).slice(0, 5),
  };
}
"""


@dataclass
class SlideSize:
    """The measured content of one slide, in the slide's own pixels."""

    h: int
    v: int
    title: str
    height: int
    width: int
    cut: list[str]


def open_deck(page, deck: Path, width: int = 1280, height: int = 720) -> list[str]:
    """Open a deck from the file system, offline: every non-file request is refused and listed.

    Returns the list of refused URLs (it grows if the page asks for more later).
    """
    refused: list[str] = []

    def route(request_route) -> None:
        if request_route.request.url.startswith(("file:", "data:")):
            request_route.continue_()
        else:
            refused.append(request_route.request.url)
            request_route.abort()

    page.set_viewport_size({"width": width, "height": height})
    page.route("**/*", route)
    page.goto(Path(deck).resolve().as_uri())
    if not page.evaluate("() => !!window.Reveal"):          # nbconvert's own template keeps Reveal private
        page.evaluate("() => new Promise(r => require(['assets/reveal.js/dist/reveal.js'],"
                      " R => { window.Reveal = R; r(); }))")
    page.wait_for_function("() => window.Reveal && window.Reveal.isReady()", timeout=30_000)
    return refused


def measure_slides(page) -> list[SlideSize]:
    """The size of every slide of the open deck."""
    return [SlideSize(**entry) for entry in page.evaluate(MEASURE_SLIDES_JS)]


def deck_state(page) -> dict:
    """See :data:`DECK_STATE_JS`."""
    return page.evaluate(DECK_STATE_JS)


def main(decks: list[str]) -> None:
    """Print the tallest and widest slide of each deck given on the command line."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        for deck in decks:
            page = browser.new_page()
            open_deck(page, Path(deck))
            sizes = measure_slides(page)
            tallest = max(sizes, key=lambda s: s.height)
            over = [s for s in sizes if s.height > 720 or s.width > 1280 or s.cut]
            print(json.dumps({"deck": Path(deck).name, "slides": len(sizes), "tallest": tallest.height,
                              "tallest_title": tallest.title, "widest": max(s.width for s in sizes),
                              "overflowing": len(over), "state": deck_state(page)}, ensure_ascii=False))
            page.close()
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1:])
