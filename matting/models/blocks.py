"""Small building blocks shared by the heads."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from matting.io.errors import MattingInputError

NORMS = ("bn", "ibn")


class IBNorm(nn.Module):
    """MODNet's IBNorm: BatchNorm (affine) on the first ``C // 2`` channels, InstanceNorm (no
    affine) on the rest, so half the features keep batch statistics and half are normalised per
    image (robust to each photo's contrast and colour cast).

    Inputs: (B, C, H, W). Outputs: (B, C, H, W), same layout.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.split = channels // 2
        self.bn = nn.BatchNorm2d(self.split)
        self.inorm = nn.InstanceNorm2d(channels - self.split, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.bn(x[:, :self.split]), self.inorm(x[:, self.split:])], 1)


def make_norm(kind: str, channels: int) -> nn.Module:
    """``bn``: BatchNorm2d; ``ibn``: :class:`IBNorm`."""
    if kind == "bn":
        return nn.BatchNorm2d(channels)
    if kind == "ibn":
        return IBNorm(channels)
    raise MattingInputError(f"norm must be one of {', '.join(NORMS)}, got norm={kind!r}")


class ConvNormAct(nn.Sequential):
    """Conv2d -> norm -> ReLU, 'same' padding.

    Args:
        norm: ``bn`` (BatchNorm2d, the default) or ``ibn`` (MODNet's :class:`IBNorm`).
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, dilation: int = 1, act: bool = True,
                 norm: str = "bn"):
        layers = [
            nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=dilation * (kernel // 2), dilation=dilation, bias=False),
            make_norm(norm, out_ch),
        ]
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class SEBlock(nn.Module):
    """Squeeze-and-excitation channel attention (MODNet applies it to the deepest features)."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = max(channels // reduction, 8)
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden, bias=False), nn.ReLU(inplace=True), nn.Linear(hidden, channels, bias=False), nn.Sigmoid()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.fc(x.mean(dim=(2, 3)))  # (B, C)
        return x * w[:, :, None, None]


def resize_to(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Bilinear resize of (B, C, h, w) to spatial ``size``; a no-op when it already matches."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def downsample_image(image: torch.Tensor, stride: int) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 3, H/stride, W/stride), anti-aliased by area averaging."""
    return image if stride == 1 else F.avg_pool2d(image, stride)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H', W'), H' and W' rounded up to ``multiple`` by replicating the
    bottom and right borders; the input itself when it already fits. Crop back with ``[..., :H, :W]``."""
    pad_h, pad_w = (-x.shape[-2]) % multiple, (-x.shape[-1]) % multiple
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate") if (pad_h or pad_w) else x
