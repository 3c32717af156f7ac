"""ESMM, the Entire Space Multi-task Model (Ma et al., SIGIR 2018): a serial (cascade) architecture.

An impression is shown, then maybe clicked, then maybe converted (bought). The post-click
conversion rate pCVR(x) = p(convert | click, x) is what a shop ranks by, but conversion labels
exist only for clicked impressions. A CVR model trained on the clicked impressions alone learns
from a sample that differs from the impressions it will score: **sample selection bias**, made
worse by how few clicks there are (data sparsity).

ESMM never fits pCVR to clicked rows directly. It predicts two quantities that are defined, and
labelled, on *every* impression, and ties pCVR to them through the chain rule of probability:

    pCTCVR(x) = p(click ∧ convert | x) = pCTR(x) · pCVR(x)

    L = Σ_impressions BCE(pCTR(x), y_click) + BCE(pCTR(x) · pCVR(x), y_click · y_convert)

pCTR and pCVR are two towers on a shared embedding (the CTR task, with many more labels,
trains the embedding the CVR tower reads); pCVR is a by-product, read off its tower. Both loss
terms are proper scoring rules for labels observed on all impressions, so in the population the
loss is minimised by the true pCTR and pCTCVR, hence by the true pCVR = pCTCVR / pCTR.

The course's losses work on logits, so :class:`ESMM` outputs the *logit* of pCTR·pCVR
(:func:`product_logit`, computed in log space): ``Task("purchase", "binary")`` on it is exactly
the second term. :func:`esmm_loss` writes both terms out on probabilities, for reading.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .trunks import mlp

CLICK, CONVERSION, PURCHASE = "click", "conversion", "purchase"  # purchase = click ∧ conversion (CTCVR)


def product_logit(a: Tensor, b: Tensor) -> Tensor:
    """logit(σ(a)·σ(b)), stably: log p = log σ(a) + log σ(b), logit = log p − log(1 − p)."""
    log_p = (F.logsigmoid(a) + F.logsigmoid(b)).clamp(max=-1e-6)  # p < 1 keeps log(1 − p) finite
    log_not_p = torch.where(log_p > -0.6931, torch.log(-torch.expm1(log_p)), torch.log1p(-torch.exp(log_p)))
    return log_p - log_not_p


def esmm_loss(p_ctr: Tensor, p_cvr: Tensor, click: Tensor, conversion: Tensor) -> Tensor:
    """ESMM's loss on probabilities, averaged over all impressions:
    BCE(pCTR, y_click) + BCE(pCTR·pCVR, y_click·y_convert). ``conversion`` may hold anything
    on unclicked rows: it is only used multiplied by ``click``."""
    if not p_ctr.shape == p_cvr.shape == click.shape == conversion.shape:
        raise ValueError(f"esmm_loss needs four tensors of one shape, got {tuple(p_ctr.shape)}, "
                         f"{tuple(p_cvr.shape)}, {tuple(click.shape)}, {tuple(conversion.shape)}.")
    click, conversion = click.to(p_ctr.dtype), conversion.to(p_ctr.dtype)
    return F.binary_cross_entropy(p_ctr, click) + F.binary_cross_entropy(p_ctr * p_cvr, click * conversion)


def _tower(in_dim: int, hidden: Sequence[int]) -> nn.Sequential:
    """Hidden ReLU layers, then one logit."""
    return nn.Sequential(mlp(in_dim, hidden), nn.Linear(hidden[-1] if hidden else in_dim, 1))


class ConversionNet(nn.Module):
    """A CVR model: an embedding (one ReLU layer) and a pCVR tower, outputting the ``conversion``
    logit. Trained on clicked impressions only it is the sample-selection-biased baseline; ESMM is
    this net plus a pCTR tower and the product."""

    def __init__(self, in_dim: int, embedding: int = 16, tower: Sequence[int] = (16,)) -> None:
        super().__init__()
        if in_dim < 1 or embedding < 1:
            raise ValueError(f"{type(self).__name__} needs in_dim >= 1 and embedding >= 1, got {in_dim} and "
                             f"{embedding}.")
        self.embedding = mlp(in_dim, [embedding])
        self.cvr = _tower(embedding, tower)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return {CONVERSION: self.cvr(self.embedding(x)).squeeze(-1)}


class ESMM(ConversionNet):
    """Shared embedding, a pCVR tower and a pCTR tower; outputs logits of pCTR (``click``), of
    pCTR·pCVR (``purchase``, the CTCVR task) and of pCVR (``conversion``, not trained directly).

    Args:
        in_dim: input features; embedding: width of the shared ReLU layer; tower: hidden widths
        of each tower.
    """

    def __init__(self, in_dim: int, embedding: int = 16, tower: Sequence[int] = (16,)) -> None:
        super().__init__(in_dim, embedding, tower)
        self.ctr = _tower(embedding, tower)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        z = self.embedding(x)
        a, b = self.ctr(z).squeeze(-1), self.cvr(z).squeeze(-1)
        return {CLICK: a, PURCHASE: product_logit(a, b), CONVERSION: b}

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        return self.embedding.parameters()

    def task_parameters(self, name: str | None = None) -> Iterator[nn.Parameter]:
        """The CTR tower for ``click``, the CVR tower for ``conversion``, both for
        ``purchase`` (it reads both) or when ``name`` is None."""
        towers = {CLICK: [self.ctr], CONVERSION: [self.cvr], PURCHASE: [self.ctr, self.cvr], None: [self.ctr, self.cvr]}
        if name not in towers:
            raise ValueError(f"Unknown task {name!r}; ESMM has {CLICK!r}, {CONVERSION!r} and {PURCHASE!r}.")
        for tower in towers[name]:
            yield from tower.parameters()
