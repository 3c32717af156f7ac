"""The course's standard budget and its single-task baselines.

Every later notebook compares against the numbers defined here, so the *budget* (data,
architecture, epochs, batch size, learning-rate grid) lives in one place:

* :data:`BUDGETS` — per dataset, what every model gets;
* :func:`load_course_dataset` / :func:`make_model` — the standard data and network
  (a single-task net is the same network with one head);
* :func:`tune_lr` — pick the learning rate on the *validation* split;
* :func:`run_baselines` — tuned single-task nets, test metric over several seeds;
* :func:`reference_baselines` — the stored result of ``run_baselines`` (written by
  ``python -m mtl_helpers.baselines``), so later notebooks need not retrain them. Notebook 01
  re-runs the protocol and checks that it still agrees with the stored numbers.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from torch import nn

from .data import MultiTaskDataset, Split, load_adult, load_multimnist
from .models import ConvTrunk, HardSharing, make_head, mlp
from .train import evaluate, fit
from .utils import Timer, seed_everything

REFERENCE_FILE = Path(__file__).with_name("reference_baselines.json")
SEEDS = (0, 1, 2)


@dataclass(frozen=True)
class Budget:
    """What every model trained on a dataset gets, single-task or multi-task alike."""

    epochs: int
    batch_size: int
    lrs: tuple[float, ...]  # the grid searched on validation
    trunk_width: int
    head_hidden: int


BUDGETS: dict[str, Budget] = {
    "multimnist": Budget(epochs=6, batch_size=128, lrs=(3e-3, 1e-2, 3e-2), trunk_width=64, head_hidden=32),
    "adult": Budget(epochs=5, batch_size=256, lrs=(1e-3, 3e-3, 1e-2), trunk_width=64, head_hidden=16),
}


def _budget(name: str) -> Budget:
    if name not in BUDGETS:
        raise ValueError(f"Unknown course dataset {name!r}; choose one of {list(BUDGETS)}.")
    return BUDGETS[name]


def load_course_dataset(name: str) -> MultiTaskDataset:
    """The standard version of a course dataset (fixed data seed, so every notebook sees the
    same splits): MultiMNIST with 6 000 / 1 000 / 2 000 pairs, or all of Adult."""
    _budget(name)
    return load_multimnist() if name == "multimnist" else load_adult()


def make_model(dataset: MultiTaskDataset, task_names: Sequence[str] | None = None) -> HardSharing:
    """The standard network for ``dataset`` with a head for each task in ``task_names``
    (all tasks by default). One head = the single-task baseline; all heads = hard sharing."""
    budget = _budget(dataset.name)
    tasks = [dataset.task(n) for n in (task_names if task_names is not None else [t.name for t in dataset.tasks])]
    if not tasks:
        raise ValueError("make_model needs at least one task name.")
    width = budget.trunk_width
    if dataset.name == "multimnist":
        trunk = ConvTrunk(image_size=dataset.train.x.shape[-1], out_dim=width)
    else:
        trunk = mlp(dataset.train.x.shape[1], [width, width // 2])
        width //= 2
    return HardSharing(trunk, {t.name: make_head(width, t, (budget.head_hidden,)) for t in tasks})


def train_and_test(dataset: MultiTaskDataset, task_names: Sequence[str], lr: float, seed: int,
                   train: Split | None = None, build: Callable[[], nn.Module] | None = None, **fit_kwargs) -> dict:
    """Build the standard model (or ``build()``'s), train it with the dataset's budget, and
    report validation and test metrics and the training time. ``train`` replaces the training
    split (for learning curves); extra keyword arguments go to :func:`~mtl_helpers.train.fit`."""
    budget = _budget(dataset.name)
    tasks = [dataset.task(n) for n in task_names]
    fit_kwargs.setdefault("verbose", False)
    fit_kwargs.setdefault("epochs", budget.epochs)
    seed_everything(seed)
    model = build() if build is not None else make_model(dataset, task_names)
    with Timer() as t:
        history = fit(model, train if train is not None else dataset.train, tasks,
                      lr=lr, batch_size=budget.batch_size, seed=seed, **fit_kwargs)
    return {"val": evaluate(model, dataset.val, tasks), "test": evaluate(model, dataset.test, tasks),
            "seconds": t.seconds, "history": history, "model": model}


def tune_lr(dataset: MultiTaskDataset, task_names: Sequence[str], seed: int = 0,
            **fit_kwargs) -> tuple[float, dict[float, dict]]:
    """Grid-search the learning rate on the validation split (mean of the tasks' validation
    metrics; all course baselines are higher-is-better). Returns the best lr and every run;
    extra keyword arguments (e.g. ``device``) go to :func:`~mtl_helpers.train.fit`."""
    runs = {lr: train_and_test(dataset, task_names, lr, seed, val=dataset.val, **fit_kwargs)
            for lr in _budget(dataset.name).lrs}
    score = lambda lr: sum(runs[lr]["val"].values()) / len(task_names)  # noqa: E731
    return max(runs, key=score), runs


def run_baselines(dataset: MultiTaskDataset, seeds: Sequence[int] = SEEDS) -> dict[str, dict]:
    """Single-task baselines for every task: lr tuned on validation with the first seed,
    then test metrics for every seed (the tuning run is reused as the first seed's result)."""
    results = {}
    for task in dataset.tasks:
        best, runs = tune_lr(dataset, [task.name], seed=seeds[0])
        tests = [runs[best]["test"][task.name]]
        tests += [train_and_test(dataset, [task.name], best, s)["test"][task.name] for s in seeds[1:]]
        results[task.name] = {"metric": task.metric_name, "lr": best, "seeds": list(seeds), "test": tests,
                              "val_by_lr": {str(lr): r["val"][task.name] for lr, r in runs.items()},
                              "val_curves": {str(lr): r["history"].frame()[f"val/{task.name}"].round(4).tolist()
                                             for lr, r in runs.items()},
                              "seconds_per_run": runs[best]["seconds"]}
    return results


def learning_curve(dataset: MultiTaskDataset, task_name: str, sizes: Sequence[int], lr: float,
                   seeds: Sequence[int] = SEEDS, max_epochs: int = 30) -> dict[int, list[float]]:
    """Test metric of the single-task net trained on the first ``n`` rows of a random order
    of the training split, for each ``n`` in ``sizes`` and each seed.

    Epochs are scaled by full size / n so that every size gets about the same number of
    gradient steps as the full budget (capped at ``max_epochs``): a small set should not
    lose simply because it was trained for fewer steps.
    """
    budget, full = _budget(dataset.name), len(dataset.train)
    curve = {}
    for n in sizes:
        epochs = min(max_epochs, max(budget.epochs, round(budget.epochs * full / n)))
        curve[n] = [train_and_test(dataset, [task_name], lr, seed, train=dataset.train.take(n, seed=seed),
                                   epochs=epochs)["test"][task_name] for seed in seeds]
    return curve


def plot_tuning(results: dict[str, dict], lr: float | None = None, axes=None):
    """Validation metric per epoch for each learning rate of the grid, one panel per task
    (``results`` as returned by :func:`run_baselines`); ``lr`` highlights one of them."""
    import matplotlib.pyplot as plt

    if axes is None:
        axes = plt.subplots(1, len(results), figsize=(3.2 * len(results), 2.8), squeeze=False)[1][0]
    for ax, (task, res) in zip(axes, results.items()):
        for key, curve in res["val_curves"].items():
            chosen = lr is None or float(key) == lr
            ax.plot(range(1, len(curve) + 1), curve, marker="o", ms=3, alpha=1.0 if chosen else 0.25,
                    label=f"lr {key}" + (" (best)" if float(key) == res["lr"] else ""))
        ax.set_title(task, fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"validation {res['metric']}")
        ax.legend(fontsize=7)
    return axes


def reference_baselines(dataset: str | None = None) -> dict:
    """The stored baseline results (see module docstring); one dataset's or all of them."""
    stored = json.loads(REFERENCE_FILE.read_text())
    if dataset is None:
        return stored
    if dataset not in stored["results"]:
        raise ValueError(f"No stored baselines for {dataset!r}; there are {list(stored['results'])}.")
    return stored["results"][dataset]


def write_reference_baselines(path: Path = REFERENCE_FILE) -> dict:
    """Run the whole protocol on every course dataset and store it (a minute on a laptop)."""
    import torch

    out = {"protocol": "lr tuned on validation with seed 0, test metric per seed",
           "torch": torch.__version__, "budgets": {k: asdict(v) for k, v in BUDGETS.items()},
           "results": {name: run_baselines(load_course_dataset(name)) for name in BUDGETS}}
    path.write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":  # python -m mtl_helpers.baselines
    import torch

    # The test suite runs one thread per process; so does this, which makes the stored numbers
    # the ones a test run reproduces (thread count changes float summation order).
    torch.set_num_threads(1)
    json.dump(write_reference_baselines()["results"], sys.stdout, indent=1)
