"""The fair-comparison protocol: every arm gets the same search, the same seeds, paired.

A comparison in this course (STL vs MTL, coupling vs weight decay, weighting A vs B, a
gradient method vs equal weights) is a set of :class:`Arm` s run on one dataset:

1. **Same search for every arm, on validation only** (:func:`tune`): every learning rate of
   the dataset's :class:`~mtl_helpers.data.Budget` × the arm's own setting (α, c, λ …), and
   the training length: each run may take the budget's number of optimisation steps (an arm
   on fewer rows gets more epochs, :meth:`Budget.max_epochs`) and keeps its best epoch on
   validation. The search an arm used is recorded beside its result (:class:`Tuned`).
2. **Same seeds, paired** (:func:`compare`): seed s gives every arm the same initial-weight
   stream and the same batch order; each arm's chosen setting is run for every seed.
3. **Differences, not just levels**: :meth:`Comparison.difference` is the paired difference
   over seeds with a t-interval, and :func:`claim_difference` states a direction only when the
   interval excludes zero.

One training run is :func:`run`, and every run, however it was trained, is a :class:`Run`
(:mod:`~mtl_helpers.results`, with :class:`Tuned` and :class:`Comparison`). A
runner trains an arm's runs (:func:`sequential_runner`); :func:`reusing_runner` hands back a
run already trained under another name instead of training it twice.

:func:`tune` and :func:`compare` train independent runs side by side, one per CPU core
(:mod:`~mtl_helpers.workers`): the same floats as one after the other, in less time.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .data import MultiTaskDataset, Split
from .metrics import PairedDifference
from .results import Comparison, Run, Tuned
from .tasks import Task
from .train import evaluate, fit, selection_score
from .utils import claim
from .workers import build_seeded, shares_memory, side_by_side


@dataclass
class Arm:
    """One contender of a comparison.

    Attributes:
        name: how tables and claims call it.
        build: ``build(setting) -> model``, called right after ``seed_everything(seed)``.
        tasks: the tasks it trains on (default: all of the dataset's).
        settings: the arm's own knob, searched on validation together with the learning rate
            (``(None,)``: no knob).
        options: ``options(model, setting) -> dict`` of extra :func:`~mtl_helpers.train.fit`
            arguments (``weighting``, ``gradient_method``, ``weight_decay`` …).
        penalty: a term added to the loss, weighted by the setting: loss + setting · penalty(model)
            (the L2 coupling of notebook 03). Arms built this way can also train batched.
        train: the rows it may learn from, ``train(seed) -> Split`` (default: the dataset's
            training split), e.g. the labelled rows of a masked split.
        score: the validation score it is selected on (default: mean metric, sign by direction).
    """

    name: str
    build: Callable[[Any], nn.Module]
    tasks: Sequence[str] | None = None
    settings: Sequence[Any] = (None,)
    options: Callable[[nn.Module, Any], dict] | None = None
    penalty: Callable[[nn.Module], Tensor] | None = None
    train: Callable[[int], Split] | None = None
    score: Callable[[dict[str, float]], float] | None = None

    def __post_init__(self) -> None:
        if not self.settings:
            raise ValueError(f"Arm {self.name!r}: settings must list at least one value ((None,) for no knob).")

    def task_list(self, dataset: MultiTaskDataset) -> list[Task]:
        return [dataset.task(n) for n in (self.tasks if self.tasks is not None else dataset.task_names)]

    def fit_options(self, model: nn.Module, setting: Any) -> dict:
        options = dict(self.options(model, setting)) if self.options is not None else {}
        if self.penalty is not None:
            weight, fn = float(setting), self.penalty
            options["penalty"] = lambda m: weight * fn(m)
        return options


def run(arm: Arm, dataset: MultiTaskDataset, *, lr: float, seed: int, setting: Any = None,
        max_epochs: int | None = None, device: torch.device | str | None = None) -> Run:
    """Train ``arm`` once (seeded) with the dataset's budget; keep the best epoch on validation.

    ``max_epochs`` defaults to the budget's number of steps on this arm's training rows
    (:meth:`Budget.max_epochs`); validation is checked at most ~40 times per run.
    """
    budget = dataset.require_budget()
    tasks = arm.task_list(dataset)
    train = arm.train(seed) if arm.train is not None else dataset.train
    epochs = max_epochs or budget.max_epochs(len(train), len(dataset.train))
    model = build_seeded(arm.build, setting, seed)
    if device is not None:
        model.to(device)
    options = arm.fit_options(model, setting)
    score = arm.score or (lambda metrics: selection_score(metrics, tasks))
    start = time.perf_counter()
    history = fit(model, train, tasks, epochs=epochs, lr=lr, batch_size=budget.batch_size, val=dataset.val,
                  restore_best=True, score=score, val_every=max(1, epochs // 40), seed=seed, verbose=False,
                  **options)
    seconds = time.perf_counter() - start
    steps = history.best_epoch * budget.steps_per_epoch(len(train))
    kept = history.records[history.best_epoch - 1]  # fit validated the kept weights: no second pass
    val = {t.name: kept[f"val/{t.name}"] for t in tasks}
    return Run(arm.name, seed, lr, setting, val, evaluate(model, dataset.test, tasks),
               history.best_epoch, epochs, steps, seconds, history, model, options)


Runner = Callable[[Arm, MultiTaskDataset, float, Sequence[Any], Sequence[int]], list[Run]]


def sequential_runner(arm: Arm, dataset: MultiTaskDataset, lr: float, settings: Sequence[Any],
                      seeds: Sequence[int], device: torch.device | str | None = None) -> list[Run]:
    """Every (setting, seed) pair at one learning rate, one :func:`run` each: the runs side by side."""
    return side_by_side([functools.partial(run, arm, dataset, lr=lr, seed=s, setting=v, device=device)
                         for v in settings for s in seeds])


def on_device(runner: Runner | None, device: torch.device | str | None) -> Runner:
    """``runner`` (default :func:`sequential_runner`) training on ``device``.

    ``device=None`` leaves the runner's own choice alone: ``partial(sequential_runner,
    device="cuda")`` keeps its GPU (passing ``device=None`` on would silently train on the CPU).
    """
    runner = runner or sequential_runner
    return runner if device is None else functools.partial(runner, device=device)


def reusing_runner(aliases: Mapping[tuple[str, Any], str], runner: Runner = sequential_runner,
                   earlier: tuple[MultiTaskDataset, Sequence[Run]] | None = None) -> Runner:
    """A protocol runner that does not train the same run twice under two names.

    ``aliases[(arm, setting)] = other`` declares that ``arm`` at ``setting`` trains exactly as
    the arm ``other`` (same model, same loss, same seeds, same data): e.g. notebook 05's static
    weighting at λ = ½ is the plain sum, ``{("static λ (tuned)", 0.5): "equal weights"}``. Once
    ``other`` has run at a learning rate and seed on a dataset, the request for ``arm`` at
    ``setting`` gets that run back (renamed); anything else is trained by ``runner``. Give
    ``other`` first in ``compare``, or pass its runs trained earlier as ``earlier = (dataset,
    runs)`` (notebook 02: the split after the whole trunk *is* the standard network). Side by
    side, a request for a run of ``other`` still in training waits for it: the runs train in
    threads. With ``earlier`` they may train in forked processes
    (:func:`~mtl_helpers.workers.side_by_side`), which find ``earlier`` in their copy of memory;
    a run of ``other`` trained through this runner there is not seen by the other processes,
    which train it again (the same floats, more time): give ``earlier`` every run of ``other``.
    """
    sources = set(aliases.values())
    done: dict[tuple[int, str, float, int], Future] = {}  # the sources' runs: trained, or in training
    lock = threading.Lock()
    for r in earlier[1] if earlier is not None else []:
        done[(id(earlier[0]), r.arm, r.lr, r.seed)] = finished = Future()
        finished.set_result(r)

    def one(arm: Arm, dataset: MultiTaskDataset, lr: float, setting: Any, seed: int, device: Any) -> Run:
        with lock:  # side by side, an alias waits for its source's run if that is in training
            source = done.get((id(dataset), aliases.get((arm.name, setting)), lr, seed))
            mine = None
            if source is None and arm.name in sources:
                mine = done[(id(dataset), arm.name, lr, seed)] = Future()
        if source is not None:
            return dataclasses.replace(source.result(), arm=arm.name, setting=setting)
        try:
            result = on_device(runner, device)(arm, dataset, lr, [setting], [seed])[0]
        except BaseException as error:  # a waiting alias gets the error too
            if mine is not None:
                mine.set_exception(error)
            raise
        if mine is not None:
            mine.set_result(result)
        return result

    def run_all(arm: Arm, dataset: MultiTaskDataset, lr: float, settings: Sequence[Any], seeds: Sequence[int],
                device: torch.device | str | None = None) -> list[Run]:
        return side_by_side([functools.partial(one, arm, dataset, lr, v, s, device) for v in settings for s in seeds])

    # Without `earlier`, one job trains a source's run and another waits for it in `done`: side by
    # side they must share this process's memory (threads). With `earlier` the sources' runs exist
    # before any job starts, and forked processes find them in their copy of `done`.
    return run_all if earlier is not None else shares_memory(run_all)


def tune(arm: Arm, dataset: MultiTaskDataset, seeds: Sequence[int] = (0,), runner: Runner | None = None,
         device: torch.device | str | None = None, lrs: Sequence[float] | None = None,
         workers: int | None = None) -> Tuned:
    """Grid-search learning rate × the arm's setting on validation (mean score over ``seeds``);
    the training length is each run's best epoch. Returns every run and the choice.

    ``lrs`` replaces the budget's grid (e.g. one lr, to save time): give every arm the same one,
    and say so — :meth:`Tuned.budget_text` records it beside the result. Runs: side by side."""
    return _tune_all([arm], dataset, seeds, on_device(runner, device), lrs, workers)[0]


def _tune_all(arms: Sequence[Arm], dataset: MultiTaskDataset, seeds: Sequence[int], runner: Runner,
              lrs: Sequence[float] | None, workers: int | None) -> list[Tuned]:
    """:func:`tune` for every arm, all their runner calls (one per arm and lr) side by side."""
    grid = tuple(lrs) if lrs is not None else dataset.require_budget().lrs
    if not grid:
        raise ValueError("tune needs at least one learning rate.")
    calls = [(arm, lr) for arm in arms for lr in grid]
    jobs = [functools.partial(runner, arm, dataset, lr, list(arm.settings), list(seeds)) for arm, lr in calls]
    batches = side_by_side(jobs, workers)
    out = []
    for arm in arms:
        score = arm.score or functools.partial(selection_score, tasks=arm.task_list(dataset))
        runs = {(lr, v): [r for r in batch if r.setting == v]
                for (called, lr), batch in zip(calls, batches) if called is arm for v in arm.settings}
        best = max(runs, key=lambda key: float(np.mean([score(r.val) for r in runs[key]])))
        out.append(Tuned(arm.name, best[0], best[1], runs))
    return out


def compare(arms: Sequence[Arm], dataset: MultiTaskDataset, seeds: Sequence[int] = (0, 1, 2),
            tune_seeds: Sequence[int] | None = None, runner: Runner | None = None,
            device: torch.device | str | None = None, lrs: Sequence[float] | None = None,
            workers: int | None = None) -> Comparison:
    """Tune every arm alike (:func:`tune` with ``tune_seeds``, default the first seed, and the
    same ``lrs``), then run each arm's choice with every seed; the tuning runs are reused for
    their seeds. To give every arm a smaller search (one lr: ``lrs=[lr]``; fewer epochs: a
    dataset with a smaller budget, ``dataset.with_budget(dataclasses.replace(budget, epochs=2))``),
    say so in the text: the table's "search" column shows it. Runs train side by side
    (:func:`~mtl_helpers.workers.side_by_side`): every arm's search, then the other seeds."""
    if not arms or not seeds:
        raise ValueError("compare needs at least one arm and one seed.")
    names = [a.name for a in arms]
    if len(set(names)) != len(names):
        raise ValueError(f"Arm names must be unique, got {names}.")
    runner = on_device(runner, device)
    tuned = _tune_all(arms, dataset, [seeds[0]] if tune_seeds is None else tune_seeds, runner, lrs, workers)
    done = {arm.name: {r.seed: r for r in t.runs[(t.lr, t.setting)]} for arm, t in zip(arms, tuned)}
    missing = [(arm, t, s) for arm, t in zip(arms, tuned) for s in seeds if s not in done[arm.name]]
    jobs = [functools.partial(runner, arm, dataset, t.lr, [t.setting], [s]) for arm, t, s in missing]
    for (arm, _, seed), runs in zip(missing, side_by_side(jobs, workers)):
        done[arm.name][seed] = runs[0]
    return Comparison(list(seeds), {a.name: [done[a.name][s] for s in seeds] for a in arms},
                      {a.name: t for a, t in zip(arms, tuned)})


def claim_difference(text: str, difference: PairedDifference, expected: int) -> None:
    """Claim the sign of a paired difference a − b: ``expected=+1`` when its whole interval lies
    above zero (a is higher), −1 below zero, 0 "no measurable difference" (it contains 0).
    Whether higher is better is the metric's business: for accuracy +1 says a is better, for a
    loss or an RMSE it says a is worse."""
    if expected not in (-1, 0, 1):
        raise ValueError(f"expected must be +1, -1 or 0, got {expected!r}.")
    claim(f"{text}: {difference} (95 % paired interval over {len(difference.values)} seeds)",
          difference.direction == expected)
