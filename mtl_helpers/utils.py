"""Small utilities every notebook uses: seeding, the device, parameter counts, one timer, claims."""

from __future__ import annotations

import os
import random
import statistics
import time
from collections.abc import Callable, Mapping

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


def time_interleaved(fns: Mapping[str, Callable[[], object]], repeats: int = 15, warmup: int = 3,
                     device: torch.device | str | None = None) -> dict[str, float]:
    """Median wall-clock seconds of each function, the functions timed in turn inside each repeat.

    The course's one timer. Interleaving (A, B, C, A, B, C, …) means a burst of background
    load hits every entry alike, and the median ignores the bursts. Times are *shown*, never
    asserted with a margin: a claim about cost uses a deterministic measure instead (parameters,
    FLOPs, backward passes: :mod:`mtl_helpers.costs`). With a CUDA ``device`` the clock is read
    only after the GPU has finished.
    """
    if not fns:
        raise ValueError("time_interleaved needs at least one function to time.")
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got {repeats} and {warmup}.")
    cuda = device is not None and torch.device(device).type == "cuda"
    times: dict[str, list[float]] = {name: [] for name in fns}
    for i in range(warmup + repeats):
        for name, fn in fns.items():
            if cuda:
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            fn()
            if cuda:
                torch.cuda.synchronize(device)
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


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
