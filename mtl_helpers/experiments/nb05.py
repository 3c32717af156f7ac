"""Notebook 05 (gradient conflict): the studies too long for the notebook itself.

* :func:`gradients_on_batches` — G on several mini-batches at fixed weights, to separate real
  conflict between tasks from mini-batch noise (with
  :func:`mtl_helpers.conflict.within_and_between_cosines`);
* :func:`gradient_arms` — equal weights and five gradient-level methods as protocol arms, every
  method picked by its registry name (:data:`mtl_helpers.conflict.GRADIENT_METHODS`);
  :func:`static_weight_arm` — the simplest fix, a static weighting whose setting λ is the
  right task's share (λ = ½ is equal weights, bit for bit);
* :func:`training_subset` — the same data and budget on fewer training rows (the notebook's
  comparison, stated in its text); :func:`mtl_helpers.protocol.reusing_runner` (re-exported
  here) does not train twice what is the same run under two names (the static arm at λ = ½
  *is* the equal-weights arm);
* :func:`comparison_arms`, :func:`grid_comparison` — the notebook's seven arms through the
  protocol; run as ``python -m mtl_helpers.experiments.nb05`` (about 3 CPU-minutes) it checks
  the notebook's reduced comparison: the budget's whole lr grid on the notebook's 1 500 pairs,
  then the full budget (every training pair, 6 epochs, three learning rates, 5 seeds);
* :func:`summary`, :func:`static_validation` — the comparison's table with the mean over tasks
  and its paired differences; the static arm's validation score per λ;
* :func:`mean_over_tasks`, :func:`mean_task_difference` — the mean over tasks of the metric,
  per seed, and its paired difference between two arms.

The cost per step is :func:`mtl_helpers.costs.step_cost_table`, as in every notebook.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import pandas as pd
import torch
from torch import Tensor, nn

from ..conflict import make_direction, per_task_gradients
from ..data import MultiTaskDataset, Split
from ..metrics import PairedDifference, format_mean_std, paired_difference
from ..models import standard_network
from ..protocol import Arm, Comparison, compare, reusing_runner
from ..tasks import Task
from ..train import task_losses
from ..weighting import StaticWeighting

EQUAL = "equal weights"
STATIC = "static λ (tuned)"
LAMBDAS = (0.3, 0.4, 0.5, 0.6, 0.7)
SEEDS = (0, 1, 2, 3, 4)
N_TRAIN = 1500  # the notebook's training subset


def gradients_on_batches(model: nn.Module, split: Split, tasks: Sequence[Task], batch_size: int = 128,
                         n_batches: int = 8, seed: int = 0) -> Tensor:
    """(n_batches, T, P): G on ``n_batches`` disjoint random mini-batches of ``split``, with the
    model's current weights (shared parameters only).

    Compare tasks *within* a batch with one task *across* batches
    (:func:`~mtl_helpers.conflict.within_and_between_cosines`) to see how much of the measured
    "conflict" is mini-batch noise. The model is put in evaluation mode while measuring (no
    dropout noise: only the batch changes) and back in training mode after.
    """
    if n_batches < 2 or n_batches * batch_size > len(split):
        raise ValueError(f"Need 2 <= n_batches and n_batches * batch_size <= {len(split)} rows; "
                         f"got {n_batches} × {batch_size}.")
    device = next(model.parameters()).device
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))
    shared = list(model.shared_parameters())
    model.eval()
    stacks = []
    for b in range(n_batches):
        batch = split.subset(order[b * batch_size:(b + 1) * batch_size]).to(device)
        stacks.append(per_task_gradients(task_losses(model(batch.x), batch, tasks), shared))
    model.train()
    return torch.stack(stacks).detach()


def gradient_arms(dataset: MultiTaskDataset, c: float = 0.4) -> list[Arm]:
    """Equal weights and PCGrad, MGDA, MGDA-UB, CAGrad (its ``c`` as the arm's setting) and
    Nash-MTL, all on the standard network: the arms differ only in how the trunk's update is
    made from the per-task gradients (``fit(gradient_method=<registry name>)``)."""
    def build(_: object) -> nn.Module:
        return standard_network(dataset)

    def method(name: str, **extra: str) -> Callable[[nn.Module, object], dict]:
        return lambda model, setting: {"gradient_method": name, **extra}

    return [Arm(EQUAL, build),
            Arm("PCGrad", build, options=method("pcgrad")),
            Arm("MGDA", build, options=method("mgda")),
            Arm("MGDA-UB", build, options=method("mgda", gradients_wrt="representation")),
            Arm("CAGrad", build, settings=(c,),
                options=lambda model, c: {"gradient_method": make_direction("cagrad", c=c)}),
            Arm("Nash-MTL", build, options=method("nash"))]


def static_weights(lam: float) -> StaticWeighting:
    """The two-task static weighting with the right task's share λ: weights (2(1 − λ), 2λ), so
    λ = ½ is the plain sum L_left + L_right (weights exactly 1: the same floats as no weighting)."""
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"λ is the right task's share of the weight, in [0, 1]; got {lam}.")
    return StaticWeighting([2.0 * (1.0 - lam), 2.0 * lam])


def static_weight_arm(dataset: MultiTaskDataset, lambdas: Sequence[float] = LAMBDAS, name: str = STATIC) -> Arm:
    """The standard network trained on 2(1 − λ) L_1 + 2λ L_2, λ searched on validation with the
    learning rate (the arm's own knob, as c is CAGrad's). Needs a two-task dataset."""
    if len(dataset.tasks) != 2:
        raise ValueError(f"A static λ weights two tasks; the dataset has {dataset.task_names}.")
    for lam in lambdas:
        static_weights(lam)  # a clear error for a λ outside [0, 1]
    return Arm(name, lambda _: standard_network(dataset), settings=tuple(lambdas),
               options=lambda model, lam: {"weighting": static_weights(lam)})


def training_subset(dataset: MultiTaskDataset, n_train: int, seed: int = 0) -> MultiTaskDataset:
    """The same validation and test splits and the same budget, trained on ``n_train`` random
    training rows: the budget's epochs then run over fewer rows (fewer steps), which is what
    makes a many-arm, many-seed comparison affordable. Say so beside its result."""
    return dataclasses.replace(dataset, train=dataset.train.take(n_train, seed=seed),
                               info={**dataset.info, "training subset": n_train})


def comparison_arms(dataset: MultiTaskDataset, c: float = 0.4, lambdas: Sequence[float] = LAMBDAS) -> list[Arm]:
    """The notebook's seven arms: equal weights, the tuned static λ, then the five gradient methods."""
    equal, *methods = gradient_arms(dataset, c)
    return [equal, static_weight_arm(dataset, lambdas), *methods]


def grid_comparison(dataset: MultiTaskDataset, seeds: Sequence[int] = SEEDS, c: float = 0.4,
                    lambdas: Sequence[float] = LAMBDAS, lrs: Sequence[float] | None = None,
                    device: torch.device | str | None = None) -> Comparison:
    """The seven arms of :func:`comparison_arms` through the protocol: the learning rates ``lrs``
    (default: the budget's whole grid) × λ for the static arm, tuned on the first seed, then
    every seed at the choice; the static arm's λ = ½ reuses the equal-weights runs."""
    return compare(comparison_arms(dataset, c, lambdas), dataset, seeds=seeds, lrs=lrs,
                   runner=reusing_runner({(STATIC, 0.5): EQUAL}), device=device)


def mean_over_tasks(comparison: Comparison, arm: str, split: str = "test") -> list[float]:
    """Per seed, the mean over tasks of ``arm``'s metric (for tasks that share a metric and its
    direction, such as the two MultiMNIST accuracies)."""
    if arm not in comparison.runs:
        raise ValueError(f"Unknown arm {arm!r}; the arms are {list(comparison.runs)}.")
    return [sum(values.values()) / len(values) for values in (getattr(r, split) for r in comparison.runs[arm])]


def mean_task_difference(comparison: Comparison, a: str, b: str, split: str = "test") -> PairedDifference:
    """Paired difference a − b over the seeds of :func:`mean_over_tasks`."""
    return paired_difference(mean_over_tasks(comparison, a, split), mean_over_tasks(comparison, b, split))


def summary(comparison: Comparison, reference: str = EQUAL) -> pd.DataFrame:
    """The comparison's table with a "mean of tasks" column, and every arm's paired difference
    to ``reference`` on that mean."""
    table = comparison.table(digits=3)
    table.insert(len(comparison.runs[reference][0].test), "mean of tasks",
                 [format_mean_std(mean_over_tasks(comparison, a), 3) for a in comparison.runs])
    table["Δ mean vs " + reference] = ["" if a == reference else str(mean_task_difference(comparison, a, reference))
                                       for a in comparison.runs]
    return table


def static_validation(comparison: Comparison, arm: str = STATIC) -> pd.DataFrame:
    """The tuning runs of the static arm: mean validation metric over tasks, one row per learning
    rate, one column per λ (on the tuning seeds)."""
    runs = comparison.tuned[arm].runs
    return pd.DataFrame({lam: {lr: sum(sum(r.val.values()) / len(r.val) for r in rs) / len(rs)
                               for (lr, v), rs in runs.items() if v == lam}
                         for lam in dict.fromkeys(v for _, v in runs)}).rename_axis("lr \\ λ")


if __name__ == "__main__":  # python -m mtl_helpers.experiments.nb05: the checks of the notebook's comparison
    import time

    from ..course import load_course_dataset

    torch.set_num_threads(1)
    full = load_course_dataset("multimnist")
    for title, data in ((f"{N_TRAIN} training pairs, the budget's whole lr grid", training_subset(full, N_TRAIN)),
                        ("the full budget: every training pair, the whole lr grid", full)):
        start = time.process_time()
        result = grid_comparison(data)
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(f"== {title}\n{summary(result)}\n{result.differences(EQUAL)}\n{static_validation(result)}")
        print(f"CPU time {time.process_time() - start:.0f} s", flush=True)
