"""Self-supervised sub-objective consistency (SOC, MODNet): the loss on unlabeled photos.

A converged two-decoder network predicts the same subject three times: coarsely (the semantic
head, ``pred_semantic`` at 1/16), in the transition band (the detail head, ``pred_detail``) and
fused (``pred_alpha``). On a photo from a new domain the three disagree, and SOC trains them
towards agreement without labels:

- semantic consistency: the coarse prediction and the matte brought to the coarse scale (area
  downsampling and the 3x3 Gaussian of the supervised semantic target,
  :func:`matting.losses.semantic_target`) should match. Each side is pulled towards the other
  with the other held fixed, and a fixed side has values at or below 0.01 set to 0, so that
  near-zero background noise is not reinforced::

      coarse_matte = semantic_target(pred_alpha, size of pred_semantic)
      semantic = MSE(pred_semantic, keep(coarse_matte)) + MSE(coarse_matte, keep(pred_semantic))
      keep(x) = stop_gradient(x) * [stop_gradient(x) > 0.01]

- detail consistency: adapting the coarse level must not wash out the fine structure the network
  already had. In a band around the predicted subject outline, ``pred_detail`` and ``pred_alpha``
  are pulled (L1) towards the predictions of a frozen copy of the network taken at the start of
  the epoch (``backup``), each averaged over the band's pixels. The band is where the binary
  subject mask ``(pred_alpha > 0.1) * up16(pred_semantic > 0.1)`` changes within a square window
  of side ``int((H + W) / 2 * 0.05)`` (dilation minus erosion not zero); ``up16`` is bilinear.

Total: ``100 * semantic + 1 * detail`` (MODNet's weights, the defaults of :class:`SOCLoss`).
Tensors are (B, 1, h, w) in [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from matting.data.trimap import square_max_pool
from matting.losses import semantic_target

SEMANTIC_STRIDE = 16
TARGET_FLOOR = 0.01  # fixed-side values at or below this count as background (0)
MASK_THRESHOLD = 0.1  # subject mask of the band: prediction above this
BAND_FRACTION = 0.05  # band window side: this share of the mean image side

__all__ = ["SOCLoss", "band_window", "soc_band"]


def band_window(height: int, width: int, fraction: float = BAND_FRACTION) -> int:
    """Side of the square window of the band: ``int((h + w) / 2 * fraction)``, at least 2 (a
    1-pixel window would give an empty band on small images)."""
    return max(2, int((height + width) / 2 * fraction))


def _square_extremes(mask: torch.Tensor, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(max, min) of ``mask`` (B, 1, H, W) over a side x side window, borders replicated.

    For an even side the window reaches one pixel further up and left than down and right.
    """
    before, after = side // 2, side - 1 - side // 2
    padded = F.pad(mask, (before, after, before, after), mode="replicate")
    dilated = square_max_pool(padded, side)
    eroded = -square_max_pool(-padded, side)
    return dilated, eroded


def _semantic_at(coarse: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A 1/16 map (B, 1, h/16, w/16) at full resolution ``size``, bilinear.

    The network predicts it for the input padded to its stride (bottom and right), so it is
    upsampled 16x and cropped when that covers ``size``; otherwise (a refiner's smaller base
    pass) it is resized to ``size``.
    """
    h, w = size
    hs, ws = coarse.shape[-2:]
    if hs * SEMANTIC_STRIDE >= h and ws * SEMANTIC_STRIDE >= w:
        up = F.interpolate(coarse, scale_factor=SEMANTIC_STRIDE, mode="bilinear", align_corners=False)
        return up[..., :h, :w]
    return F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)


@torch.no_grad()
def soc_band(pred_alpha: torch.Tensor, pred_semantic: torch.Tensor, fraction: float = BAND_FRACTION) -> torch.Tensor:
    """Boundary band of the predicted subject, (B, 1, H, W) float in {0, 1} at ``pred_alpha``'s size.

    Args:
        pred_alpha: (B, 1, H, W) in [0, 1].
        pred_semantic: (B, 1, H'/16, W'/16) in [0, 1] (H', W': H, W padded to the network stride).
    """
    h, w = pred_alpha.shape[-2:]
    subject = (pred_alpha > MASK_THRESHOLD).float() * _semantic_at((pred_semantic > MASK_THRESHOLD).float(), (h, w))
    dilated, eroded = _square_extremes(subject, band_window(h, w, fraction))
    return (dilated != eroded).float()


def _band_l1(pred: torch.Tensor, target: torch.Tensor, band: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of the L1 averaged over each sample's band pixels (0 for an empty band)."""
    if band.shape[-2:] != pred.shape[-2:]:  # a head at another resolution: its share of the band
        band = (F.interpolate(band, size=pred.shape[-2:], mode="area") > 0).float()
    per_sample = ((pred - target).abs() * band).sum(dim=(1, 2, 3)) / band.sum(dim=(1, 2, 3)).clamp(min=1)
    return per_sample.mean()


def _keep(target: torch.Tensor) -> torch.Tensor:
    fixed = target.detach()
    return fixed * (fixed > TARGET_FLOOR)


class SOCLoss(nn.Module):
    """The SOC terms for one batch, weighted (configured as ``model.loss`` of :class:`SOCModule`).

    Args:
        semantic: weight of the semantic consistency term (MODNet: 100).
        detail: weight of the detail consistency term (MODNet: 1).
        band_fraction: band window side as a share of the mean image side.

    Inputs:
        outputs: the adapted network's outputs: ``pred_alpha`` (B, 1, H, W), ``pred_semantic``
            (B, 1, H'/16, W'/16) and ``pred_detail`` (B, 1, H, W), all in [0, 1], with gradients.
        backup: the frozen copy's outputs for the same images (``pred_alpha``, ``pred_detail``).
    Returns:
        ``semantic`` and ``detail`` (weighted) and ``loss`` (their sum), scalar tensors.
    """

    def __init__(self, semantic: float = 100.0, detail: float = 1.0, band_fraction: float = BAND_FRACTION):
        super().__init__()
        self.weights = {"semantic": semantic, "detail": detail}
        self.band_fraction = band_fraction

    def forward(self, outputs: dict[str, torch.Tensor], backup: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        pred_alpha, pred_semantic, pred_detail = outputs["pred_alpha"], outputs["pred_semantic"], outputs["pred_detail"]
        coarse_matte = semantic_target(pred_alpha, pred_semantic.shape[-2:])
        semantic = F.mse_loss(pred_semantic, _keep(coarse_matte)) + F.mse_loss(coarse_matte, _keep(pred_semantic))
        band = soc_band(pred_alpha.detach(), pred_semantic.detach(), self.band_fraction)
        detail = (_band_l1(pred_detail, backup["pred_detail"].detach(), band)
                  + _band_l1(pred_alpha, backup["pred_alpha"].detach(), band))
        terms = {"semantic": self.weights["semantic"] * semantic, "detail": self.weights["detail"] * detail}
        terms["loss"] = terms["semantic"] + terms["detail"]
        return terms
