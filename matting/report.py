"""Report pieces for the main job: a methods-by-metrics table and a picture grid."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from matting.io.images import read_alpha, write_png
from matting.metrics import METRIC_HEADERS, format_metric


def method_table(results: dict[str, list[dict]], labels: dict[str, str], metrics: list[str]) -> str:
    """Markdown table: one row per method, mean +- std over images of each metric, in display scale."""
    head = "| method | " + " | ".join(METRIC_HEADERS[m] for m in metrics) + " |"
    rule = "|---|" + "---:|" * len(metrics)
    lines = [head, rule]
    for key, rows in results.items():
        cells = []
        for m in metrics:
            values = np.array([r[m] for r in rows], dtype=np.float64)
            cells.append(f"{format_metric(m, values.mean())} +- {format_metric(m, values.std())}")
        lines.append(f"| {labels.get(key, key)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _error_map(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """|pred - gt| as an (H, W, 3) colour map in [0, 1] (black = exact, bright = wrong)."""
    err = np.clip(np.abs(pred - gt) * 255, 0, 255).astype(np.uint8)
    return cv2.applyColorMap(err, cv2.COLORMAP_INFERNO)[..., ::-1].astype(np.float32) / 255


def _gray(a: np.ndarray) -> np.ndarray:
    return np.repeat(a[..., None], 3, axis=2)


def save_grid(dataset, pred_root: Path, methods: list[str], path: Path, n: int = 6, tile: int = 192) -> None:
    """Rows of test images: input | ground truth | for each method: prediction, error."""
    rows = []
    for i in range(min(n, len(dataset))):
        sample = dataset[i]
        image = sample["image"].numpy().transpose(1, 2, 0)
        gt = sample["alpha"].numpy()[0]
        tiles = [image, _gray(gt)]
        for m in methods:
            pred = read_alpha(pred_root / m / f"{sample['name']}.png")
            tiles += [_gray(pred), _error_map(pred, gt)]
        tiles = [cv2.resize(t, (tile, tile), interpolation=cv2.INTER_AREA) for t in tiles]
        rows.append(np.concatenate(tiles, axis=1))
    grid = np.concatenate(rows, axis=0)
    # Column captions on a strip above the grid.
    captions = ["input", "ground truth"] + [c for m in methods for c in (m, f"{m} error")]
    strip = np.full((24, grid.shape[1], 3), 255, np.uint8)
    for j, text in enumerate(captions):
        cv2.putText(strip, text, (j * tile + 4, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    write_png(path, np.concatenate([strip.astype(np.float32) / 255, grid], axis=0))
