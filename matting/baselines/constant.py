"""The trivial baseline: predict all foreground or all background, whichever scores better."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np


class ConstantAlpha:
    """Predicts the same alpha value everywhere (1.0 = all foreground, 0.0 = all background)."""

    def __init__(self, value: float):
        self.value = float(value)

    def predict(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) -> (H, W) float32 filled with ``value``."""
        return np.full(image.shape[:2], self.value, np.float32)


def best_constant(gt_alphas: Sequence[np.ndarray], score: Callable[[np.ndarray, np.ndarray], float]) -> ConstantAlpha:
    """The better of all-foreground and all-background by mean ``score`` on a split."""
    def mean_score(value: float) -> float:
        return float(np.mean([score(np.full(gt.shape, value, np.float32), gt) for gt in gt_alphas]))

    return min((ConstantAlpha(0.0), ConstantAlpha(1.0)), key=lambda c: mean_score(c.value))
