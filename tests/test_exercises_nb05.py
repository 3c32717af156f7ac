"""The notebook 05 checkers accept the reference and reject plausible wrong answers."""

import pytest
import torch

from mtl_helpers.exercises.nb05 import (
    check_mgda_two_task_weight,
    check_nash_two_tasks,
    check_pcgrad,
    check_pcgrad_two_tasks,
    reference_pcgrad,
    task_orders,
)


def pcgrad_reference(g1, g2):
    dot = g1 @ g2
    if dot >= 0:
        return g1 + g2
    return (g1 - dot / (g2 @ g2) * g2) + (g2 - dot / (g1 @ g1) * g1)


def test_pcgrad_checker():
    assert check_pcgrad_two_tasks(pcgrad_reference)
    assert not check_pcgrad_two_tasks(lambda g1, g2: pcgrad_reference(g1, g2) / 2)  # mean, not sum

    def always_project(g1, g2):
        dot = g1 @ g2
        return (g1 - dot / (g2 @ g2) * g2) + (g2 - dot / (g1 @ g1) * g1)

    def sequential(g1, g2):  # projects g2 on the already projected g1
        dot = g1 @ g2
        if dot >= 0:
            return g1 + g2
        p1 = g1 - dot / (g2 @ g2) * g2
        p2 = g2 - (g2 @ p1) / (p1 @ p1) * p1 if g2 @ p1 < 0 else g2
        return p1 + p2

    assert not check_pcgrad_two_tasks(always_project)
    assert not check_pcgrad_two_tasks(sequential)
    assert not check_pcgrad_two_tasks(lambda g1, g2: g1 + g2)
    assert not check_pcgrad_two_tasks(lambda g1, g2: 1 / 0)  # errors are reported, not raised


def mgda_reference(g1, g2):
    diff = g1 - g2
    return float(torch.clamp(((g2 - g1) @ g2) / (diff @ diff), 0, 1)) if diff @ diff > 0 else 0.5


def test_mgda_checker():
    assert check_mgda_two_task_weight(mgda_reference)
    assert not check_mgda_two_task_weight(lambda g1, g2: 1 - mgda_reference(g1, g2))  # weight on g2
    assert not check_mgda_two_task_weight(lambda g1, g2: float(((g2 - g1) @ g2) / ((g1 - g2) @ (g1 - g2))))  # no clip
    assert not check_mgda_two_task_weight(lambda g1, g2: 0.5)


def nash_reference(g1, g2):
    n1, n2 = g1.norm(), g2.norm()
    cos = (g1 @ g2) / (n1 * n2)
    return torch.stack([1 / (n1 * torch.sqrt(1 + cos)), 1 / (n2 * torch.sqrt(1 + cos))])


def test_nash_checker():
    assert check_nash_two_tasks(nash_reference)
    assert not check_nash_two_tasks(lambda g1, g2: torch.stack([1 / g1.norm(), 1 / g2.norm()]))  # ignores cos
    assert not check_nash_two_tasks(lambda g1, g2: nash_reference(g1, g2) ** 2)
    assert not check_nash_two_tasks(lambda g1, g2: nash_reference(g1, g2) * torch.sqrt(1 + (g1 @ g2) / (g1.norm() * g2.norm())) / (1 + (g1 @ g2) / (g1.norm() * g2.norm())))  # noqa: E501  (1 + cos), no root


def not_implemented(g1, g2):
    raise NotImplementedError("write your solution here")


def test_stubs_are_reported_not_implemented(capsys):
    for checker in (check_pcgrad_two_tasks, check_mgda_two_task_weight, check_nash_two_tasks):
        assert not checker(not_implemented)
        assert "not implemented yet" in capsys.readouterr().out
    assert not check_pcgrad(lambda G, orders: not_implemented(G, orders))
    assert "not implemented yet" in capsys.readouterr().out


def test_wrong_types_and_in_place_edits_are_reported(capsys):
    assert not check_pcgrad_two_tasks(lambda g1, g2: None)  # forgot to return
    assert not check_mgda_two_task_weight(lambda g1, g2: "0.5")
    assert "wrong" in capsys.readouterr().out

    def in_place(g1, g2):  # edits the caller's tensors, then answers correctly for the edited ones
        g1.mul_(2)
        return pcgrad_reference(g1, g2)

    assert not check_pcgrad_two_tasks(in_place)  # the reference still sees the original g1


# ------------------------------------------------------------------ exercise 4: PCGrad for T tasks
def pcgrad_variant(G, orders, *, test="current", subtract="current", against="original", always=False):
    """PCGrad with the defaults; each option is one plausible mistake: test for conflict with the
    original g_i, subtract the projection of the original g_i, project against the already
    projected g_j (what editing G in place does), project without a conflict."""
    projected = G.clone()
    for i in range(G.shape[0]):
        for j in orders[i]:
            other = G[j] if against == "original" else projected[j]
            tested = projected[i] if test == "current" else G[i]
            if j != i and (always or tested @ other < 0):
                base = projected[i] if subtract == "current" else G[i]
                projected[i] = projected[i] - (base @ other) / (other @ other) * other
    return projected.sum(0)


def test_pcgrad_checker_accepts_the_reference_and_uses_the_package_orders():
    assert check_pcgrad(pcgrad_variant)
    G = torch.randn(3, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.allclose(pcgrad_variant(G, task_orders(3, 7)), reference_pcgrad(G, 7))


@pytest.mark.parametrize("wrong", [
    lambda G, orders: pcgrad_variant(G, orders, against="projected"),
    lambda G, orders: pcgrad_variant(G, orders, test="original"),
    lambda G, orders: pcgrad_variant(G, orders, subtract="original"),
    lambda G, orders: pcgrad_variant(G, orders, always=True),
    lambda G, orders: pcgrad_variant(G, [list(range(G.shape[0]))] * G.shape[0]),  # ignores the orders
    lambda G, orders: pcgrad_variant(G, orders) / G.shape[0],  # mean, not sum
    lambda G, orders: G.sum(0),
], ids=["projected g_j", "conflict with original g_i", "subtract original g_i", "always project", "own order",
        "mean", "plain sum"])
def test_pcgrad_checker_rejects_plausible_mistakes(wrong):
    assert not check_pcgrad(wrong)


def test_hints_do_not_give_the_closed_forms_away(capsys):
    check_mgda_two_task_weight(lambda g1, g2: 0.5)
    check_nash_two_tasks(lambda g1, g2: torch.stack([1 / g1.norm(), 1 / g2.norm()]))
    check_pcgrad_two_tasks(lambda g1, g2: g1 + g2)
    out = capsys.readouterr().out
    assert "✘" in out and "√" not in out and "‖g1 − g2‖²" not in out and "‖g2‖²" not in out
    assert "α_i (Mα)_i = 1" in out  # the Nash hint shows the learner's residual in the defining equation
