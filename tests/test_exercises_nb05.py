"""The notebook 05 checkers accept the reference and reject plausible wrong answers."""

import torch

from mtl_helpers.exercises.nb05 import check_mgda_two_task_weight, check_nash_two_tasks, check_pcgrad_two_tasks


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


def test_wrong_types_and_in_place_edits_are_reported(capsys):
    assert not check_pcgrad_two_tasks(lambda g1, g2: None)  # forgot to return
    assert not check_mgda_two_task_weight(lambda g1, g2: "0.5")
    assert "wrong" in capsys.readouterr().out

    def in_place(g1, g2):  # edits the caller's tensors, then answers correctly for the edited ones
        g1.mul_(2)
        return pcgrad_reference(g1, g2)

    assert not check_pcgrad_two_tasks(in_place)  # the reference still sees the original g1
