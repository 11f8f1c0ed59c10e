"""The one resize rule for images, mattes and maps (``matting.io.images`` re-exports it).

Area averaging when shrinking (it does not alias), bilinear when enlarging (a matte is never
enlarged with nearest, which would make its soft edges hard); both selectable.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["long_side_size", "resize_image", "shrink_long_side"]


def resize_image(
    array: np.ndarray,
    height: int,
    width: int,
    shrink: int = cv2.INTER_AREA,
    enlarge: int = cv2.INTER_LINEAR,
    clip: bool = False,
) -> np.ndarray:
    """Resize an image, matte or map to (height, width).

    Args:
        array: (H, W) or (H, W, C) float32 (uint8 works too, e.g. a trimap with nearest).
        height, width: the new size.
        shrink: OpenCV interpolation when the pixel count goes down (default area averaging,
            which does not alias).
        enlarge: OpenCV interpolation otherwise (default bilinear; a matte is never enlarged
            with nearest, which would make its soft edges hard).
        clip: clip the result to [0, 1] (bicubic and Lanczos overshoot).

    Returns:
        (height, width[, C]) of the input's dtype; the input itself when it has that size already.
    """
    if array.shape[:2] == (height, width):
        return array
    flag = shrink if height * width < array.shape[0] * array.shape[1] else enlarge
    out = cv2.resize(array, (width, height), interpolation=flag)
    out = out.reshape(height, width, *array.shape[2:])  # OpenCV drops a single channel axis
    return np.clip(out, 0.0, 1.0) if clip else out


def long_side_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    """(h, w) with the long side at most ``max_side``, aspect kept (each side rounded, at least 1)."""
    scale = max_side / max(height, width)
    if scale >= 1:
        return height, width
    return max(1, round(height * scale)), max(1, round(width * scale))


def shrink_long_side(array: np.ndarray, max_side: int, **options) -> np.ndarray:
    """``array`` with its long side at most ``max_side`` (``resize_image`` with ``options``;
    area averaging by default); never enlarged, returned as it is when it fits."""
    return resize_image(array, *long_side_size(*array.shape[:2], max_side), **options)
