"""Segmentation baselines: patch classifiers and FC-DenseNet-103 ("Tiramisu").

These networks predict a foreground mask, not a matte: they are trained with the binary
cross-entropy against ``alpha > 0.5`` (``MattingLoss(segmentation=1, ...)``) and scored by the
same pipeline as the matting networks. Each maps an image to ``{"pred_alpha": ...}``, which is
all :class:`matting.module.MattingModule` needs.

A U-Net needs no class here: it is ``MattingNet`` with a timm encoder and a ``FocusHead`` only
(a U-Net decoder with skips at every stride), trained with the same loss.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from matting.io.errors import MattingInputError
from matting.models.blocks import pad_to_multiple
from matting.models.contract import MattingNetwork


def _centre(image: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1]: the networks here have no pretrained statistics to match."""
    return image * 2 - 1


def _bn_relu_conv(c_in: int, c_out: int, kernel: int, padding: int) -> list[nn.Module]:
    return [nn.BatchNorm2d(c_in), nn.ReLU(inplace=True), nn.Conv2d(c_in, c_out, kernel, padding=padding, bias=False)]


class PatchClassifier(MattingNetwork):
    """Classifies pixels from the k x k patch around them (centre form) or per patch (dense form).

    Centre form (``dense=False``): a stack of ``(k - 1) / 2`` unpadded 3x3 convolutions, so the
    receptive field of every output is exactly k x k, then 1x1 layers to one logit. Run
    fully-convolutionally on the image padded by k // 2 (replicated border), it gives for each
    pixel the same value as classifying the k x k patch centred on that pixel, one patch at a
    time, but shares the work between overlapping patches. A change farther than k // 2 from a
    pixel (in either axis) cannot change that pixel's output. ``patch`` must be odd.

    Dense form (``dense=True``): the image is cut into non-overlapping k x k patches (padded to a
    multiple of k by replication), each patch is classified on its own (3x3 convolutions padded
    with zeros inside the patch, plus the patch's mean feature as context) into k x k per-pixel
    outputs, and the outputs are put back in place. Pixels of one patch never see another patch.

    Args:
        patch: k, the patch side in pixels.
        dense: the dense (per-patch, every pixel) form instead of the centre form.
        width: channels of the hidden layers.

    Inputs:
        image: (B, 3, H, W) float RGB in [0, 1]; any H, W.
    Outputs (dict):
        pred_alpha: (B, 1, H, W) in [0, 1], probability that the pixel is foreground.
    """

    def __init__(self, patch: int = 15, dense: bool = False, width: int = 32):
        super().__init__()
        if patch < 3:
            raise MattingInputError(f"PatchClassifier patch must be at least 3, got patch={patch}")
        if not dense and patch % 2 == 0:
            raise MattingInputError(f"PatchClassifier(dense=False), the centre form, needs an odd patch side (a centre pixel), "
                                    f"got patch={patch}; use an odd patch or dense=True")
        self.patch, self.dense, self.width = patch, dense, width
        if dense:
            # Enough 3x3 layers for a patch-wide receptive field inside small patches; the mean
            # feature gives every pixel the whole patch as context.
            depth = max(2, min(4, (patch - 1) // 2))
            layers: list[nn.Module] = [nn.Conv2d(3, width, 3, padding=1)]
            for _ in range(depth - 1):
                layers += _bn_relu_conv(width, width, 3, padding=1)
            self.trunk = nn.Sequential(*layers, nn.BatchNorm2d(width), nn.ReLU(inplace=True))
            self.context = nn.Sequential(nn.Linear(width, width), nn.ReLU(inplace=True))
            self.head = nn.Sequential(nn.Conv2d(2 * width, width, 1), nn.ReLU(inplace=True), nn.Conv2d(width, 1, 1))
        else:
            layers = [nn.Conv2d(3, width, 3)]
            for _ in range((patch - 1) // 2 - 1):
                layers += _bn_relu_conv(width, width, 3, padding=0)
            self.trunk = nn.Sequential(*layers, nn.BatchNorm2d(width), nn.ReLU(inplace=True))
            self.head = nn.Sequential(nn.Conv2d(width, width, 1), nn.ReLU(inplace=True), nn.Conv2d(width, 1, 1))

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self._dense(image) if self.dense else self._centre(image)
        return {"pred_alpha": torch.sigmoid(logits)}

    def _centre(self, image: torch.Tensor) -> torch.Tensor:
        r = self.patch // 2
        x = F.pad(_centre(image), (r, r, r, r), mode="replicate")  # (B, 3, H + 2r, W + 2r)
        return self.head(self.trunk(x))  # (B, 1, H, W): valid convolutions remove r on each side

    def _dense(self, image: torch.Tensor) -> torch.Tensor:
        b, _, h, w = image.shape
        k = self.patch
        x = pad_to_multiple(_centre(image), k)
        nh, nw = x.shape[-2] // k, x.shape[-1] // k
        # (B, 3, nh*k, nw*k) -> (B*nh*nw, 3, k, k): every patch becomes its own sample.
        patches = x.reshape(b, 3, nh, k, nw, k).permute(0, 2, 4, 1, 3, 5).reshape(b * nh * nw, 3, k, k)
        feats = self.trunk(patches)  # (N, width, k, k)
        ctx = self.context(feats.mean((2, 3)))[:, :, None, None].expand_as(feats)  # (N, width, k, k)
        logits = self.head(torch.cat([feats, ctx], 1))  # (N, 1, k, k)
        logits = logits.reshape(b, nh, nw, 1, k, k).permute(0, 3, 1, 4, 2, 5).reshape(b, 1, nh * k, nw * k)
        return logits[..., :h, :w]


class _DenseLayer(nn.Sequential):
    """BN-ReLU-conv3x3-dropout producing ``growth`` new channels."""

    def __init__(self, c_in: int, growth: int, dropout: float):
        super().__init__(*_bn_relu_conv(c_in, growth, 3, padding=1), nn.Dropout2d(dropout))


class _DenseBlock(nn.Module):
    """``n`` dense layers, each seeing the block input and all earlier layers' outputs.

    Returns the block input concatenated with the new features (``keep_input=True``, down path)
    or only the new features, ``n * growth`` channels (up path and bottleneck).
    """

    def __init__(self, c_in: int, n: int, growth: int, dropout: float, keep_input: bool):
        super().__init__()
        self.layers = nn.ModuleList(_DenseLayer(c_in + i * growth, growth, dropout) for i in range(n))
        self.keep_input = keep_input
        self.out_channels = c_in + n * growth if keep_input else n * growth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        new = []
        for layer in self.layers:
            out = layer(torch.cat([x, *new], 1))
            new.append(out)
        return torch.cat([x, *new] if self.keep_input else new, 1)


class _TransitionDown(nn.Sequential):
    """BN-ReLU-conv1x1 (same width)-dropout-maxpool 2x2: halves the resolution."""

    def __init__(self, channels: int, dropout: float):
        super().__init__(*_bn_relu_conv(channels, channels, 1, padding=0), nn.Dropout2d(dropout), nn.MaxPool2d(2))


class FCDenseNet(MattingNetwork):
    """FC-DenseNet ("Tiramisu", Jegou et al. 2017) for binary segmentation; defaults give FC-DenseNet-103.

    A 3x3 convolution to ``first_channels``, then a down path of dense blocks (each followed by a
    transition down), a bottleneck dense block, and an up path mirroring the down path. Each up
    step upsamples only the new features of the block below (3x3 transposed convolution, stride
    2), concatenates the skip of the same resolution and runs a dense block; inside the up path a
    block passes on only its new features, except the last, whose full output (input + new
    features) feeds the final 1x1 convolution. 9.32 M parameters with the defaults (the paper
    reports 9.4 M).

    Args:
        growth: channels each dense layer adds (k in the paper).
        down_layers: layers per dense block of the down path; the up path uses them reversed.
        bottleneck: layers of the bottleneck block.
        first_channels: width of the first convolution.
        dropout: dropout probability after every convolution of the blocks and transitions.

    Inputs:
        image: (B, 3, H, W) float RGB in [0, 1]; any H, W (padded internally, by replication, to
            a multiple of 2 ** len(down_layers)).
    Outputs (dict):
        pred_alpha: (B, 1, H, W) in [0, 1], probability that the pixel is foreground.
    """

    def __init__(self, growth: int = 16, down_layers: Sequence[int] = (4, 5, 7, 10, 12), bottleneck: int = 15,
                 first_channels: int = 48, dropout: float = 0.2):
        super().__init__()
        down_layers = tuple(down_layers)
        self.pad_multiple = 2 ** len(down_layers)
        self.first = nn.Conv2d(3, first_channels, 3, padding=1)
        channels, skips = first_channels, []
        self.down_blocks, self.transitions_down = nn.ModuleList(), nn.ModuleList()
        for n in down_layers:
            block = _DenseBlock(channels, n, growth, dropout, keep_input=True)
            channels = block.out_channels
            skips.append(channels)
            self.down_blocks.append(block)
            self.transitions_down.append(_TransitionDown(channels, dropout))
        self.bottleneck = _DenseBlock(channels, bottleneck, growth, dropout, keep_input=False)
        upward = self.bottleneck.out_channels  # only the new features go up
        self.transitions_up, self.up_blocks = nn.ModuleList(), nn.ModuleList()
        for i, (n, skip) in enumerate(zip(reversed(down_layers), reversed(skips))):
            self.transitions_up.append(nn.ConvTranspose2d(upward, upward, 3, stride=2, padding=1, output_padding=1))
            last = i == len(down_layers) - 1
            block = _DenseBlock(upward + skip, n, growth, dropout, keep_input=last)
            self.up_blocks.append(block)
            upward = block.out_channels
        self.out = nn.Conv2d(upward, 1, 1)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        h, w = image.shape[-2:]
        x = self.first(pad_to_multiple(_centre(image), self.pad_multiple))  # (B, first_channels, H', W')  # (B, first_channels, H', W')
        skips = []
        for block, down in zip(self.down_blocks, self.transitions_down):
            x = block(x)
            skips.append(x)
            x = down(x)  # half the resolution
        x = self.bottleneck(x)  # (B, bottleneck * growth, H'/32, W'/32), new features only
        for up, block, skip in zip(self.transitions_up, self.up_blocks, reversed(skips)):
            x = block(torch.cat([up(x), skip], 1))  # twice the resolution
        logits = self.out(x)[..., :h, :w]  # (B, 1, H, W)
        return {"pred_alpha": torch.sigmoid(logits)}
