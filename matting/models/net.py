"""MattingNet: shared encoder -> semantic and detail heads -> fusion -> refiner."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from matting.io.errors import MattingInputError
from matting.models.blocks import pad_to_multiple, resize_to
from matting.models.contract import DEFAULT_FUSION_MODE, MattingNetwork
from matting.models.encoder import FeatureSpec, TimmEncoder
from matting.models.fusion import CollaborativeFusion
from matting.models.outputs import BasePassOutput, CoarseOutput, DetailOutput
from matting.models.resample import resize_antialiased
from matting.models.semantic import GlanceHead


class MattingNet(MattingNetwork):
    """Trimap-free two-decoder matting network.

    Any non-empty subset of heads builds. Parts run in order encoder -> semantic -> detail ->
    fusion -> refiner; the detail head sees the semantic head's output, and every part is sized
    from the encoder's FeatureSpec plus the hidden widths of earlier heads. Without a fusion
    module (or with one head missing, when the fusion is not used) the final alpha is the detail
    prediction when a detail head exists, else the upsampled coarse semantic alpha. A missing
    head is a missing output, and the loss drops its terms. A GlanceHead's classes must be the
    ones the collaborative fusion mode reads (TT: 3, FT / BT: 2; 3 without that fusion).

    Args:
        encoder: the shared backbone.
        semantic_head: builds the coarse head (SemanticHead, GlanceHead) from the FeatureSpec, or None.
        detail_head: builds the detail head (DetailHead, FocusHead) from the FeatureSpec, or None.
        fusion: builds the fusion (ModnetFusion, CollaborativeFusion, LearnedFusion); used only
            when both heads exist.
        refiner: builds a coarse-to-fine refiner (PatchRefiner, GuidedFilterRefiner), or None.
            With a refiner, the heads run on the image downsampled by ``base_scale`` (or to
            ``base_size`` given to forward) and the refiner produces the full-resolution alpha.
        base_scale: downsampling of the base pass when a refiner exists (BGMv2: 1/4 for HD).
        trimap_input: the trimap-based upper bound (DIM-style): the encoder (built with
            ``in_chans=4``) sees the image and a trimap; the heads see the image as usual.

    Inputs:
        image: (B, 3, H, W) float RGB in [0, 1]; any H, W (padded internally to the encoder stride).
        base_size: optional (h, w) of the base pass when a refiner exists (multiples of 32).
        trimap: (B, 1, H, W) in {0, 0.5, 1}, required with ``trimap_input``.
        outputs: ``all`` (every prediction below) or ``alpha`` (the alpha and whatever is
            computed on the way to it: the heads' own predictions are skipped when the fusion
            does not read them, as MODNet's inference pass does). Default: ``all`` in training
            mode, ``alpha`` in eval mode; ``pred_alpha`` is the same either way.
    Outputs (dict of predictions; hidden features stay inside):
        pred_alpha: (B, 1, H, W) in [0, 1], always present.
        pred_semantic: (B, 1, H'/16, W'/16) in [0, 1], MODNet coarse alpha (SemanticHead); H', W'
            are H, W rounded up to the stride.
        pred_glance: (B, classes, H'/4, W'/4) logits and pred_semantic_alpha (B, 1, H'/4, W'/4) (GlanceHead).
        pred_detail: (B, 1, H, W) in [0, 1] (detail head).
        With a refiner, the head outputs are at the base size, plus pred_alpha_base (B, 1, h, w)
        (the base's alpha) and, for PatchRefiner, pred_error (B, 1, h, w) and refined_cells.
    """

    def __init__(
        self,
        encoder: TimmEncoder,
        semantic_head: Callable[[FeatureSpec], nn.Module] | None = None,
        detail_head: Callable[[FeatureSpec], nn.Module] | None = None,
        fusion: Callable[[FeatureSpec], nn.Module] | None = None,
        refiner: Callable[[FeatureSpec], nn.Module] | None = None,
        base_scale: float = 0.25,
        trimap_input: bool = False,
    ):
        super().__init__()
        if semantic_head is None and detail_head is None:
            raise MattingInputError("MattingNet needs at least one of semantic_head and detail_head")
        expected = 4 if trimap_input else 3
        if encoder.in_chans != expected:
            raise MattingInputError(f"trimap_input={trimap_input} needs an encoder with in_chans={expected}, got {encoder.in_chans}")
        if not 0 < base_scale <= 1:
            raise MattingInputError(f"MattingNet base_scale must be in (0, 1], got base_scale={base_scale}")
        self.trimap_input = trimap_input
        self.encoder = encoder
        spec = encoder.spec
        self.semantic_head = semantic_head(spec) if semantic_head else None
        if self.semantic_head is not None:
            spec = spec.with_heads(semantic_s8=self.semantic_head.out_channels)
        self.detail_head = detail_head(spec) if detail_head else None
        if self.detail_head is not None:
            spec = spec.with_heads(detail_s2=self.detail_head.out_channels)
        both = self.semantic_head is not None and self.detail_head is not None
        self.fusion = fusion(spec) if (fusion and both) else None
        self.refiner = refiner(spec) if refiner else None
        check_glance_classes(self.semantic_head, self.fusion, fusion_given=fusion is not None)
        self.base_scale = base_scale
        self.pad_multiple = max(32, spec.deepest)

    @property
    def fusion_mode(self) -> str:
        """GFM fusion form (TT, FT or BT) that the loss's glance and detail targets must follow."""
        return self.fusion.mode if isinstance(self.fusion, CollaborativeFusion) else DEFAULT_FUSION_MODE

    def base_shape(self, height: int, width: int) -> tuple[int, int]:
        """Base-pass size for a full-size input: scaled by base_scale, rounded to the stride (at least one)."""
        s = self.pad_multiple
        return (max(s, round(height * self.base_scale / s) * s), max(s, round(width * self.base_scale / s) * s))

    def forward(self, image: torch.Tensor, base_size: tuple[int, int] | None = None, trimap: torch.Tensor | None = None,
                outputs: str | None = None) -> dict[str, torch.Tensor]:
        if self.trimap_input and trimap is None:
            raise ValueError("this network takes a trimap (trimap_input=True): call net(image, trimap=...)")
        if outputs not in (None, "all", "alpha"):
            raise MattingInputError(f"MattingNet outputs must be 'all' or 'alpha', got outputs={outputs!r}")
        every = outputs == "all" or (outputs is None and self.training)
        if self.refiner is None:
            return self.base_pass(image, trimap, every).predictions()
        small, small_trimap = self.downsample(image, trimap, base_size)
        base = self.base_pass(small, small_trimap, every)
        refined = self.refiner(image, small, base.pred_alpha, base.feat_finest)
        return {**base.predictions(alpha_key="pred_alpha_base"), **refined.predictions()}

    def base_pass(self, image: torch.Tensor, trimap: torch.Tensor | None = None, every: bool = True) -> BasePassOutput:
        """Encoder, heads and fusion on ``image`` (B, 3, h, w), padded to the stride inside and cropped back.
        Without ``every``, the heads skip the predictions that the alpha does not need."""
        h, w = image.shape[-2:]
        x = pad_to_multiple(image, self.pad_multiple)
        feats = self.encoder(torch.cat([x, pad_to_multiple(trimap, self.pad_multiple)], 1) if self.trimap_input else x)
        semantic_pred, detail_pred = (True, True) if every else self.predictions_for_alpha()
        semantic = self.semantic_head(feats, x, predict=semantic_pred) if self.semantic_head is not None else None
        detail = self.detail_head(feats, x, semantic, predict=detail_pred) if self.detail_head is not None else None
        pred_alpha = self.fuse(x, semantic, detail)
        if detail is not None and detail.pred_detail is not None:
            detail = replace(detail, pred_detail=detail.pred_detail[..., :h, :w])
        return BasePassOutput(pred_alpha=pred_alpha[..., :h, :w], semantic=semantic, detail=detail)

    def predictions_for_alpha(self) -> tuple[bool, bool]:
        """Whether the alpha needs the semantic and the detail head's own predictions: a fusion
        that reads hidden features only (``reads_predictions`` False, MODNet's) needs neither;
        without a fusion the alpha is the detail prediction, else the coarse one."""
        if self.fusion is not None:
            reads = self.fusion.reads_predictions
            return reads, reads
        return self.detail_head is None, self.detail_head is not None

    def fuse(self, image: torch.Tensor, semantic: CoarseOutput | None, detail: DetailOutput | None) -> torch.Tensor:
        """The alpha (B, 1, H, W) in [0, 1] at the padded image's size: the fusion's, else the
        detail prediction, else the coarse alpha upsampled."""
        if self.fusion is not None:
            return self.fusion(image, semantic, detail)
        if detail is not None:
            return detail.pred_detail
        return resize_to(semantic.coarse_alpha, image.shape[-2:])

    def downsample(self, image: torch.Tensor, trimap: torch.Tensor | None, base_size: tuple[int, int] | None):
        """The base pass's input: image (B, 3, h, w) and trimap (B, 1, h, w) or None, at
        ``base_size`` or :meth:`base_shape`."""
        size = tuple(base_size) if base_size else self.base_shape(*image.shape[-2:])
        # Antialiased downsampling: the base must see the structure, not aliased strands.
        if torch.onnx.is_in_onnx_export():  # ONNX (opset 17) has no antialiased resize: the same filter in gathers
            small = resize_antialiased(image, size)
        else:
            small = F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)
        small_trimap = None if trimap is None else F.interpolate(trimap, size=size, mode="nearest")
        return small, small_trimap


def check_glance_classes(semantic_head: nn.Module | None, fusion: nn.Module | None, fusion_given: bool) -> None:
    """A GlanceHead must predict the classes that the fusion mode (and so the loss's glance
    target) reads: TT 3, FT / BT 2; without a collaborative fusion the target is TT's."""
    if not isinstance(semantic_head, GlanceHead):
        return
    classes = semantic_head.classes
    if isinstance(fusion, CollaborativeFusion):
        if classes != fusion.glance_classes:
            raise MattingInputError(
                f"CollaborativeFusion(mode={fusion.mode!r}) needs GlanceHead(classes={fusion.glance_classes}), got classes={classes}: "
                "TT reads background / transition / foreground, FT and BT a binary map")
    elif classes != 3:
        what = type(fusion).__name__ if fusion is not None else ("unused (no detail head)" if fusion_given else "none")
        raise MattingInputError(
            f"GlanceHead(classes={classes}) is the binary glance of CollaborativeFusion(mode='FT' or 'BT'), but the fusion is {what}: "
            "set the glance classes to 3 or the fusion to CollaborativeFusion with mode FT or BT")
