"""Offline reveal.js decks that fit a 1280×720 slide, whatever the notebook's author did.

``export_deck`` is nbconvert's ``SlidesExporter`` with three changes:

1. **Local assets.** reveal.js, require.js and jQuery are vendored in ``assets/`` (with their
   licences); MathJax 2 comes from the ``jupyter-server-mathjax`` package. ``copy_assets``
   puts them in ``OUTDIR/assets/``, so the folder works offline and on another machine.
2. **Fitting**: :class:`~mtl_helpers.lecture.fit.FitToSlidePreprocessor` runs first and cuts
   or moves cells so that every sub-slide's estimated height fits.
3. **A template** (``templates/mtl_reveal``, extending nbconvert's ``reveal``): the slide at
   1280×720, the fitting CSS of :mod:`~mtl_helpers.lecture.layout` (fixed font sizes, long code
   lines wrapped instead of cut, figures capped in height, no prompts), MathJax configured for
   the fonts it ships, and nothing loaded from a CDN (no widget manager, no mermaid).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

import nbformat
from nbconvert.exporters import SlidesExporter

from mtl_helpers.lecture.fit import FitToSlidePreprocessor
from mtl_helpers.lecture.layout import FIT_CSS, SLIDE_HEIGHT, SLIDE_WIDTH

ASSETS = Path(__file__).with_name("assets")
TEMPLATES = Path(__file__).with_name("templates")
__all__ = ["SLIDE_HEIGHT", "SLIDE_WIDTH", "build_decks", "copy_assets", "export_deck", "make_exporter"]


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
