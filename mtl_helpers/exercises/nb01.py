"""Checkers for notebook 01 (single-task baselines).

References: :func:`mtl_helpers.metrics.accuracy`, :func:`mtl_helpers.metrics.mean_std`,
:data:`mtl_helpers.data.ADULT_LEAKY` and :func:`mtl_helpers.experiments.nb01.majority_accuracy`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch

from ..data import ADULT_LEAKY
from ..experiments.nb01 import majority_accuracy
from ..metrics import accuracy, mean_std
from . import Failed, attempt, check_cases, report


def _close(got: object, want: float) -> bool:
    return math.isclose(float(got), want, abs_tol=1e-6)


def check_accuracy(fn: Callable[[torch.Tensor, torch.Tensor], float]) -> bool:
    """``fn(logits (N, C), labels (N,))`` must return the fraction of correct arg-max predictions."""
    g = torch.Generator().manual_seed(0)
    cases = [(torch.randn(n, c, generator=g), torch.randint(0, c, (n,), generator=g)) for n, c in ((7, 3), (50, 10))]
    cases.append((torch.tensor([[0.0, 5.0], [4.0, 1.0], [3.0, 2.0]]), torch.tensor([1, 0, 1])))
    return check_cases(fn, cases, accuracy, _close,
                       "right: arg-max over the class dimension, then the mean of the hits.",
                       lambda case, got, want: f"got {got} for {len(case[1])} rows, expected {want:.3f}: take the "
                                               "arg-max over classes (dim=1) and compare with the labels.")


def check_mean_std(fn: Callable[[list[float]], tuple[float, float]]) -> bool:
    """``fn(values)`` must return the mean and the *sample* standard deviation (n − 1)."""
    cases = [([0.90, 0.92, 0.91],), ([1.0, 3.0],), ([0.5, 0.5, 0.5, 0.9],)]
    return check_cases(fn, cases, mean_std, lambda got, want: all(_close(g, w) for g, w in zip(got, want, strict=True)),
                       "right: mean and sample standard deviation (divide by n − 1).",
                       lambda case, got, want: f"got {got} for {case[0]}, expected {want}: over a few seeds use the "
                                               "sample std (divide by n − 1).")


def check_leaky_columns(fn: Callable[[], Iterable[str]]) -> bool:
    """``fn()`` must list the Adult columns to remove from the features for the never-married task."""
    try:
        cols = {str(c).strip().lower() for c in attempt(fn)}
    except Failed as failure:
        return report(False, "", str(failure))
    except TypeError:
        return report(False, "", "return a list of column names, e.g. [\"age\", \"sex\"].")
    if cols == set(ADULT_LEAKY):
        return report(True, "right: marital_status is the label itself, relationship (Husband/Wife) implies it.", "")
    hint = ("relationship also leaks: 'Husband' or 'Wife' means married." if cols == {"marital_status"}
            else "only the columns that give the label away must go; the others are honest features.")
    return report(False, "", f"not quite ({sorted(cols)}): {hint}")


def check_majority_baseline(fn: Callable[[torch.Tensor], float]) -> bool:
    """``fn(labels)`` must return the accuracy of always predicting the most frequent label."""
    cases = [(torch.tensor([0, 0, 0, 1]),), (torch.tensor([2, 1, 1, 0, 2, 2]),), (torch.arange(10).repeat(3),),
             (torch.tensor([3, 1, 1, 1, 0, 3]),)]  # the first label is not the most frequent one
    return check_cases(fn, cases, majority_accuracy, _close,
                       "right: the share of the most frequent class is the floor any model must beat.",
                       lambda case, got, want: f"got {got} for labels {case[0].tolist()}, expected {want:.3f}: count "
                                               "each label and divide the largest count by the total.")
