"""Execute a notebook with nbclient, waiting for the kernel in short slices.

nbclient waits for a cell's reply with one ``get_msg(timeout=<cell timeout>)`` and reads the
outputs with ``get_msg(timeout=None)``. Under pyzmq's asyncio poller a wake-up can be missed
when the machine is busy: the reply sits in the socket, and the poll only looks again when its
timeout fires (it then polls once more, finds the reply and goes on). With one long wait that
costs the whole cell timeout: in CI a student copy that runs in 7.5 s took 607.5 s, then
129.6 s once the timeout was 120 s. Waiting in slices of at most a second bounds each missed
wake-up at a second, and the cell timeout is left to do its own job: stop a cell that hangs.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from queue import Empty
from typing import Any

import nbformat
from nbclient import NotebookClient

SLICE_S = 1.0
Message = dict[str, Any]
GetMsg = Callable[..., Awaitable[Message]]


def in_slices(get_msg: GetMsg, slice_s: float = SLICE_S) -> GetMsg:
    """``get_msg(timeout)`` that waits at most ``slice_s`` at a time until ``timeout`` has passed
    (``None``: forever); raises ``queue.Empty`` at the deadline, as the wrapped call does."""
    if slice_s <= 0:
        raise ValueError(f"slice_s must be > 0 seconds, got {slice_s}.")

    async def wait(timeout: float | None = None) -> Message:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = slice_s if deadline is None else min(slice_s, max(0.0, deadline - time.monotonic()))
            try:
                return await get_msg(timeout=left)
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise
    return wait


class SlicedWaitClient(NotebookClient):
    """nbclient's client with the kernel's shell and IOPub replies awaited :func:`in_slices`."""

    async def async_start_new_kernel_client(self):  # nbclient's hook: it makes the client
        client = await super().async_start_new_kernel_client()
        for channel in (client.shell_channel, client.iopub_channel):
            channel.get_msg = in_slices(channel.get_msg)
        return client


def run_notebook(nb: nbformat.NotebookNode, cwd: str | Path, *, timeout: int = 300,
                 allow_errors: bool = False) -> nbformat.NotebookNode:
    """Execute ``nb`` top to bottom in place (working directory ``cwd``) on the ``python3``
    kernel; a cell that runs longer than ``timeout`` seconds is an error."""
    client = SlicedWaitClient(nb, timeout=timeout, allow_errors=allow_errors, kernel_name="python3",
                              resources={"metadata": {"path": str(cwd)}})
    return client.execute()
