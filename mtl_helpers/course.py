"""The course's standard datasets, their budgets, and the stored single-task baselines.

This is course configuration, not a method: the method modules never import it. A notebook
loads a dataset here and gets it with its :class:`~mtl_helpers.data.Budget` attached; every
arm trained on it (single-task or multi-task) then gets that budget through the protocol.

* :data:`BUDGETS` — per dataset, what every model gets;
* :func:`load_course_dataset` — the standard data (fixed data seed: every notebook sees the
  same splits), budget attached;
* :func:`single_task_arm` — the baseline of one task: the standard network with one head;
* :func:`reference_baselines` — the stored result of the baseline protocol (written by
  ``python -m mtl_helpers.course``), so later notebooks need not retrain the baselines;
  notebook 01 re-runs the protocol and checks that it still agrees.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

from .data import Budget, MultiTaskDataset, load_adult, load_income_and_regression, load_multimnist
from .models import standard_network
from .protocol import Arm, Comparison, compare

REFERENCE_FILE = Path(__file__).with_name("reference_baselines.json")
SEEDS = (0, 1, 2)

BUDGETS: dict[str, Budget] = {
    "multimnist": Budget(epochs=6, batch_size=128, lrs=(3e-3, 1e-2, 3e-2), trunk_width=64, head_hidden=32),
    "adult": Budget(epochs=5, batch_size=256, lrs=(1e-3, 3e-3, 1e-2), trunk_width=64, head_hidden=16),
}
DATASETS = ("multimnist", "adult", "adult_income_hours")


def load_course_dataset(name: str) -> MultiTaskDataset:
    """A course dataset with its budget: ``"multimnist"`` (6 000 / 1 000 / 2 000 pairs),
    ``"adult"`` (all of it) or ``"adult_income_hours"`` (notebook 04's unbalanced pair: income
    and hours-per-week in raw units, 12 000 training rows, Adult's budget)."""
    if name == "multimnist":
        return load_multimnist(budget=BUDGETS["multimnist"])
    if name == "adult":
        return load_adult(budget=BUDGETS["adult"])
    if name == "adult_income_hours":
        return load_income_and_regression("hours_per_week", n_train=12_000, budget=BUDGETS["adult"])
    raise ValueError(f"Unknown course dataset {name!r}; choose one of {DATASETS}.")


def single_task_arm(dataset: MultiTaskDataset, task: str, name: str | None = None) -> Arm:
    """The single-task baseline of ``task``: the standard network with that one head."""
    dataset.task(task)  # a clear error for an unknown task
    return Arm(name or f"STL {task}", lambda _: standard_network(dataset, [task]), tasks=[task])


def run_baselines(dataset: MultiTaskDataset, seeds: tuple[int, ...] = SEEDS) -> Comparison:
    """Every task's single-task baseline through the protocol: lr × training length tuned on
    validation with the first seed, then the test metric for every seed."""
    return compare([single_task_arm(dataset, t.name) for t in dataset.tasks], dataset, seeds)


def baseline_record(comparison: Comparison, dataset: MultiTaskDataset) -> dict:
    """The JSON-able summary of :func:`run_baselines`, one entry per task."""
    out = {}
    for task in dataset.tasks:
        arm = f"STL {task.name}"
        runs, tuned = comparison.runs[arm], comparison.tuned[arm]
        out[task.name] = {
            "metric": task.metric_name, "lr": runs[0].lr, "seeds": list(comparison.seeds),
            "test": [r.test[task.name] for r in runs], "best_epoch": [r.best_epoch for r in runs],
            "max_epochs": runs[0].max_epochs,
            "val_by_lr": {str(lr): rs[0].val[task.name] for (lr, _), rs in tuned.runs.items()},
            "val_curves": {str(lr): [round(rec[f"val/{task.name}"], 4) for rec in rs[0].history.records
                                     if f"val/{task.name}" in rec] for (lr, _), rs in tuned.runs.items()},
            "seconds_per_run": runs[0].seconds}
    return out


def reference_baselines(dataset: str | None = None) -> dict:
    """The stored baseline results: every dataset's (with the protocol) or one dataset's."""
    stored = json.loads(REFERENCE_FILE.read_text())
    if dataset is None:
        return stored
    if dataset not in stored["results"]:
        raise ValueError(f"No stored baselines for {dataset!r}; there are {list(stored['results'])}.")
    return stored["results"][dataset]


def write_reference_baselines(path: Path = REFERENCE_FILE) -> dict:
    """Run the baseline protocol on MultiMNIST and Adult and store it (about a minute)."""
    import torch

    results = {}
    for name in ("multimnist", "adult"):
        dataset = load_course_dataset(name)
        results[name] = baseline_record(run_baselines(dataset), dataset)
    out = {"protocol": "lr x training length tuned on validation with seed 0 (best epoch), test metric per seed",
           "torch": torch.__version__, "budgets": {k: asdict(v) for k, v in BUDGETS.items()}, "results": results}
    path.write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":  # python -m mtl_helpers.course
    import torch

    # The test suite runs one thread per process; so does this, which makes the stored numbers
    # the ones a test run reproduces (thread count changes float summation order).
    torch.set_num_threads(1)
    json.dump(write_reference_baselines()["results"], sys.stdout, indent=1)
