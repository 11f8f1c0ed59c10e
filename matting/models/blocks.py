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


BLOCKS = ("conv", "dw", "ir")
IR_EXPAND = 4  # MobileNetV2's expansion ratio t


class DepthwiseSeparable(nn.Sequential):
    """Depthwise kxk conv -> norm -> ReLU, then pointwise 1x1 conv -> norm -> ReLU (MobileNetV1's
    block): about ``k*k*in + in*out`` multiply-adds per output pixel instead of ``k*k*in*out``.

    Flat (conv, norm, act, conv, norm, act), so inference folds each BatchNorm into its conv.
    Inputs: (B, in_ch, H, W). Outputs: (B, out_ch, H/stride, W/stride), >= 0.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, dilation: int = 1, norm: str = "bn"):
        super().__init__(
            nn.Conv2d(in_ch, in_ch, kernel, stride=stride, padding=dilation * (kernel // 2), dilation=dilation, groups=in_ch, bias=False),
            make_norm(norm, in_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_ch, out_ch, 1, bias=False),
            make_norm(norm, out_ch),
            nn.ReLU(inplace=True),
        )


class InvertedResidual(nn.Module):
    """MobileNetV2's inverted residual: 1x1 expansion -> norm -> ReLU, depthwise kxk -> norm -> ReLU,
    1x1 linear projection -> norm, plus the input when ``in_ch == out_ch`` and stride 1.

    The expanded width is ``expand * min(in_ch, out_ch)``: MobileNetV2 expands its input
    (``t * in_ch``), which is the same whenever ``in_ch <= out_ch``; the heads also reduce wide
    encoder features (960 -> 96 channels), where ``t * in_ch`` would cost more than the dense conv
    it replaces. No expansion conv when that width equals ``in_ch``. ReLU, not ReLU6, as every
    other head layer.

    Inputs: (B, in_ch, H, W). Outputs: (B, out_ch, H/stride, W/stride), unbounded (linear projection).
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, dilation: int = 1, norm: str = "bn",
                 expand: int = IR_EXPAND):
        super().__init__()
        mid = expand * min(in_ch, out_ch)
        self.residual = in_ch == out_ch and stride == 1
        self.expand = ConvNormAct(in_ch, mid, 1, norm=norm) if mid != in_ch else nn.Identity()
        self.depthwise = nn.Sequential(
            nn.Conv2d(mid, mid, kernel, stride=stride, padding=dilation * (kernel // 2), dilation=dilation, groups=mid, bias=False),
            make_norm(norm, mid),
            nn.ReLU(inplace=True),
        )
        self.project = ConvNormAct(mid, out_ch, 1, act=False, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.residual else y


def check_block(kind: str, owner: str) -> str:
    """``kind`` when it is one of :data:`BLOCKS`, else a MattingInputError naming ``owner``'s ``block`` key."""
    if kind not in BLOCKS:
        raise MattingInputError(f"{owner} block must be one of {', '.join(BLOCKS)}, got block={kind!r}")
    return kind


def conv_block(kind: str, in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, dilation: int = 1, norm: str = "bn",
               expand: int = IR_EXPAND) -> nn.Module:
    """A kxk head layer of the given ``kind``: ``conv`` (:class:`ConvNormAct`, the dense conv every
    existing network and checkpoint uses), ``dw`` (:class:`DepthwiseSeparable`) or ``ir``
    (:class:`InvertedResidual`, ``expand`` its expansion ratio).

    Built from torch.nn rather than timm's EfficientNet blocks: those live in a private module
    (``timm.models._efficientnet_blocks``), fuse norm and activation into one layer that has no
    IBNorm form, and add a residual to the depthwise-separable block by default.

    Inputs: (B, in_ch, H, W). Outputs: (B, out_ch, H/stride, W/stride).
    """
    check_block(kind, "conv_block")
    if kind == "dw":
        return DepthwiseSeparable(in_ch, out_ch, kernel, stride, dilation, norm)
    if kind == "ir":
        return InvertedResidual(in_ch, out_ch, kernel, stride, dilation, norm, expand)
    return ConvNormAct(in_ch, out_ch, kernel, stride=stride, dilation=dilation, norm=norm)


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
