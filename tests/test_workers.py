"""Tests of training runs side by side (mtl_helpers.workers) and of the protocol using it."""

from __future__ import annotations

import functools
import multiprocessing
import os
import threading
import time

import pytest
import torch

from mtl_helpers import workers
from mtl_helpers.batched import batched_runner
from mtl_helpers.data import Budget, MultiTaskDataset, Split
from mtl_helpers.experiments.nb04 import grid_runner, weighting_arm
from mtl_helpers.models import coupling_penalty, make_soft_sharing, standard_network
from mtl_helpers.protocol import Arm, compare, reusing_runner, sequential_runner
from mtl_helpers.tasks import Task
from mtl_helpers.weighting import StaticWeighting
from mtl_helpers.workers import build_seeded, default_workers, parallel_kind, shares_memory, side_by_side

TASKS = [Task("a", "binary"), Task("b", "binary")]


def tiny() -> MultiTaskDataset:
    g = torch.Generator().manual_seed(0)

    def split(m: int) -> Split:
        x = torch.randn(m, 6, generator=g)
        return Split(x, {"a": (x[:, 0] > 0).float(), "b": (x[:, 0] + x[:, 1] > 0).float()})
    return MultiTaskDataset("tiny", TASKS, split(128), split(64), split(64),
                            Budget(epochs=3, batch_size=32, lrs=(1e-3, 3e-2), trunk_width=8, head_hidden=4))


DATA = tiny()
FORKS = parallel_kind() == "processes"  # Linux: runs side by side in forked processes
KINDS = ["threads", pytest.param("processes", marks=pytest.mark.skipif(not FORKS, reason="no fork here"))]


@pytest.fixture
def threads_only(monkeypatch):
    """Jobs that talk to each other through this process's memory (events, counters) need threads."""
    monkeypatch.setenv("MTL_PARALLEL", "threads")


@pytest.mark.parametrize("kind", KINDS)
def test_side_by_side_runs_jobs_at_once_and_keeps_their_order(kind, monkeypatch):
    """Two jobs that each wait for the other can only finish if they run at the same time."""
    monkeypatch.setenv("MTL_PARALLEL", kind)
    meet = (threading.Barrier if kind == "threads" else multiprocessing.get_context("fork").Barrier)(2, timeout=30)

    def job(i: int):
        return lambda: (meet.wait(), i, torch.get_num_threads(), os.getpid())[1:]
    results = side_by_side([job(0), job(1)], workers=2)
    assert [r[:2] for r in results] == [(0, 1), (1, 1)]  # in order, one torch thread each
    pids = {r[2] for r in results}
    assert pids == {os.getpid()} if kind == "threads" else (len(pids) == 2 and os.getpid() not in pids)


def test_parallel_kind_forks_on_linux_unless_told_or_the_jobs_share_memory(monkeypatch):
    monkeypatch.delenv("MTL_PARALLEL", raising=False)
    monkeypatch.setenv("MTL_DEVICE", "cpu")
    expected = "processes" if os.uname().sysname == "Linux" else "threads"
    assert parallel_kind([lambda: 1]) == expected
    assert parallel_kind([functools.partial(shares_memory(lambda **_: 1), device="cpu")]) == "threads"
    assert parallel_kind([functools.partial(reusing_runner({}), DATA)]) == "threads"  # its cache is shared
    earlier = reusing_runner({}, earlier=(DATA, []))  # the sources' runs known before any job starts
    assert parallel_kind([functools.partial(earlier, DATA)]) == expected
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)  # CUDA does not survive a fork
    assert parallel_kind([lambda: 1]) == "threads"
    monkeypatch.undo()
    monkeypatch.setenv("MTL_DEVICE", "cuda")  # the course computes on a GPU: threads
    assert parallel_kind([lambda: 1]) == "threads"
    monkeypatch.delenv("MTL_DEVICE")
    monkeypatch.setenv("MTL_PARALLEL", "threads")
    assert parallel_kind([lambda: 1]) == "threads"
    monkeypatch.setenv("MTL_PARALLEL", "forks")
    with pytest.raises(ValueError, match="MTL_PARALLEL must be one of"):
        parallel_kind([lambda: 1])


