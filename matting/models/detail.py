"""Detail (fine) decoders for the transition band, at high resolution.

Called as ``head(feats, image, semantic)`` (:class:`~matting.models.head.Head`), where ``semantic``
is the coarse head's output (or None without one); each returns a
:class:`~matting.models.outputs.DetailOutput`.
"""

from __future__ import annotations

import functools
from dataclasses import replace

import torch
from torch import nn

from matting.io.errors import MattingInputError
from matting.models.blocks import (
    ConvNormAct,
    check_block,
    conv_block,
    downsample_image,
    resize_to,
)
from matting.models.encoder import FeatureSpec
from matting.models.head import Head
from matting.models.outputs import CoarseOutput, DetailOutput


class DetailHead(Head):
    """High-resolution detail decoder (MODNet's HR branch) for the transition band.

    Works at 1/4 then 1/2 from the stride-2 and stride-4 encoder features and the downsampled
    image; uses the semantic head's 1/8 features as context when that head exists.

    Args:
        spec: encoder feature spec (context ``semantic_s8`` optional: the coarse head's width).
        hidden: working width, exposed to later parts as ``feat_s2``.
        norm: normalisation of the conv layers, ``bn`` or ``ibn`` (MODNet's IBNorm).
        image_s2: feed the half-resolution image to the 1/2 stage as well; MODNet's released
            code feeds it only the upsampled 1/4 features and the stride-2 encoder features (False).
        block: kind of the 3x3 layers (:func:`~matting.models.blocks.conv_block`): ``conv``
            (dense, MODNet's), ``dw`` (depthwise-separable) or ``ir`` (inverted residual); the
            1x1 projections of the encoder features and the final 1x1 to one channel stay plain convs.
        stride: finest resolution the branch works at. 2 (MODNet's): a four-layer stack at 1/2
            (``conv_s2``). 4: the work stops at 1/4 and ``feat_s2`` is the 1/4 result upsampled
            and merged with the projected stride-2 encoder features (and the half-resolution
            image, with ``image_s2``) by one block (``merge_s2``), so the fusion reads the same
            features at a fraction of the cost.

    Inputs:
        feats: dict stride -> (B, C, H/stride, W/stride); image: (B, 3, H, W) in [0, 1];
        semantic: the coarse head's output (its ``feat_s8`` is used), or None without one;
        predict: False skips the full-resolution detail alpha (the fusion reads ``feat_s2`` only).
    Returns:
        DetailOutput: pred_detail (B, 1, H, W) in [0, 1], alpha meant for the transition band
        (None when not ``predict``); feat_s2 (B, hidden, H/2, W/2) hidden features.
    """

    def __init__(self, spec: FeatureSpec, hidden: int = 32, norm: str = "bn", image_s2: bool = True, block: str = "conv",
                 stride: int = 2):
        super().__init__()
        check_block(block, "DetailHead")
        if stride not in (2, 4):
            raise MattingInputError(f"DetailHead stride must be 2 or 4, got stride={stride!r}")
        c2, c4 = spec.channels[2], spec.channels[4]
        self.c_sem = spec.semantic_s8
        self.image_s2 = image_s2
        self.stride = stride
        proj = functools.partial(ConvNormAct, norm=norm)
        conv = functools.partial(conv_block, block, norm=norm)
        self.proj_s2 = proj(c2, hidden, 1)
        self.proj_s4 = proj(c4, hidden, 1)
        self.down_s2 = conv(hidden + 3, hidden, 3, stride=2)
        self.merge_s4 = conv(2 * hidden, 2 * hidden, 3)
        self.conv_s4 = nn.Sequential(
            conv(2 * hidden + self.c_sem + 3, 2 * hidden, 3),
            conv(2 * hidden, 2 * hidden, 3),
            conv(2 * hidden, hidden, 3),
        )
        if stride == 2:
            self.conv_s2 = nn.Sequential(
                conv(2 * hidden + 3 * image_s2, 2 * hidden, 3),
                conv(2 * hidden, hidden, 3),
                conv(hidden, hidden, 3),
                conv(hidden, hidden, 3),
            )
        else:
            self.merge_s2 = conv(2 * hidden + 3 * image_s2, hidden, 3)
        self.out = nn.Sequential(conv(hidden + 3, hidden, 3), nn.Conv2d(hidden, 1, 1))
        self.out_channels = hidden

    def features(self, feats: dict[int, torch.Tensor], image: torch.Tensor,
                 semantic: CoarseOutput | None = None) -> tuple[DetailOutput, torch.Tensor]:
        h, w = image.shape[-2:]
        img_s2, img_s4 = downsample_image(image, 2), downsample_image(image, 4)
        enc_s2 = self.proj_s2(feats[2])  # (B, hidden, H/2, W/2)
        enc_s4 = self.proj_s4(feats[4])  # (B, hidden, H/4, W/4)
        x = self.down_s2(torch.cat([img_s2, enc_s2], 1))  # (B, hidden, H/4, W/4)
        x = self.merge_s4(torch.cat([x, enc_s4], 1))  # (B, 2*hidden, H/4, W/4)
        parts = [x, img_s4]
        if self.c_sem:
            parts.append(resize_to(semantic.feat_s8, (h // 4, w // 4)))
        x = self.conv_s4(torch.cat(parts, 1))  # (B, hidden, H/4, W/4)
        x = resize_to(x, (h // 2, w // 2))
        x = torch.cat([x, enc_s2, img_s2] if self.image_s2 else [x, enc_s2], 1)  # (B, 2*hidden (+3), H/2, W/2)
        feat_s2 = self.conv_s2(x) if self.stride == 2 else self.merge_s2(x)  # (B, hidden, H/2, W/2)
        return DetailOutput(pred_detail=None, feat_s2=feat_s2), feat_s2

    def prediction(self, output: DetailOutput, last: torch.Tensor, image: torch.Tensor) -> DetailOutput:
        logits = self.out(torch.cat([resize_to(last, image.shape[-2:]), image], 1))  # (B, 1, H, W)
        return replace(output, pred_detail=torch.sigmoid(logits))


class FocusHead(Head):
    """GFM's focus decoder: a dilated bridge on the deepest level, then a U-Net over every stride.

    Each stage upsamples by two and concatenates the encoder feature of that stride (U-Net
    skip); the last stage adds the image at full resolution. When a semantic head ran first
    (``semantic_s8`` in the spec's context), its ``feat_s8`` is concatenated at 1/8.

    Args:
        spec: encoder feature spec.
        hidden: width of the bridge; stages halve it down to ``min_width``.
        min_width: narrowest stage width.
        decoder: ``compact``: as above. GFM's own decoder at the encoder's widths is
            :class:`FocusUNetHead` (``decoder: unet``, as older configs say, builds that class).
        semantic_context: concatenate the semantic head's ``feat_s8`` at 1/8 when there is one
            (default); False keeps the two decoders independent, sharing only the encoder (GFM).

    Inputs: as :class:`DetailHead`.
    Returns:
        DetailOutput: pred_detail (B, 1, H, W) in [0, 1]; feat_s2 (B, C, H/2, W/2) hidden features.
    """

    decoder = "compact"

    def __new__(cls, spec: FeatureSpec | None = None, hidden: int = 128, min_width: int = 32, decoder: str = "compact",
                semantic_context: bool = True):
        if cls is FocusHead and decoder == "unet":  # older configs select GFM's decoder by this argument
            from matting.models.gfm_unet import FocusUNetHead

            return FocusUNetHead(spec, semantic_context=semantic_context)  # its widths come from the encoder
        return super().__new__(cls)

    def __init__(self, spec: FeatureSpec, hidden: int = 128, min_width: int = 32, decoder: str = "compact",
                 semantic_context: bool = True):
        super().__init__()
        if decoder not in ("compact", "unet"):
            raise MattingInputError(f"FocusHead decoder must be compact or unet, got decoder={decoder!r}")
        self.deepest = spec.deepest
        c_sem = spec.semantic_s8 if semantic_context else 0
        self.bridge = nn.Sequential(
            ConvNormAct(spec.channels[self.deepest], hidden, 3, dilation=2),
            ConvNormAct(hidden, hidden, 3, dilation=2),
            ConvNormAct(hidden, hidden, 3, dilation=2),
        )
        self.strides = sorted((s for s in spec.channels if s < self.deepest), reverse=True)  # e.g. 16, 8, 4, 2
        self.use_semantic = bool(c_sem)
        stages, width = [], hidden
        for s in self.strides:
            out = max(width // 2, min_width)
            extra = c_sem if (s == 8 and c_sem) else 0
            stages.append(nn.Sequential(ConvNormAct(width + spec.channels[s] + extra, out, 3), ConvNormAct(out, out, 3)))
            width = out
        self.stages = nn.ModuleList(stages)
        self.out = nn.Sequential(ConvNormAct(width + 3, min_width, 3), nn.Conv2d(min_width, 1, 1))
        self.out_channels = width

    def features(self, feats: dict[int, torch.Tensor], image: torch.Tensor,
                 semantic: CoarseOutput | None = None) -> tuple[DetailOutput, torch.Tensor]:
        h, w = image.shape[-2:]
        x = self.bridge(feats[self.deepest])  # (B, hidden, H/32, W/32)
        feat_s2 = None
        for s, stage in zip(self.strides, self.stages):
            parts = [resize_to(x, feats[s].shape[-2:]), feats[s]]
            if s == 8 and self.use_semantic:
                parts.append(resize_to(semantic.feat_s8, feats[s].shape[-2:]))
            x = stage(torch.cat(parts, 1))  # (B, C_s, H/s, W/s)
            if s == 2:
                feat_s2 = x
        if feat_s2 is None:
            feat_s2 = resize_to(x, (h // 2, w // 2))
        return DetailOutput(pred_detail=None, feat_s2=feat_s2), x

    def prediction(self, output: DetailOutput, last: torch.Tensor, image: torch.Tensor) -> DetailOutput:
        logits = self.out(torch.cat([resize_to(last, image.shape[-2:]), image], 1))  # (B, 1, H, W)
        return replace(output, pred_detail=torch.sigmoid(logits))
