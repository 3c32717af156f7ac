"""What the protocol returns: one training run, one arm's search, one paired comparison.

* :class:`Run` — one training run: its settings, metrics at the kept epoch, history, model;
* :class:`Tuned` — the search an arm got on validation, every run of it kept;
* :class:`Comparison` — paired runs of several arms, with the tables a notebook shows:
  mean ± std per arm (:meth:`Comparison.table`) and paired differences with intervals
  (:meth:`Comparison.differences`).

:mod:`~mtl_helpers.protocol` makes them; they are re-exported there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from .metrics import PairedDifference, format_mean_std, paired_difference
from .train import History


@dataclass
class Run:
    """One training run: its settings, its validation and test metrics at the kept epoch, its
    history, time and model. The only result type of the course's training helpers."""

    arm: str
    seed: int
    lr: float
    setting: Any
    val: dict[str, float]
    test: dict[str, float]
    best_epoch: int
    max_epochs: int
    steps: int  # optimisation steps taken up to the kept epoch
    seconds: float
    history: History | None = None
    model: nn.Module | None = None
    options: dict | None = None  # the fit options it trained with (e.g. the balancer, to inspect it)


@dataclass
class Tuned:
    """The search an arm got: every (lr, setting) tried on validation and the one chosen."""

    arm: str
    lr: float
    setting: Any
    runs: dict[tuple[float, Any], list[Run]]

    @property
    def n_runs(self) -> int:
        return sum(len(r) for r in self.runs.values())

    def budget_text(self) -> str:
        lrs = sorted({lr for lr, _ in self.runs})
        settings = list(dict.fromkeys(v for _, v in self.runs))
        knob = f" × {len(settings)} settings" if settings != [None] else ""
        grid = f"lr {lrs[0]:g}" if len(lrs) == 1 else f"{len(lrs)} lrs"
        return f"{grid}{knob}, best epoch of ≤ {max(r.max_epochs for rs in self.runs.values() for r in rs)}"


@dataclass
class Comparison:
    """Paired runs of several arms: ``runs[arm][i]`` used ``seeds[i]``."""

    seeds: list[int]
    runs: dict[str, list[Run]]
    tuned: dict[str, Tuned] = field(default_factory=dict)

    def values(self, arm: str, task: str, split: str = "test") -> list[float]:
        if arm not in self.runs:
            raise ValueError(f"Unknown arm {arm!r}; the arms are {list(self.runs)}.")
        return [getattr(r, split)[task] for r in self.runs[arm]]

    def difference(self, a: str, b: str, task: str, split: str = "test") -> PairedDifference:
        """Paired difference a − b of ``task``'s metric over the seeds."""
        return paired_difference(self.values(a, task, split), self.values(b, task, split))

    def table(self, split: str = "test", digits: int = 4) -> pd.DataFrame:
        """Per arm: mean ± std of every task's metric, the chosen lr and setting, the kept
        epochs and the search it got."""
        rows = {}
        tasks = list(dict.fromkeys(t for runs in self.runs.values() for t in runs[0].test))
        for name, runs in self.runs.items():
            row = {task: format_mean_std([getattr(r, split)[task] for r in runs], digits) if task in runs[0].test
                   else "" for task in tasks}
            tuned = self.tuned.get(name)
            row |= {"lr": runs[0].lr, "setting": runs[0].setting,
                    "best epoch": f"{int(np.median([r.best_epoch for r in runs]))}/{runs[0].max_epochs}",
                    "search": tuned.budget_text() if tuned else "given"}
            rows[name] = row
        return pd.DataFrame(rows).T.fillna("")

    def differences(self, reference: str, split: str = "test") -> pd.DataFrame:
        """Every other arm minus ``reference``, per shared task, paired: mean [95 % interval]."""
        tasks = list(self.runs[reference][0].test)
        return pd.DataFrame({name: {t: str(self.difference(name, reference, t, split)) for t in tasks
                                    if t in self.runs[name][0].test}
                             for name in self.runs if name != reference}).T.fillna("")
