"""Trimaps and transition bands: what is known foreground, known background and unknown.

Three forms of one thing:

- 8-bit trimap (files, and the uint8 (H, W) / (B, 1, H, W) trimaps of the data pipeline):
  0 background, 128 unknown, 255 foreground (``TRIMAP_*`` of :mod:`matting.io.images`). 128 is
  the level of the DIM / Composition-1k trimap files, which the official evaluation reads as
  unknown; evaluation (``matting.metrics``) counts ``trimap == TRIMAP_UNKNOWN``.
- float trimap (in memory: the trimap channel of a trimap-based network): 0, ``UNKNOWN_VALUE``
  = 0.5, 1. 0.5 is the middle of [0, 1] and MODNet's unknown value; 128 / 255 = 0.502 is only
  what dividing an 8-bit file by 255 gives, so :func:`trimap_to_float` maps levels instead of
  dividing, and training (the ground truth's band) and evaluation (the dataset's trimap) feed
  the network the same value.
- band: (B, 1, H, W) float in {0, 1}, 1 in the unknown region: what the losses weight
  (:func:`transition_band` from the ground truth, or :func:`trimap_band` of a pipeline trimap).

Recipes of the data pipeline take a float alpha (H, W) in [0, 1] and return an 8-bit trimap.
"Foreground" and "background" are the pixels whose alpha is 1 or 0 to within half an 8-bit
level, so that an alpha resampled by a bilinear warp (interior values 0.99999994 instead of 1)
keeps its solid regions.

- ``dim``: Deep Image Matting / GCA / MatteFormer training trimaps. The solid foreground and the
  solid background are each eroded with an elliptical kernel of random size (1 to 29 pixels at
  640 px, scaled with the image's long side); everything else is unknown.
- ``gfm``: GFM training targets: unknown = dilation of (alpha > 0) minus erosion of (alpha = 1)
  with a fixed elliptical kernel (25 px for the glance trimap).
- ``modnet``: MODNet's trimap as its authors publish it (github.com/ZHKKKe/MODNet, issues 58,
  74 and 108): foreground = alpha >= 0.9 (``MODNET_FG_THRESHOLD``), unknown = dilation of
  (alpha > 0) by ``d`` minus erosion of the foreground by ``e``, square windows, ``d`` and ``e``
  each ``long_side // 256 * randint(10, 20)`` pixels (at least 1), drawn independently.
- ``band``: the evaluation band of PaddleSeg: (0 < alpha < 1) dilated by a fixed radius.

The band the loss draws by itself (``MattingModule(band="random")``, :func:`transition_band`
with :func:`random_band_radius`) is not MODNet's trimap: its foreground is alpha >= 1 (the
solid foreground), and one random window serves both sides. MODNet's own trimap trains the loss
with ``band: pipeline`` and ``trimap: modnet``.
"""

from __future__ import annotations

import random

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from matting.io.errors import MattingInputError
from matting.io.images import TRIMAP_BACKGROUND, TRIMAP_FOREGROUND, TRIMAP_UNKNOWN

__all__ = [
    "MODNET_FG_THRESHOLD",
    "TRIMAP_KINDS",
    "UNKNOWN_VALUE",
    "band_trimap",
    "dim_trimap",
    "gfm_trimap",
    "make_trimap",
    "modnet_trimap",
    "random_band_radius",
    "solid_masks",
    "transition_band",
    "trimap_band",
    "trimap_from_band",
    "trimap_to_float",
]

TRIMAP_KINDS = ("dim", "gfm", "modnet", "band")
UNKNOWN_VALUE = 0.5  # the unknown region of a float trimap in [0, 1]
MODNET_FG_THRESHOLD = 0.9  # MODNet's trimap: foreground where alpha >= 0.9
_HALF_LEVEL = 0.5 / 255


# ---------------------------------------------------------------------------- 8-bit recipes (numpy)


