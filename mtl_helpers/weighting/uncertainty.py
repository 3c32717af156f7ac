"""Uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018): learned homoscedastic noise."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .core import Losses, check_losses

UW_FORMS = {"regression": 0.5, "classification": 1.0, "binary": 1.0}


class UncertaintyWeighting(nn.Module):
    """Uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018), learning s_i = log σ_i².

    * regression form (a Gaussian likelihood):   ½·e^{−s_i}·L_i + ½·s_i
    * classification form (the paper's approximation for a tempered softmax):  e^{−s_i}·L_i + ½·s_i

    Minimising over s_i alone gives e^{−s_i} = 1/L_i (regression) or 1/(2 L_i)
    (classification): the learned weight is the inverse of the task's current loss, so tasks
    in large units are scaled down; the ½·s_i term stops s_i from running off to +∞.

    Defaults and divergences (say which one you use): ``forms=None`` uses the regression form
    for every task and ``init=0.0`` (s = 0, σ = 1). LibMTL and MTAN also use the regression form
    for every task but start at s = −0.5; Nash-MTL's code uses 0.5·(e^{−s}L + s) with s = 0,
    i.e. the regression form; the paper uses the classification form for its classification
    task. Gal's public example minimises Σ e^{−s}L + s, twice the regression form (same optimum).

    Args:
        n_tasks: T.
        forms: per task "regression" or "classification" ("binary" counts as classification);
            a task kind from :class:`~mtl_helpers.tasks.Task` works as is.
        init: starting value of every s_i, or ``"first_loss"``: set s_i on the first call to the
            value that is optimal for that batch's losses, s_i = log(2·coef_i·L_i) (not in the
            paper: a warm start for losses that begin far from 1, see notebook 04).
    """

    def __init__(self, n_tasks: int, forms: Sequence[str] | None = None, init: float | str = 0.0) -> None:
        super().__init__()
        if not isinstance(n_tasks, int) or n_tasks < 1:
            raise ValueError(f"n_tasks must be a positive int, got {n_tasks!r}.")
        forms = list(forms) if forms is not None else ["regression"] * n_tasks
        if len(forms) != n_tasks or any(f not in UW_FORMS for f in forms):
            raise ValueError(f"forms must list {n_tasks} of {sorted(UW_FORMS)}, got {forms}.")
        self.forms = forms
        self.register_buffer("coef", torch.tensor([UW_FORMS[f] for f in forms]))
        if init != "first_loss" and not isinstance(init, (int, float)):
            raise ValueError(f"init must be a number or 'first_loss', got {init!r}.")
        self.warm_start = init == "first_loss"
        self.log_vars = nn.Parameter(torch.full((n_tasks,), 0.0 if self.warm_start else float(init)))

    def forward(self, losses: Losses) -> Tensor:
        L = check_losses(losses, len(self.log_vars))
        if self.warm_start:  # start at the fixed point of the first batch: s_i = log(2·coef_i·L_i)
            with torch.no_grad():
                self.log_vars.copy_(torch.log(2 * self.coef * L.detach().clamp_min(1e-12)))
            self.warm_start = False
        s = self.log_vars
        return (self.coef * torch.exp(-s) * L + 0.5 * s).sum()

    @property
    def sigmas(self) -> Tensor:
        """σ_i = √(e^{s_i}), detached."""
        return torch.exp(0.5 * self.log_vars.detach())

    @property
    def weights(self) -> Tensor:
        """The effective weights on the raw losses: coef_i·e^{−s_i}, detached."""
        return self.coef * torch.exp(-self.log_vars.detach())
