"""Independent training runs side by side, one per CPU core, with the same results.

The protocol trains many runs that share nothing: every learning rate of a search, every
seed of a comparison. A small network's operations are too short to split among cores, so
running one after the other, each spread over all cores, leaves most of them waiting. Here
up to one run per core trains at once, each in its own thread and on one CPU thread.

The runs must not share random state. Training draws batches from the run's own generator
(``fit(seed=...)``); only the initial weights come from torch's global generator, and
:func:`build_seeded` seeds and builds under a lock. A run therefore gives the same floats
side by side as alone on one thread.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import torch
from torch import nn

from .utils import get_device, seed_everything

_GLOBAL_RNG = threading.Lock()
_THIS_THREAD = threading.local()  # .in_job: True in a worker thread; .limit: the caller's workers
Result = TypeVar("Result")


def build_seeded(build: Callable[[Any], nn.Module], setting: Any, seed: int) -> nn.Module:
    """``build(setting)`` right after ``seed_everything(seed)``: seed s's initial weights.

    Runs trained side by side share torch's one global random generator: seeding and building
    hold a lock, so no other run draws from the generator in between. (Training itself draws
    from each run's own generator, ``fit(seed=...)``.)
    """
    with _GLOBAL_RNG:
        seed_everything(seed)
        return build(setting)


def default_workers() -> int:
    """How many runs train side by side: ``MTL_WORKERS`` if set, else the CPU cores this
    process may use, at most 4 (measured on 2; more threads contend for Python's lock on tiny
    networks); 1 where the course computes on a GPU (:func:`~mtl_helpers.utils.get_device`),
    where it was not measured."""
    if "MTL_WORKERS" in os.environ:
        workers = int(os.environ["MTL_WORKERS"])
        if workers < 1:
            raise ValueError(f"MTL_WORKERS must be a positive integer, got {workers}.")
        return workers
    if get_device().type != "cpu":
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(4, cores))


def side_by_side(jobs: Sequence[Callable[[], Result]], workers: int | None = None) -> list[Result]:
    """Every job's result, in order; up to ``workers`` (default :func:`default_workers`) at once.

    The jobs run in threads, and torch computes on one CPU thread meanwhile (set back after;
    ``workers=1`` leaves torch's threads alone). A small network's operations are too short to
    share among cores: on a 2-core CPU MultiMNIST's single-task runs take ~1.8× less time side
    by side than one after the other on one thread, ~1.25× less than on both cores; Adult's
    tiny MLPs ~1.1× (Python's lock serialises their many short operations). Each run gives the
    floats it gives alone on one thread, on any number of cores: it seeds its model under a
    lock (:func:`build_seeded`) and draws its batches from its own generator.

    A job that asks for jobs side by side (a search whose runner trains several runs) runs
    them one after the other in its own thread: at most ``workers`` threads ever compute
    (``workers=1``: everything one after the other).
    """
    if workers is None:  # inside a lone job of a side_by_side call: that call's number
        workers = getattr(_THIS_THREAD, "limit", None) or default_workers()
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}.")
    if getattr(_THIS_THREAD, "in_job", False):
        return [job() for job in jobs]
    if workers == 1:  # the jobs' own jobs too: one after the other
        _THIS_THREAD.in_job = True
        try:
            return [job() for job in jobs]
        finally:
            _THIS_THREAD.in_job = False
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if len(jobs) < 2:  # a lone job runs here; its own jobs get the same number of workers
            _THIS_THREAD.limit, outer = workers, getattr(_THIS_THREAD, "limit", None)
            try:
                return [job() for job in jobs]
            finally:
                _THIS_THREAD.limit = outer
        with ThreadPoolExecutor(min(workers, len(jobs)), initializer=setattr,
                                initargs=(_THIS_THREAD, "in_job", True)) as pool:
            futures = [pool.submit(job) for job in jobs]
            try:
                return [future.result() for future in futures]
            finally:
                for future in futures:  # after an error or an interrupt, start no further job
                    future.cancel()
    finally:
        torch.set_num_threads(threads)
