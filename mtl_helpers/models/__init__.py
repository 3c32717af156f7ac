"""Every architecture of the course, one file each, found by name.

Every model maps an input batch to a ``dict`` ``{task name: head output}``, so one training
loop serves them all. A model that shares a trunk also implements :class:`SharedTrunk`: the
small protocol that the gradient-level methods of notebook 05 rely on.

=================  =====================================================  ==================
module             what                                                   notebook
=================  =====================================================  ==================
``trunks``         ``mlp``, ``ConvTrunk``, ``make_head``, the standard trunk  01
``hard``           ``HardSharing``, ``standard_network``, ``split_model``,    02
                   ``export_task_model``
``soft``           ``SoftSharing`` + ``coupling_penalty`` (L2 coupling)       03
``cross_stitch``   ``CrossStitch``                                            03
``low_rank``       ``LowRankSharing`` (W_t = B·V_t)                           03
``moe``            ``SharedBottom``, ``OMoE``, ``MMoE`` (gated experts)       06
``esmm``           ``ESMM``: pCTCVR = pCTR · pCVR (a serial cascade)          06
=================  =====================================================  ==================
"""

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from torch import Tensor, nn

from .cross_stitch import CrossStitch, cross_stitch_init, cross_stitch_mix, make_cross_stitch, trunk_blocks
from .esmm import ESMM, ConversionNet, esmm_loss, product_logit
from .hard import (
    HardSharing,
    export_task_model,
    layer_groups,
    load_task_model,
    parameter_counts,
    save_task_models,
    split_model,
    standard_network,
)
from .low_rank import LowRankSharing, make_low_rank
from .moe import MixtureOfExperts, MMoE, OMoE, gate_mixture, matched_bottom_width, moe_parameter_count, shared_bottom
from .soft import SoftSharing, coupling_penalty, l2_coupling, make_soft_sharing, tower_distance, weight_decay_penalty
from .trunks import ConvTrunk, make_head, mlp, standard_trunk


@runtime_checkable
class SharedTrunk(Protocol):
    """What a gradient-level method needs from an architecture (:func:`mtl_helpers.train.fit`).

    * ``shared_parameters()``: θ_sh, where the per-task gradients g_i = ∇_θsh L_i are taken;
    * ``task_parameters(name)``: one task's own parameters (all tasks' when ``name`` is None);
    * ``encode(x)`` → z and ``decode(z)`` → ``{task: output}``: for representation-level
      gradients (MGDA-UB takes g_i = ∇_z L_i: one trunk backward instead of T).
    """

    def shared_parameters(self) -> Iterator[nn.Parameter]: ...

    def task_parameters(self, name: str | None = None) -> Iterator[nn.Parameter]: ...

    def encode(self, x: Tensor) -> Tensor: ...

    def decode(self, z: Tensor) -> dict[str, Tensor]: ...


__all__ = ["SharedTrunk", "CrossStitch", "cross_stitch_init", "cross_stitch_mix", "make_cross_stitch",
           "trunk_blocks", "HardSharing", "export_task_model", "layer_groups", "load_task_model", "parameter_counts",
           "save_task_models", "split_model", "standard_network", "LowRankSharing", "make_low_rank", "SoftSharing",
           "coupling_penalty", "l2_coupling", "make_soft_sharing", "tower_distance", "weight_decay_penalty",
           "ConvTrunk", "make_head", "mlp", "standard_trunk", "ESMM", "ConversionNet", "esmm_loss", "product_logit",
           "MMoE", "MixtureOfExperts", "OMoE", "gate_mixture", "matched_bottom_width", "moe_parameter_count",
           "shared_bottom"]
