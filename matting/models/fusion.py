"""Fusion modules: combine the semantic and detail outputs into the final alpha.

Called as ``fusion(image, semantic, detail)`` with the padded image (B, 3, H, W) in [0, 1] and
the two heads' typed outputs (:mod:`matting.models.outputs`); each returns the alpha
(B, 1, H, W) in [0, 1].
"""

from __future__ import annotations

import torch
from torch import nn

from matting.io.errors import MattingInputError
from matting.models.blocks import check_block, conv_block, resize_to
from matting.models.contract import DEFAULT_FUSION_MODE, FUSION_MODES
from matting.models.encoder import FeatureSpec
from matting.models.outputs import CoarseOutput, DetailOutput, GlanceOutput


class ModnetFusion(nn.Module):
    """MODNet's fusion branch: semantic 1/8 features + detail 1/2 features + image -> alpha.

    Reads the heads' hidden features only, never their predictions, so an inference pass may
    skip those (``reads_predictions`` False).

    Args:
        spec: needs context ``semantic_s8`` and ``detail_s2`` (the two heads' hidden widths).
        hidden: width of the full-resolution stage.
        norm: normalisation of the conv layers, ``bn`` or ``ibn`` (MODNet's IBNorm).
        block: kind of the 5x5 and 3x3 layers (:func:`~matting.models.blocks.conv_block`):
            ``conv`` (dense, MODNet's), ``dw`` (depthwise-separable) or ``ir`` (inverted residual);
            the final 1x1 to one channel stays a plain conv.

    Returns:
        alpha (B, 1, H, W) in [0, 1].
    """

    reads_predictions = False

    def __init__(self, spec: FeatureSpec, hidden: int = 16, norm: str = "bn", block: str = "conv"):
        super().__init__()
        check_block(block, "ModnetFusion")
        c_sem, c_det = spec.semantic_s8, spec.detail_s2
        self.conv_s4 = conv_block(block, c_sem, c_sem, 5, norm=norm)
        self.conv_s2 = conv_block(block, c_sem + c_det, hidden * 2, 3, norm=norm)
        self.out = nn.Sequential(conv_block(block, hidden * 2 + 3, hidden, 3, norm=norm), nn.Conv2d(hidden, 1, 1))

    def forward(self, image: torch.Tensor, semantic: CoarseOutput, detail: DetailOutput) -> torch.Tensor:
        h, w = image.shape[-2:]
        x = self.conv_s4(resize_to(semantic.feat_s8, (h // 4, w // 4)))  # (B, c_sem, H/4, W/4)
        x = self.conv_s2(torch.cat([resize_to(x, (h // 2, w // 2)), detail.feat_s2], 1))  # (B, 2*hidden, H/2, W/2)
        logits = self.out(torch.cat([resize_to(x, (h, w)), image], 1))  # (B, 1, H, W)
        return torch.sigmoid(logits)


def glance_classes(semantic: CoarseOutput, size, classes: int) -> torch.Tensor:
    """Per-pixel glance class at ``size``: argmax of the glance logits, or, for a 1-channel
    semantic head, its coarse alpha cut at 0.05 / 0.95 (3 classes) or 0.5 (2 classes). (B, 1, H, W) long."""
    if isinstance(semantic, GlanceOutput):
        return resize_to(semantic.pred_glance, size).argmax(1, keepdim=True)
    alpha = resize_to(semantic.coarse_alpha, size)
    if classes == 3:
        return (alpha > 0.05).long() + (alpha > 0.95).long()
    return (alpha > 0.5).long()


class CollaborativeFusion(nn.Module):
    """GFM's collaborative matting: the glance decides the known regions, the focus fills the rest.

    Modes (glance classes -> alpha, ``focus`` = the detail prediction):

    - ``TT``: classes background / transition / foreground; alpha = focus in the transition, 1 in
      the foreground, 0 in the background.
    - ``FT``: 2 classes, 1 = (eroded) foreground; alpha = min(class + focus, 1).
    - ``BT``: 2 classes, 1 = (dilated) not-background; alpha = max(class - focus, 0), so the
      focus predicts 1 - alpha inside the band (the loss flips its target accordingly).

    The class map is a hard argmax, as in GFM, so the fused alpha's gradient reaches the focus
    head only; the glance is trained by its own cross-entropy term. No parameters.

    A :class:`~matting.models.GlanceHead` must predict the mode's classes: 3 for TT, 2 for FT
    and BT (GFM's definition; ``MattingNet`` refuses other pairs). A 1-channel semantic head
    works with every mode, through :func:`glance_classes`.

    Args:
        spec: unused (fusions are built from the spec like every part).
        mode: ``TT``, ``FT`` or ``BT``.

    Returns:
        alpha (B, 1, H, W) in [0, 1].
    """

    reads_predictions = True  # the alpha reads both heads' predictions: inference cannot skip them

    def __init__(self, spec: FeatureSpec | None = None, mode: str = DEFAULT_FUSION_MODE):
        super().__init__()
        if mode not in FUSION_MODES:
            raise MattingInputError(f"CollaborativeFusion mode must be TT, FT or BT, got mode={mode!r}")
        self.mode = mode

    @property
    def glance_classes(self) -> int:
        """Classes of the glance map this mode reads: 3 for TT, 2 for FT and BT."""
        return 3 if self.mode == "TT" else 2

    def forward(self, image: torch.Tensor, semantic: CoarseOutput, detail: DetailOutput) -> torch.Tensor:
        focus = detail.pred_detail  # (B, 1, H, W)
        cls = glance_classes(semantic, focus.shape[-2:], self.glance_classes).to(focus.dtype)
        if self.mode == "TT":
            alpha = focus * (cls == 1) + (cls == 2).to(focus.dtype)
        elif self.mode == "FT":
            alpha = (cls + focus).clamp(max=1)
        else:
            alpha = (cls - focus).clamp(min=0)
        return alpha


class LearnedFusion(nn.Module):
    """A small learned fusion: coarse alpha, detail alpha and image at full resolution -> alpha.

    Args:
        spec: encoder spec (unused beyond the common signature).
        hidden: width of the two 3x3 layers.
        block: kind of the two 3x3 layers (:func:`~matting.models.blocks.conv_block`): ``conv``
            (dense; 1.59 GFLOP at 512 px with ``hidden`` 16, nearly twice the default network)
            or ``dw`` (depthwise-separable, for a fusion of about ModnetFusion's cost).

    Returns:
        alpha (B, 1, H, W) in [0, 1].
    """

    reads_predictions = True  # the alpha reads both heads' predictions: inference cannot skip them

    def __init__(self, spec: FeatureSpec | None = None, hidden: int = 16, block: str = "conv"):
        super().__init__()
        check_block(block, "LearnedFusion")
        self.net = nn.Sequential(conv_block(block, 5, hidden, 3), conv_block(block, hidden, hidden, 3), nn.Conv2d(hidden, 1, 1))

    def forward(self, image: torch.Tensor, semantic: CoarseOutput, detail: DetailOutput) -> torch.Tensor:
        coarse = resize_to(semantic.coarse_alpha, detail.pred_detail.shape[-2:])  # (B, 1, H, W)
        logits = self.net(torch.cat([coarse, detail.pred_detail, image], 1))
        return torch.sigmoid(logits)
