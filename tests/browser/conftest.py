"""Fixtures of the browser tests: headless Debian Chromium through Playwright, a JupyterLab server.

Every test module here sets ``pytestmark = pytest.mark.browser``. Without ``/usr/bin/chromium``
(or without the ``playwright`` package) the tests skip and say how to install them, except under
``CI=true``, where a skipped browser test is reported as a failure: CI must really run them.
Playwright's own browser download (``playwright install``) is never used.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from mtl_helpers.lecture.student import write_student_copy

CHROMIUM = Path(os.environ.get("MTL_CHROMIUM", "/usr/bin/chromium"))
ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
INSTALL_HINT = ("install Debian's Chromium and Playwright for Python: `sudo apt-get install chromium` and "
                "`pip install -r requirements.txt` (never `playwright install`; the tests use /usr/bin/chromium)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Under CI=true a skipped browser test is a failure: CI installs Chromium, so it must run."""
    outcome = yield
    report = outcome.get_result()
    ci = os.environ.get("CI", "").lower() == "true"
    if ci and report.skipped and not hasattr(report, "wasxfail") and item.get_closest_marker("browser"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"browser test skipped under CI=true (CI must run it): {reason}"


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium (Debian's), or a skip that says how to install it."""
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: {INSTALL_HINT}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip(f"the playwright package is missing: {INSTALL_HINT}")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield chromium
        chromium.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class JupyterLab:
    """A running JupyterLab server on 127.0.0.1 serving a scratch copy of the notebooks."""

    student = "student"  # the folder of the student copies on the server

    def __init__(self, root: Path, port: int, token: str, process: subprocess.Popen, log: Path):
        self.root, self.port, self.token, self.process, self.log = root, port, token, process, log

    def url(self, path: str, query: str = "") -> str:
        """The URL of ``path`` on the server, with the token (and ``query``, e.g. ``reset``)."""
        return f"http://127.0.0.1:{self.port}/{path}?token={self.token}" + (f"&{query}" if query else "")


@pytest.fixture(scope="session")
def jupyter_lab(browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    """JupyterLab on a free port with a token, one kernel thread, serving copies of the notebooks
    and, in ``student/``, their student copies (what a learner opens).

    The notebooks are copied so that a save (or an autosave) never touches the course's files.
    """
    root = tmp_path_factory.mktemp("lab")
    for notebook in NOTEBOOKS:
        shutil.copy(notebook, root / notebook.name)
        write_student_copy(notebook, root / JupyterLab.student)
    runtime = tmp_path_factory.mktemp("jupyter-runtime")
    workspaces = tmp_path_factory.mktemp("lab-workspaces")
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "JUPYTER_RUNTIME_DIR": str(runtime)}
    log = runtime / "jupyterlab.log"
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={root}", f"--LabApp.workspaces_dir={workspaces}",
               "--LabApp.expose_app_in_browser=True",
               "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               "--allow-root"]
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root)
    lab = JupyterLab(root, port, token, process, log)
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(lab.url("api/status"), timeout=5) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"JupyterLab did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    yield lab
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
