"""Fusion modules: combine the semantic and detail outputs into the final alpha."""

from __future__ import annotations

import torch
from torch import nn

from matting.models.blocks import ConvNormAct, resize_to
from matting.models.encoder import FeatureSpec


class ModnetFusion(nn.Module):
    """MODNet's fusion branch: semantic 1/8 features + detail 1/2 features + image -> alpha.

    Args:
        spec: needs context ``semantic_s8`` and ``detail_s2``.
        hidden: width of the full-resolution stage.

    Outputs:
        pred_alpha: (B, 1, H, W) in [0, 1].
    """

    def __init__(self, spec: FeatureSpec, hidden: int = 16):
        super().__init__()
        c_sem, c_det = spec.context["semantic_s8"], spec.context["detail_s2"]
        self.conv_s4 = ConvNormAct(c_sem, c_sem, 5)
        self.conv_s2 = ConvNormAct(c_sem + c_det, hidden * 2, 3)
        self.out = nn.Sequential(ConvNormAct(hidden * 2 + 3, hidden, 3), nn.Conv2d(hidden, 1, 1))

    def forward(self, image: torch.Tensor, context: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        h, w = image.shape[-2:]
        semantic_s8, detail_s2 = context["semantic_s8"], context["detail_s2"]
        x = self.conv_s4(resize_to(semantic_s8, (h // 4, w // 4)))  # (B, c_sem, H/4, W/4)
        x = self.conv_s2(torch.cat([resize_to(x, (h // 2, w // 2)), detail_s2], 1))  # (B, 2*hidden, H/2, W/2)
        logits = self.out(torch.cat([resize_to(x, (h, w)), image], 1))  # (B, 1, H, W)
        return {"pred_alpha": torch.sigmoid(logits)}


def coarse_alpha(context: dict[str, torch.Tensor]) -> torch.Tensor:
    """The semantic head's coarse alpha, whichever head produced it: (B, 1, h, w) in [0, 1]."""
    return context["pred_semantic"] if "pred_semantic" in context else context["pred_semantic_alpha"]


def glance_classes(context: dict[str, torch.Tensor], size, classes: int) -> torch.Tensor:
    """Per-pixel glance class at ``size``: argmax of the glance logits, or, for a 1-channel
    semantic head, its coarse alpha cut at 0.05 / 0.95 (3 classes) or 0.5 (2 classes). (B, 1, H, W) long."""
    if "pred_glance" in context:
        return resize_to(context["pred_glance"], size).argmax(1, keepdim=True)
    alpha = resize_to(coarse_alpha(context), size)
    if classes == 3:
        return (alpha > 0.05).long() + (alpha > 0.95).long()
    return (alpha > 0.5).long()


class CollaborativeFusion(nn.Module):
    """GFM's collaborative matting: the glance decides the known regions, the focus fills the rest.

    Modes (glance classes -> alpha, ``focus`` = the detail prediction):

    - ``TT``: classes background / transition / foreground; alpha = focus in the transition, 1 in
      the foreground, 0 in the background.
    - ``FT``: 2 classes, 1 = (eroded) foreground; alpha = min(class + focus, 1).
    - ``BT``: 2 classes, 1 = (dilated) not-background; alpha = max(class - focus, 0), so the
      focus predicts 1 - alpha inside the band (the loss flips its target accordingly).

    The class map is a hard argmax, as in GFM, so the fused alpha's gradient reaches the focus
    head only; the glance is trained by its own cross-entropy term. No parameters.

    Args:
        spec: unused (fusions are built from the spec like every part).
        mode: ``TT``, ``FT`` or ``BT``.
    """

    def __init__(self, spec: FeatureSpec | None = None, mode: str = "TT"):
        super().__init__()
        if mode not in ("TT", "FT", "BT"):
            raise ValueError(f"CollaborativeFusion mode must be TT, FT or BT, got {mode!r}")
        self.mode = mode

    def forward(self, image: torch.Tensor, context: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        focus = context["pred_detail"]  # (B, 1, H, W)
        cls = glance_classes(context, focus.shape[-2:], 3 if self.mode == "TT" else 2).to(focus.dtype)
        if self.mode == "TT":
            alpha = focus * (cls == 1) + (cls == 2).to(focus.dtype)
        elif self.mode == "FT":
            alpha = (cls + focus).clamp(max=1)
        else:
            alpha = (cls - focus).clamp(min=0)
        return {"pred_alpha": alpha}


class LearnedFusion(nn.Module):
    """A small learned fusion: coarse alpha, detail alpha and image at full resolution -> alpha.

    Args:
        spec: encoder spec (unused beyond the common signature).
        hidden: width of the two 3x3 conv layers.

    Outputs:
        pred_alpha: (B, 1, H, W) in [0, 1].
    """

    def __init__(self, spec: FeatureSpec | None = None, hidden: int = 16):
        super().__init__()
        self.net = nn.Sequential(ConvNormAct(5, hidden, 3), ConvNormAct(hidden, hidden, 3), nn.Conv2d(hidden, 1, 1))

    def forward(self, image: torch.Tensor, context: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        detail = context["pred_detail"]
        coarse = resize_to(coarse_alpha(context), detail.shape[-2:])
        logits = self.net(torch.cat([coarse, detail, image], 1))
        return {"pred_alpha": torch.sigmoid(logits)}
