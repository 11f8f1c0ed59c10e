"""``MattingMetrics``: the per-image metrics of a protocol summed over a dataset, as a torchmetrics ``Metric``.

This module imports torch; :mod:`matting.metrics` imports it only when ``MattingMetrics`` is first
used, so that scoring folders of mattes (``matting evaluate``) does not pay for torch at start-up.
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics import Metric

from matting.io.errors import MattingInputError
from matting.metrics.protocols import compute_metrics, metric_keys

__all__ = ["MattingMetrics"]


class MattingMetrics(Metric):
    """Per-image means of a protocol's metrics, for Lightning validation and testing.

    Each image is scored on the CPU by ``compute_metrics``; the states are per-key sums and
    counts (float64, ``dist_reduce_fx="sum"``), so DDP reduction gives the dataset mean.

    Args:
        protocol: ``comp1k``, ``whole`` or ``modnet``.
        quantize: as in ``compute_metrics``.

    Inputs (``update``):
        pred_alpha: (B, 1, H, W) or (B, H, W) float in [0, 1].
        gt_alpha: same shape, float in [0, 1].
        trimap: same shape or None; uint8 0/128/255, or float 0..255 (or 0..1).

    Outputs (``compute``):
        {key: scalar tensor}, the mean over images of each key seen at least once.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, protocol: str = "whole", quantize: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.protocol = protocol
        self.quantize = quantize
        self.keys = metric_keys(protocol, with_trimap=True)
        for key in self.keys:
            self.add_state(f"{key}_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{key}_count", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    @staticmethod
    def _per_image(tensor: torch.Tensor, name: str) -> np.ndarray:
        """(B, 1, H, W) or (B, H, W) tensor -> (B, H, W) numpy on the CPU."""
        if tensor.ndim == 4 and tensor.shape[1] == 1:
            tensor = tensor[:, 0]
        if tensor.ndim != 3:
            raise MattingInputError(f"{name}: expected (B, 1, H, W) or (B, H, W), got {tuple(tensor.shape)}")
        tensor = tensor.detach().cpu()
        if tensor.is_floating_point():
            tensor = tensor.float()
        return tensor.numpy()

    def update(self, pred_alpha: torch.Tensor, gt_alpha: torch.Tensor, trimap: torch.Tensor | None = None) -> None:
        preds = self._per_image(pred_alpha, "pred_alpha")
        gts = self._per_image(gt_alpha, "gt_alpha")
        trimaps = None if trimap is None else self._per_image(trimap, "trimap")
        if len(preds) != len(gts) or (trimaps is not None and len(trimaps) != len(preds)):
            raise MattingInputError("pred_alpha, gt_alpha and trimap must have the same batch size")
        for b in range(len(preds)):
            values = compute_metrics(
                preds[b], gts[b], None if trimaps is None else trimaps[b], self.protocol, self.quantize
            )
            for key, value in values.items():
                setattr(self, f"{key}_sum", getattr(self, f"{key}_sum") + value)
                setattr(self, f"{key}_count", getattr(self, f"{key}_count") + 1)

    def compute(self) -> dict[str, torch.Tensor]:
        means = {}
        for key in self.keys:
            count = getattr(self, f"{key}_count")
            if count > 0:
                means[key] = getattr(self, f"{key}_sum") / count
        return means
