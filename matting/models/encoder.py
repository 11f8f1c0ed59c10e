"""Shared encoder: any timm backbone with ``features_only``, indexed by stride."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import timm
import torch
from torch import nn

from matting.io.errors import MattingInputError
from matting.models.blocks import ConvNormAct


@dataclass(frozen=True)
class FeatureSpec:
    """What a head may consume: encoder channels per stride, plus hidden outputs of earlier heads.

    Attributes:
        channels: stride -> channel count of the encoder feature at that stride (e.g. {2: 16, 4: 24, ..., 32: 960}).
        context: name -> channel count of hidden features produced by heads built earlier
            (e.g. {"semantic_s8": 32}); lets a later head size its inputs without typing numbers twice.
    """

    channels: dict[int, int]
    context: dict[str, int] = field(default_factory=dict)

    @property
    def deepest(self) -> int:
        """Largest stride the encoder provides."""
        return max(self.channels)

    def with_context(self, **extra: int) -> "FeatureSpec":
        return replace(self, context={**self.context, **extra})


class TimmEncoder(nn.Module):
    """A timm backbone returning features keyed by stride, in NCHW, from an RGB image in [0, 1].

    Channel counts and strides are read from timm's ``feature_info``. Strides 2 and 4 are always
    present: backbones that start at stride 4 (ConvNeXt, Swin) or 16 (ViT) get a small convolutional
    stem for the missing high-resolution levels, which the detail head needs. When several levels
    share a stride (ViT), the deepest one is kept.

    Args:
        name: any timm model name that supports ``features_only`` (e.g. ``mobilenetv3_large_100``).
        weights_file: optional local checkpoint for the backbone (loaded through timm's
            ``pretrained_cfg_overlay``); the hub is never contacted.
        stem_channels: width of the added stem levels, when the backbone lacks stride 2 or 4.
        in_chans: input channels: 3 (RGB), or 4 (RGB + trimap, for the trimap-based upper bound).

    Inputs:
        image: (B, in_chans, H, W) float in [0, 1], H and W multiples of the deepest stride.
    Outputs:
        dict stride -> (B, C_stride, H / stride, W / stride).
    """

    def __init__(self, name: str = "mobilenetv3_large_100", weights_file: str | None = None, stem_channels: int = 16, in_chans: int = 3):
        super().__init__()
        self.in_chans = in_chans
        kwargs = {"in_chans": in_chans}
        if weights_file:
            kwargs["pretrained_cfg_overlay"] = dict(file=weights_file)
        try:
            self.backbone = timm.create_model(name, features_only=True, pretrained=bool(weights_file), **kwargs)
        except (RuntimeError, ValueError, FileNotFoundError) as exc:
            raise MattingInputError(f"encoder name={name!r} weights_file={weights_file!r}: {exc}") from exc
        info = self.backbone.feature_info
        self._nhwc = getattr(self.backbone, "output_fmt", "NCHW") == "NHWC"
        # Keep the deepest level for each stride (ViT returns several levels at stride 16).
        self._index_of_stride = {s: i for i, s in enumerate(info.reduction())}
        channels = {s: info.channels()[i] for s, i in self._index_of_stride.items()}
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
        feats = self.backbone((image - self.mean) / self.std)
        out = {}
        for stride, idx in self._index_of_stride.items():
            f = feats[idx]
            out[stride] = f.permute(0, 3, 1, 2).contiguous() if self._nhwc else f
        for stride, stem in self.stems.items():
            out[int(stride)] = stem(image)
        return out
