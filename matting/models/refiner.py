"""Coarse-to-fine refiners: the base network runs at reduced resolution, a refiner restores edges.

Both are built from the FeatureSpec (its ``context`` gives the width of the base's hidden
features) and called as ``refiner(image, small, pred_alpha_base, feat)``: the full-size image
(B, 3, H, W) in [0, 1], the base pass's input (B, 3, h, w), its alpha (B, 1, h, w) in [0, 1] and
its finest hidden features (B, C, h', w', any size: resized to h, w). Both return a
:class:`~matting.models.outputs.RefinerOutput` with ``pred_alpha`` at full resolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from matting.io.errors import MattingInputError
from matting.models.blocks import ConvNormAct, pad_to_multiple, resize_to
from matting.models.encoder import FeatureSpec
from matting.models.outputs import RefinerOutput


def hidden_width(spec: FeatureSpec) -> int:
    """Channels of the base's finest hidden features (``BasePassOutput.feat_finest``)."""
    return spec.detail_s2 or spec.semantic_s8


def _crop_patches(x: torch.Tensor, b: torch.Tensor, y: torch.Tensor, x0: torch.Tensor, size: int) -> torch.Tensor:
    """Gather (N, C, size, size) windows with top-left corners (y, x0) from images b of (B, C, H, W)."""
    offs = torch.arange(size, device=x.device)
    rows = (y[:, None] + offs)[:, :, None]  # (N, size, 1)
    cols = (x0[:, None] + offs)[:, None, :]  # (N, 1, size)
    return x[b[:, None, None], :, rows, cols].permute(0, 3, 1, 2)  # (N, C, size, size)


