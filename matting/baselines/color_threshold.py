"""Colour-threshold background remover, the classic non-learned baseline.

Background colours are sampled as the mean of ``block`` x ``block`` patches at random points in
the left and right border strips (each ``strip_fraction`` of the width); every pixel within
+-threshold of any sampled colour on all three channels (``cv2.inRange``) is background. The
union of those masks is the background; everything else is foreground. The output is a hard
alpha, which is what the method produces.
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import cv2
import numpy as np

from matting.io.images import to_uint8


class ColorThresholdRemover:
    """Predicts a binary alpha from border colour samples.

    Args:
        threshold: per-channel tolerance on the 0-255 scale.
        n_samples: number of sampled background blocks (half in each strip).
        block: side of each sampled block in pixels.
        strip_fraction: width of each border strip as a fraction of the image width.
        seed: seed of the sampling positions (fixed, so predictions are reproducible).
    """

    def __init__(self, threshold: float = 30, n_samples: int = 16, block: int = 9, strip_fraction: float = 1 / 8, seed: int = 0):
        self.threshold = threshold
        self.n_samples = n_samples
        self.block = block
        self.strip_fraction = strip_fraction
        self.seed = seed

    def sample_colours(self, image_u8: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 -> (n_samples, 3) float mean colours of the border blocks."""
        h, w = image_u8.shape[:2]
        rng = np.random.default_rng(self.seed)
        half = self.block // 2
        strip = max(int(w * self.strip_fraction), self.block)
        colours = []
        for i in range(self.n_samples):
            # Block centres stay inside the strip and the image.
            cx = int(rng.integers(half, max(strip - half, half + 1)))
            if i % 2:
                cx = w - 1 - cx
            cy = int(rng.integers(half, max(h - half, half + 1)))
            patch = image_u8[max(cy - half, 0): cy + half + 1, max(cx - half, 0): cx + half + 1]
            colours.append(patch.reshape(-1, 3).mean(axis=0))
        return np.asarray(colours)

    def predict(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) RGB, uint8 or float in [0, 1] -> (H, W) float32 alpha in {0, 1}."""
        image_u8 = image if image.dtype == np.uint8 else to_uint8(image)
        background = np.zeros(image_u8.shape[:2], np.uint8)
        for colour in self.sample_colours(image_u8):
            lower = np.clip(colour - self.threshold, 0, 255)
            upper = np.clip(colour + self.threshold, 0, 255)
            background |= cv2.inRange(image_u8, lower, upper)
        return (background == 0).astype(np.float32)


def tune_threshold(
    images: Sequence[np.ndarray],
    gt_alphas: Sequence[np.ndarray],
    score: Callable[[np.ndarray, np.ndarray], float],
    thresholds: Iterable[float] = range(2, 101, 2),
    **kwargs,
) -> tuple[ColorThresholdRemover, list[tuple[float, float]]]:
    """Grid-search the threshold that minimises the mean ``score(pred, gt)`` over a split.

    Returns the tuned remover and the (threshold, mean score) curve.
    """
    curve = []
    for t in thresholds:
        remover = ColorThresholdRemover(threshold=t, **kwargs)
        curve.append((float(t), float(np.mean([score(remover.predict(im), gt) for im, gt in zip(images, gt_alphas)]))))
    best = min(curve, key=lambda row: row[1])[0]
    return ColorThresholdRemover(threshold=best, **kwargs), curve
