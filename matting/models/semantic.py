"""Semantic (coarse) decoders: what is subject, at low resolution.

Heads are built from a :class:`FeatureSpec` and called as ``head(feats, image)``
(:class:`~matting.models.head.Head`); each returns a typed output (:mod:`matting.models.outputs`)
whose ``feat_s8`` later heads may consume.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from matting.io.errors import MattingInputError
from matting.models.blocks import (
    ConvNormAct,
    SEBlock,
    check_block,
    conv_block,
    resize_to,
)
from matting.models.encoder import FeatureSpec
from matting.models.head import Head
from matting.models.outputs import GlanceOutput, SemanticOutput


class SemanticHead(Head):
    """Coarse semantic decoder (MODNet's low-resolution branch): what is subject, at 1/16.

    SE attention on the deepest encoder level, two upsampling 5x5 conv stages to 1/16 and 1/8,
    and a stride-2 3x3 conv to a 1-channel coarse alpha at 1/16.

    Args:
        spec: encoder feature spec.
        hidden_s16: channels of the 1/16 stage.
        hidden_s8: channels of the 1/8 stage, exposed to later heads as ``feat_s8``.
        norm: normalisation of the conv stages, ``bn`` or ``ibn`` (MODNet's IBNorm).
        block: kind of the two 5x5 stages (:func:`~matting.models.blocks.conv_block`): ``conv``
            (dense, MODNet's), ``dw`` (depthwise-separable) or ``ir`` (inverted residual).

    Inputs:
        feats: dict stride -> (B, C, H/stride, W/stride).
        image: (B, 3, H, W) in [0, 1], H and W multiples of the encoder stride.
        predict: False skips the coarse alpha (the fusion reads ``feat_s8`` only).
    Returns:
        SemanticOutput: pred_semantic (B, 1, H/16, W/16) in [0, 1], coarse alpha (None when not
        ``predict``); feat_s8 (B, hidden_s8, H/8, W/8) hidden features.
    """

    def __init__(self, spec: FeatureSpec, hidden_s16: int = 96, hidden_s8: int = 32, norm: str = "bn", block: str = "conv"):
        super().__init__()
        check_block(block, "SemanticHead")
        self.deepest = spec.deepest
        c_deep = spec.channels[self.deepest]
        self.se = SEBlock(c_deep, reduction=4)
        self.conv_s16 = conv_block(block, c_deep, hidden_s16, 5, norm=norm)
        self.conv_s8 = conv_block(block, hidden_s16, hidden_s8, 5, norm=norm)
        self.out = nn.Conv2d(hidden_s8, 1, 3, stride=2, padding=1)
        self.out_channels = hidden_s8

    def features(self, feats: dict[int, torch.Tensor], image: torch.Tensor, semantic=None) -> tuple[SemanticOutput, torch.Tensor]:
        h, w = image.shape[-2:]
        x = self.se(feats[self.deepest])  # (B, C, H/32, W/32)
        x = self.conv_s16(resize_to(x, (h // 16, w // 16)))  # (B, hidden_s16, H/16, W/16)
        feat_s8 = self.conv_s8(resize_to(x, (h // 8, w // 8)))  # (B, hidden_s8, H/8, W/8)
        return SemanticOutput(pred_semantic=None, feat_s8=feat_s8), feat_s8

    def prediction(self, output: SemanticOutput, last: torch.Tensor, image: torch.Tensor) -> SemanticOutput:
        return replace(output, pred_semantic=torch.sigmoid(self.out(last)))  # (B, 1, H/16, W/16)


PSP_STYLES = ("compact", "full")


class PyramidPooling(nn.Module):
    """PSP module: average-pool to each bin size, project, upsample, concatenate with the input.

    Styles: ``compact`` (default): each bin projected to ``in_ch / len(bins)`` channels with a
    ReLU, merged by a 3x3 conv + BN + ReLU; ``full`` (PSPNet's, as GFM uses it): each bin kept
    at ``in_ch`` channels by a linear 1x1 conv, merged by a 1x1 conv with bias + ReLU.

    Inputs: (B, in_ch, h, w). Outputs: (B, out_ch, h, w), >= 0.
    """

    def __init__(self, in_ch: int, out_ch: int, bins: tuple[int, ...] = (1, 3, 5), style: str = "compact"):
        super().__init__()
        if style not in PSP_STYLES:
            raise MattingInputError(f"PyramidPooling style must be one of {', '.join(PSP_STYLES)}, got style={style!r}")
        self.bins = bins
        if style == "full":
            self.branches = nn.ModuleList(nn.Sequential(nn.Conv2d(in_ch, in_ch, 1, bias=False)) for _ in bins)
            self.project = nn.Sequential(nn.Conv2d(in_ch * (len(bins) + 1), out_ch, 1), nn.ReLU(inplace=True))
            return
        branch = max(in_ch // len(bins), 16)
        self.branches = nn.ModuleList(nn.Sequential(nn.Conv2d(in_ch, branch, 1, bias=False), nn.ReLU(inplace=True)) for _ in bins)
        self.project = ConvNormAct(in_ch + branch * len(bins), out_ch, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pooled = [resize_to(b(F.adaptive_avg_pool2d(x, n)), size) for n, b in zip(self.bins, self.branches)]
        return self.project(torch.cat([x, *pooled], 1))


DECODERS = ("compact", "unet")


class GlanceHead(Head):
    """GFM's glance decoder: pyramid pooling on the deepest level, then upsampling stages to 1/4.

    Predicts class logits: with ``classes=3`` background / transition / foreground (GFM's TT
    target); with ``classes=2`` the binary target of the FT or BT fusion (see
    :class:`CollaborativeFusion`). The pooled global context is injected into every stage, as
    GFM does, so that the whole image informs what is subject.

    Args:
        spec: encoder feature spec.
        hidden: width of the decoder stages (exposed to later heads as ``feat_s8``).
        classes: 3 (TT) or 2 (FT / BT).
        bins: pyramid pooling bin sizes.
        psp: :class:`PyramidPooling` style, ``compact`` or ``full`` (GFM's).
        decoder: ``compact``: stages of two 3x3 convs at ``hidden`` width from 1/16 to 1/4, logits
            at 1/4. GFM's own decoder at the encoder's widths is :class:`GlanceUNetHead`
            (``decoder: unet``, as older configs say, builds that class).

    Returns:
        GlanceOutput: pred_glance (B, classes, H/4, W/4) logits; pred_semantic_alpha (B, 1, H/4, W/4)
        in [0, 1], P(foreground) (+ P(transition) / 2 for TT), a coarse alpha for fusions and
        reports; feat_s8 (B, hidden, H/8, W/8) hidden features.
    """

    decoder = "compact"

    def __new__(cls, spec: FeatureSpec | None = None, hidden: int = 64, classes: int = 3,
                bins: tuple[int, ...] = (1, 3, 5), psp: str = "compact", decoder: str = "compact"):
        if cls is GlanceHead and decoder == "unet":  # older configs select GFM's decoder by this argument
            from matting.models.gfm_unet import GlanceUNetHead

            return GlanceUNetHead(spec, classes=classes, bins=bins, psp=psp)  # its widths come from the encoder
        return super().__new__(cls)

    def __init__(self, spec: FeatureSpec, hidden: int = 64, classes: int = 3, bins: tuple[int, ...] = (1, 3, 5),
                 psp: str = "compact", decoder: str = "compact"):
        super().__init__()
        if classes not in (2, 3):
            raise MattingInputError(f"GlanceHead classes must be 3 (fusion mode TT) or 2 (FT, BT), got classes={classes!r}")
        if decoder not in DECODERS:
            raise MattingInputError(f"GlanceHead decoder must be one of {', '.join(DECODERS)}, got decoder={decoder!r}")
        self.deepest = spec.deepest
        self.classes = classes
        self.psp = PyramidPooling(spec.channels[self.deepest], hidden, bins, style=psp)
        # One stage per stride from the deepest level down to 1/4, each fed the pooled context.
        self.strides = [s for s in (16, 8, 4) if s < self.deepest] or [4]
        self.stages = nn.ModuleList(
            nn.Sequential(ConvNormAct(2 * hidden, hidden, 3), ConvNormAct(hidden, hidden, 3)) for _ in self.strides
        )
        self.out = nn.Conv2d(hidden, classes, 3, padding=1)
        self.out_channels = hidden

    def features(self, feats: dict[int, torch.Tensor], image: torch.Tensor, semantic=None) -> tuple[GlanceOutput, torch.Tensor]:
        h, w = image.shape[-2:]
        global_ctx = self.psp(feats[self.deepest])  # (B, hidden, H/32, W/32)
        x, feat_s8 = global_ctx, None
        for stride, stage in zip(self.strides, self.stages):
            size = (h // stride, w // stride)
            x = stage(torch.cat([resize_to(x, size), resize_to(global_ctx, size)], 1))  # (B, hidden, H/s, W/s)
            if stride == 8:
                feat_s8 = x
        if feat_s8 is None:
            feat_s8 = resize_to(x, (h // 8, w // 8))
        return GlanceOutput(pred_glance=None, pred_semantic_alpha=None, feat_s8=feat_s8), x

    def prediction(self, output: GlanceOutput, last: torch.Tensor, image: torch.Tensor) -> GlanceOutput:
        return glance_output(self.out(last), self.classes, output.feat_s8)  # logits (B, classes, H/4, W/4)


def glance_output(logits: torch.Tensor, classes: int, feat_s8: torch.Tensor) -> GlanceOutput:
    """Logits (B, classes, h, w) -> the glance output with its coarse alpha in [0, 1]:
    P(foreground) (+ P(transition) / 2 with three classes)."""
    probs = logits.softmax(1)
    coarse = probs[:, 2:3] + 0.5 * probs[:, 1:2] if classes == 3 else probs[:, 1:2]
    return GlanceOutput(pred_glance=logits, pred_semantic_alpha=coarse, feat_s8=feat_s8)