def solid_masks(alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(foreground, background) uint8 masks (0/1) of alpha == 1 and alpha == 0 within half a level."""
    alpha = np.asarray(alpha, dtype=np.float32)
    return (alpha >= 1 - _HALF_LEVEL).astype(np.uint8), (alpha <= _HALF_LEVEL).astype(np.uint8)


def _compose(fg: np.ndarray, bg: np.ndarray) -> np.ndarray:
    trimap = np.full(fg.shape, TRIMAP_UNKNOWN, np.uint8)
    trimap[bg.astype(bool)] = TRIMAP_BACKGROUND
    trimap[fg.astype(bool)] = TRIMAP_FOREGROUND
    return trimap


def _ellipse(size: int) -> np.ndarray:
    size = max(1, int(size))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def dim_trimap(alpha: np.ndarray, rng: np.random.Generator, max_kernel: int = 29, reference_side: int = 640) -> np.ndarray:
    """DIM-style trimap: solid fg and bg each eroded by a random ellipse (1..max_kernel px at ``reference_side``)."""
    fg, bg = solid_masks(alpha)
    scale = max(alpha.shape) / reference_side
    k_fg = max(1, round(int(rng.integers(1, max_kernel + 1)) * scale))
    k_bg = max(1, round(int(rng.integers(1, max_kernel + 1)) * scale))
    return _compose(cv2.erode(fg, _ellipse(k_fg)), cv2.erode(bg, _ellipse(k_bg)))


def gfm_trimap(alpha: np.ndarray, kernel: int = 25) -> np.ndarray:
    """GFM trimap: dilate (alpha > 0) and erode (alpha == 1) with a fixed ellipse of ``kernel`` px."""
    fg, bg = solid_masks(alpha)
    element = _ellipse(kernel)
    not_bg = cv2.dilate(1 - bg, element)
    return _compose(cv2.erode(fg, element), 1 - not_bg)


def modnet_trimap(alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """MODNet trimap: dilate (alpha > 0) by ``d``, erode (alpha >= 0.9) by ``e`` (square windows),
    ``d`` and ``e`` each ``long_side // 256 * randint(10, 20)`` px (>= 1), drawn independently."""
    _, bg = solid_masks(alpha)
    fg = (np.asarray(alpha) >= MODNET_FG_THRESHOLD).astype(np.uint8)
    dilate_size, erode_size = (max(1, max(alpha.shape) // 256 * int(rng.integers(10, 21))) for _ in range(2))
    not_bg = cv2.dilate(1 - bg, np.ones((dilate_size, dilate_size), np.uint8))
    return _compose(cv2.erode(fg, np.ones((erode_size, erode_size), np.uint8)), 1 - not_bg)


def band_trimap(alpha: np.ndarray, radius: int = 25) -> np.ndarray:
    """Unknown = soft pixels (0 < alpha < 1) dilated by ``radius``; the rest from alpha."""
    fg, bg = solid_masks(alpha)
    soft = (1 - fg) & (1 - bg)
    band = cv2.dilate(soft, _ellipse(2 * radius + 1)) if radius > 0 else soft
    return _compose(fg & (1 - band), bg & (1 - band))


def make_trimap(kind: str, alpha: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """Dispatch on ``kind`` (one of ``TRIMAP_KINDS``)."""
    rng = rng if rng is not None else np.random.default_rng(0)
    if kind == "dim":
        return dim_trimap(alpha, rng)
    if kind == "gfm":
        return gfm_trimap(alpha)
    if kind == "modnet":
        return modnet_trimap(alpha, rng)
    if kind == "band":
        return band_trimap(alpha)
    raise MattingInputError(f"unknown trimap kind '{kind}'; choose one of {', '.join(TRIMAP_KINDS)}")


# ---------------------------------------------------------------------------- bands and float trimaps (torch)


def square_max_pool(x: torch.Tensor, side: int, padding: int = 0) -> torch.Tensor:
    """``F.max_pool2d(x, side, stride=1, padding=padding)`` of x (B, C, H, W), in two 1-D passes.

    The maximum over a square is the maximum over its rows' maxima, so the result is identical,
    with 2 x side comparisons per pixel instead of side ** 2 (a 31 px window on a training batch:
    the largest cost of the loss).
    """
    x = F.max_pool2d(x, (side, 1), stride=1, padding=(padding, 0))
    return F.max_pool2d(x, (1, side), stride=1, padding=(0, padding))


def transition_band(gt_alpha: torch.Tensor, radius: int, fg_threshold: float = 1.0) -> torch.Tensor:
    """Unknown region of a trimap made from the ground truth: dilate(alpha > 0) minus
    erode(alpha >= ``fg_threshold``), square windows of side 2 * radius + 1.

    ``fg_threshold`` 1 (the default, the band the loss draws by itself) keeps every soft pixel in
    the band; ``MODNET_FG_THRESHOLD`` gives MODNet's rule (with one window for both sides).

    Args:
        gt_alpha: (B, 1, H, W) in [0, 1].
        radius: dilation / erosion radius in pixels.
        fg_threshold: alpha at and above which a pixel is foreground.
    Returns:
        (B, 1, H, W) float in {0, 1}.
    """
    k = 2 * radius + 1
    not_bg = (gt_alpha > 0).float()
    fg = (gt_alpha >= fg_threshold).float()
    dilated = square_max_pool(not_bg, k, padding=radius)
    eroded = -square_max_pool(-fg, k, padding=radius)
    return (dilated - eroded).clamp_(0, 1)


def random_band_radius(size: int, generator: random.Random | None = None) -> int:
    """Half of MODNet's size-relative window, size / 256 * randint(10, 20), at least 1 pixel.

    MODNet floors size // 256 first, which gives an empty band below 256 px; we scale continuously.
    """
    rng = generator or random
    return max(1, round(size / 256 * rng.randint(10, 20) / 2))


def trimap_band(trimap: torch.Tensor) -> torch.Tensor:
    """The unknown region of an 8-bit trimap (B, 1, H, W) (0 / 128 / 255) as a band: float {0, 1}."""
    return (trimap == TRIMAP_UNKNOWN).float()


def trimap_to_float(trimap: torch.Tensor) -> torch.Tensor:
    """An 8-bit trimap (B, 1, H, W) with levels 0 / 128 / 255 as a float trimap in {0, 0.5, 1}."""
    return torch.where(trimap == TRIMAP_UNKNOWN, UNKNOWN_VALUE, (trimap == TRIMAP_FOREGROUND).float())


def trimap_from_band(band: torch.Tensor, gt_alpha: torch.Tensor) -> torch.Tensor:
    """A float trimap (B, 1, H, W) in {0, 0.5, 1}: unknown in the band, else the ground truth's side (alpha > 0.5)."""
    return torch.where(band > 0, UNKNOWN_VALUE, (gt_alpha > 0.5).float())
