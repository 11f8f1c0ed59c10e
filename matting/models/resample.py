"""Antialiased bilinear resizing in gathers and sums, for graphs that have no antialiased resize.

``F.interpolate(x, size, mode="bilinear", antialias=True)`` (PyTorch's separable triangle filter,
widened by the scale when shrinking) has no ONNX form at opset 17. :func:`resize_antialiased`
computes the same filter taps from the sizes with tensor ops, so a traced graph keeps the sizes
symbolic; the result equals PyTorch's up to float rounding (~1e-7).
"""

from __future__ import annotations

import torch


def _as_size(value: int | torch.Tensor) -> torch.Tensor:
    """A size as a 0-dim int64 tensor (under tracing, shape entries and sizes computed from them already are)."""
    return value if isinstance(value, torch.Tensor) else torch.tensor(value)


def antialias_taps(in_size: int | torch.Tensor, out_size: int | torch.Tensor,
                   device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Source indices (out, K) int64 in [0, in) and weights (out, K) float32 (rows sum to 1) of
    PyTorch's antialiased bilinear resize along one axis, K = 2 ceil(support) + 1, on ``device``
    (the sizes' arithmetic stays on the CPU, where a traced graph's sizes are).

    The steps and precisions follow ATen's ``_compute_weights_aa`` (scale = in / out in float32;
    the window centre, its bounds and the filter argument in float64, stored as float32)."""
    n, m = _as_size(in_size), _as_size(out_size)
    scale = n.float() / m.float()
    shrink = scale >= 1
    support = torch.where(shrink, scale, torch.ones_like(scale))  # bilinear: half the 2-tap width, times the scale
    invscale = torch.where(shrink, (1 / scale.double()).float(), torch.ones_like(scale))
    taps = torch.ceil(support).long() * 2 + 1
    i = torch.arange(m, dtype=torch.float64)
    center = (scale.double() * (i + 0.5)).float()  # (out,)
    start = torch.clamp(((center - support).double() + 0.5).long(), min=0)
    stop = torch.minimum(((center + support).double() + 0.5).long(), n)
    j = torch.arange(taps)
    index = start[:, None] + j[None, :]  # (out, K)
    weight = ((((index.float() - center[:, None]).double() + 0.5) * invscale.double()).float()).abs()
    weight = torch.where((weight < 1) & (index < stop[:, None]), 1 - weight, torch.zeros_like(weight))
    total = weight.sum(1, keepdim=True)
    weight = torch.where(total != 0, weight / total, weight)
    return torch.minimum(index, n - 1).to(device), weight.to(device)


def _resize_axis(x: torch.Tensor, out_size: int | torch.Tensor, dim: int) -> torch.Tensor:
    """Resize (B, C, H, W) along ``dim`` (2 or 3) with the antialiased taps: one gather, one weighted sum."""
    index, weight = antialias_taps(x.shape[dim], out_size, x.device)
    m, taps = index.shape
    picked = x.index_select(dim, index.reshape(-1))  # (B, C, out * K, W) or (B, C, H, out * K)
    if dim == 3:
        return (picked.reshape(x.shape[0], x.shape[1], x.shape[2], m, taps) * weight).sum(4)
    return (picked.reshape(x.shape[0], x.shape[1], m, taps, x.shape[3]) * weight[:, :, None]).sum(3)


def resize_antialiased(x: torch.Tensor, size: tuple[int | torch.Tensor, int | torch.Tensor]) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, h, w) as ``F.interpolate(x, size, mode="bilinear", align_corners=False,
    antialias=True)``, width first as PyTorch does; sizes may be 0-dim tensors (a traced graph's)."""
    return _resize_axis(_resize_axis(x, size[1], 3), size[0], 2)
