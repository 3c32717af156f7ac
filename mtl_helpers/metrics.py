"""Metrics. Each takes a whole split's predictions at once (not batch averages).

AUC is the probability that a random positive is scored above a random negative
(Mann–Whitney U / (n₊ n₋)); we use scikit-learn's implementation.
"""

from __future__ import annotations

import torch
from sklearn.metrics import roc_auc_score
from torch import Tensor


def accuracy(logits: Tensor, target: Tensor) -> float:
    """Fraction of rows whose arg-max logit is the target class."""
    return (logits.argmax(dim=1) == target).float().mean().item()


def auc(scores: Tensor, target: Tensor) -> float:
    """Area under the ROC curve of binary ``target`` (0/1) given real-valued ``scores``."""
    y = target.detach().cpu().numpy()
    if y.min() == y.max():
        raise ValueError("AUC needs both classes in the targets; this split has only one.")
    return float(roc_auc_score(y, scores.detach().float().cpu().numpy()))


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
