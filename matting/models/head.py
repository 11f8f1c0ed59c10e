"""The base of the coarse and detail heads: hidden features, then the head's own prediction.

A head's hidden features feed the parts after it (the detail head, the fusion); its prediction
feeds the loss, and feeds the alpha only through some fusions. An inference pass whose fusion
reads hidden features only can skip the predictions: :meth:`MattingNet.predictions_for_alpha
<matting.models.MattingNet.predictions_for_alpha>` decides, and :meth:`Head.forward` is the one
place that acts on it. Heads are still called as modules, so hooks and FLOP counters see every
layer of a head inside its own call.
"""

from __future__ import annotations

import torch
from torch import nn

from matting.models.outputs import CoarseOutput, DetailOutput

__all__ = ["Head"]

HeadOutput = CoarseOutput | DetailOutput


class Head(nn.Module):
    """``head(feats, image, semantic=None, predict=True)`` -> the head's output dataclass.

    Subclasses implement:

    - :meth:`features`: ``(output, last)``: the output with its predictions None, and the tensor
      the prediction is computed from;
    - :meth:`prediction`: the output with its predictions filled in from ``last``.

    Args of ``forward``:
        feats: the encoder's features by stride, ``{s: (B, C_s, H/s, W/s)}``.
        image: (B, 3, H, W) in [0, 1], padded to the network's multiple.
        semantic: the coarse head's output (detail heads that read it), else None.
        predict: False skips the prediction (the output's ``pred_*`` stay None).
    """

    def forward(self, feats: dict[int, torch.Tensor], image: torch.Tensor, semantic: CoarseOutput | None = None,
                predict: bool = True) -> HeadOutput:
        output, last = self.features(feats, image, semantic)
        return self.prediction(output, last, image) if predict else output

    def features(self, feats: dict[int, torch.Tensor], image: torch.Tensor,
                 semantic: CoarseOutput | None) -> tuple[HeadOutput, torch.Tensor]:
        raise NotImplementedError

    def prediction(self, output: HeadOutput, last: torch.Tensor, image: torch.Tensor) -> HeadOutput:
        raise NotImplementedError
