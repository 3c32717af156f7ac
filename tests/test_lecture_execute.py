"""run_notebook waits for the kernel in short slices, so a missed zmq wake-up costs a second."""

from __future__ import annotations

from collections.abc import Coroutine
from queue import Empty

import nbformat
import pytest
from nbclient.exceptions import CellExecutionError

from mtl_helpers.lecture.execute import SlicedWaitClient, in_slices, run_notebook


class Socket:
    """A channel's get_msg whose reply is there from the ``ready``-th call on, and which
    records the timeout of every call (a missed wake-up: the wait runs to its timeout)."""

    def __init__(self, ready: int | None) -> None:
        self.ready, self.timeouts = ready, []

    async def get_msg(self, timeout: float | None = None) -> dict:
        self.timeouts.append(timeout)
        if self.ready is not None and len(self.timeouts) >= self.ready:
            return {"msg": "reply"}
        raise Empty


def finish(coroutine: Coroutine) -> object:
    """Run a coroutine that never suspends (the fake socket answers at once) without an event
    loop: ``asyncio.run`` refuses to start inside a test worker that already has one running."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    raise AssertionError("the coroutine suspended: the fake socket should answer at once")


@pytest.mark.parametrize("timeout", [600.0, None])
def test_a_long_wait_is_cut_into_slices_and_returns_the_reply(timeout):
    socket = Socket(ready=3)
    assert finish(in_slices(socket.get_msg, slice_s=0.5)(timeout=timeout)) == {"msg": "reply"}
    assert len(socket.timeouts) == 3 and all(t is not None and t <= 0.5 for t in socket.timeouts)


def test_the_deadline_still_raises_empty():
    socket = Socket(ready=None)
    with pytest.raises(Empty):
        finish(in_slices(socket.get_msg, slice_s=0.5)(timeout=0.0))
    assert socket.timeouts == [0.0]


def test_a_slice_must_be_positive():
    with pytest.raises(ValueError, match="slice_s"):
        in_slices(Socket(ready=1).get_msg, slice_s=0)


class Recording(SlicedWaitClient):
    wrapped: list[str] = []

    async def async_start_new_kernel_client(self):
        client = await super().async_start_new_kernel_client()
        Recording.wrapped = [c.get_msg.__qualname__ for c in (client.shell_channel, client.iopub_channel)]
        return client


def _notebook(*sources: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])


def test_run_notebook_executes_with_both_channels_sliced(tmp_path):
    nb = _notebook("x = 6 * 7", "print(x)")
    run_notebook(nb, tmp_path)
    assert nb.cells[1].outputs[0].text == "42\n"
    Recording(_notebook("1"), kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert Recording.wrapped == ["in_slices.<locals>.wait"] * 2


def test_run_notebook_raises_on_an_error_unless_errors_are_allowed(tmp_path):
    with pytest.raises(CellExecutionError, match="ZeroDivisionError"):
        run_notebook(_notebook("1 / 0"), tmp_path)
    nb = run_notebook(_notebook("1 / 0", "print('after')"), tmp_path, allow_errors=True)
    assert nb.cells[0].outputs[0].ename == "ZeroDivisionError" and nb.cells[1].outputs[0].text == "after\n"


def test_a_student_copy_runs_on_past_an_exercise_not_done_yet(tmp_path):
    """The exercise cell's ``raises-exception`` tag lets a Run All go on, without allow_errors."""
    from nbformat.v4 import new_code_cell, new_notebook

    from mtl_helpers.lecture.student import student_notebook

    exercise = "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\n\ndouble(1)"
    nb = new_notebook(cells=[new_code_cell(exercise), new_code_cell("print('after')")],
                      metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(nb, tmp_path / "demo.ipynb")
    student, exercises = student_notebook(tmp_path / "demo.ipynb")
    run_notebook(student, tmp_path)
    assert exercises == [0] and student.cells[0].outputs[0].ename == "NotImplementedError"
    assert student.cells[1].outputs[0].text == "after\n"
