"""UCI Adult (census income) from ``data/``: the MMoE paper's task pair, and a deliberately
unbalanced pair for notebook 04.

Only the *task pair* (income > 50K, never married) is the MMoE paper's (Ma et al., KDD 2018,
§6.3): the paper used UCI Census-Income (KDD), 299 285 rows; this is the smaller UCI Adult
file (48 842 rows), which has the same two labels.
"""

from __future__ import annotations

import functools
import gzip

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from ..tasks import Task
from .multimnist import DATA_DIR
from .splits import Budget, MultiTaskDataset, Split

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
        blocks_tr.append(_one_hot(train[col], cats))
        blocks_ot.append(_one_hot(other[col], cats))
        names += [f"{col}={c}" for c in cats]
    return np.hstack(blocks_tr).astype(np.float32), np.hstack(blocks_ot).astype(np.float32), names


def _one_hot(values: pd.Series, categories: list[str]) -> np.ndarray:
    """(N, C) 0/1 rows: row i has a 1 in the column of its category, none if it is not in
    ``categories`` (looked up as integer codes: far faster than comparing strings)."""
    codes = pd.Index(categories).get_indexer(values)  # −1 where unseen
    table = np.vstack([np.eye(len(categories)), np.zeros((1, len(categories)))])  # row −1: all zeros
    return table[codes]


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


def load_adult(val_fraction: float = 0.15, n_train: int | None = None, seed: int = 0,
               budget: Budget | None = None) -> MultiTaskDataset:
    """UCI Adult with the MMoE paper's task pair: income > 50K and never married.

    Train / validation come from ``adult.data`` (a random ``val_fraction`` held out), test is
    ``adult.test``. ``n_train`` optionally subsamples the training rows. Features: 6
    standardised numerics + one-hot categoricals, without the two leaky columns.
    """
    train_df, val_df, test = split_adult_frames(val_fraction, n_train, seed)
    x_train, x_val, names = adult_features(train_df, val_df)
    _, x_test, _ = adult_features(train_df, test)

    def split(x: np.ndarray, df: pd.DataFrame) -> Split:
        return Split(torch.from_numpy(x), adult_labels(df))
    tasks = [Task("income", "binary"), Task("never_married", "binary")]
    return MultiTaskDataset("adult", tasks, split(x_train, train_df), split(x_val, val_df), split(x_test, test),
                            budget, info={"feature_names": names})


REGRESSION_TARGETS = ("age", "hours_per_week", "education_num", "capital_gain", "capital_loss")


def load_income_and_regression(target: str = "hours_per_week", val_fraction: float = 0.15,
                               n_train: int | None = None, seed: int = 0,
                               budget: Budget | None = None) -> MultiTaskDataset:
    """UCI Adult with an unbalanced pair: income > 50K (binary, BCE ≈ 0.3–0.7) and ``target``
    (a numeric column in raw units, MSE in the hundreds) as a regression task.

    The same splits as :func:`load_adult` (same seed); the features are the standard ones
    minus ``target`` itself (it would give the label away). Pass ``budget`` explicitly (the
    course uses Adult's). ``n_train`` keeps only that many training rows.
    """
    if target not in REGRESSION_TARGETS:
        raise ValueError(f"target must be one of {REGRESSION_TARGETS}, got {target!r}.")
    train_df, val_df, test = split_adult_frames(val_fraction, n_train, seed)
    x_train, x_val, names = adult_features(train_df, val_df)
    _, x_test, _ = adult_features(train_df, test)
    keep = [i for i, name in enumerate(names) if name != target]

    def split(x: np.ndarray, df: pd.DataFrame) -> Split:
        y = {"income": adult_labels(df)["income"], target: torch.tensor(df[target].to_numpy(), dtype=torch.float32)}
        return Split(torch.from_numpy(np.ascontiguousarray(x[:, keep])), y)

    tasks = [Task("income", "binary"), Task(target, "regression")]
    return MultiTaskDataset(f"adult_income_{target}", tasks, split(x_train, train_df), split(x_val, val_df),
                            split(x_test, test), budget,
                            info={"feature_names": [names[i] for i in keep], "regression_target": target})
