"""Matting losses as named, weighted terms.

Defaults are MODNet's (semantic 10, detail 10, matte 1 with a 4x boost on the transition band).
Each term is skipped when the network does not produce the output it needs, so any subset of heads
trains with the same loss object.

Conventions: alpha in [0, 1]; ``band`` is the transition region (1 inside, 0 in the known
foreground and background), built from the ground truth by :func:`transition_band`.
"""

from __future__ import annotations

import random

import kornia
import torch
import torch.nn.functional as F
from torch import nn


def transition_band(gt_alpha: torch.Tensor, radius: int) -> torch.Tensor:
    """Unknown region of a trimap made from the ground truth, as MODNet's maintainers describe it.

    dilate(alpha > 0) minus erode(alpha >= 1) with a square window of side 2*radius+1.

    Args:
        gt_alpha: (B, 1, H, W) in [0, 1].
        radius: dilation / erosion radius in pixels.
    Returns:
        (B, 1, H, W) float in {0, 1}.
    """
    k = 2 * radius + 1
    not_bg = (gt_alpha > 0).float()
    fg = (gt_alpha >= 1).float()
    dilated = F.max_pool2d(not_bg, k, stride=1, padding=radius)
    eroded = -F.max_pool2d(-fg, k, stride=1, padding=radius)
    return (dilated - eroded).clamp_(0, 1)


def random_band_radius(size: int, generator: random.Random | None = None) -> int:
    """Half of MODNet's size-relative window, size / 256 * randint(10, 20), at least 1 pixel.

    MODNet floors size // 256 first, which gives an empty band below 256 px; we scale continuously.
    """
    rng = generator or random
    return max(1, round(size / 256 * rng.randint(10, 20) / 2))


def semantic_target(gt_alpha: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Coarse target: area-downsampled alpha, smoothed by a 3x3 Gaussian (sigma 0.8) as MODNet does."""
    small = F.interpolate(gt_alpha, size=size, mode="area")
    return kornia.filters.gaussian_blur2d(small, (3, 3), (0.8, 0.8), border_type="reflect")


class MattingLoss(nn.Module):
    """Weighted sum of matting loss terms.

    Args:
        semantic: weight of MSE(pred_semantic, semantic_target(gt_alpha)).
        detail: weight of L1(pred_detail, gt_alpha) inside the band, averaged over all pixels (MODNet).
        alpha: weight of L1(pred_alpha, gt_alpha) over the image plus ``band_boost`` x the band term.
        composition: weight of the compositional L1 with the same band boost: with ``fg``/``bg`` in
            the batch, |pred_alpha*F + (1-pred_alpha)*B - I|; otherwise MODNet's |I*pred - I*gt|.
        band_boost: extra weight on the transition band in the alpha and composition terms.

    Inputs:
        outputs: the network's dict (``pred_alpha`` and optionally ``pred_semantic``, ``pred_detail``).
        batch: dict with ``image`` (B, 3, H, W), ``alpha`` (B, 1, H, W), optionally ``fg``, ``bg``.
        band: (B, 1, H, W) transition band in {0, 1}.
    Returns:
        dict of weighted terms plus ``loss`` (their sum).
    """

    def __init__(self, semantic: float = 10.0, detail: float = 10.0, alpha: float = 1.0, composition: float = 1.0, band_boost: float = 4.0):
        super().__init__()
        self.weights = {"semantic": semantic, "detail": detail, "alpha": alpha, "composition": composition}
        self.band_boost = band_boost

    def _boosted_l1(self, pred: torch.Tensor, gt: torch.Tensor, band: torch.Tensor) -> torch.Tensor:
        diff = (pred - gt).abs()
        return diff.mean() + self.band_boost * (diff * band).mean()

    def forward(self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], band: torch.Tensor) -> dict[str, torch.Tensor]:
        gt_alpha, image = batch["alpha"], batch["image"]
        pred_alpha = outputs["pred_alpha"]
        terms: dict[str, torch.Tensor] = {}
        w = self.weights
        if w["semantic"] and "pred_semantic" in outputs:
            pred_sem = outputs["pred_semantic"]
            terms["semantic"] = w["semantic"] * F.mse_loss(pred_sem, semantic_target(gt_alpha, pred_sem.shape[-2:]))
        if w["detail"] and "pred_detail" in outputs:
            terms["detail"] = w["detail"] * ((outputs["pred_detail"] - gt_alpha).abs() * band).mean()
        if w["alpha"]:
            terms["alpha"] = w["alpha"] * self._boosted_l1(pred_alpha, gt_alpha, band)
        if w["composition"]:
            if "fg" in batch and "bg" in batch:
                recomposed = pred_alpha * batch["fg"] + (1 - pred_alpha) * batch["bg"]
                terms["composition"] = w["composition"] * self._boosted_l1(recomposed, image, band)
            else:
                terms["composition"] = w["composition"] * self._boosted_l1(image * pred_alpha, image * gt_alpha, band)
        terms["loss"] = torch.stack(list(terms.values())).sum()
        return terms
