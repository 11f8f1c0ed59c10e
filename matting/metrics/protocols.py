"""The benchmark protocols (``compute_metrics``): which metrics, over which pixels, of which prediction.

- ``comp1k``: Composition-1k, parity with the official MATLAB code. Needs a trimap. Only trimap
  == 128 pixels count. Keys: sad, mse, grad, conn. By default the known regions of the
  prediction are forced (trimap 0 -> 0, 255 -> 1) before all metrics, as the code of GCA-Matting
  and MatteFormer does before saving its predictions; ``force_known=False`` scores the
  prediction as given, as the official ``evaluate.m`` scores the saved file. SAD and MSE do not
  depend on it; Grad (9x9 support) and Conn (components over the whole image) do.
- ``whole``: AM-2k / P3M / AIM. Keys sad, mse, mad, grad, conn over the whole image, with the
  raw prediction. Given a trimap, also sad_unknown, mse_unknown, mad_unknown (over trimap ==
  128), sad_fg (trimap == 255) and sad_bg (trimap == 0). Grad and Conn are the MATLAB
  definitions of :mod:`matting.metrics.per_image` applied to every pixel (GFM's Python code uses an
  unnormalised scipy derivative divided by 10 instead, which differs from it by 2 to 5 %).
- ``modnet``: PPM-100. Whole-image mse and mad.

``quantize=True`` (the default, for predictions held in memory) scores the prediction as the
8-bit PNG it would be saved as (``round(pred * 255) / 255``, the rounding of
``matting.io.images.write_png``), so a value logged during training equals what ``matting
evaluate`` reports for the saved predictions. A prediction read from a file is scored at the
bit depth of that file (``quantize=False``): an 8-bit PNG holds these values already, and a
16-bit file keeps its 16 bits. The ground truth is always used as given.
"""

from __future__ import annotations

import numpy as np

from matting.io.errors import MattingInputError
from matting.io.images import (
    TRIMAP_BACKGROUND,
    TRIMAP_FOREGROUND,
    TRIMAP_UNKNOWN,
    normalise_trimap,
    quantize_8bit,
)
from matting.metrics.per_image import _conn, _grad, _mad, _mse, _prepare, _sad

PROTOCOLS = ("comp1k", "whole", "modnet")

__all__ = ["PROTOCOLS", "compute_metrics", "metric_keys", "quantize_8bit"]


def metric_keys(protocol: str, with_trimap: bool = True) -> tuple[str, ...]:
    """Keys ``compute_metrics`` returns for ``protocol`` (with or without a trimap)."""
    if protocol == "comp1k":
        return ("sad", "mse", "grad", "conn")
    if protocol == "whole":
        base = ("sad", "mse", "mad", "grad", "conn")
        extra = ("sad_unknown", "mse_unknown", "mad_unknown", "sad_fg", "sad_bg")
        return base + extra if with_trimap else base
    if protocol == "modnet":
        return ("mse", "mad")
    raise MattingInputError(f"unknown protocol '{protocol}'; choose one of {', '.join(PROTOCOLS)}")


def compute_metrics(
    pred_alpha,
    gt_alpha,
    trimap=None,
    protocol: str = "whole",
    quantize: bool = True,
    force_known: bool = True,
) -> dict[str, float]:
    """All metrics of ``protocol`` for one image.

    Args:
        pred_alpha: (H, W) float in [0, 1], the prediction.
        gt_alpha: (H, W) float in [0, 1], the ground truth.
        trimap: (H, W) with values 0 / 128 / 255 (see ``matting.io.images.normalise_trimap``);
            required by ``comp1k``, optional for ``whole``, ignored by ``modnet``.
        protocol: ``comp1k``, ``whole`` or ``modnet`` (module docstring).
        quantize: score the prediction as its 8-bit PNG (round(pred * 255) / 255); for
            predictions in memory. Pass False for a prediction read from a file.
        force_known: ``comp1k`` only: set the prediction to 0 / 1 where the trimap is 0 / 255
            before scoring. False scores it as given, as the official ``evaluate.m`` does.

    Returns:
        {key: value} with the keys of ``metric_keys(protocol, trimap is not None)``, in the
        scales of the metric functions (sad/grad/conn / 1000, mse/mad raw).
    """
    keys = metric_keys(protocol, with_trimap=trimap is not None)
    pred, gt, _ = _prepare(pred_alpha, gt_alpha, None)
    if quantize:
        pred = quantize_8bit(pred)
    if trimap is not None:
        trimap = normalise_trimap(trimap)
        if trimap.shape != gt.shape:
            raise MattingInputError(f"trimap has shape {trimap.shape} but the alpha maps have {gt.shape}")

    if protocol == "modnet":
        return {"mse": _mse(pred, gt, None), "mad": _mad(pred, gt, None)}

    if protocol == "comp1k":
        if trimap is None:
            raise MattingInputError("protocol 'comp1k' needs a trimap (only trimap == 128 pixels count)")
        unknown = trimap == TRIMAP_UNKNOWN
        if force_known:
            forced = (trimap == TRIMAP_FOREGROUND).astype(np.float32)
            np.copyto(forced, pred, where=unknown)
            pred = forced
        return {
            "sad": _sad(pred, gt, unknown),
            "mse": _mse(pred, gt, unknown),
            "grad": _grad(pred, gt, unknown),
            "conn": _conn(pred, gt, unknown),
        }

    result = {
        "sad": _sad(pred, gt, None),
        "mse": _mse(pred, gt, None),
        "mad": _mad(pred, gt, None),
        "grad": _grad(pred, gt, None),
        "conn": _conn(pred, gt, None),
    }
    if trimap is not None:
        unknown = trimap == TRIMAP_UNKNOWN
        result.update(
            sad_unknown=_sad(pred, gt, unknown),
            mse_unknown=_mse(pred, gt, unknown),
            mad_unknown=_mad(pred, gt, unknown),
            sad_fg=_sad(pred, gt, trimap == TRIMAP_FOREGROUND),
            sad_bg=_sad(pred, gt, trimap == TRIMAP_BACKGROUND),
        )
    assert tuple(result) == keys
    return result
