import pytest
import torch
from torch import nn

from mtl_helpers.utils import ClaimError, Timer, claim, count_parameters, get_device, seed_everything


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


def test_timer_measures_elapsed_time():
    with Timer() as t:
        sum(range(10000))
    assert 0 <= t.seconds < 5


def test_claim_passes_and_fails(capsys):
    claim("two is more than one", 2 > 1)
    assert "✔ two is more than one" in capsys.readouterr().out
    with pytest.raises(ClaimError, match="one is more than two"):
        claim("one is more than two", 1 > 2)
