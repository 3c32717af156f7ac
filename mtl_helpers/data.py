"""The course's datasets: two real ones from ``data/`` and seeded synthetic generators.

Every loader returns a :class:`MultiTaskDataset`: train / validation / test :class:`Split` s
(inputs ``x`` and one target tensor per task) plus the list of :class:`~mtl_helpers.tasks.Task` s.
Everything lives in memory as tensors: the datasets are small, and indexing a tensor is far
faster on a CPU than a ``DataLoader``.
"""

from __future__ import annotations

import functools
import gzip
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from .tasks import Task, check_tasks, get_task

DATA_DIR = Path(__file__).resolve().parent.parent / "data"


def _row_order(n: int, seed: int) -> np.ndarray:
    """A random order of n rows from NumPy's generator: a stream independent of the torch
    generator that ``fit(seed=...)`` uses for batch order. (With the same stream and seed,
    the rows kept by ``with_label_fraction`` would all land in the first batches.)"""
    return np.random.default_rng(seed).permutation(n)


@dataclass
class Split:
    """Inputs and per-task targets of one split.

    ``masks[name]`` (optional) marks which rows carry a label for task ``name``; the training
    loop ignores unlabelled rows for that task. It is how notebook 02 gives one task only a
    fraction of its labels while the other keeps all of them.
    """

    x: Tensor
    y: dict[str, Tensor]
    masks: dict[str, Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.y:
            raise ValueError("A Split needs at least one task's targets in y.")
        n = self.x.shape[0]
        for name, t in {**self.y, **self.masks}.items():
            if t.shape[0] != n:
                raise ValueError(f"Targets/mask of task {name!r} have {t.shape[0]} rows but x has {n}.")
        for name in self.masks:
            if name not in self.y:
                raise ValueError(f"Mask given for unknown task {name!r}; the tasks are {list(self.y)}.")

    def __len__(self) -> int:
        return self.x.shape[0]

    def subset(self, index: Tensor) -> "Split":
        """The rows ``index`` of this split (targets and masks follow)."""
        return Split(self.x[index], {k: v[index] for k, v in self.y.items()},
                     {k: v[index] for k, v in self.masks.items()})

    def take(self, n: int, seed: int = 0) -> "Split":
        """A random subset of ``n`` rows (the same rows for the same seed)."""
        if not 0 < n <= len(self):
            raise ValueError(f"take(n) needs 0 < n <= {len(self)}, got {n}.")
        return self.subset(torch.from_numpy(_row_order(len(self), seed)[:n]))

    def with_label_fraction(self, task: str, fraction: float, seed: int = 0) -> "Split":
        """Keep every input but only a random ``fraction`` of task ``task``'s labels."""
        if task not in self.y:
            raise ValueError(f"Unknown task {task!r}; the tasks are {list(self.y)}.")
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}.")
        keep = torch.zeros(len(self), dtype=torch.bool)
        keep[torch.from_numpy(_row_order(len(self), seed)[: max(1, round(fraction * len(self)))])] = True
        return replace(self, masks={**self.masks, task: keep})

    def to(self, device: torch.device | str) -> "Split":
        return Split(self.x.to(device), {k: v.to(device) for k, v in self.y.items()},
                     {k: v.to(device) for k, v in self.masks.items()})


@dataclass
class MultiTaskDataset:
    """Three splits and the tasks they carry."""

    name: str
    tasks: list[Task]
    train: Split
    val: Split
    test: Split
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.tasks = check_tasks(self.tasks)
        for split in (self.train, self.val, self.test):
            for task in self.tasks:
                if task.name not in split.y:
                    raise ValueError(f"Split has no targets for task {task.name!r}.")

    def task(self, name: str) -> Task:
        return get_task(self.tasks, name)

    def select(self, task_names: Sequence[str]) -> "MultiTaskDataset":
        """The same data restricted to some tasks (a single-task view for a baseline)."""
        tasks = [self.task(n) for n in task_names]
        keep = lambda s: Split(s.x, {t.name: s.y[t.name] for t in tasks},  # noqa: E731
                               {t.name: s.masks[t.name] for t in tasks if t.name in s.masks})
        return replace(self, tasks=tasks, train=keep(self.train), val=keep(self.val), test=keep(self.test))


def _stratified_permutation(labels: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]


# --------------------------------------------------------------------------- MultiMNIST
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
                    canvas: int = 18, offset: int = 3, seed: int = 0) -> MultiTaskDataset:
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
                            make(pools["test"], n_test),
                            info={"canvas": canvas, "digit_size": digit_size, "offset": offset,
                                  "digits_per_pool": {k: len(v) for k, v in pools.items()}})


# --------------------------------------------------------------------------- Adult
ADULT_COLUMNS = ["age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation",
                 "relationship", "race", "sex", "capital_gain", "capital_loss", "hours_per_week",
                 "native_country", "income"]
ADULT_NUMERIC = ["age", "fnlwgt", "education_num", "capital_gain", "capital_loss", "hours_per_week"]
ADULT_LEAKY = ["marital_status", "relationship"]  # they give 'never married' away


