"""Mixtures of experts for multi-task learning: Shared-Bottom, OMoE and MMoE (Ma et al., KDD 2018).

All three map x ∈ ℝ^d to one output per task through a task *tower* (one hidden ReLU layer and
a linear output); they differ in what the towers read.

* **Shared-Bottom** (hard sharing, Caruana 1997): every tower reads the same bottom f(x),
  one ReLU layer of ``width`` units. It is :class:`~mtl_helpers.models.HardSharing` with that
  bottom, built by :func:`shared_bottom`.
* **OMoE** (one-gate mixture of experts): n experts e_j(x) (one ReLU layer each) and one
  softmax gate g(x) = softmax(W_g x) ∈ Δ_n; every tower reads Σ_j g(x)_j e_j(x).
* **MMoE** (multi-gate mixture of experts): one gate per task,
  g_k(x) = softmax(W_{g,k} x), and tower k reads f_k(x) = Σ_j g_k(x)_j e_j(x), so each task
  chooses its own mix of the shared experts: tasks that agree can use the same experts,
  tasks that disagree can use different ones. With one gate shared by all tasks this is OMoE.

The paper's synthetic setting (§3.2, §4.2): d = 100, 8 experts of one 16-unit layer, towers of
one 8-unit layer, and a Shared-Bottom bottom of 113 units "with the same number of
parameters". 113 matches the experts and towers but not the gates (1 616 parameters more):
:func:`matched_bottom_width` matches *every* parameter instead, which gives 126 units.

The experts are one ``nn.Linear(d, n·h)`` whose output is cut into n blocks of h: the same
maths as n separate layers (each block has its own weights), one matrix product instead of n.
The gates are task parameters (gate k only reaches task k's loss); the experts are shared.
MoE models have no single representation z that the towers read (each gate reads x itself),
so they implement ``shared_parameters``/``task_parameters`` of
:class:`~mtl_helpers.models.SharedTrunk` but not ``encode``/``decode`` (no MGDA-UB).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from ..tasks import Task
from .hard import HardSharing
from .trunks import make_head, mlp

SHARED_GATE = "__shared__"  # the key of OMoE's one gate


def gate_mixture(gate_logits: Tensor, experts: Tensor) -> Tensor:
    """What a task's tower reads: f(x) = Σ_j softmax(gate logits)_j · e_j(x).

    ``gate_logits``: (batch, n) = W_g x for one gate; ``experts``: (batch, n, h), the experts'
    outputs. Returns (batch, h): per row, a convex combination of the n expert vectors.
    """
    if gate_logits.ndim != 2 or experts.ndim != 3 or experts.shape[:2] != gate_logits.shape:
        raise ValueError(f"gate_mixture needs logits (batch, n) and experts (batch, n, h), got "
                         f"{tuple(gate_logits.shape)} and {tuple(experts.shape)}.")
    return torch.einsum("bn,bnh->bh", torch.softmax(gate_logits, dim=-1), experts)


def tower(in_dim: int, task: Task, hidden: int) -> nn.Sequential:
    """A task tower: one hidden ReLU layer of ``hidden`` units (none if 0), then the output."""
    return make_head(in_dim, task, (hidden,) if hidden else ())


class MixtureOfExperts(nn.Module):
    """n shared experts, softmax gates, one tower per task; ``one_gate=True`` gives OMoE.

    Args:
        in_dim: d, the input size.
        tasks: the tasks (one gate and one tower each for MMoE).
        n_experts: n; expert_hidden: each expert's ReLU units h; tower_hidden: each tower's.
        one_gate: share one gate among all tasks (OMoE) instead of one per task (MMoE).
    """

    def __init__(self, in_dim: int, tasks: Sequence[Task], n_experts: int = 8, expert_hidden: int = 16,
                 tower_hidden: int = 8, one_gate: bool = False) -> None:
        super().__init__()
        tasks = list(tasks)
        if not tasks or in_dim < 1 or n_experts < 1 or expert_hidden < 1 or tower_hidden < 0:
            raise ValueError(f"A mixture of experts needs tasks, in_dim >= 1, n_experts >= 1, expert_hidden >= 1 "
                             f"and tower_hidden >= 0; got {len(tasks)} tasks, {in_dim}, {n_experts}, "
                             f"{expert_hidden}, {tower_hidden}.")
        self.n_experts, self.expert_hidden, self.one_gate = n_experts, expert_hidden, one_gate
        self.experts = nn.Sequential(nn.Linear(in_dim, n_experts * expert_hidden), nn.ReLU())
        gate_names = [SHARED_GATE] if one_gate else [t.name for t in tasks]
        self.gates = nn.ModuleDict({name: nn.Linear(in_dim, n_experts) for name in gate_names})
        self.towers = nn.ModuleDict({t.name: tower(expert_hidden, t, tower_hidden) for t in tasks})

    @property
    def task_names(self) -> list[str]:
        return list(self.towers.keys())

    def expert_outputs(self, x: Tensor) -> Tensor:
        """(batch, n_experts, expert_hidden): every expert's ReLU output e_j(x)."""
        if x.ndim != 2:
            raise ValueError(f"A mixture of experts expects inputs of shape (batch, d), got {tuple(x.shape)}.")
        return self.experts(x).view(len(x), self.n_experts, self.expert_hidden)

    def gate_logits(self, x: Tensor) -> dict[str, Tensor]:
        """{task: (batch, n_experts)} gate logits W_g x (+ bias); OMoE gives every task the same."""
        shared = self.gates[SHARED_GATE](x) if self.one_gate else None
        return {name: shared if self.one_gate else self.gates[name](x) for name in self.task_names}

    def gate_weights(self, x: Tensor) -> dict[str, Tensor]:
        """{task: (batch, n_experts)} softmax gate weights g_k(x) ∈ Δ_n."""
        return {name: torch.softmax(logits, dim=-1) for name, logits in self.gate_logits(x).items()}

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        experts = self.expert_outputs(x)
        return {name: self.towers[name](gate_mixture(logits, experts)) for name, logits in self.gate_logits(x).items()}

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """The experts (and OMoE's gate, which every task shares)."""
        yield from self.experts.parameters()
        if self.one_gate:
            yield from self.gates.parameters()

    def task_parameters(self, name: str | None = None) -> Iterator[nn.Parameter]:
        """One task's tower (and, for MMoE, its gate); all tasks' when ``name`` is None."""
        names = self.task_names if name is None else [name]
        for n in names:
            if n not in self.towers:
                raise ValueError(f"Unknown task {n!r}; this model has towers {self.task_names}.")
            if not self.one_gate:
                yield from self.gates[n].parameters()
            yield from self.towers[n].parameters()


