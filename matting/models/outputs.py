"""What each part of the network returns: one small frozen dataclass per kind of part.

Heads run on the image padded to the network stride, so ``H, W`` below are the padded size
unless said otherwise. Hidden features (``feat_*``) come out of a ReLU: non-negative, unbounded
(with ``block: ir``, out of an inverted residual's linear projection: signed). They feed later
parts and never leave the network; :meth:`predictions` gives the ``pred_*`` entries that losses,
metrics and exports read. A head's prediction is None when the network skipped it (an inference
pass whose fusion reads hidden features only); :meth:`predictions` leaves it out.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SemanticOutput:
    """MODNet's coarse head (:class:`~matting.models.SemanticHead`).

    Attributes:
        pred_semantic: (B, 1, H/16, W/16) in [0, 1], coarse alpha, or None when skipped.
        feat_s8: (B, C, H/8, W/8) hidden features (C = the head's ``out_channels``).
    """

    pred_semantic: torch.Tensor | None
    feat_s8: torch.Tensor

    @property
    def coarse_alpha(self) -> torch.Tensor | None:
        """(B, 1, H/16, W/16) in [0, 1]."""
        return self.pred_semantic

    def predictions(self) -> dict[str, torch.Tensor]:
        return _present({"pred_semantic": self.pred_semantic})


@dataclass(frozen=True)
class GlanceOutput:
    """GFM's glance head (:class:`~matting.models.GlanceHead`).

    Attributes:
        pred_glance: (B, classes, H/4, W/4) class logits (classes 3: background / transition /
            foreground; 2: the binary target of the FT or BT fusion).
        pred_semantic_alpha: (B, 1, H/4, W/4) in [0, 1], P(foreground) (+ P(transition) / 2 with
            3 classes): a coarse alpha for fusions and reports.
        feat_s8: (B, C, H/8, W/8) hidden features.
        (Both predictions are None when skipped.)
    """

    pred_glance: torch.Tensor | None
    pred_semantic_alpha: torch.Tensor | None
    feat_s8: torch.Tensor

    @property
    def coarse_alpha(self) -> torch.Tensor | None:
        """(B, 1, H/4, W/4) in [0, 1]."""
        return self.pred_semantic_alpha

    def predictions(self) -> dict[str, torch.Tensor]:
        return _present({"pred_glance": self.pred_glance, "pred_semantic_alpha": self.pred_semantic_alpha})


# A coarse head's output, whichever head produced it.
CoarseOutput = SemanticOutput | GlanceOutput


@dataclass(frozen=True)
class DetailOutput:
    """A detail head (:class:`~matting.models.DetailHead`, :class:`~matting.models.FocusHead`).

    Attributes:
        pred_detail: (B, 1, H, W) in [0, 1], alpha meant for the transition band, or None when skipped.
        feat_s2: (B, C, H/2, W/2) hidden features.
    """

    pred_detail: torch.Tensor | None
    feat_s2: torch.Tensor

    def predictions(self) -> dict[str, torch.Tensor]:
        return _present({"pred_detail": self.pred_detail})


@dataclass(frozen=True)
class RefinerOutput:
    """A coarse-to-fine refiner (:class:`~matting.models.PatchRefiner`, :class:`~matting.models.GuidedFilterRefiner`).

    Attributes:
        pred_alpha: (B, 1, H, W) in [0, 1] at the full (unpadded) input size.
        pred_error: (B, 1, h, w) in [0, 1], predicted |base alpha - gt| at base size (patch refiner).
        refined_cells: (B, 1, H'/4, W'/4) bool, the 4x4 cells that were refined (patch refiner;
            H', W' = H, W rounded up to 4).
    """

    pred_alpha: torch.Tensor
    pred_error: torch.Tensor | None = None
    refined_cells: torch.Tensor | None = None

    def predictions(self) -> dict[str, torch.Tensor]:
        return _present({"pred_alpha": self.pred_alpha, "pred_error": self.pred_error, "refined_cells": self.refined_cells})


@dataclass(frozen=True)
class BasePassOutput:
    """Encoder and heads on one image: the whole network without a refiner, else its base pass.

    Attributes:
        pred_alpha: (B, 1, h, w) in [0, 1] at the size of the image given (padding cropped).
        semantic: the coarse head's output, or None without one (at the padded size).
        detail: the detail head's output, or None without one; ``pred_detail`` cropped like
            ``pred_alpha``, ``feat_s2`` at the padded size.
    """

    pred_alpha: torch.Tensor
    semantic: CoarseOutput | None
    detail: DetailOutput | None

    @property
    def feat_finest(self) -> torch.Tensor:
        """The finest hidden features: the detail head's 1/2 features, else the coarse head's 1/8."""
        return self.detail.feat_s2 if self.detail is not None else self.semantic.feat_s8

    def predictions(self, alpha_key: str = "pred_alpha") -> dict[str, torch.Tensor]:
        """Every ``pred_*`` tensor, the alpha under ``alpha_key`` (``pred_alpha_base`` before a refiner)."""
        out: dict[str, torch.Tensor] = {}
        for part in (self.semantic, self.detail):
            if part is not None:
                out.update(part.predictions())
        out[alpha_key] = self.pred_alpha
        return out


def _present(outputs: dict[str, torch.Tensor | None]) -> dict[str, torch.Tensor]:
    """The entries that were computed (not None)."""
    return {k: v for k, v in outputs.items() if v is not None}
