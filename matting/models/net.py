"""MattingNet: shared encoder -> semantic and detail heads -> fusion."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from matting.models.blocks import resize_to
from matting.models.encoder import FeatureSpec, TimmEncoder
from matting.models.fusion import coarse_alpha

# Outputs of the heads that are hidden features, not predictions: dropped from the result.
HIDDEN_KEYS = ("semantic_s8", "detail_s2")


class MattingNet(nn.Module):
    """Trimap-free two-decoder matting network.

    Any non-empty subset of heads builds. Heads run in order semantic -> detail -> fusion, each
    seeing the outputs of the ones before (``context``), and are sized from the encoder's
    FeatureSpec plus the hidden widths of earlier heads. Without a fusion module (or with one
    head missing) the final alpha is the detail prediction when a detail head exists, else the
    upsampled coarse semantic alpha. A missing head is a missing output, and the loss drops its terms.

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
    Outputs (dict):
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
            raise ValueError("MattingNet needs at least one of semantic_head and detail_head")
        expected = 4 if trimap_input else 3
        if encoder.in_chans != expected:
            raise ValueError(f"trimap_input={trimap_input} needs an encoder with in_chans={expected}, got {encoder.in_chans}")
        self.trimap_input = trimap_input
        self.encoder = encoder
        spec = encoder.spec
        self.semantic_head = semantic_head(spec) if semantic_head else None
        if self.semantic_head is not None:
            spec = spec.with_context(semantic_s8=self.semantic_head.out_channels)
        self.detail_head = detail_head(spec) if detail_head else None
        if self.detail_head is not None:
            spec = spec.with_context(detail_s2=self.detail_head.out_channels)
        both = self.semantic_head is not None and self.detail_head is not None
        self.fusion = fusion(spec) if (fusion and both) else None
        self.refiner = refiner(spec) if refiner else None
        if not 0 < base_scale <= 1:
            raise ValueError(f"base_scale must be in (0, 1], got {base_scale}")
        self.base_scale = base_scale
        self.stride = max(32, spec.deepest)

    @property
    def collaborative_mode(self) -> str:
        """GFM fusion form (TT, FT or BT) that the loss's glance and detail targets must follow."""
        return getattr(self.fusion, "mode", "TT")

    def base_shape(self, height: int, width: int) -> tuple[int, int]:
        """Base-pass size for a full-size input: scaled by base_scale, rounded to the stride (at least one)."""
        s = self.stride
        return (max(s, round(height * self.base_scale / s) * s), max(s, round(width * self.base_scale / s) * s))

    def forward(self, image: torch.Tensor, base_size: tuple[int, int] | None = None, trimap: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if self.trimap_input and trimap is None:
            raise ValueError("this network takes a trimap (trimap_input=True): call net(image, trimap=...)")
        if self.refiner is None:
            return self._forward_base(image, trimap=trimap)
        size = tuple(base_size) if base_size else self.base_shape(*image.shape[-2:])
        # Antialiased downsampling: the base must see the structure, not aliased strands.
        small = F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)
        small_trimap = None if trimap is None else F.interpolate(trimap, size=size, mode="nearest")
        base = self._forward_base(small, keep_hidden=True, trimap=small_trimap)
        out = {k: v for k, v in base.items() if k not in HIDDEN_KEYS}
        out["pred_alpha_base"] = out.pop("pred_alpha")
        out.update(self.refiner(image, small, base))
        return out

    def _forward_base(self, image: torch.Tensor, keep_hidden: bool = False, trimap: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        h, w = image.shape[-2:]
        pad_h, pad_w = (-h) % self.stride, (-w) % self.stride
        pad = lambda t: F.pad(t, (0, pad_w, 0, pad_h), mode="replicate") if (pad_h or pad_w) else t
        x = pad(image)
        feats = self.encoder(torch.cat([x, pad(trimap)], 1) if self.trimap_input else x)
        context: dict[str, torch.Tensor] = {}
        for head in (self.semantic_head, self.detail_head):
            if head is not None:
                context.update(head(feats, x, context))
        if self.fusion is not None:
            context.update(self.fusion(x, context))
        elif self.detail_head is not None:
            context["pred_alpha"] = context["pred_detail"]
        else:
            context["pred_alpha"] = resize_to(coarse_alpha(context), x.shape[-2:])
        out = {k: v for k, v in context.items() if keep_hidden or k not in HIDDEN_KEYS}
        for key in ("pred_alpha", "pred_detail"):
            if key in out:
                out[key] = out[key][..., :h, :w]
        return out
