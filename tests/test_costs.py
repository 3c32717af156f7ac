"""Deterministic costs: the same numbers on every machine, whatever its load."""

from __future__ import annotations

import torch

from mtl_helpers.costs import StepCost, inference_flops, step_cost, step_cost_table
from mtl_helpers.data import Split
from mtl_helpers.models import HardSharing, make_head, mlp
from mtl_helpers.tasks import Task

TASKS = [Task(f"t{i}", "regression") for i in range(3)]
BATCH = Split(torch.randn(16, 8), {t.name: torch.randn(16) for t in TASKS})


def model() -> HardSharing:
    torch.manual_seed(0)
    return HardSharing(mlp(8, [32, 32]), {t.name: make_head(32, t) for t in TASKS})


def test_backward_passes_through_the_trunk_per_step():
    assert step_cost(model(), BATCH, TASKS).trunk_backward_passes == 1  # one backward of Σ L_t
    assert step_cost(model(), BATCH, TASKS, weighting="uw").trunk_backward_passes == 1
    for method in ("pcgrad", "mgda", "cagrad", "nash"):  # every task's gradient on the shared parameters
        assert step_cost(model(), BATCH, TASKS, gradient_method=method).trunk_backward_passes == 3
    ub = step_cost(model(), BATCH, TASKS, gradient_method="mgda", gradients_wrt="representation")
    assert ub.trunk_backward_passes == 1  # MGDA-UB: gradients w.r.t. z, one trunk backward


def test_flops_are_exact_for_a_linear_layer_and_repeatable():
    layer = torch.nn.Linear(8, 4)
    assert inference_flops(layer, torch.randn(16, 8)) == 2 * 16 * 8 * 4  # one multiply-add = 2 FLOPs
    a, b = step_cost(model(), BATCH, TASKS), step_cost(model(), BATCH, TASKS)
    assert isinstance(a, StepCost) and a == b and a.flops > 0
    pc = step_cost(model(), BATCH, TASKS, gradient_method="pcgrad")
    assert pc.flops > a.flops  # three trunk backward passes cost more than one


def test_step_cost_leaves_the_model_alone():
    m = model()
    before = [p.detach().clone() for p in m.parameters()]
    step_cost(m, BATCH, TASKS, gradient_method="pcgrad")
    assert all(torch.equal(x, y) for x, y in zip(before, m.parameters(), strict=True))


def test_step_cost_table_has_deterministic_and_measured_columns():
    from mtl_helpers.data import Budget, MultiTaskDataset
    from mtl_helpers.protocol import Arm

    data = MultiTaskDataset("t", TASKS, BATCH, BATCH, BATCH, Budget(1, 16, (1e-3,)))
    arms = [Arm("equal", lambda _: model()),
            Arm("PCGrad", lambda _: model(), options=lambda m, s: {"gradient_method": "pcgrad"}),
            Arm("UW", lambda _: model(), options=lambda m, s: {"weighting": "uw"})]
    table = step_cost_table(arms, data, repeats=2)
    assert table.loc["PCGrad", "trunk backward passes"] == 3 and table.loc["equal", "trunk backward passes"] == 1
    assert table.loc["equal", "FLOPs × equal"] == 1.0 and table.loc["PCGrad", "FLOPs × equal"] > 1.0
    assert (table["measured ms / step"] > 0).all()


def test_a_balancer_built_on_the_model_follows_the_copy():
    from mtl_helpers.weighting import make_weighting

    m = model()
    by_name = step_cost(m, BATCH, TASKS, weighting="gradnorm")
    by_object = step_cost(m, BATCH, TASKS, weighting=make_weighting("gradnorm", m, TASKS))
    assert by_object == by_name and by_name.flops > step_cost(m, BATCH, TASKS).flops


def test_a_learned_balancer_goes_to_the_models_device():
    """fit moves a learned balancer (UW's log-variances) to the model's device, and so must the
    cost functions: on a GPU, notebook 04's cost table once failed with UW's parameters left on
    the CPU. CI has no GPU, so a spy records where each balancer is sent."""
    from mtl_helpers.data import Budget, MultiTaskDataset
    from mtl_helpers.protocol import Arm
    from mtl_helpers.weighting import UncertaintyWeighting

    sent = []

    class Spy(UncertaintyWeighting):
        def to(self, *args, **kwargs):
            sent.append(torch.device(args[0] if args else kwargs["device"]))
            return super().to(*args, **kwargs)

    step_cost(model(), BATCH, TASKS, weighting=Spy(3))
    assert sent == [torch.device("cpu")]  # the copy step_cost trains goes where the model's copy is
    data = MultiTaskDataset("t", TASKS, BATCH, BATCH, BATCH, Budget(1, 16, (1e-3,)))
    step_cost_table([Arm("UW", lambda _: model(), options=lambda m, s: {"weighting": Spy(3)})], data, repeats=1)
    assert sent[1:] == [torch.device("cpu")] * 2  # the counted step and the timed step
