"""Execute notebooks top to bottom in place and strip machine-specific metadata.

    python .ci/build_notebook.py notebooks/01_single_task_baselines.ipynb [more.ipynb ...]

Authors run this after every change to a notebook; it prints each notebook's wall time.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbformat

from mtl_helpers.lecture.execute import run_notebook


def clean(nb: nbformat.NotebookNode) -> None:
    nb.metadata.pop("widgets", None)  # saved widget state: large and useless without a kernel
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        cell.metadata.pop("collapsed", None)


def build(path: Path) -> float:
    nb = nbformat.read(path, as_version=4)
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    start = time.perf_counter()
    try:
        run_notebook(nb, path.parent)  # waits for the kernel in 1 s slices (mtl_helpers/lecture/execute.py)
    finally:  # write even a failed run, so its error output can be read in the notebook
        seconds = time.perf_counter() - start
        clean(nb)
        nbformat.write(nb, path)
    return seconds


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(f"{arg}: {build(Path(arg)):.1f} s", flush=True)
