"""Metrics, and how results over seeds are summarised and compared.

Task metrics take a whole split's predictions at once (not batch averages). AUC is the
probability that a random positive is scored above a random negative (Mann–Whitney U /
(n₊ n₋)), computed from ranks; the tests check it against scikit-learn. Over seeds: mean ±
sample std for a level, a paired t-interval for a difference (:func:`paired_difference`), the
Pareto front for several metrics at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import stdtrit
from torch import Tensor


def accuracy(logits: Tensor, target: Tensor) -> float:
    """Fraction of rows whose arg-max logit is the target class."""
    return (logits.argmax(dim=1) == target).float().mean().item()


def auc(scores: Tensor, target: Tensor) -> float:
    """Area under the ROC curve of binary ``target`` (0/1) given real-valued ``scores``.

    AUC = P(score of a random positive > score of a random negative), a tie counting ½. With
    r_i the rank of score i among all n (ties get their average rank), that is Mann–Whitney's
    AUC = (Σ_{i positive} r_i − n₊(n₊ + 1)/2) / (n₊ n₋)   (Hanley & McNeil, 1982).
    """
    y = target.detach().cpu().numpy().reshape(-1)
    s = scores.detach().cpu().double().numpy().reshape(-1)
    if y.shape != s.shape:
        raise ValueError(f"auc needs one score per target, got {s.shape[0]} scores for {y.shape[0]} targets.")
    if y.min() == y.max():
        raise ValueError("AUC needs both classes in the targets; this split has only one.")
    _, group, counts = np.unique(s, return_inverse=True, return_counts=True)  # equal scores: one group
    last = np.cumsum(counts)  # 1-based rank of each group's last member
    ranks = (last - (counts - 1) / 2)[group]  # every member gets the group's average rank
    positive = y == 1
    n_pos, n_neg = positive.sum(), (~positive).sum()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def rmse(prediction: Tensor, target: Tensor) -> float:
    """Root mean squared error."""
    return torch.sqrt(torch.mean((prediction.float() - target.float()) ** 2)).item()


def mean_std(values: list[float] | Tensor) -> tuple[float, float]:
    """Mean and sample standard deviation (n − 1) of a list of per-seed results."""
    t = torch.as_tensor(values, dtype=torch.float64)
    if t.numel() == 0:
        raise ValueError("mean_std needs at least one value.")
    std = t.std().item() if t.numel() > 1 else 0.0
    return t.mean().item(), std


def format_mean_std(values: list[float] | Tensor, digits: int = 3) -> str:
    """``"0.912 ± 0.004"``: how every table in the course reports a result over seeds."""
    m, s = mean_std(values)
    return f"{m:.{digits}f} ± {s:.{digits}f}"


@dataclass(frozen=True)
class PairedDifference:
    """Per-seed differences d_s = a_s − b_s of two arms run with the same seeds, and a
    t-interval for their mean: d̄ ± t_{n−1, (1+level)/2} · sd(d)/√n.

    Pairing removes what the seeds share (initial weights, batch order), so a difference far
    smaller than either arm's seed spread can still be measured. ``direction`` is +1 (a > b)
    or −1 (a < b) only when the interval excludes zero, else 0: "no measurable difference".
    """

    values: tuple[float, ...]
    mean: float
    low: float
    high: float
    level: float = 0.95

    @property
    def direction(self) -> int:
        return 1 if self.low > 0 else -1 if self.high < 0 else 0

    def __str__(self) -> str:
        return f"{self.mean:+.4f} [{self.low:+.4f}, {self.high:+.4f}]"


def paired_difference(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> PairedDifference:
    """The paired difference a − b over seeds (``a[s]`` and ``b[s]`` share seed s).

    With one seed the interval is infinite: one run cannot support a direction.
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(x) == 0:
        raise ValueError(f"paired_difference needs two equal-length, non-empty lists (one value per seed), "
                         f"got {len(x)} and {len(y)} values.")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}.")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("paired_difference got NaN or inf values.")
    d = x - y
    mean = float(d.mean())
    if len(d) < 2:
        return PairedDifference(tuple(d.tolist()), mean, -math.inf, math.inf, level)
    half = float(stdtrit(len(d) - 1, (1 + level) / 2) * d.std(ddof=1) / math.sqrt(len(d)))  # t quantile
    return PairedDifference(tuple(d.tolist()), mean, mean - half, mean + half, level)


def pareto_front(points: np.ndarray | Sequence[Sequence[float]], higher_is_better: Sequence[bool]) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``points`` (N runs × M metrics).

    Row a dominates row b if a is at least as good on every metric and strictly better on one;
    the rows nobody dominates form the empirical Pareto front. ``higher_is_better[m]`` gives the
    direction of metric m (AUC: True, RMSE: False).
    """
    p = np.asarray(points, dtype=float)
    if p.ndim != 2 or p.shape[0] == 0:
        raise ValueError(f"points must be a non-empty (N, M) array, got shape {p.shape}.")
    if len(higher_is_better) != p.shape[1]:
        raise ValueError(f"higher_is_better has {len(higher_is_better)} entries for {p.shape[1]} metrics.")
    if not np.isfinite(p).all():
        raise ValueError("points contain NaN or inf.")
    signed = p * np.where(np.asarray(higher_is_better, dtype=bool), 1.0, -1.0)  # now higher is better
    at_least = (signed[:, None, :] >= signed[None, :, :]).all(-1)  # [a, b]: a ≥ b everywhere
    strictly = (signed[:, None, :] > signed[None, :, :]).any(-1)
    dominated = (at_least & strictly).any(0)
    return ~dominated


def balanced_choice(points: np.ndarray | Sequence[Sequence[float]], higher_is_better: Sequence[bool]) -> int:
    """Index of the front point whose worst relative gap to the best value of each metric is
    smallest (a Chebyshev scalarisation): one reasonable rule for "the best grid weights"."""
    p = np.asarray(points, dtype=float)
    front = pareto_front(p, higher_is_better)
    best = np.where(higher_is_better, p.max(0), p.min(0))
    gaps = np.abs(p - best) / np.abs(best).clip(1e-12)
    worst = np.where(front, gaps.max(1), np.inf)
    return int(worst.argmin())


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation (Pearson correlation of the ranks; ties broken by order)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 2:
        raise ValueError(f"spearman needs two 1-D sequences of the same length >= 2, got {x.shape} and {y.shape}.")
    rx, ry = x.argsort().argsort().astype(float), y.argsort().argsort().astype(float)
    return float(np.corrcoef(rx, ry)[0, 1])
