"""Loss-level balancers: how to add the task losses up (notebook 04). One file per method.

Every balancer keeps the :class:`LossWeighting` contract, ``weighting(losses) -> total``, and
plugs into :func:`mtl_helpers.train.fit` as an object or by name (``fit(..., weighting="dwa")``).
:data:`WEIGHTINGS` is the registry: name → factory ``(model, tasks, **options) → balancer``
(a factory sees the freshly built model, so GradNorm can find its last shared layer).

==============  ===========================================================  ======================
name            total                                                        paper
==============  ===========================================================  ======================
``equal``       Σ L_i                                                        —
``static``      Σ λ_i L_i, fixed λ (``weights=``)                            grid search
``uw``          Σ c_i e^{−s_i} L_i + ½ s_i, learned s_i = log σ_i²           Kendall et al., CVPR 2018
``gradnorm``    Σ w_i L_i, w trained to equalise ‖∇_W w_i L_i‖               Chen et al., ICML 2018
``dwa``         Σ λ_i L_i, λ = T·softmax(L̄_i(t−1)/L̄_i(t−2) / 2)              Liu et al., CVPR 2019
==============  ===========================================================  ======================

To add a method: write it in its own file (a callable keeping the contract), then one entry
in :data:`WEIGHTINGS`; tests/test_weighting_properties.py checks every entry.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn

from ..tasks import Task
from .core import Losses, LossWeighting, check_losses
from .dwa import DWA
from .gradnorm import GradNorm, last_shared_layer, task_gradient_norms
from .static import StaticWeighting, two_task_grid
from .uncertainty import UW_FORMS, UncertaintyWeighting

Factory = Callable[..., LossWeighting]

WEIGHTINGS: dict[str, Factory] = {
    "equal": lambda model, tasks: StaticWeighting([1.0] * len(tasks)),
    "static": lambda model, tasks, weights: StaticWeighting(weights),
    "uw": lambda model, tasks, init=0.0: UncertaintyWeighting(len(tasks), [t.kind for t in tasks], init=init),
    "gradnorm": lambda model, tasks, alpha=1.5, lr=0.025: GradNorm(len(tasks), last_shared_layer(model), alpha, lr),
    "dwa": lambda model, tasks, temperature=2.0: DWA(len(tasks), temperature),
}


def make_weighting(name: str, model: nn.Module, tasks: Sequence[Task], **options) -> LossWeighting:
    """A registered balancer for ``model`` and ``tasks``, e.g. ``make_weighting("uw", model, tasks)``."""
    if name not in WEIGHTINGS:
        raise ValueError(f"Unknown loss weighting {name!r}; choose one of {list(WEIGHTINGS)}.")
    if not tasks:
        raise ValueError("make_weighting needs the task list (at least one Task).")
    return WEIGHTINGS[name](model, list(tasks), **options)


__all__ = ["LossWeighting", "Losses", "check_losses", "DWA", "GradNorm", "last_shared_layer",
           "task_gradient_norms", "StaticWeighting", "two_task_grid", "UW_FORMS", "UncertaintyWeighting",
           "WEIGHTINGS", "make_weighting"]
