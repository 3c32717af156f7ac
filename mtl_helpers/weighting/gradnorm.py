"""GradNorm (Chen, Badrinarayanan, Lee & Rabinovich, ICML 2018): equalise the tasks' gradient norms."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .core import Losses, check_losses


def last_shared_layer(model: nn.Module) -> nn.Parameter:
    """The weight matrix of the last Linear/Conv layer of ``model.trunk`` (GradNorm's W)."""
    trunk = getattr(model, "trunk", None)
    if trunk is None:
        raise ValueError("last_shared_layer needs a model with a .trunk (e.g. HardSharing).")
    layers = [m for m in trunk.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    if not layers:
        raise ValueError("the trunk has no Linear or Conv2d layer to normalise gradients on.")
    return layers[-1].weight


def task_gradient_norms(losses: Tensor, layer: nn.Parameter) -> Tensor:
    """(T,) tensor of ‖∇_W L_i‖₂ for each task loss w.r.t. one parameter W; keeps the graph."""
    L = check_losses(losses)
    rows = []
    for i in range(len(L)):
        (g,) = torch.autograd.grad(L[i], layer, retain_graph=True, allow_unused=True)
        rows.append(torch.zeros((), device=layer.device) if g is None else g.norm())
    norms = torch.stack(rows)
    if not torch.isfinite(norms).all():
        raise ValueError("a task gradient is NaN or infinite: lower the learning rate or check the data.")
    return norms


def _as_parameter(layer: nn.Parameter | nn.Module) -> nn.Parameter:
    if isinstance(layer, nn.Parameter):
        return layer
    weight = getattr(layer, "weight", None)
    if isinstance(weight, nn.Parameter):
        return weight
    raise ValueError("shared_layer must be a Parameter or a layer with a .weight (the last shared layer).")


class GradNorm:
    """GradNorm (Chen, Badrinarayanan, Lee & Rabinovich, ICML 2018).

    With W the last shared layer, at every step:

    * G_i = ‖∇_W (w_i L_i)‖₂ and Ḡ = mean_i G_i;
    * L̃_i = L_i(t)/L_i(0) (how far task i still is from where it started) and
      r_i = L̃_i / mean_j L̃_j, its relative inverse training rate;
    * L_grad = Σ_i |G_i − Ḡ·r_i^α| with the target Ḡ·r_i^α held constant; one step of this
      balancer's **own** Adam on w only; then w ← T·w/Σ_j w_j (and w_i ≥ ``min_weight``).

    The network is trained on Σ_i w_i L_i with w detached (the weights before this step's
    update). α sets how hard slow tasks are pushed: 0.12 on the paper's toy, 1.5 on NYUv2
    (LibMTL's default). Since w_i > 0, G_i = w_i·‖∇_W L_i‖ exactly, so ∂L_grad/∂w_i only needs
    the plain gradient norms: the public codes get the same gradient through
    ``autograd.grad(..., create_graph=True)``, which costs a second-order graph.
    LibMTL's variant differs: w = T·softmax(θ) and G over all shared parameters.

    Pass to ``fit(weighting=GradNorm(T, last_shared_layer(model)))``. ``history`` holds w after
    every step.
    """

    def __init__(self, n_tasks: int, shared_layer: nn.Parameter | nn.Module, alpha: float = 1.5,
                 lr: float = 0.025, min_weight: float = 1e-4) -> None:
        if not isinstance(n_tasks, int) or n_tasks < 1:
            raise ValueError(f"n_tasks must be a positive int, got {n_tasks!r}.")
        if alpha < 0 or lr <= 0:
            raise ValueError(f"alpha must be >= 0 and lr > 0, got alpha={alpha}, lr={lr}.")
        self.layer = _as_parameter(shared_layer)
        self.n_tasks, self.alpha, self.min_weight = n_tasks, float(alpha), float(min_weight)
        self.weights = torch.ones(n_tasks, device=self.layer.device, requires_grad=True)
        self.optimizer = torch.optim.Adam([self.weights], lr=lr)
        self.initial_losses: Tensor | None = None
        self.history: list[Tensor] = []

    def targets(self, G: Tensor, losses: Tensor) -> Tensor:
        """The constant targets Ḡ·r_i^α of the paper's equation (2)."""
        ratio = losses.detach() / self.initial_losses
        r = ratio / ratio.mean()
        return (G.detach().mean() * r ** self.alpha).detach()

    def __call__(self, losses: Losses) -> Tensor:
        L = check_losses(losses, self.n_tasks)
        if self.initial_losses is None:
            self.initial_losses = L.detach().clamp_min(1e-12)
        used = self.weights.detach().clone()
        norms = task_gradient_norms(L, self.layer).detach()
        G = self.weights * norms
        grad_loss = (G - self.targets(G, L)).abs().sum()
        self.optimizer.zero_grad(set_to_none=True)
        (self.weights.grad,) = torch.autograd.grad(grad_loss, self.weights)
        self.optimizer.step()
        with torch.no_grad():  # renormalise: Σ w = T, every weight positive
            self.weights.clamp_(min=self.min_weight)
            self.weights.mul_(self.n_tasks / self.weights.sum())
        self.history.append(self.weights.detach().cpu().clone())
        return (used * L).sum()
