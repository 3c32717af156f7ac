"""mtl_helpers: the reusable part of the multi-task learning course.

Two kinds of module (DESIGN.md):

* **methods**, read as a reference, each in one sitting: ``tasks``, ``data``, ``models``,
  ``train``, ``weighting``, ``conflict``, ``toy``, ``metrics``, ``costs``, ``protocol``;
  they import only torch/numpy and each other;
* **course plumbing**: ``course`` (the standard budgets and stored baselines), ``plots``,
  ``widgets``, ``exercises`` (checkers) and ``experiments`` (one module per notebook).

The names below are the ones nearly every notebook uses.
"""

from .data import Budget, MultiTaskDataset, Split, load_adult, load_multimnist, make_mmoe_data
from .metrics import accuracy, auc, format_mean_std, mean_std, paired_difference, rmse
from .models import ConvTrunk, HardSharing, make_head, mlp, standard_network
from .tasks import Task
from .train import History, evaluate, fit, predict
from .utils import claim, count_parameters, get_device, seed_everything, time_interleaved

__all__ = ["Budget", "MultiTaskDataset", "Split", "load_adult", "load_multimnist", "make_mmoe_data", "accuracy",
           "auc", "format_mean_std", "mean_std", "paired_difference", "rmse", "ConvTrunk", "HardSharing",
           "make_head", "mlp", "standard_network", "Task", "History", "evaluate", "fit", "predict", "claim",
           "count_parameters", "get_device", "seed_everything", "time_interleaved"]
