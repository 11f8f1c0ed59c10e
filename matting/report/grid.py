"""Picture grids of mattes: input | ground truth | prediction | error, one row per image.

One renderer for every picture of results the package draws:

- the prediction grids a training run writes after each validation epoch
  (``matting.runtime.run_record``): :func:`grid_sample` per sample, then :func:`prediction_grid`;
- the demo report's ``grid.png`` (several methods side by side): :func:`save_grid`;
- the thumbnails and error maps of ``matting gallery``: ``shrink_long_side``, :func:`error_colours`.

Tiles are shrunk with ``matting.io.images.shrink_long_side`` (long side capped, aspect kept, area
averaging, never enlarged) and quantised with ``matting.io.images.to_uint8``; errors ``|pred - gt|`` are taken at
full resolution, shrunk, then coloured with inferno (black = exact, bright yellow = off by 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import cv2
import numpy as np

from matting.io.images import read_alpha, shrink_long_side, to_uint8, write_png

if TYPE_CHECKING:
    import torch

__all__ = [
    "CAPTIONS",
    "HEADER_PX",
    "LABEL_PX",
    "GridSample",
    "error_colours",
    "grid_sample",
    "prediction_grid",
    "render_grid",
    "rgb8",
    "save_grid",
]

HEADER_PX = 20  # column captions above the grid
LABEL_PX = 16  # a label strip (e.g. sample number and SAD) above each row
CAPTIONS = ("input", "ground truth", "prediction", "|pred - gt|")
STRIP_GREY = 235  # background of the caption and label strips
FONT = cv2.FONT_HERSHEY_SIMPLEX


# ---------------------------------------------------------------------------- tiles


def rgb8(array: np.ndarray) -> np.ndarray:
    """(h, w) or (h, w, 3) float in [0, 1] -> (h, w, 3) uint8 RGB (grey maps repeated over the channels)."""
    levels = to_uint8(array)
    return levels if levels.ndim == 3 else np.repeat(levels[..., None], 3, axis=2)


def error_colours(error: np.ndarray) -> np.ndarray:
    """(h, w) absolute error in [0, 1] -> (h, w, 3) uint8 RGB, inferno: black = exact, bright yellow = off by 1."""
    return cv2.applyColorMap(to_uint8(error), cv2.COLORMAP_INFERNO)[..., ::-1]


# ---------------------------------------------------------------------------- layout


def _text_scale(texts: Sequence[str], max_width: int, max_scale: float) -> float:
    """The largest font scale up to ``max_scale`` at which every text fits ``max_width`` pixels."""
    widest = max(cv2.getTextSize(text, FONT, max_scale, 1)[0][0] for text in texts)
    return max_scale * min(1.0, (max_width - 4) / max(widest, 1))


def _put_text(canvas: np.ndarray, text: str, x: int, baseline: int, scale: float) -> None:
    """Black text with its baseline's left end at (x, baseline)."""
    cv2.putText(canvas, text, (x, baseline), FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)


def render_grid(rows: Sequence[Sequence[np.ndarray]], captions: Sequence[str],
                labels: Sequence[str] | None = None) -> np.ndarray:
    """Tiles in rows and columns under a strip of column captions.

    Every tile sits top-left in a cell as large as the largest tile; cells larger than a tile show
    black around it. Layout: a ``HEADER_PX`` caption strip, then per row a ``LABEL_PX`` label strip
    (when ``labels`` are given) above its tiles.

    Args:
        rows: per row, one (h, w, 3) uint8 RGB tile per column (as many as ``captions``).
        captions: one text per column.
        labels: one text per row, or None for no label strips.

    Returns:
        (HEADER_PX + N * (LABEL_PX + cell_h), columns * cell_w, 3) uint8 RGB (LABEL_PX 0 without labels).
    """
    cell_h = max(tile.shape[0] for row in rows for tile in row)
    cell_w = max(tile.shape[1] for row in rows for tile in row)
    label_px = LABEL_PX if labels is not None else 0
    width = len(captions) * cell_w
    grid = np.full((HEADER_PX + len(rows) * (label_px + cell_h), width, 3), STRIP_GREY, np.uint8)
    caption_scale = _text_scale(captions, cell_w, 0.45)
    for column, caption in enumerate(captions):
        _put_text(grid, caption, column * cell_w + 2, HEADER_PX - 6, caption_scale)
    for index, tiles in enumerate(rows):
        top = HEADER_PX + index * (label_px + cell_h)
        if labels is not None:
            _put_text(grid, labels[index], 2, top + LABEL_PX - 4, _text_scale((labels[index],), width, 0.4))
            top += LABEL_PX
        grid[top:top + cell_h, :] = 0
        for column, tile in enumerate(tiles):
            h, w = tile.shape[:2]
            grid[top:top + h, column * cell_w:column * cell_w + w] = tile
    return grid


