"""GFM's own glance and focus decoders, at the encoder's widths (a U-Net over every stride).

``GlanceHead(decoder="unet")`` and ``FocusHead(decoder="unet")``, as older configs say, build
these classes; their parameter names are the ones those heads had, so old checkpoints load.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from matting.io.errors import MattingInputError
from matting.models.blocks import ConvNormAct, resize_to
from matting.models.encoder import FeatureSpec
from matting.models.head import Head
from matting.models.outputs import CoarseOutput, DetailOutput, GlanceOutput
from matting.models.semantic import PyramidPooling, glance_output

__all__ = ["FocusUNetHead", "GlanceUNetHead"]


class GlanceUNetHead(Head):
    """GFM's glance decoder: the pooled context keeps the deepest width; a stage per encoder stride
    from the deepest (which also reads the deepest encoder feature) to the finest, each three 3x3
    convs (stride s works at the encoder width at s and hands the width of the next stride on),
    fed the pooled context projected by a 3x3 conv to its width; the finest stage's third conv
    predicts the logits, upsampled to the input size.

    Args:
        spec: encoder feature spec (the widths come from it).
        classes: 3 (TT) or 2 (FT / BT).
        bins: pyramid pooling bin sizes.
        psp: :class:`PyramidPooling` style, ``compact`` or ``full`` (GFM's).

    Returns:
        GlanceOutput: pred_glance (B, classes, H, W) logits; pred_semantic_alpha (B, 1, H, W) in
        [0, 1]; feat_s8 (B, out_channels, H/8, W/8), the 1/8 stage's output.
    """

    decoder = "unet"

    def __init__(self, spec: FeatureSpec, classes: int = 3, bins: tuple[int, ...] = (1, 3, 5), psp: str = "compact"):
        super().__init__()
        if classes not in (2, 3):
            raise MattingInputError(f"GlanceUNetHead classes must be 3 (fusion mode TT) or 2 (FT, BT), got classes={classes!r}")
        self.deepest = spec.deepest
        self.classes = classes
        c = spec.channels
        self.strides = sorted(c, reverse=True)  # deepest first, e.g. 32, 16, 8, 4, 2
        c_deep = c[self.deepest]
        self.psp = PyramidPooling(c_deep, c_deep, bins, style=psp)
        self.context = nn.ModuleList(ConvNormAct(c_deep, c[s], 3) for s in self.strides[1:])
        stages = []
        for i, s in enumerate(self.strides):
            # Input: the previous stage (or the pooled context) and the context (or the deepest feature), c[s] each.
            convs = [ConvNormAct(2 * c[s], c[s], 3), ConvNormAct(c[s], c[s], 3)]
            if i + 1 < len(self.strides):
                convs.append(ConvNormAct(c[s], c[self.strides[i + 1]], 3))
            stages.append(nn.Sequential(*convs))
        self.stages = nn.ModuleList(stages)
        self.out = nn.Conv2d(c[self.strides[-1]], self.classes, 3, padding=1)
        # feat_s8: the output of the stage at 1/8 (or the finest stage above it).
        self.s8 = min(s for s in self.strides if s >= 8)
        i8 = self.strides.index(self.s8)
        self.out_channels = c[self.strides[i8 + 1]] if i8 + 1 < len(self.strides) else c[self.s8]

    def features(self, feats: dict[int, torch.Tensor], image: torch.Tensor, semantic=None) -> tuple[GlanceOutput, torch.Tensor]:
        h, w = image.shape[-2:]
        ctx = self.psp(feats[self.deepest])  # (B, C_deep, H/32, W/32)
        x = self.stages[0](torch.cat([ctx, feats[self.deepest]], 1))  # (B, C_16, H/32, W/32)
        feat_s8 = x
        for s, proj, stage in zip(self.strides[1:], self.context, self.stages[1:]):
            size = (h // s, w // s)
            x = stage(torch.cat([resize_to(proj(ctx), size), resize_to(x, size)], 1))  # (B, C_next, H/s, W/s)
            if s == self.s8:
                feat_s8 = x
        feat_s8 = resize_to(feat_s8, (h // 8, w // 8))
        return GlanceOutput(pred_glance=None, pred_semantic_alpha=None, feat_s8=feat_s8), x

    def prediction(self, output: GlanceOutput, last: torch.Tensor, image: torch.Tensor) -> GlanceOutput:
        logits = resize_to(self.out(last), image.shape[-2:])  # (B, classes, H, W)
        return glance_output(logits, self.classes, output.feat_s8)


class FocusUNetHead(Head):
    """GFM's focus decoder: a dilated bridge keeping the deepest width; a stage per encoder stride
    from the deepest (bridge + deepest feature) to the finest, each three 3x3 convs on the previous
    stage and that stride's encoder feature (stride s works at the encoder width at s and hands
    the width of the next stride on); the finest stage's third conv predicts the logit, upsampled
    to the input size (no image input).

    Args:
        spec: encoder feature spec (the widths come from it).
        semantic_context: concatenate the semantic head's ``feat_s8`` at 1/8 when there is one
            (default); False keeps the two decoders independent, sharing only the encoder (GFM).

    Returns:
        DetailOutput: pred_detail (B, 1, H, W) in [0, 1]; feat_s2 (B, C, H/2, W/2) hidden features.
    """

    decoder = "unet"

    def __init__(self, spec: FeatureSpec, semantic_context: bool = True):
        super().__init__()
        self.deepest = spec.deepest
        c_sem = spec.semantic_s8 if semantic_context else 0
        c = spec.channels
        c_deep = c[self.deepest]
        self.bridge = nn.Sequential(*(ConvNormAct(c_deep, c_deep, 3, dilation=2) for _ in range(3)))
        self.strides = sorted(c, reverse=True)  # deepest first, e.g. 32, 16, 8, 4, 2
        self.use_semantic = bool(c_sem)
        stages = []
        for i, s in enumerate(self.strides):
            # Input: the previous stage (or the bridge), c[s] channels, and the encoder feature at s.
            extra = c_sem if s == 8 else 0
            convs = [ConvNormAct(2 * c[s] + extra, c[s], 3), ConvNormAct(c[s], c[s], 3)]
            if i + 1 < len(self.strides):
                convs.append(ConvNormAct(c[s], c[self.strides[i + 1]], 3))
            stages.append(nn.Sequential(*convs))
        self.stages = nn.ModuleList(stages)
        self.out = nn.Conv2d(c[self.strides[-1]], 1, 3, padding=1)
        self.out_channels = c[self.strides[-1]]

    def features(self, feats: dict[int, torch.Tensor], image: torch.Tensor,
                 semantic: CoarseOutput | None = None) -> tuple[DetailOutput, torch.Tensor]:
        h, w = image.shape[-2:]
        x = self.bridge(feats[self.deepest])  # (B, C_deep, H/32, W/32)
        for s, stage in zip(self.strides, self.stages):
            parts = [resize_to(x, feats[s].shape[-2:]), feats[s]]
            if s == 8 and self.use_semantic:
                parts.append(resize_to(semantic.feat_s8, feats[s].shape[-2:]))
            x = stage(torch.cat(parts, 1))  # (B, C_next, H/s, W/s); the finest: (B, C_s, H/s, W/s)
        feat_s2 = resize_to(x, (h // 2, w // 2))
        return DetailOutput(pred_detail=None, feat_s2=feat_s2), x

    def prediction(self, output: DetailOutput, last: torch.Tensor, image: torch.Tensor) -> DetailOutput:
        logits = resize_to(self.out(last), image.shape[-2:])  # (B, 1, H, W)
        return replace(output, pred_detail=torch.sigmoid(logits))
