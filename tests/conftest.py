"""Test-session settings, loaded by every pytest worker before any test or notebook runs."""

import os

# pytest runs two workers on two cores, each starting notebook kernels. PyTorch's default of
# one thread per core would put 4+ spinning threads on 2 cores, which slows small models by
# 5-20x; one thread per process is fastest here. Kernels inherit this environment.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
# For the same reason the protocol trains one run at a time here (mtl_helpers.workers): the two
# pytest workers already fill both cores. tests/test_workers.py runs them side by side.
os.environ.setdefault("MTL_WORKERS", "1")
# glibc returns freed memory to the OS and page-faults it back in at every training step (a
# quarter of a conv step here, benchmarks/step_time.py): keep it. Kernels inherit this too.
os.environ.setdefault("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import importlib.util  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

STUDENT_RUN = "test_student_copy_raises_only_not_implemented_in_exercises"  # tests/test_student_copies.py
LAB_RUN = "test_notebook_runs_and_every_slider_redraws"                     # tests/browser/test_lab_widgets.py


def _browser_runs() -> bool:
    """Whether the browser tests can run here (the same check as tests/browser/conftest.py)."""
    chromium = Path(os.environ.get("MTL_CHROMIUM", "/usr/bin/chromium"))
    return chromium.exists() and importlib.util.find_spec("playwright") is not None


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: no error where it is not loaded
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """``--dist loadscope``, except that each notebook's browser run is a unit of its own.

    loadscope keeps a module on one worker (nbval's cells must run in order in one kernel), which
    put the six-minute module of JupyterLab runs on one worker while the other one waited. Split,
    each worker starts its own JupyterLab when it first needs one.
    """
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class NotebookRunsApart(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return nodeid if f"::{LAB_RUN}[" in nodeid else super()._split_scope(nodeid)

    return NotebookRunsApart(config, log)


@pytest.hookimpl(trylast=True)  # after -m, -k and --deselect have removed what they remove
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run each student copy once: in JupyterLab when its browser test runs, else with nbclient.

    Both tests apply ``not_done_yet_problems`` to the executed copy; running the copy twice cost
    four minutes of one worker.
    """
    if not _browser_runs():
        return
    tests = [item for item in items if isinstance(item, pytest.Function)]  # not nbval's cells
    in_lab = {item.callspec.id for item in tests if item.originalname == LAB_RUN}
    for item in tests:
        if item.originalname == STUDENT_RUN and item.callspec.id in in_lab:
            item.add_marker(pytest.mark.skip(reason="the browser test runs this student copy in JupyterLab "
                                                    "(tests/browser/test_lab_widgets.py)"))
