"""MultiMNIST (Sener & Koltun, NeurIPS 2018) from the 5 000 MNIST digits in ``data/``."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..tasks import Task
from .splits import Budget, MultiTaskDataset, Split

DATA_DIR = Path(__file__).resolve().parents[2] / "data"


def _stratified_permutation(labels: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]


@functools.lru_cache(maxsize=1)
def load_mnist_5k() -> tuple[Tensor, Tensor]:
    """The 5 000 MNIST digits as ``(images uint8 (5000, 28, 28), labels int64 (5000,))``."""
    raw = np.loadtxt(DATA_DIR / "mnist_5k.csv.gz", delimiter=",", dtype=np.uint8)
    return torch.from_numpy(raw[:, :784].reshape(-1, 28, 28).copy()), torch.from_numpy(raw[:, 784].astype(np.int64))


def _overlay(left: Tensor, right: Tensor, canvas: int, offset: int) -> Tensor:
    """Sener & Koltun's construction: left digit top-left, right digit shifted by ``offset``
    down and right, overlap by pixel-wise maximum."""
    n, s, _ = left.shape
    if offset + s > canvas:
        raise ValueError(f"A digit of size {s} shifted by {offset} does not fit a canvas of {canvas}.")
    a = torch.zeros(n, canvas, canvas)
    b = torch.zeros(n, canvas, canvas)
    a[:, :s, :s] = left
    b[:, offset:offset + s, offset:offset + s] = right
    return torch.maximum(a, b)


def load_multimnist(n_train: int = 6000, n_val: int = 1000, n_test: int = 2000, *, digit_size: int = 14,
                    canvas: int = 18, offset: int = 3, seed: int = 0,
                    budget: Budget | None = None) -> MultiTaskDataset:
    """MultiMNIST (Sener & Koltun, NeurIPS 2018): two digits on one canvas.

    The paper puts 28×28 digits on a 36×36 canvas (left at [0:28, 0:28], right at
    [6:34, 6:34], overlap by max) and resizes to 28×28. To fit a laptop CPU we first shrink
    each digit to ``digit_size`` (14×14, by 2×2 average pooling) and scale the canvas with it
    (18×18, right digit shifted by 3): the same geometry at half the resolution.

    The 5 000 source digits are split 70 / 10 / 20 % (stratified) *before* pairing, so test
    images are made of digits the model never saw. Pairs are sampled with replacement within
    each pool (an image is paired with a random different one), so ``n_train`` may exceed the
    pool. Tasks: ``left`` and ``right``, both 10-way classification. Pixels are scaled to [0, 1].
    """
    if min(n_train, n_val, n_test) <= 0:
        raise ValueError("n_train, n_val and n_test must be positive.")
    images, labels = load_mnist_5k()
    small = F.adaptive_avg_pool2d(images.float().unsqueeze(1) / 255.0, digit_size).squeeze(1)
    rng = np.random.default_rng(seed)
    pools: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for idx in _stratified_permutation(labels.numpy(), rng):
        a, b = int(0.7 * len(idx)), int(0.8 * len(idx))
        pools["train"] += idx[:a].tolist(); pools["val"] += idx[a:b].tolist(); pools["test"] += idx[b:].tolist()

    def make(pool: list[int], n: int) -> Split:
        pool_t = torch.tensor(pool)
        i = torch.from_numpy(rng.integers(0, len(pool), n))
        j = (i + torch.from_numpy(rng.integers(1, len(pool), n))) % len(pool)  # never the same image
        left, right = pool_t[i], pool_t[j]
        x = _overlay(small[left], small[right], canvas, offset).unsqueeze(1)
        return Split(x, {"left": labels[left], "right": labels[right]})

    tasks = [Task("left", "classification", 10), Task("right", "classification", 10)]
    return MultiTaskDataset("multimnist", tasks, make(pools["train"], n_train), make(pools["val"], n_val),
                            make(pools["test"], n_test), budget,
                            info={"canvas": canvas, "digit_size": digit_size, "offset": offset,
                                  "digits_per_pool": {k: len(v) for k, v in pools.items()}})
