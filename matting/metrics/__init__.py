"""Matting metrics (SAD, MSE, MAD, Grad, Conn) and the benchmark protocols that combine them.

Inputs are alpha mattes as arrays (H, W) in [0, 1]. Metric functions and the scale of what they
return (``mask`` = pixels counted, ``None`` = whole image):

========  =====================================================  ================
key       definition                                             returned as
========  =====================================================  ================
sad       sum |pred - gt|                                        / 1000
mse       mean (pred - gt)^2                                     raw, [0, 1] scale
mad       mean |pred - gt|                                       raw, [0, 1] scale
grad      sum (|grad pred| - |grad gt|)^2                        / 1000
conn      sum |phi(pred) - phi(gt)|                              / 1000
========  =====================================================  ================

``METRIC_HEADERS`` and ``DISPLAY_SCALES`` give the scale every table shows: SAD, Grad and
Conn as returned (``SAD (/1000)``), MSE and MAD multiplied by 1000 (``MSE (x1e-3)``).
Means over an empty region are 0 (nothing is counted, so nothing is wrong).

The parts:

- :mod:`matting.metrics.per_image`: the metric functions, with the official MATLAB definitions
  of Grad and Conn (float32 terms, float64 sums, MATLAB's tie and threshold rules).
- :mod:`matting.metrics.protocols`: ``compute_metrics`` for the ``comp1k``, ``whole`` and
  ``modnet`` protocols, and the 8-bit scoring of a prediction.
- :mod:`matting.metrics.display`: table headers and display scales.
- :mod:`matting.metrics.torchmetric`: ``MattingMetrics`` (a torchmetrics ``Metric``), which
  sums these per-image values for Lightning validation and testing; its means are the dataset
  values ``matting evaluate`` reports.
"""

from __future__ import annotations

from matting.metrics.display import DISPLAY_SCALES, METRIC_HEADERS, display_value, format_metric
from matting.metrics.per_image import (  # noqa: F401  (the underscored kernels are tested as matting.metrics._x)
    _DERIVATIVE,
    _SMOOTH,
    _components,
    _conn_thresholds,
    _largest_component,
    conn,
    grad,
    mad,
    mse,
    sad,
)
from matting.metrics.protocols import PROTOCOLS, compute_metrics, metric_keys, quantize_8bit

__all__ = [
    "DISPLAY_SCALES",
    "METRIC_HEADERS",
    "PROTOCOLS",
    "MattingMetrics",
    "compute_metrics",
    "conn",
    "display_value",
    "format_metric",
    "grad",
    "mad",
    "metric_keys",
    "mse",
    "quantize_8bit",
    "sad",
]


def __getattr__(name: str):
    # MattingMetrics is imported on first access (PEP 562), so that importing this package does
    # not import torch: ``matting evaluate`` starts its worker processes in a few tenths of a
    # second instead of several seconds.
    if name == "MattingMetrics":
        from matting.metrics.torchmetric import MattingMetrics

        globals()["MattingMetrics"] = MattingMetrics
        return MattingMetrics
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
