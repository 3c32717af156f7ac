import pytest
import torch
from torch import nn

from mtl_helpers.utils import ClaimError, claim, count_parameters, get_device, seed_everything, time_interleaved


def test_seed_everything_repeats_random_draws():
    seed_everything(3)
    a = torch.randn(4)
    seed_everything(3)
    assert torch.equal(a, torch.randn(4))


def test_seed_everything_rejects_bad_seed():
    with pytest.raises(ValueError, match="non-negative"):
        seed_everything(-1)


def test_get_device_is_a_device_and_can_be_forced():
    assert isinstance(get_device(), torch.device)
    assert get_device("cpu").type == "cpu"


def test_count_parameters_counts_weights_and_biases():
    layer = nn.Linear(3, 2)
    assert count_parameters(layer) == 3 * 2 + 2
    layer.bias.requires_grad_(False)
    assert count_parameters(layer) == 6
    assert count_parameters(layer, trainable_only=False) == 8


def test_time_interleaved_runs_each_function_in_turn_and_returns_medians():
    calls = []
    times = time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3, warmup=1)
    assert calls == ["a", "b"] * 4  # interleaved: a burst of load hits both alike
    assert set(times) == {"a", "b"} and all(t >= 0 for t in times.values())
    with pytest.raises(ValueError, match="at least one"):
        time_interleaved({})
    with pytest.raises(ValueError, match="repeats"):
        time_interleaved({"a": lambda: None}, repeats=0)


def test_claim_passes_and_fails(capsys):
    claim("two is more than one", 2 > 1)
    assert "✔ two is more than one" in capsys.readouterr().out
    with pytest.raises(ClaimError, match="one is more than two"):
        claim("one is more than two", 1 > 2)