@functools.lru_cache(maxsize=1)
def read_adult_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The raw UCI Adult training and test files as DataFrames (``?`` kept as a category)."""
    def read(name: str, skip: int) -> pd.DataFrame:
        with gzip.open(DATA_DIR / name, "rt") as f:
            df = pd.read_csv(f, header=None, names=ADULT_COLUMNS, skipinitialspace=True, skiprows=skip)
        df = df.dropna(subset=["income"])
        df["income"] = df["income"].str.rstrip(".")
        return df.reset_index(drop=True)
    return read("adult.data.gz", 0), read("adult.test.gz", 1)


def adult_features(train: pd.DataFrame, other: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Standardise numerics (train statistics) and one-hot encode categoricals (train
    categories; unseen ones become all-zero). ``marital_status`` and ``relationship`` are left
    out: they would leak the never-married label."""
    categorical = [c for c in ADULT_COLUMNS if c not in ADULT_NUMERIC + ADULT_LEAKY + ["income"]]
    mean, std = train[ADULT_NUMERIC].mean(), train[ADULT_NUMERIC].std()
    blocks_tr, blocks_ot, names = [((train[ADULT_NUMERIC] - mean) / std).to_numpy()], \
        [((other[ADULT_NUMERIC] - mean) / std).to_numpy()], list(ADULT_NUMERIC)
    for col in categorical:
        cats = sorted(train[col].unique())
        blocks_tr.append((train[col].to_numpy()[:, None] == np.array(cats)[None]).astype(np.float64))
        blocks_ot.append((other[col].to_numpy()[:, None] == np.array(cats)[None]).astype(np.float64))
        names += [f"{col}={c}" for c in cats]
    return np.hstack(blocks_tr).astype(np.float32), np.hstack(blocks_ot).astype(np.float32), names


def adult_labels(df: pd.DataFrame) -> dict[str, Tensor]:
    """The two tasks of the MMoE paper: income > 50K and never-married (both 0/1)."""
    return {"income": torch.tensor((df["income"] == ">50K").to_numpy(), dtype=torch.float32),
            "never_married": torch.tensor((df["marital_status"] == "Never-married").to_numpy(), dtype=torch.float32)}


def split_adult_frames(val_fraction: float = 0.15, n_train: int | None = None,
                       seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Raw (train, validation, test) frames: a random ``val_fraction`` of ``adult.data`` is held
    out for validation, ``adult.test`` is the test set; ``n_train`` keeps only that many
    training rows."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}.")
    full, test = read_adult_frames()
    perm = np.random.default_rng(seed).permutation(len(full))
    n_val = int(val_fraction * len(full))
    val_df, train_df = full.iloc[perm[:n_val]], full.iloc[perm[n_val:]]
    if n_train is not None:
        if not 0 < n_train <= len(train_df):
            raise ValueError(f"n_train must be in 1..{len(train_df)}, got {n_train}.")
        train_df = train_df.iloc[:n_train]
    return train_df, val_df, test


def load_adult(val_fraction: float = 0.15, n_train: int | None = None, seed: int = 0) -> MultiTaskDataset:
    """UCI Adult with the MMoE paper's task pair (Ma et al., KDD 2018, §5.2).

    Train / validation come from ``adult.data`` (a random ``val_fraction`` held out), test is
    ``adult.test``. ``n_train`` optionally subsamples the training rows (for learning curves
    and quick drills). Features: 6 standardised numerics + one-hot categoricals, without the
    two leaky columns.
    """
    train_df, val_df, test = split_adult_frames(val_fraction, n_train, seed)
    x_train, x_val, names = adult_features(train_df, val_df)
    _, x_test, _ = adult_features(train_df, test)
    split = lambda x, df: Split(torch.from_numpy(x), adult_labels(df))  # noqa: E731
    tasks = [Task("income", "binary"), Task("never_married", "binary")]
    return MultiTaskDataset("adult", tasks, split(x_train, train_df), split(x_val, val_df), split(x_test, test),
                            info={"feature_names": names})


# --------------------------------------------------------------------------- synthetic
def make_mmoe_data(correlation: float, n_train: int = 8000, n_val: int = 1000, n_test: int = 2000, *,
                   dim: int = 100, scale: float = 0.3, n_sines: int = 5, noise: float = 0.01,
                   seed: int = 0) -> MultiTaskDataset:
    """Two regression tasks whose correlation you control (Ma et al., KDD 2018, §3.2).

    u₁ ⊥ u₂ unit vectors; w₁ = c·u₁, w₂ = c·(p·u₁ + √(1−p²)·u₂); x ~ N(0, I_d);
    y_k = w_kᵀx + Σ_{i=1..m} sin(α_i w_kᵀx + β_i) + ε,  ε ~ N(0, noise²).
    The paper does not give c, m, α, β: we use c = 0.3, m = 5, α_i, β_i ~ N(0, 1), with which
    the label correlation tracks p (p = 0.9 gives about 0.87).
    """
    if not -1.0 <= correlation <= 1.0:
        raise ValueError(f"correlation p must be in [-1, 1], got {correlation}.")
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(dim, 2, generator=g))
    u1, u2 = q[:, 0], q[:, 1]
    w1 = scale * u1
    w2 = scale * (correlation * u1 + (1 - correlation**2) ** 0.5 * u2)
    alpha, beta = torch.randn(n_sines, generator=g), torch.randn(n_sines, generator=g)

    def target(x: Tensor, w: Tensor) -> Tensor:
        z = x @ w
        return z + torch.sin(alpha * z[:, None] + beta).sum(1) + noise * torch.randn(len(x), generator=g)

    def split(n: int) -> Split:
        x = torch.randn(n, dim, generator=g)
        return Split(x, {"y1": target(x, w1), "y2": target(x, w2)})

    tasks = [Task("y1", "regression"), Task("y2", "regression")]
    return MultiTaskDataset("mmoe_synthetic", tasks, split(n_train), split(n_val), split(n_test),
                            info={"correlation": correlation, "scale": scale, "n_sines": n_sines})
