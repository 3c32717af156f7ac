"""``python -m mtl_helpers student|slides OUTDIR [NOTEBOOK ...]``: the instructor's two builds.

- ``student OUTDIR``: a student copy of every notebook (solutions replaced by
  ``raise NotImplementedError(hint)``, exercise outputs cleared), see ``mtl_helpers.lecture.student``;
- ``slides OUTDIR``: one offline reveal.js deck per notebook, with its assets copied beside it,
  see ``mtl_helpers.lecture.slides``.

Without notebook paths, every ``notebooks/*.ipynb`` of the course is used.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

COURSE_NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, build, print what was written; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m mtl_helpers", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["student", "slides"], help="what to build")
    parser.add_argument("outdir", type=Path, help="the folder to write into (created if missing)")
    parser.add_argument("notebooks", type=Path, nargs="*",
                        help=f"notebooks to convert (default: every {COURSE_NOTEBOOKS}/*.ipynb)")
    args = parser.parse_args(argv)
    notebooks = args.notebooks or sorted(COURSE_NOTEBOOKS.glob("[0-9]*.ipynb"))
    if not notebooks:
        parser.error(f"no notebooks found in {COURSE_NOTEBOOKS}")

    from mtl_helpers.lecture import build_decks, build_student_copies

    start = time.perf_counter()
    build = build_student_copies if args.command == "student" else build_decks
    written, problems = build(notebooks, args.outdir)
    for path in written:
        print(f"wrote {path}")
    print(f"{len(written)} of {len(notebooks)} notebooks in {time.perf_counter() - start:.1f} s")
    for problem in problems:
        print(f"\nERROR {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
