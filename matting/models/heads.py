"""Decoder heads that read encoder features by stride.

Each head is built from a :class:`FeatureSpec` (encoder channels per stride plus the hidden
channels of heads built before it), so no channel count is typed twice, and each returns a dict of
named outputs that :class:`MattingNet` merges.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import ConvNormAct, SEBlock, downsample_image, resize_to
from .encoder import FeatureSpec


class SemanticHead(nn.Module):
    """Coarse semantic decoder (MODNet's low-resolution branch): what is subject, at 1/16.

    SE attention on the deepest encoder level, two upsampling 5x5 conv stages to 1/16 and 1/8,
    and a stride-2 3x3 conv to a 1-channel coarse alpha at 1/16.

    Args:
        spec: encoder feature spec.
        hidden_s16: channels of the 1/16 stage.
        hidden_s8: channels of the 1/8 stage, exposed to later heads as ``semantic_s8``.

    Inputs:
        feats: dict stride -> (B, C, H/stride, W/stride).
    Outputs:
        pred_semantic: (B, 1, H/16, W/16) in [0, 1], coarse alpha.
        semantic_s8: (B, hidden_s8, H/8, W/8) hidden features.
    """

    def __init__(self, spec: FeatureSpec, hidden_s16: int = 96, hidden_s8: int = 32):
        super().__init__()
        self.deepest = spec.deepest
        c_deep = spec.channels[self.deepest]
        self.se = SEBlock(c_deep, reduction=4)
        self.conv_s16 = ConvNormAct(c_deep, hidden_s16, 5)
        self.conv_s8 = ConvNormAct(hidden_s16, hidden_s8, 5)
        self.out = nn.Conv2d(hidden_s8, 1, 3, stride=2, padding=1)
        self.out_channels = hidden_s8

    def forward(self, feats: dict[int, torch.Tensor], image: torch.Tensor) -> dict[str, torch.Tensor]:
        h, w = image.shape[-2:]
        x = self.se(feats[self.deepest])  # (B, C, H/32, W/32)
        x = self.conv_s16(resize_to(x, (h // 16, w // 16)))  # (B, hidden_s16, H/16, W/16)
        semantic_s8 = self.conv_s8(resize_to(x, (h // 8, w // 8)))  # (B, hidden_s8, H/8, W/8)
        pred_semantic = torch.sigmoid(self.out(semantic_s8))  # (B, 1, H/16, W/16)
        return {"pred_semantic": pred_semantic, "semantic_s8": semantic_s8}


class DetailHead(nn.Module):
    """High-resolution detail decoder (MODNet's HR branch) for the transition band.

    Works at 1/4 then 1/2 from the stride-2 and stride-4 encoder features and the downsampled
    image; uses the semantic head's 1/8 features as context when that head exists.

    Args:
        spec: encoder feature spec (context ``semantic_s8`` optional).
        hidden: working width, exposed to later heads as ``detail_s2``.

    Outputs:
        pred_detail: (B, 1, H, W) in [0, 1], alpha prediction meant for the transition band.
        detail_s2: (B, hidden, H/2, W/2) hidden features.
    """

    def __init__(self, spec: FeatureSpec, hidden: int = 32):
        super().__init__()
        c2, c4 = spec.channels[2], spec.channels[4]
        self.c_sem = spec.context.get("semantic_s8", 0)
        self.proj_s2 = ConvNormAct(c2, hidden, 1)
        self.proj_s4 = ConvNormAct(c4, hidden, 1)
        self.down_s2 = ConvNormAct(hidden + 3, hidden, 3, stride=2)
        self.merge_s4 = ConvNormAct(2 * hidden, 2 * hidden, 3)
        self.conv_s4 = nn.Sequential(
            ConvNormAct(2 * hidden + self.c_sem + 3, 2 * hidden, 3),
            ConvNormAct(2 * hidden, 2 * hidden, 3),
            ConvNormAct(2 * hidden, hidden, 3),
        )
        self.conv_s2 = nn.Sequential(
            ConvNormAct(2 * hidden + 3, 2 * hidden, 3),
            ConvNormAct(2 * hidden, hidden, 3),
            ConvNormAct(hidden, hidden, 3),
            ConvNormAct(hidden, hidden, 3),
        )
        self.out = nn.Sequential(ConvNormAct(hidden + 3, hidden, 3), nn.Conv2d(hidden, 1, 1))
        self.out_channels = hidden

    def forward(self, feats: dict[int, torch.Tensor], image: torch.Tensor, semantic_s8: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        h, w = image.shape[-2:]
        img_s2, img_s4 = downsample_image(image, 2), downsample_image(image, 4)
        enc_s2 = self.proj_s2(feats[2])  # (B, hidden, H/2, W/2)
        enc_s4 = self.proj_s4(feats[4])  # (B, hidden, H/4, W/4)
        x = self.down_s2(torch.cat([img_s2, enc_s2], 1))  # (B, hidden, H/4, W/4)
        x = self.merge_s4(torch.cat([x, enc_s4], 1))  # (B, 2*hidden, H/4, W/4)
        parts = [x, img_s4]
        if self.c_sem:
            parts.append(resize_to(semantic_s8, (h // 4, w // 4)))
        x = self.conv_s4(torch.cat(parts, 1))  # (B, hidden, H/4, W/4)
        x = resize_to(x, (h // 2, w // 2))
        detail_s2 = self.conv_s2(torch.cat([x, enc_s2, img_s2], 1))  # (B, hidden, H/2, W/2)
        logits = self.out(torch.cat([resize_to(detail_s2, (h, w)), image], 1))  # (B, 1, H, W)
        return {"pred_detail": torch.sigmoid(logits), "detail_s2": detail_s2}


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

    def forward(self, image: torch.Tensor, semantic_s8: torch.Tensor, detail_s2: torch.Tensor) -> dict[str, torch.Tensor]:
        h, w = image.shape[-2:]
        x = self.conv_s4(resize_to(semantic_s8, (h // 4, w // 4)))  # (B, c_sem, H/4, W/4)
        x = self.conv_s2(torch.cat([resize_to(x, (h // 2, w // 2)), detail_s2], 1))  # (B, 2*hidden, H/2, W/2)
        logits = self.out(torch.cat([resize_to(x, (h, w)), image], 1))  # (B, 1, H, W)
        return {"pred_alpha": torch.sigmoid(logits)}