@pytest.mark.skipif(not FORKS, reason="no fork here")
def test_forked_jobs_return_closures_raise_errors_and_run_their_own_jobs_in_their_process(monkeypatch):
    monkeypatch.delenv("MTL_PARALLEL", raising=False)
    scale = 3.0
    closures = side_by_side([lambda: (lambda x: scale * x), lambda: {"penalty": lambda x: -x}], workers=2)
    assert closures[0](2.0) == 6.0 and closures[1]["penalty"](1.0) == -1.0  # pickled by value (cloudpickle)

    def nested():
        return os.getpid(), side_by_side([os.getpid, os.getpid], workers=2)
    for pid, inner in side_by_side([nested, nested], workers=2):
        assert pid != os.getpid() and inner == [pid, pid]  # never more than 2 processes computing
    with pytest.raises(ValueError, match="bad seed 7"):
        side_by_side([lambda: 1, lambda: (_ for _ in ()).throw(ValueError("bad seed 7"))], workers=2)


@pytest.mark.skipif(not FORKS, reason="no fork here")
def test_a_forked_jobs_error_stops_the_other_workers_instead_of_waiting_for_them(monkeypatch):
    monkeypatch.delenv("MTL_PARALLEL", raising=False)
    never = multiprocessing.get_context("fork").Event()  # nobody sets it: the first job would wait 300 s
    start = time.monotonic()
    with pytest.raises(ValueError, match="bad seed 8"):
        side_by_side([lambda: never.wait(300), lambda: (_ for _ in ()).throw(ValueError("bad seed 8"))], workers=2)
    assert time.monotonic() - start < 150  # stopped, not waited for (typically well under a second)
    assert multiprocessing.active_children() == []


