"""Trimaps generated from an alpha matte, following the published recipes.

All functions take a float alpha (H, W) in [0, 1] and return a uint8 trimap (H, W) with
0 = background, 128 = unknown, 255 = foreground. "Foreground" and "background" are the pixels
whose alpha is 1 or 0 to within half an 8-bit level, so that an alpha resampled by a bilinear
warp (interior values 0.99999994 instead of 1) keeps its solid regions.

- ``dim``: Deep Image Matting / GCA / MatteFormer training trimaps. The solid foreground and the
  solid background are each eroded with an elliptical kernel of random size (1 to 29 pixels at
  640 px, scaled with the image's long side); everything else is unknown.
- ``gfm``: GFM training targets: unknown = dilation of (alpha > 0) minus erosion of (alpha = 1)
  with a fixed elliptical kernel (25 px for the glance trimap).
- ``modnet``: MODNet's size-relative band: dilation of (alpha > 0) and erosion of
  (alpha >= 0.9) by ``long_side // 256 * randint(10, 20)`` pixels (square structuring element).
- ``band``: the evaluation band of PaddleSeg: (0 < alpha < 1) dilated by a fixed radius.
"""

from __future__ import annotations

import cv2
import numpy as np

from matting.io.errors import MattingInputError

__all__ = ["TRIMAP_KINDS", "band_trimap", "dim_trimap", "gfm_trimap", "make_trimap", "modnet_trimap", "solid_masks"]

TRIMAP_KINDS = ("dim", "gfm", "modnet", "band")
_HALF_LEVEL = 0.5 / 255


def solid_masks(alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(foreground, background) uint8 masks (0/1) of alpha == 1 and alpha == 0 within half a level."""
    alpha = np.asarray(alpha, dtype=np.float32)
    return (alpha >= 1 - _HALF_LEVEL).astype(np.uint8), (alpha <= _HALF_LEVEL).astype(np.uint8)


def _compose(fg: np.ndarray, bg: np.ndarray) -> np.ndarray:
    trimap = np.full(fg.shape, 128, np.uint8)
    trimap[bg.astype(bool)] = 0
    trimap[fg.astype(bool)] = 255
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
    """MODNet trimap: dilate (alpha > 0), erode (alpha >= 0.9) by ``long_side // 256 * randint(10, 20)`` px (>= 1)."""
    _, bg = solid_masks(alpha)
    fg = (np.asarray(alpha) >= 0.9).astype(np.uint8)
    size = max(1, max(alpha.shape) // 256 * int(rng.integers(10, 21)))
    element = np.ones((size, size), np.uint8)
    not_bg = cv2.dilate(1 - bg, element)
    return _compose(cv2.erode(fg, element), 1 - not_bg)


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
