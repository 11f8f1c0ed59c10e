"""MattingNet: shared encoder -> semantic and detail heads -> fusion."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import resize_to
from .encoder import FeatureSpec, TimmEncoder


class MattingNet(nn.Module):
    """Trimap-free two-decoder matting network.

    Any non-empty subset of heads builds. Without a fusion module (or with one head missing) the
    final alpha is the detail prediction when a detail head exists, else the upsampled coarse
    semantic alpha. A missing head is a missing output, and the loss drops its terms.

    Args:
        encoder: the shared backbone.
        semantic_head: builds the coarse head from the encoder's FeatureSpec, or None.
        detail_head: builds the detail head from the FeatureSpec (with ``semantic_s8`` context), or None.
        fusion: builds the fusion from the FeatureSpec (with both contexts); ignored unless both heads exist.

    Inputs:
        image: (B, 3, H, W) float RGB in [0, 1]; any H, W (padded internally to the encoder stride).
    Outputs (dict):
        pred_alpha: (B, 1, H, W) in [0, 1], always present.
        pred_semantic: (B, 1, ceil(H/32)*2, ceil(W/32)*2) in [0, 1], coarse alpha at 1/16 (semantic head).
        pred_detail: (B, 1, H, W) in [0, 1] (detail head).
    """

    def __init__(
        self,
        encoder: TimmEncoder,
        semantic_head: Callable[[FeatureSpec], nn.Module] | None = None,
        detail_head: Callable[[FeatureSpec], nn.Module] | None = None,
        fusion: Callable[[FeatureSpec], nn.Module] | None = None,
    ):
        super().__init__()
        if semantic_head is None and detail_head is None:
            raise ValueError("MattingNet needs at least one of semantic_head and detail_head")
        self.encoder = encoder
        spec = encoder.spec
        self.semantic_head = semantic_head(spec) if semantic_head else None
        if self.semantic_head is not None:
            spec = spec.with_context(semantic_s8=self.semantic_head.out_channels)
        self.detail_head = detail_head(spec) if detail_head else None
        if self.detail_head is not None:
            spec = spec.with_context(detail_s2=self.detail_head.out_channels)
        both = self.semantic_head is not None and self.detail_head is not None
        self.fusion = fusion(spec) if (fusion and both) else None
        self.stride = max(32, spec.deepest)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        h, w = image.shape[-2:]
        pad_h, pad_w = (-h) % self.stride, (-w) % self.stride
        x = F.pad(image, (0, pad_w, 0, pad_h), mode="replicate") if (pad_h or pad_w) else image
        feats = self.encoder(x)
        out: dict[str, torch.Tensor] = {}
        semantic_s8 = None
        if self.semantic_head is not None:
            sem = self.semantic_head(feats, x)
            semantic_s8 = sem["semantic_s8"]
            out["pred_semantic"] = sem["pred_semantic"]
        if self.detail_head is not None:
            det = self.detail_head(feats, x, semantic_s8)
            out["pred_detail"] = det["pred_detail"][..., :h, :w]
            if self.fusion is not None:
                out["pred_alpha"] = self.fusion(x, semantic_s8, det["detail_s2"])["pred_alpha"][..., :h, :w]
            else:
                out["pred_alpha"] = out["pred_detail"]
        else:
            out["pred_alpha"] = resize_to(out["pred_semantic"], x.shape[-2:])[..., :h, :w]
        return out