def test_side_by_side_computes_on_one_thread_even_for_one_job():
    """A run's floats must not depend on the cores: one job alone also computes on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert side_by_side([torch.get_num_threads], workers=2) == [1]
        assert side_by_side([torch.get_num_threads], workers=1) == [2]  # workers=1: torch's own threads
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_side_by_side_alone_runs_in_order_and_restores_torch_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = []
        assert side_by_side([lambda i=i: seen.append(i) or i for i in range(3)], workers=1) == [0, 1, 2]
        assert seen == [0, 1, 2]
        with pytest.raises(RuntimeError, match="boom"):
            side_by_side([lambda: 1, lambda: (_ for _ in ()).throw(RuntimeError("boom"))], workers=2)
        assert torch.get_num_threads() == 2  # set back after a failed job too
    finally:
        torch.set_num_threads(before)


def test_workers_must_be_positive(monkeypatch):
    with pytest.raises(ValueError, match="workers must be >= 1"):
        side_by_side([lambda: 1], workers=0)
    monkeypatch.setenv("MTL_WORKERS", "0")
    with pytest.raises(ValueError, match="MTL_WORKERS"):
        default_workers()


def test_default_workers_reads_the_environment_then_the_cores(monkeypatch):
    monkeypatch.setenv("MTL_WORKERS", "3")
    assert default_workers() == 3
    monkeypatch.delenv("MTL_WORKERS")
    monkeypatch.setenv("MTL_DEVICE", "cpu")
    monkeypatch.setattr(workers.os, "sched_getaffinity", lambda _: set(range(16)), raising=False)
    assert default_workers() == 4
    monkeypatch.setattr(workers.os, "sched_getaffinity", lambda _: {0, 1}, raising=False)
    assert default_workers() == 2
    monkeypatch.setenv("MTL_DEVICE", "cuda")  # get_device() names the GPU: one run at a time
    assert default_workers() == 1


def test_build_seeded_builds_under_the_lock_with_the_seeds_weights():
    def build(_):
        assert workers._GLOBAL_RNG.locked(), "another run could draw from the generator here"
        return standard_network(DATA)
    a, b = build_seeded(build, None, 5), build_seeded(build, None, 5)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    c = build_seeded(build, None, 6)
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))


@pytest.mark.parametrize("kind", KINDS)
def test_compare_side_by_side_gives_the_same_runs_as_one_after_the_other(kind, monkeypatch):
    """Both arms, both lrs and three seeds: the same choices, metrics, epochs and weights."""
    monkeypatch.setenv("MTL_PARALLEL", kind)
    arms = [Arm("MTL", lambda _: standard_network(DATA)),
            Arm("STL a", lambda _: standard_network(DATA, ["a"]), tasks=["a"])]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # side by side computes on one thread: compare it with one thread
    try:
        alone = compare(arms, DATA, seeds=[0, 1, 2], workers=1)
        together = compare(arms, DATA, seeds=[0, 1, 2], workers=2)
    finally:
        torch.set_num_threads(threads)
    for name in alone.runs:
        assert alone.tuned[name].lr == together.tuned[name].lr
        for r1, r2 in zip(alone.runs[name], together.runs[name], strict=True):
            assert (r1.seed, r1.val, r1.test, r1.best_epoch) == (r2.seed, r2.val, r2.test, r2.best_epoch)
            assert all(torch.equal(p, q) for p, q in zip(r1.model.parameters(), r2.model.parameters()))


def test_a_reusing_runner_side_by_side_returns_the_sources_runs():
    built = []
    equal = Arm("equal", lambda _: built.append("equal") or standard_network(DATA))
    alias = Arm("alias", lambda _: built.append("alias") or standard_network(DATA))
    result = compare([equal, alias], DATA, seeds=[0, 1], runner=reusing_runner({("alias", None): "equal"}),
                     workers=2)
    for r1, r2 in zip(result.runs["equal"], result.runs["alias"], strict=True):
        assert r2.arm == "alias" and (r1.seed, r1.lr, r1.test) == (r2.seed, r2.lr, r2.test)
    assert built.count("equal") == 3  # 2 lrs at seed 0, then seed 1 at the chosen lr


def test_jobs_asked_for_inside_a_job_run_in_its_thread(threads_only):
    def inner() -> int:
        return threading.get_ident()

    def outer() -> tuple[int, list[int]]:
        return threading.get_ident(), side_by_side([inner, inner], workers=2)
    for me, inners in side_by_side([outer, outer], workers=2):
        assert inners == [me, me]  # never more than 2 threads computing
    me, inners = side_by_side([outer], workers=1)[0]
    assert me == threading.get_ident() and inners == [me, me]  # workers=1: all one after the other


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batched", ["coupling", "static grid"])
def test_the_batched_runners_give_the_same_runs_side_by_side(batched, kind, monkeypatch):
    """notebook 03's batched runner and notebook 04's grid runner train their seeds side by side."""
    monkeypatch.setenv("MTL_PARALLEL", kind)
    if batched == "coupling":
        arm = Arm("coupling", lambda _: make_soft_sharing(DATA), settings=[0.0, 1.0], penalty=coupling_penalty)
        runner = batched_runner
    else:
        arm = weighting_arm("static", DATA, lambda model, lam: StaticWeighting((1 - lam, lam)), settings=[0.2, 0.8])
        runner = grid_runner
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        monkeypatch.setenv("MTL_WORKERS", "1")
        alone = runner(arm, DATA, 1e-2, arm.settings, [0, 1, 2])
        monkeypatch.setenv("MTL_WORKERS", "2")
        together = runner(arm, DATA, 1e-2, arm.settings, [0, 1, 2])
    finally:
        torch.set_num_threads(threads)
    for r1, r2 in zip(alone, together, strict=True):
        assert (r1.seed, r1.setting, r1.val, r1.test, r1.best_epoch) == (r2.seed, r2.setting, r2.val, r2.test,
                                                                         r2.best_epoch)
        assert all(torch.equal(p, q) for p, q in zip(r1.model.parameters(), r2.model.parameters()))


def test_an_alias_waits_for_its_source_run_in_training_instead_of_training_it_again(threads_only):
    started, release = threading.Event(), threading.Event()

    def slow(arm, dataset, lr, settings, seeds, device=None):
        if arm.name == "equal":  # the source: hold its run in training until released
            started.set()
            release.wait(30)
        return sequential_runner(arm, dataset, lr, settings, seeds, device=device)

    def never(_):
        raise AssertionError("the alias was trained although its source's run was in training")
    runner = reusing_runner({("alias", None): "equal"}, slow)
    equal, alias = Arm("equal", lambda _: standard_network(DATA)), Arm("alias", never)

    def ask_for_the_alias():
        started.wait(30)
        threading.Timer(0.5, release.set).start()  # the source finishes only after the alias asked
        return runner(alias, DATA, 1e-2, [None], [0])
    source, copy = side_by_side([lambda: runner(equal, DATA, 1e-2, [None], [0]), ask_for_the_alias], workers=2)
    assert copy[0].arm == "alias" and copy[0].test == source[0].test and copy[0].model is source[0].model


def test_a_lone_jobs_own_jobs_keep_the_callers_number_of_workers(threads_only, monkeypatch):
    """compare(workers=2) with one arm and one lr: the runner's runs inside still use 2 threads."""
    monkeypatch.setenv("MTL_WORKERS", "4")
    lock, active, most = threading.Lock(), [0], [0]

    def inner() -> None:
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        threading.Event().wait(0.2)  # long enough for 4 threads to overlap if there were 4
        with lock:
            active[0] -= 1
    side_by_side([lambda: side_by_side([inner] * 4)], workers=2)
    assert most[0] == 2