# ---------------------------------------------------------------------------- training prediction grids


@dataclass
class GridSample:
    """One validation sample, shrunk for a grid row.

    Attributes:
        image: (h, w, 3) float32 RGB in [0, 1].
        alpha, pred: (h, w) float32 in [0, 1], ground truth and prediction.
        error: (h, w) float32 in [0, 1], |pred - gt| at full resolution, then shrunk.
        sad: SAD of the full-resolution prediction (/1000), scored as ``val/sad`` scores it.
    """

    image: np.ndarray
    alpha: np.ndarray
    pred: np.ndarray
    error: np.ndarray
    sad: float


def _to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """Any tensor (bf16 included) -> float32 numpy on the CPU."""
    return tensor.detach().float().cpu().numpy()


def grid_sample(image: torch.Tensor, alpha: torch.Tensor, pred: torch.Tensor, max_side: int = 256) -> GridSample:
    """One row of a prediction grid from a sample's tensors.

    Args:
        image: (3, H, W) RGB in [0, 1].
        alpha, pred: (1, H, W) or (H, W) in [0, 1], ground truth and prediction.
        max_side: longest side of the shrunk tiles, in pixels.
    """
    from matting.metrics import quantize_8bit, sad

    image_np = np.clip(_to_numpy(image).transpose(1, 2, 0), 0, 1)
    alpha_np = np.clip(_to_numpy(alpha).reshape(image_np.shape[:2]), 0, 1)
    pred_np = np.clip(_to_numpy(pred).reshape(image_np.shape[:2]), 0, 1)
    error = np.abs(pred_np - alpha_np)
    shrunk = [shrink_long_side(np.ascontiguousarray(a), max_side) for a in (image_np, alpha_np, pred_np, error)]
    return GridSample(*shrunk, sad=sad(quantize_8bit(pred_np), alpha_np))


def prediction_grid(samples: list[GridSample]) -> np.ndarray:
    """Input | ground truth | prediction | error map, one row per sample, labelled ``#i  SAD x.xxx``.

    Returns:
        (HEADER_PX + N * (LABEL_PX + cell_h), 4 * cell_w, 3) uint8 RGB; see :func:`render_grid`.
    """
    rows = [[rgb8(s.image), rgb8(s.alpha), rgb8(s.pred), error_colours(s.error)] for s in samples]
    labels = [f"#{i}  SAD {s.sad:.3f}" for i, s in enumerate(samples)]
    return render_grid(rows, CAPTIONS, labels)


# ---------------------------------------------------------------------------- the demo report's grid


def save_grid(dataset, pred_root: Path, methods: list[str], path: Path, n: int = 6, tile: int = 192) -> None:
    """Write ``path``: rows of test images, input | ground truth | per method: prediction, error.

    Args:
        dataset: items with ``image`` (3, H, W) and ``alpha`` (1, H, W) tensors in [0, 1] and ``name``.
        pred_root: holds ``<method>/<name>.png`` for every method.
        methods: the method folders to show, in order.
        path: the PNG to write.
        n: rows (the first ``n`` items).
        tile: long side of a tile in pixels.
    """
    rows, labels = [], []
    for i in range(min(n, len(dataset))):
        sample = dataset[i]
        image = sample["image"].numpy().transpose(1, 2, 0)
        gt = sample["alpha"].numpy()[0]
        tiles = [rgb8(shrink_long_side(image, tile)), rgb8(shrink_long_side(gt, tile))]
        for method in methods:
            pred = read_alpha(pred_root / method / f"{sample['name']}.png")
            tiles += [rgb8(shrink_long_side(pred, tile)), error_colours(shrink_long_side(np.abs(pred - gt), tile))]
        rows.append(tiles)
        labels.append(str(sample["name"]))
    captions = ["input", "ground truth"] + [c for m in methods for c in (m, f"{m} error")]
    write_png(path, render_grid(rows, captions, labels))