class MMoE(MixtureOfExperts):
    """Multi-gate mixture of experts (Ma et al., KDD 2018): one softmax gate per task."""

    def __init__(self, in_dim: int, tasks: Sequence[Task], n_experts: int = 8, expert_hidden: int = 16,
                 tower_hidden: int = 8) -> None:
        super().__init__(in_dim, tasks, n_experts, expert_hidden, tower_hidden, one_gate=False)


class OMoE(MixtureOfExperts):
    """One-gate mixture of experts: the same experts as MMoE, one gate shared by every task."""

    def __init__(self, in_dim: int, tasks: Sequence[Task], n_experts: int = 8, expert_hidden: int = 16,
                 tower_hidden: int = 8) -> None:
        super().__init__(in_dim, tasks, n_experts, expert_hidden, tower_hidden, one_gate=True)


def shared_bottom(in_dim: int, tasks: Sequence[Task], width: int, tower_hidden: int = 8) -> HardSharing:
    """Shared-Bottom: one ReLU layer of ``width`` units read by every task's tower (hard sharing).
    With a single task it is the single-task network of the same shape."""
    tasks = list(tasks)
    if not tasks or width < 1:
        raise ValueError(f"shared_bottom needs at least one task and width >= 1, got {len(tasks)} tasks, {width}.")
    return HardSharing(mlp(in_dim, [width]), {t.name: tower(width, t, tower_hidden) for t in tasks})


def moe_parameter_count(in_dim: int, n_tasks: int, n_experts: int = 8, expert_hidden: int = 16,
                        tower_hidden: int = 8, n_gates: int | None = None, n_outputs: int = 1) -> int:
    """Parameters of a mixture of experts, by hand: n·(d·h + h) experts, one (d·n + n) per gate
    (``n_gates`` defaults to ``n_tasks``: MMoE; 1 is OMoE), T towers of (h·t + t) + (t·o + o)."""
    gates = n_tasks if n_gates is None else n_gates
    tower_params = (expert_hidden * tower_hidden + tower_hidden + tower_hidden * n_outputs + n_outputs
                    if tower_hidden else expert_hidden * n_outputs + n_outputs)
    return n_experts * (in_dim * expert_hidden + expert_hidden) + gates * (in_dim * n_experts + n_experts) \
        + n_tasks * tower_params


def matched_bottom_width(in_dim: int, n_tasks: int, target: int, tower_hidden: int = 8, n_outputs: int = 1) -> int:
    """The Shared-Bottom width w whose parameter count is closest to ``target`` (e.g. MMoE's).

    Shared-Bottom has (d·w + w) + T·(w·t + t + t·o + o) parameters: linear in w, so
    w = round((target − T·(t + t·o + o)) / (d + 1 + T·t)).
    """
    if in_dim < 1 or n_tasks < 1 or target < 1:
        raise ValueError(f"in_dim, n_tasks and target must be >= 1, got {in_dim}, {n_tasks}, {target}.")
    fixed = n_tasks * (tower_hidden + tower_hidden * n_outputs + n_outputs) if tower_hidden else n_tasks * n_outputs
    per_unit = in_dim + 1 + n_tasks * (tower_hidden if tower_hidden else n_outputs)
    return max(1, round((target - fixed) / per_unit))
