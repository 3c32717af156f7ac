"""Independent training runs side by side, one per CPU core, with the same results.

The protocol trains many runs that share nothing: every learning rate of a search, every
seed of a comparison. A small network's operations are too short to split among cores, so
running one after the other, each spread over all cores, leaves most of them waiting. Here
up to one run per core trains at once, each on one CPU thread:

* in **processes** where the operating system can fork them (Linux, the computation on the
  CPU): each worker is a copy of this process, the jobs included, so nothing is pickled on the
  way in; each job's result comes back pickled (``cloudpickle``: results may hold closures).
  Python's lock is per process, so two cores give about twice the runs per second even for a
  tiny MLP whose every step is a few hundred short operations;
* in **threads** elsewhere (macOS, Windows, a GPU), with ``MTL_PARALLEL=threads``, and for
  jobs that share memory with each other (a :func:`~mtl_helpers.protocol.reusing_runner`
  waits for a run that another job trains: such a function is marked
  :func:`shares_memory`). Threads help where the operations are long (convolutions) and
  little where Python's lock serialises them.

The runs must not share random state. Training draws batches from the run's own generator
(``fit(seed=...)``); only the initial weights come from torch's global generator, and
:func:`build_seeded` seeds and builds under a lock. A run therefore gives the same floats
side by side, in a thread or in a process, as alone on one thread.
"""

from __future__ import annotations

import functools
import itertools
import multiprocessing
import os
import pickle
import sys
import threading
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from typing import Any, TypeVar

import cloudpickle
import torch
from torch import nn

from .utils import get_device, seed_everything

_GLOBAL_RNG = threading.Lock()
_THIS_THREAD = threading.local()  # .in_job: True in a worker thread; .limit: the caller's workers
Result = TypeVar("Result")
_FORKED_JOBS: dict[int, Sequence[Callable[[], Any]]] = {}  # what a forked worker finds in its copy of memory
_CALLS = itertools.count()
PARALLEL_KINDS = ("processes", "threads")


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
    process may use, at most 4 (measured on 2 cores; in threads more contend for Python's lock,
    in processes each is one more copy of the kernel's memory); 1 where the course computes on a
    GPU (:func:`~mtl_helpers.utils.get_device`), where it was not measured."""
    if "MTL_WORKERS" in os.environ:
        workers = int(os.environ["MTL_WORKERS"])
        if workers < 1:
            raise ValueError(f"MTL_WORKERS must be a positive integer, got {workers}.")
        return workers
    if get_device().type != "cpu":
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(4, cores))


def shares_memory(fn: Callable) -> Callable:
    """Mark ``fn`` (a runner) as sharing memory between the jobs that call it: side by side they
    run in threads of this process, never in forked copies (e.g. a cache that one job fills
    and another reads)."""
    fn.shares_memory = True
    return fn


def _shares_memory(job: Callable) -> bool:
    while isinstance(job, functools.partial):
        if getattr(job, "shares_memory", False):
            return True
        job = job.func
    return getattr(job, "shares_memory", False)


def parallel_kind(jobs: Sequence[Callable[[], Any]] = ()) -> str:
    """How :func:`side_by_side` runs ``jobs`` at once: ``"processes"`` where this process can
    fork (Linux) and computes on the CPU, else ``"threads"``; ``MTL_PARALLEL=threads`` forces
    threads, and so does a job marked :func:`shares_memory`."""
    kind = os.environ.get("MTL_PARALLEL", "processes")
    if kind not in PARALLEL_KINDS:
        raise ValueError(f"MTL_PARALLEL must be one of {PARALLEL_KINDS}, got {kind!r}.")
    can_fork = sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()
    on_cpu = get_device().type == "cpu" and not torch.cuda.is_initialized()  # CUDA does not survive a fork
    if kind == "threads" or not can_fork or not on_cpu or any(map(_shares_memory, jobs)):
        return "threads"
    return "processes"


def side_by_side(jobs: Sequence[Callable[[], Result]], workers: int | None = None) -> list[Result]:
    """Every job's result, in order; up to ``workers`` (default :func:`default_workers`) at once.

    The jobs run in forked processes or in threads (:func:`parallel_kind`), and torch computes
    on one CPU thread meanwhile (set back after; ``workers=1`` leaves torch's threads alone).
    A small network's operations are too short to share among cores. On a 2-core CPU,
    notebook 02's low-data study (28 Adult MLP runs) took 15.8 s one after the other on one
    thread and 8.9 s in two processes; in two threads Adult's tiny MLPs gain only ~1.1×
    (Python's lock serialises their many short operations), MultiMNIST's conv nets ~1.8×. Each
    run gives the floats it gives alone on one thread, on any number of cores: it seeds its
    model under a lock (:func:`build_seeded`) and draws its batches from its own generator.

    A job that asks for jobs side by side (a search whose runner trains several runs) runs
    them one after the other in its own thread or process: at most ``workers`` ever compute
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
        if parallel_kind(jobs) == "processes":
            return _in_processes(jobs, min(workers, len(jobs)))
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


def _in_processes(jobs: Sequence[Callable[[], Result]], workers: int) -> list[Result]:
    """The jobs in ``workers`` forked copies of this process; results pickled back, in order.
    The first error (or an interrupt) stops every worker at once and is raised here."""
    import torch._dynamo  # noqa: F401  (every torch optimizer imports it once: 1-2 s, here rather than per worker)

    call = next(_CALLS)
    _FORKED_JOBS[call] = jobs
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"), initializer=_start_worker)
    try:
        with warnings.catch_warnings():  # Python >= 3.12 warns on a fork of a process with threads (Jupyter's)
            warnings.filterwarnings("ignore", message=".*fork.*", category=DeprecationWarning)
            futures = [pool.submit(_run_forked_job, call, i) for i in range(len(jobs))]
        for future in as_completed(futures):
            future.result()  # raises the first job's error as soon as it happens
        return [pickle.loads(future.result()) for future in futures]
    except BaseException:
        _stop_workers(pool)  # the other runs' results are not wanted: do not wait for them
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        del _FORKED_JOBS[call]


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    if hasattr(pool, "terminate_workers"):  # Python >= 3.14
        pool.terminate_workers()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):  # earlier: the executor's own list
        process.terminate()


def _start_worker() -> None:
    _THIS_THREAD.in_job = True  # a job's own jobs run one after the other in its process
    torch.set_num_threads(1)


def _run_forked_job(call: int, index: int) -> bytes:
    return cloudpickle.dumps(_FORKED_JOBS[call][index]())