def traced_cell_budget(h: torch.Tensor, w: torch.Tensor, pixel_fraction: float, sample_pixels: int | None) -> torch.Tensor:
    """:meth:`PatchRefiner.cell_budget` in tensor ops of 0-dim int64 h and w: the same k, as a 0-dim int64 tensor."""
    cells = h * w
    if sample_pixels:
        k = torch.clamp(cells, max=sample_pixels // 16)
    else:  # ((fraction * h) * w) * 16 in float64, floored after / 16 (exact: a power of two), as Python computes it
        k = torch.minimum(torch.floor(h.double() * pixel_fraction * w.double() * 16 / 16).long(), cells)
    return torch.clamp(k, min=1)


class PatchRefiner(nn.Module):
    """BackgroundMattingV2's error-guided patch refiner.

    The refiner predicts an error map from the base pass; on the grid of 4x4 full-resolution
    cells, the cells with the largest predicted error are refined: first at 1/2 resolution from
    the upsampled base alpha, hidden features and image (8x8 windows = 2x2 cells + 3 px context,
    two valid 3x3 convs -> 4x4), then at full resolution with the image (8x8 windows = 4x4 cell +
    2 px context, two valid 3x3 convs -> 4x4), and the 4x4 results replace those cells of the
    bilinearly upsampled base alpha.

    Args:
        spec: FeatureSpec whose context gives the base's hidden width.
        mode: ``sampling`` (top-k cells, k = ``pixel_fraction`` x full pixels / 16, or
            ``sample_pixels`` / 16 when set), ``thresholding`` (cells with error > ``threshold``)
            or ``full`` (every cell).
        pixel_fraction: share of full-resolution pixels refined in ``sampling`` mode.
        sample_pixels: fixed pixel budget instead of the fraction (BGMv2 HD: 80,000).
        threshold: error threshold of ``thresholding`` mode.
        widths: channels of the four refinement convs (BGMv2: 24, 16, 12).
        chunk: refine at most this many cells at once (bounds memory at 4K; a traced or ONNX
            graph refines all of them at once).
        residual: the full-resolution stage predicts a correction to the cell's upsampled base
            alpha instead of its alpha, its last layer started at zero, so that an untrained
            refiner leaves the base as it is (BGMv2 replaces the alpha and corrects the foreground).

    Returns:
        RefinerOutput: pred_alpha (B, 1, H, W) in [0, 1]; pred_error (B, 1, h, w) in [0, 1] at
        base resolution; refined_cells (B, 1, H/4, W/4) bool, True where a cell was refined.
    """

    def __init__(self, spec: FeatureSpec, mode: str = "sampling", pixel_fraction: float = 1 / 16, sample_pixels: int | None = None,
                 threshold: float = 0.1, widths: tuple[int, int, int] = (24, 16, 12), chunk: int = 65536,
                 residual: bool = False):
        super().__init__()
        if mode not in ("sampling", "thresholding", "full"):
            raise MattingInputError(f"PatchRefiner mode must be sampling, thresholding or full, got mode={mode!r}")
        self.mode, self.pixel_fraction, self.sample_pixels, self.threshold, self.chunk = mode, pixel_fraction, sample_pixels, threshold, chunk
        c_hid = hidden_width(spec)
        w1, w2, w3 = widths
        self.error_head = nn.Sequential(ConvNormAct(c_hid + 1 + 3, 16, 3), nn.Conv2d(16, 1, 1))
        conv = lambda i, o: nn.Sequential(nn.Conv2d(i, o, 3, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True))
        self.stage_half = nn.Sequential(conv(c_hid + 1 + 3, w1), conv(w1, w2))  # 8x8 -> 4x4 at 1/2 res
        self.stage_full = nn.Sequential(conv(w2 + 3, w3), nn.Conv2d(w3, 1, 3))  # 8x8 -> 4x4 at full res
        self.residual = residual
        if residual:
            nn.init.zeros_(self.stage_full[-1].weight)
            nn.init.zeros_(self.stage_full[-1].bias)

    def select(self, error_cells: torch.Tensor) -> torch.Tensor:
        """(B, 1, H/4, W/4) predicted error per cell -> (B, 1, H/4, W/4) bool cells to refine."""
        if self.mode == "full":
            return torch.ones_like(error_cells, dtype=torch.bool)
        if self.mode == "thresholding":
            return error_cells > self.threshold
        b, _, h, w = error_cells.shape
        flat = error_cells.reshape(b, -1)
        idx = flat.topk(self.cell_budget(h, w), dim=1).indices
        # A bool tensor source, not the scalar True: the tracer has no scatter_ overload for a bool scalar.
        chosen = torch.zeros_like(flat, dtype=torch.bool).scatter_(1, idx, torch.ones_like(idx, dtype=torch.bool)) & (flat > 0)
        return chosen.view(b, 1, h, w)

    def cell_budget(self, h: int | torch.Tensor, w: int | torch.Tensor) -> int | torch.Tensor:
        """k of ``sampling`` mode for an (h, w) grid of cells: ``pixel_fraction`` x 16 h w pixels (or
        ``sample_pixels``) / 16, at least 1 and at most h w. A Python int; under tracing h and w are
        0-dim tensors and so is k (:func:`traced_cell_budget`), so a graph's k follows the image size."""
        if not torch.jit.is_tracing():
            budget = self.sample_pixels if self.sample_pixels else self.pixel_fraction * h * w * 16
            return max(1, min(int(budget // 16), h * w))
        return traced_cell_budget(h, w, self.pixel_fraction, self.sample_pixels)

    def forward(self, image: torch.Tensor, small: torch.Tensor, base_alpha: torch.Tensor, feat: torch.Tensor) -> RefinerOutput:
        full_h, full_w = image.shape[-2:]
        image = pad_to_multiple(image, 4)
        H, W = image.shape[-2:]
        hid = resize_to(feat, base_alpha.shape[-2:])
        pred_error = torch.sigmoid(self.error_head(torch.cat([hid, base_alpha, small], 1)))  # (B, 1, h, w)
        alpha = resize_to(base_alpha, (H, W))  # (B, 1, H, W) coarse result everywhere
        cells = self.select(resize_to(pred_error, (H // 4, W // 4)))
        b, _, cy, cx = cells.nonzero(as_tuple=True)
        if torch.jit.is_tracing():
            # A graph holds no Python branch or loop over the number of cells: all of them in one batch.
            alpha = self.refine_cells(image, small, base_alpha, hid, alpha, (b, cy, cx), chunk=None)
        elif b.numel():
            alpha = self.refine_cells(image, small, base_alpha, hid, alpha, (b, cy, cx), chunk=self.chunk)
        return RefinerOutput(pred_alpha=alpha[..., :full_h, :full_w], pred_error=pred_error, refined_cells=cells)

    def refine_cells(self, image: torch.Tensor, small: torch.Tensor, base_alpha: torch.Tensor, hid: torch.Tensor,
                     alpha: torch.Tensor, where: tuple[torch.Tensor, torch.Tensor, torch.Tensor], chunk: int | None) -> torch.Tensor:
        """``alpha`` (B, 1, H, W) with the cells ``where`` = (batch, cell row, cell column), each (N,),
        replaced by their refinement, ``chunk`` cells at a time (None: all at once).

        image (B, 3, H, W) is padded to a multiple of 4; small (B, 3, h, w), base_alpha (B, 1, h, w)
        and hid (B, C, h, w) are the base pass's input, alpha and hidden features."""
        H, W = image.shape[-2:]
        b, cy, cx = where
        half = torch.cat([resize_to(torch.cat([hid, base_alpha], 1), (H // 2, W // 2)), resize_to(small, (H // 2, W // 2))], 1)
        half = F.pad(half, (3, 3, 3, 3), mode="replicate")
        full = F.pad(image, (2, 2, 2, 2), mode="replicate")
        refined = []
        for s in range(0, b.numel(), chunk) if chunk else [0]:
            bb, yy, xx = (b[s:s + chunk], cy[s:s + chunk], cx[s:s + chunk]) if chunk else (b, cy, cx)
            x = self.stage_half(_crop_patches(half, bb, 2 * yy, 2 * xx, 8))  # (N, w2, 4, 4)
            x = F.interpolate(x, size=(8, 8), mode="nearest")
            x = torch.cat([x, _crop_patches(full, bb, 4 * yy, 4 * xx, 8)], 1)  # (N, w2 + 3, 8, 8)
            refined.append(self.stage_full(x))  # (N, 1, 4, 4)
        refined = torch.cat(refined)
        grid = alpha.view(-1, 1, H // 4, 4, W // 4, 4).permute(0, 2, 4, 1, 3, 5).clone()  # (B, H/4, W/4, 1, 4, 4)
        if self.residual:
            refined = refined + grid[b, cy, cx]
        grid[b, cy, cx] = refined.clamp(0, 1).to(alpha.dtype)
        return grid.permute(0, 3, 1, 4, 2, 5).reshape(-1, 1, H, W)


def box_filter(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over a (2r+1)^2 window, windows clipped at the border (normalised by the valid count)."""
    k = 2 * radius + 1
    return F.avg_pool2d(x, k, stride=1, padding=radius, count_include_pad=False)


class GuidedFilterRefiner(nn.Module):
    """Deep guided filter (as in RobustVideoMatting): a learned, edge-aware upsampler.

    At base resolution, a local linear model alpha ~ A . guide + b is fitted in every window
    from box-filter statistics of the guide (RGB + gray) and the base alpha; a 1x1-conv network
    predicts A from the local covariances and the base's hidden features, b = mean_alpha -
    A . mean_guide. A and b are upsampled bilinearly and applied to the full-resolution guide.

    Args:
        spec: FeatureSpec whose context gives the base's hidden width.
        hidden: width of the 1x1-conv network.
        radius: box-filter radius (1 -> 3x3 windows).

    Returns:
        RefinerOutput: pred_alpha (B, 1, H, W) in [0, 1].
    """

    def __init__(self, spec: FeatureSpec, hidden: int = 16, radius: int = 1):
        super().__init__()
        self.radius = radius
        c_hid = hidden_width(spec)
        self.coeffs = nn.Sequential(
            nn.Conv2d(4 + 4 + c_hid, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, 4, 1),
        )

    @staticmethod
    def guide(image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 4, H, W): RGB and its channel mean."""
        return torch.cat([image, image.mean(1, keepdim=True)], 1)

    def forward(self, image: torch.Tensor, small: torch.Tensor, base_alpha: torch.Tensor, feat: torch.Tensor) -> RefinerOutput:
        x, y = self.guide(small), base_alpha  # (B, 4, h, w), (B, 1, h, w)
        mean_x, mean_y = box_filter(x, self.radius), box_filter(y, self.radius)
        cov_xy = box_filter(x * y, self.radius) - mean_x * mean_y
        var_x = box_filter(x * x, self.radius) - mean_x * mean_x
        A = self.coeffs(torch.cat([cov_xy, var_x, resize_to(feat, y.shape[-2:])], 1))  # (B, 4, h, w)
        b = mean_y - (A * mean_x).sum(1, keepdim=True)  # (B, 1, h, w)
        size = image.shape[-2:]
        alpha = (resize_to(A, size) * self.guide(image)).sum(1, keepdim=True) + resize_to(b, size)
        return RefinerOutput(pred_alpha=alpha.clamp(0, 1))
