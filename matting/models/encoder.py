"""Shared encoder: any timm backbone with ``features_only``, indexed by stride."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import timm
import torch
from torch import nn

from matting.io.errors import MattingInputError
from matting.models.blocks import ConvNormAct
from matting.models.pretrained import hub_source, load_backbone, read_weights


@dataclass(frozen=True)
class FeatureSpec:
    """What a head may consume: encoder channels per stride, plus hidden outputs of earlier heads.

    Attributes:
        channels: stride -> channel count of the encoder feature at that stride (e.g. {2: 16, 4: 24, ..., 32: 960}).
        semantic_s8: channels of the semantic head's hidden feature at 1/8 (``feat_s8``), 0 before
            (or without) a semantic head; lets the detail head and fusion size their inputs.
        detail_s2: channels of the detail head's finest hidden feature (``feat_finest``), 0 before
            (or without) a detail head.
    """

    channels: dict[int, int]
    semantic_s8: int = 0
    detail_s2: int = 0

    @property
    def deepest(self) -> int:
        """Largest stride the encoder provides."""
        return max(self.channels)

    def with_heads(self, semantic_s8: int | None = None, detail_s2: int | None = None) -> "FeatureSpec":
        """This spec plus the hidden widths of heads built so far (None keeps the current value)."""
        return replace(self, semantic_s8=self.semantic_s8 if semantic_s8 is None else semantic_s8,
                       detail_s2=self.detail_s2 if detail_s2 is None else detail_s2)


class TimmEncoder(nn.Module):
    """A timm backbone returning features keyed by stride, in NCHW, from an RGB image in [0, 1].

    Channel counts and strides are read from timm's ``feature_info``. Strides 2 and 4 are always
    present: backbones that start at stride 4 (ConvNeXt, Swin) or 16 (ViT) get a small convolutional
    stem for the missing high-resolution levels, which the detail head needs. When several levels
    share a stride (ViT), the deepest one is kept.

    Args:
        name: any timm model name that supports ``features_only`` (e.g. ``mobilenetv3_large_100``).
        weights_file: optional local ``.pth`` / ``.safetensors`` state dict of the backbone: timm's
            classifier weights as published (classifier keys ignored) or a ``features_only`` state
            dict (``matting.models.pretrained``); the hub is not contacted. Wins over ``pretrained``.
        stem_channels: width of the added stem levels, when the backbone lacks stride 2 or 4.
        in_chans: input channels: 3 (RGB), or 4 (RGB + trimap, for the trimap-based upper bound).
        final_features: the deepest level is the backbone's final features (timm's
            ``forward_intermediates`` last output, e.g. MobileNetV2's 1x1 ``conv_head`` + BN + ReLU6,
            1280 channels for ``mobilenetv2_100``, MODNet's enc32x) instead of the last stage's
            output (320). Needs a convolutional backbone whose final features keep the deepest stride.
        pretrained: start from timm's published weights for ``name``, downloaded into (or read from)
            huggingface_hub's cache as ``timm.create_model(name, pretrained=True)`` does; offline
            without a cached copy is refused in one line naming the ``weights_file`` alternative.

    Inputs:
        image: (B, in_chans, H, W) float in [0, 1], H and W multiples of the deepest stride.
    Outputs:
        dict stride -> (B, C_stride, H / stride, W / stride).
    """

    def __init__(self, name: str = "mobilenetv3_large_100", weights_file: str | None = None, stem_channels: int = 16, in_chans: int = 3,
                 final_features: bool = False, pretrained: bool = False):
        super().__init__()
        self.in_chans = in_chans
        self.final_features = final_features
        # The whole model (classifier dropped) when the head features are wanted: features_only cuts them off.
        build = {"num_classes": 0} if final_features else {"features_only": True}
        self.backbone = _create_backbone(name, pretrained and not weights_file, in_chans=in_chans, **build)
        if weights_file:
            count = load_backbone(self.backbone, read_weights(weights_file), weights_file, name)
            print(f"encoder {name}: {count} backbone tensors from {weights_file}")
        reductions, level_channels = _feature_levels(self.backbone, name, final_features)
        self._nhwc = getattr(self.backbone, "output_fmt", "NCHW") == "NHWC"
        # Keep the deepest level for each stride (ViT returns several levels at stride 16).
        self._index_of_stride = {s: i for i, s in enumerate(reductions)}
        channels = {s: level_channels[i] for s, i in self._index_of_stride.items()}
        if final_features:
            channels[max(channels)] = self.backbone.num_features
        cfg = self.backbone.pretrained_cfg
        # Extra input channels (a trimap in [0, 1]) are centred like the image: (x - 0.5) / 0.5.
        mean = list(cfg.get("mean", (0.485, 0.456, 0.406))) + [0.5] * (in_chans - 3)
        std = list(cfg.get("std", (0.229, 0.224, 0.225))) + [0.5] * (in_chans - 3)
        self.register_buffer("mean", torch.tensor(mean).view(1, in_chans, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, in_chans, 1, 1), persistent=False)
        self.stems = nn.ModuleDict()
        for stride in (2, 4):
            if stride not in channels:
                # (B, 3, H, W) -> (B, stem_channels, H/stride, W/stride)
                layers = [ConvNormAct(in_chans, stem_channels, 3, stride=2)]
                if stride == 4:
                    layers.append(ConvNormAct(stem_channels, stem_channels, 3, stride=2))
                self.stems[str(stride)] = nn.Sequential(*layers)
                channels[stride] = stem_channels
        self.spec = FeatureSpec(channels=dict(sorted(channels.items())))

    def forward(self, image: torch.Tensor) -> dict[int, torch.Tensor]:
        x = (image - self.mean) / self.std
        if self.final_features:
            final, levels = self.backbone.forward_intermediates(x)  # levels in NCHW, final in the model's layout
            if final.ndim != 4:  # a transformer's final features are tokens, not a feature map
                raise MattingInputError(f"final_features: the backbone's final features are {tuple(final.shape)}, not a (B, C, H, W) map")
            feats = [*levels[:-1], final.permute(0, 3, 1, 2).contiguous() if self._nhwc else final]
            out = {stride: feats[idx] for stride, idx in self._index_of_stride.items()}
        else:
            feats = self.backbone(x)
            out = {}
            for stride, idx in self._index_of_stride.items():
                f = feats[idx]
                out[stride] = f.permute(0, 3, 1, 2).contiguous() if self._nhwc else f
        for stride, stem in self.stems.items():
            out[int(stride)] = stem(image)
        return out


def _feature_levels(backbone: nn.Module, name: str, final_features: bool) -> tuple[list[int], list[int]]:
    """Stride and channel count of each feature level (timm's ``feature_info``): a FeatureInfo on
    a ``features_only`` model, a list of dicts on a whole one."""
    info = backbone.feature_info
    if not final_features:
        return info.reduction(), info.channels()
    if not hasattr(backbone, "forward_intermediates") or not getattr(backbone, "num_features", 0):
        raise MattingInputError(f"encoder name={name!r}: final_features needs a timm model with forward_intermediates")
    return [level["reduction"] for level in info], [level["num_chs"] for level in info]


def _create_backbone(name: str, pretrained: bool, **kwargs) -> nn.Module:
    """``timm.create_model(name, ...)`` with random weights, or timm's published ones when ``pretrained``."""
    overlay = hub_source(name) if pretrained else {}
    try:
        if not pretrained:
            return timm.create_model(name, pretrained=False, **kwargs)
        # Dropping the classifier makes timm log the file's head keys as unexpected: expected here.
        builder_log = logging.getLogger("timm.models._builder")
        level = builder_log.level
        builder_log.setLevel(logging.ERROR)
        try:
            backbone = timm.create_model(name, pretrained=True, **({"pretrained_cfg_overlay": overlay} if overlay else {}), **kwargs)
        finally:
            builder_log.setLevel(level)
    except (RuntimeError, ValueError, OSError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise MattingInputError(f"encoder name={name!r}{' pretrained=True' if pretrained else ''}: {reason}") from exc
    source = overlay.get("file", "downloaded")
    print(f"encoder {name}: timm's pretrained weights ({backbone.pretrained_cfg.get('hf_hub_id') or name}, {source})")
    return backbone
