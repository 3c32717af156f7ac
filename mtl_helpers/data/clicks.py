"""A seeded impression → click → conversion generator with known ground truth (for ESMM).

Every impression has features x ~ N(0, I_d) and two true probabilities, both logistic:

    pCTR(x) = σ(a₀ + s_c · u₁ᵀx)                                 (is it clicked?)
    pCVR(x) = σ(b₀ + s_v · (ρ·u₁ᵀx + √(1 − ρ²)·u₂ᵀx) − q·(u₁ᵀx)²)  (would it convert, once clicked?)

with u₁ ⊥ u₂ unit vectors. ρ sets how much conversion depends on the direction that drives
clicks (ρ < 0: attractive impressions convert less, "click-bait"); q bends that dependence, so
that a model which sees only the clicked impressions (large u₁ᵀx) cannot extrapolate it to the
rest. A click is drawn with pCTR; a conversion is drawn with pCVR for *every* impression, as
"what would have happened had it been clicked", but only a clicked impression reveals it:

* ``click``: observed on every impression;
* ``conversion``: the label of the post-click task. In train and validation it is masked to the
  clicked rows (``masks["conversion"]``, what a shop can see); in test it is given for every
  impression (ground truth, for evaluating pCVR on the entire space);
* ``purchase`` = click · conversion: observed on every impression (ESMM's CTCVR task).

``info["truth"][split]`` holds the true ``ctr`` and ``cvr`` probabilities of every row.
No unobserved confounder: given x, the click and the conversion draws are independent, so
p(convert | click, x) = pCVR(x) exactly.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..tasks import Task
from .splits import Budget, MultiTaskDataset, Split

CLICK_TASKS = ("click", "conversion", "purchase")


def click_probabilities(x: Tensor, u1: Tensor, u2: Tensor, *, ctr_bias: float, ctr_scale: float, cvr_bias: float,
                        cvr_scale: float, rho: float, bend: float) -> tuple[Tensor, Tensor]:
    """The true (pCTR, pCVR) of every row of ``x`` (see the module docstring)."""
    s1, s2 = x @ u1, x @ u2
    ctr = torch.sigmoid(ctr_bias + ctr_scale * s1)
    cvr = torch.sigmoid(cvr_bias + cvr_scale * (rho * s1 + (1 - rho**2) ** 0.5 * s2) - bend * s1**2)
    return ctr, cvr


def make_click_data(n_train: int = 20_000, n_val: int = 5_000, n_test: int = 20_000, *, dim: int = 8,
                    ctr_bias: float = -2.0, ctr_scale: float = 1.5, cvr_bias: float = 0.0, cvr_scale: float = 1.0,
                    rho: float = -0.5, bend: float = 0.5, seed: int = 0,
                    budget: Budget | None = None) -> MultiTaskDataset:
    """Impressions with clicks, conversions and purchases, and the true probabilities behind them."""
    if dim < 2 or min(n_train, n_val, n_test) < 1:
        raise ValueError(f"make_click_data needs dim >= 2 and positive split sizes, got dim={dim}, "
                         f"sizes {n_train}, {n_val}, {n_test}.")
    if not -1.0 <= rho <= 1.0 or bend < 0:
        raise ValueError(f"rho must be in [-1, 1] and bend >= 0, got rho={rho}, bend={bend}.")
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(dim, 2, generator=g))
    u1, u2 = q[:, 0], q[:, 1]
    truth = {}

    def split(n: int, name: str) -> Split:
        x = torch.randn(n, dim, generator=g)
        ctr, cvr = click_probabilities(x, u1, u2, ctr_bias=ctr_bias, ctr_scale=ctr_scale, cvr_bias=cvr_bias,
                                       cvr_scale=cvr_scale, rho=rho, bend=bend)
        click = torch.bernoulli(ctr, generator=g)
        convert = torch.bernoulli(cvr, generator=g)  # would convert if clicked (revealed only on a click)
        truth[name] = {"ctr": ctr, "cvr": cvr}
        masks = {} if name == "test" else {"conversion": click.bool()}
        return Split(x, {"click": click, "conversion": convert, "purchase": click * convert}, masks)

    tasks = [Task(name, "binary") for name in CLICK_TASKS]
    train, val, test = split(n_train, "train"), split(n_val, "val"), split(n_test, "test")
    return MultiTaskDataset("clicks", tasks, train, val, test, budget,
                            info={"truth": truth, "u1": u1, "u2": u2, "rho": rho, "bend": bend,
                                  "ctr_bias": ctr_bias, "cvr_bias": cvr_bias})
