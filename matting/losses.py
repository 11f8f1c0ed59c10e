"""Matting losses as named, weighted terms.

Defaults are MODNet's (semantic 10, detail 10, matte 1 with a 4x boost on the transition band).
Each term is skipped when the network does not produce the output it needs, so any subset of heads
trains with the same loss object.

Conventions: alpha in [0, 1]; ``band`` is the transition region (1 inside, 0 in the known
foreground and background): from the ground truth (:func:`matting.data.trimap.transition_band`)
or the unknown region of the data pipeline's trimap (:func:`matting.data.trimap.trimap_band`).
"""

from __future__ import annotations

import kornia
import torch
import torch.nn.functional as F
from torch import nn

# The band is built in the one trimap module; imported here for the callers that build it next to the loss.
from matting.data.trimap import random_band_radius, transition_band  # noqa: F401
from matting.models.contract import DEFAULT_FUSION_MODE


def semantic_target(gt_alpha: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Coarse target: area-downsampled alpha, smoothed by a 3x3 Gaussian (sigma 0.8) as MODNet does."""
    small = F.interpolate(gt_alpha, size=size, mode="area")
    return kornia.filters.gaussian_blur2d(small, (3, 3), (0.8, 0.8), border_type="reflect")


def glance_target(gt_alpha: torch.Tensor, band: torch.Tensor, mode: str = DEFAULT_FUSION_MODE) -> torch.Tensor:
    """Class map for a glance head, (B, H, W) long.

    TT: 0 background, 1 transition (the band), 2 foreground. FT: 1 where foreground outside the
    band (eroded foreground). BT: 1 where not background or in the band (dilated foreground).
    """
    in_band = band > 0.5
    if mode == "TT":
        return torch.where(in_band, 1, torch.where(gt_alpha > 0.5, 2, 0))[:, 0].long()
    if mode == "FT":
        return ((gt_alpha > 0.5) & ~in_band)[:, 0].long()
    if mode == "BT":
        return ((gt_alpha > 0.5) | in_band)[:, 0].long()
    raise ValueError(f"glance mode must be TT, FT or BT, got {mode!r}")


def laplacian_loss(pred: torch.Tensor, gt: torch.Tensor, levels: int = 5) -> torch.Tensor:
    """L1 between Laplacian pyramids (5x5 Gaussian, kornia), level l weighted 2**l as in RVM.

    Coarse levels carry the structure of the matte; weighting them up penalises blotches that a
    per-pixel L1 barely sees. Averaged per level over pixels, summed over levels.
    """
    loss = pred.new_zeros(())
    for level in range(levels):
        if min(pred.shape[-2:]) < 5:  # too small for the 5x5 reflect-padded blur
            break
        pred_blur = kornia.filters.gaussian_blur2d(pred, (5, 5), (1.0, 1.0), border_type="reflect")
        gt_blur = kornia.filters.gaussian_blur2d(gt, (5, 5), (1.0, 1.0), border_type="reflect")
        loss = loss + (2**level) * F.l1_loss(pred - pred_blur, gt - gt_blur)
        pred, gt = F.avg_pool2d(pred_blur, 2), F.avg_pool2d(gt_blur, 2)
    return loss


def gradient_loss(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """L1 between Sobel gradients (kornia) of the predicted and true alpha: rewards sharp edges."""
    return F.l1_loss(kornia.filters.spatial_gradient(pred), kornia.filters.spatial_gradient(gt))


class MattingLoss(nn.Module):
    """Weighted sum of matting loss terms.

    Args:
        semantic: weight of MSE(pred_semantic, semantic_target(gt_alpha)) (MODNet coarse head).
        glance: weight of the cross-entropy of ``pred_glance`` against :func:`glance_target` (GFM head).
        detail: weight of L1(pred_detail, gt_alpha) inside the band, averaged over all pixels (MODNet).
        alpha: weight of L1(pred_alpha, gt_alpha) over the image plus ``band_boost`` x the band term.
        composition: weight of the compositional L1 with the same band boost: with ``fg``/``bg`` in
            the batch, |pred_alpha*F + (1-pred_alpha)*B - I|; otherwise MODNet's |I*pred - I*gt|.
        laplacian: weight of :func:`laplacian_loss` on the final alpha.
        gradient: weight of :func:`gradient_loss` on the final alpha.
        segmentation: weight of the binary cross-entropy of ``pred_alpha`` against the mask
            ``gt_alpha > 0.5`` (segmentation baselines trained on binary masks).
        alpha_base: with a refiner, weight of the alpha term on the base pass's ``pred_alpha_base``.
        error: with a patch refiner, weight of MSE(pred_error, |pred_alpha_base - gt|) (target detached).
        band_boost: extra weight on the transition band in the alpha and composition terms.

    Inputs:
        outputs: the network's dict (``pred_alpha`` and optionally ``pred_semantic``, ``pred_detail``).
        batch: dict with ``image`` (B, 3, H, W), ``alpha`` (B, 1, H, W), optionally ``fg``, ``bg``.
        band: (B, 1, H, W) transition band in {0, 1}.
        mode: GFM fusion form (``TT``, ``FT``, ``BT``) for the glance target; with ``BT`` the
            detail head predicts 1 - alpha in the band (see CollaborativeFusion).
    Returns:
        dict of weighted terms plus ``loss`` (their sum).
    """

    def __init__(
        self,
        semantic: float = 10.0,
        glance: float = 1.0,
        detail: float = 10.0,
        alpha: float = 1.0,
        composition: float = 1.0,
        laplacian: float = 0.0,
        gradient: float = 0.0,
        segmentation: float = 0.0,
        alpha_base: float = 1.0,
        error: float = 1.0,
        band_boost: float = 4.0,
    ):
        super().__init__()
        self.weights = {"semantic": semantic, "glance": glance, "detail": detail, "alpha": alpha,
                        "composition": composition, "laplacian": laplacian, "gradient": gradient,
                        "segmentation": segmentation, "alpha_base": alpha_base, "error": error}
        self.band_boost = band_boost

    def _boosted_l1(self, pred: torch.Tensor, gt: torch.Tensor, band: torch.Tensor) -> torch.Tensor:
        diff = (pred - gt).abs()
        return diff.mean() + self.band_boost * (diff * band).mean()

    def forward(self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], band: torch.Tensor, mode: str = DEFAULT_FUSION_MODE) -> dict[str, torch.Tensor]:
        gt_alpha, image = batch["alpha"], batch["image"]
        pred_alpha = outputs["pred_alpha"]
        terms: dict[str, torch.Tensor] = {}

        def at(t: torch.Tensor, like: torch.Tensor, binary: bool = False) -> torch.Tensor:
            """Target ``t`` at the resolution of prediction ``like`` (heads of a refined net run smaller)."""
            if t.shape[-2:] == like.shape[-2:]:
                return t
            small = F.interpolate(t, size=like.shape[-2:], mode="area")
            return (small > 0).to(t.dtype) if binary else small

        w = self.weights
        if w["semantic"] and "pred_semantic" in outputs:
            pred_sem = outputs["pred_semantic"]
            terms["semantic"] = w["semantic"] * F.mse_loss(pred_sem, semantic_target(gt_alpha, pred_sem.shape[-2:]))
        if w["glance"] and "pred_glance" in outputs:
            logits = outputs["pred_glance"]
            target = glance_target(at(gt_alpha, logits), at(band, logits), mode)
            terms["glance"] = w["glance"] * F.cross_entropy(logits.float(), target)
        if w["detail"] and "pred_detail" in outputs:
            pred_detail = outputs["pred_detail"]
            gt_small = at(gt_alpha, pred_detail)
            detail_target = 1 - gt_small if mode == "BT" else gt_small
            terms["detail"] = w["detail"] * ((pred_detail - detail_target).abs() * at(band, pred_detail, binary=True)).mean()
        if w["alpha"]:
            terms["alpha"] = w["alpha"] * self._boosted_l1(pred_alpha, gt_alpha, band)
        if w["composition"]:
            if "fg" in batch and "bg" in batch:
                recomposed = pred_alpha * batch["fg"] + (1 - pred_alpha) * batch["bg"]
                terms["composition"] = w["composition"] * self._boosted_l1(recomposed, image, band)
            else:
                terms["composition"] = w["composition"] * self._boosted_l1(image * pred_alpha, image * gt_alpha, band)
        if w["segmentation"]:
            with torch.autocast(pred_alpha.device.type, enabled=False):  # BCE is unsafe in half precision
                mask = (gt_alpha > 0.5).float()
                terms["segmentation"] = w["segmentation"] * F.binary_cross_entropy(pred_alpha.float().clamp(1e-6, 1 - 1e-6), mask)
        if "pred_alpha_base" in outputs:
            base_alpha = outputs["pred_alpha_base"]
            gt_small = at(gt_alpha, base_alpha)
            if w["alpha_base"]:
                terms["alpha_base"] = w["alpha_base"] * self._boosted_l1(base_alpha, gt_small, at(band, base_alpha, binary=True))
            if w["error"] and "pred_error" in outputs:
                terms["error"] = w["error"] * F.mse_loss(outputs["pred_error"], (base_alpha - gt_small).abs().detach())
        if w["laplacian"]:
            terms["laplacian"] = w["laplacian"] * laplacian_loss(pred_alpha, gt_alpha)
        if w["gradient"]:
            terms["gradient"] = w["gradient"] * gradient_loss(pred_alpha, gt_alpha)
        terms["loss"] = torch.stack(list(terms.values())).sum()
        return terms
