"""Checkers for notebook 01 (single-task baselines)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from . import report


def check_accuracy(fn: Callable[[torch.Tensor, torch.Tensor], float]) -> bool:
    """``fn(logits (N, C), labels (N,))`` must return the fraction of correct arg-max predictions."""
    g = torch.Generator().manual_seed(0)
    cases = [(torch.randn(n, c, generator=g), torch.randint(0, c, (n,), generator=g)) for n, c in ((7, 3), (50, 10))]
    cases.append((torch.tensor([[0.0, 5.0], [4.0, 1.0], [3.0, 2.0]]), torch.tensor([1, 0, 1])))
    try:
        got = [float(fn(x, y)) for x, y in cases]
    except Exception as exc:
        return report(False, "", f"your function raised {type(exc).__name__}: {exc}")
    want = [(x.argmax(1) == y).float().mean().item() for x, y in cases]
    ok = all(abs(a - b) < 1e-6 for a, b in zip(got, want))
    return report(ok, "right: arg-max over the class dimension, then the mean of the hits.",
                  f"got {[round(v, 3) for v in got]}, expected {[round(v, 3) for v in want]}: "
                  "take the arg-max over classes (dim=1) and compare with the labels.")


def check_mean_std(fn: Callable[[list[float]], tuple[float, float]]) -> bool:
    """``fn(values)`` must return the mean and the *sample* standard deviation (n − 1)."""
    cases = [[0.90, 0.92, 0.91], [1.0, 3.0], [0.5, 0.5, 0.5, 0.9]]
    try:
        got = [tuple(map(float, fn(v))) for v in cases]
    except Exception as exc:
        return report(False, "", f"your function raised {type(exc).__name__}: {exc}")
    want = [(torch.tensor(v).mean().item(), torch.tensor(v).std().item()) for v in cases]
    ok = all(abs(g[0] - w[0]) < 1e-6 and abs(g[1] - w[1]) < 1e-6 for g, w in zip(got, want))
    return report(ok, "right: mean and sample standard deviation (divide by n − 1).",
                  f"got {got[1]} for [1, 3], expected {want[1]}: over a few seeds use the sample std (n − 1).")


def check_leaky_columns(columns: Iterable[str]) -> bool:
    """Which Adult columns must be removed from the features for the never-married task?"""
    cols = {c.strip().lower() for c in columns}
    truth = {"marital_status", "relationship"}
    if cols == truth:
        return report(True, "right: marital_status is the label itself, relationship (Husband/Wife) implies it.", "")
    hint = ("relationship also leaks: 'Husband' or 'Wife' means married." if cols == {"marital_status"}
            else "only the columns that give the label away must go; the others are honest features.")
    return report(False, "", f"not quite ({sorted(cols)}): {hint}")


def check_majority_baseline(fn: Callable[[torch.Tensor], float]) -> bool:
    """``fn(labels)`` must return the accuracy of always predicting the most frequent label."""
    cases = [torch.tensor([0, 0, 0, 1]), torch.tensor([2, 1, 1, 0, 2, 2]), torch.arange(10).repeat(3)]
    try:
        got = [float(fn(y)) for y in cases]
    except Exception as exc:
        return report(False, "", f"your function raised {type(exc).__name__}: {exc}")
    want = [torch.bincount(y).max().item() / len(y) for y in cases]
    ok = all(abs(a - b) < 1e-6 for a, b in zip(got, want))
    return report(ok, "right: the share of the most frequent class is the floor any model must beat.",
                  f"got {got}, expected {want}: count each label and divide the largest count by the total.")
