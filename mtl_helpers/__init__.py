"""mtl_helpers: the reusable part of the multi-task learning course.

One module per idea, in course order: ``utils`` → ``tasks`` → ``data`` → ``models`` →
``train`` → ``metrics`` → ``baselines`` (notebook 01) → later notebooks' modules. Notebooks
import what they need; the names below are the ones nearly every notebook uses.
"""

from .data import MultiTaskDataset, Split, load_adult, load_multimnist, make_mmoe_data
from .metrics import accuracy, auc, format_mean_std, mean_std, rmse
from .models import ConvTrunk, HardSharing, make_head, mlp
from .tasks import Task
from .train import History, evaluate, fit, predict
from .utils import Timer, claim, count_parameters, get_device, seed_everything

__all__ = ["MultiTaskDataset", "Split", "load_adult", "load_multimnist", "make_mmoe_data", "accuracy", "auc",
           "format_mean_std", "mean_std", "rmse", "ConvTrunk", "HardSharing", "make_head", "mlp", "Task",
           "History", "evaluate", "fit", "predict", "Timer", "claim", "count_parameters", "get_device",
           "seed_everything"]
