"""Every dataset of the course and every seeded generator, as a :class:`MultiTaskDataset`.

Real data (files in the project's ``data/`` folder, see its README for sources and licences):
MultiMNIST built from 5 000 MNIST digits, UCI Adult. Synthetic data with known ground truth:
the MMoE correlation benchmark, Gal's uncertainty example, the GradNorm toy.
"""

from .adult import (
                    ADULT_LEAKY,
                    ADULT_NUMERIC,
                    REGRESSION_TARGETS,
                    adult_features,
                    adult_labels,
                    load_adult,
                    load_income_and_regression,
                    read_adult_frames,
                    split_adult_frames,
)
from .clicks import CLICK_TASKS, click_probabilities, make_click_data
from .multimnist import DATA_DIR, load_mnist_5k, load_multimnist
from .splits import Budget, MultiTaskDataset, Split, row_order
from .synthetic import gal_uw_data, gradnorm_toy_data, make_mmoe_data

__all__ = ["ADULT_LEAKY", "ADULT_NUMERIC", "REGRESSION_TARGETS", "adult_features", "adult_labels", "load_adult",
           "load_income_and_regression", "read_adult_frames", "split_adult_frames", "DATA_DIR", "load_mnist_5k",
           "load_multimnist", "Budget", "MultiTaskDataset", "Split", "row_order", "gal_uw_data", "gradnorm_toy_data",
           "make_mmoe_data", "CLICK_TASKS", "click_probabilities", "make_click_data"]
