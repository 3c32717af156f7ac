"""Small utilities every notebook uses: seeding, the device, parameter counts, timing, claims."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (CPU and every GPU) so a run can be repeated.

    Also asks cuDNN for deterministic kernels: a little slower, but a learner who re-runs a
    cell sees the same numbers the notebook shows.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def get_device(prefer: str | None = None) -> torch.device:
    """The best device available: CUDA, then Apple's MPS, then the CPU.

    ``prefer="cpu"`` (or the environment variable ``MTL_DEVICE=cpu``) forces a device, which
    is handy to compare timings or to reproduce the committed outputs exactly.
    """
    choice = prefer or os.environ.get("MTL_DEVICE")
    if choice:
        return torch.device(choice)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of scalar parameters in ``model`` (only those with ``requires_grad`` by default)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


class Timer:
    """Wall-clock stopwatch that waits for the GPU before reading the clock.

    >>> with Timer() as t:
    ...     _ = sum(range(1000))
    >>> t.seconds >= 0
    True
    """

    def __init__(self, device: torch.device | str | None = None) -> None:
        self.device = torch.device(device) if device is not None else None
        self.seconds = float("nan")

    def _sync(self) -> None:
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def __enter__(self) -> "Timer":
        self._sync()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self._sync()
        self.seconds = time.perf_counter() - self._start


@contextmanager
def timed(label: str, device: torch.device | str | None = None) -> Iterator[Timer]:
    """Context manager that prints how long its block took: ``with timed("training"): ...``."""
    with Timer(device) as t:
        yield t
    print(f"{label}: {t.seconds:.2f} s")


class ClaimError(AssertionError):
    """Raised when a notebook's claim is not supported by its run."""


def claim(text: str, condition: bool) -> None:
    """State what a run shows; raise if the run does not show it.

    Notebooks end their sections with claims such as
    ``claim("hard sharing has fewer parameters", p_mtl < p_stl)``. Printing the claim makes the
    evidence visible; raising makes nbval fail when a change breaks what the text says.
    """
    if bool(condition):
        print(f"✔ {text}")
        return
    raise ClaimError(f"Claim not supported by this run: {text}")


def quiet() -> bool:
    """True under CI or pytest/nbval, where progress printing would only add noise."""
    return any(k in os.environ for k in ("CI", "PYTEST_CURRENT_TEST", "PYTEST_XDIST_WORKER", "MTL_QUIET"))
