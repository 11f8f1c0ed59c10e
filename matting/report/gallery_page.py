"""The page of ``matting gallery``: per-image rows and their metrics, ``metrics.csv`` and ``index.html``.

The command (``matting.commands.gallery``) runs the models and writes the pictures; this module
holds what a row is (per-model metrics of the 8-bit predictions as saved, how much the models
disagree), how rows are ordered, where each picture lives inside the gallery, and the page.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from urllib.parse import quote

import numpy as np

from matting.io.files import csv_text
from matting.io.images import from_uint8, normalise_trimap
from matting.metrics import (
    METRIC_HEADERS,
    compute_metrics,
    format_metric,
    grad,
    mse,
    sad,
)

PRIMARY = "sad"  # the metric that picks the best model of a row and orders the rows
SHORT_NAMES = {"sad": "SAD", "mse": "MSE", "grad": "Grad", "conn": "Conn"}


@dataclass
class Model:
    """One checkpoint: display name, folder-safe slug, file, parameter count and the prepared network."""

    name: str
    slug: str
    path: Path
    params: int
    net: object


@dataclass
class Row:
    """Results of one image: per-model metrics (empty without ground truth) and the sort keys."""

    name: str
    thumb: tuple[int, int]  # (height, width) of the thumbnails
    scores: list[dict[str, float]] = field(default_factory=list)
    disagreement: float = 0.0

    @property
    def spread(self) -> float:
        """max - min of the primary metric across models (0 without ground truth)."""
        values = [s[PRIMARY] for s in self.scores]
        return max(values) - min(values) if values else 0.0

    @property
    def best(self) -> list[int]:
        """Indices of the models with the lowest primary metric (all of them on a tie)."""
        if not self.scores:
            return []
        low = min(s[PRIMARY] for s in self.scores)
        return [i for i, s in enumerate(self.scores) if s[PRIMARY] == low]


# ---------------------------------------------------------------------------- files of the gallery


# Paths inside the gallery, relative to its root (index.html links them as they are).
def input_file(stem: str) -> Path:
    return Path("images", "input", f"{stem}.jpg")


def gt_file(stem: str) -> Path:
    return Path("images", "gt", f"{stem}.png")


def diff_file(stem: str) -> Path:
    return Path("images", "diff", f"{stem}.jpg")


def pred_thumb_file(slug: str, stem: str) -> Path:
    return Path("images", "models", slug, "alpha", f"{stem}.png")


def error_file(slug: str, stem: str) -> Path:
    return Path("images", "models", slug, "error", f"{stem}.jpg")


def alpha_file(slug: str, stem: str) -> Path:
    return Path("alpha", slug, f"{stem}.png")


# ---------------------------------------------------------------------------- rows


def score(alpha8: np.ndarray, gt: np.ndarray, trimap: np.ndarray | None, protocol: str, keys: tuple[str, ...]) -> dict[str, float]:
    """Metrics of an 8-bit prediction, equal to ``matting evaluate`` on its PNG and the ground truth."""
    pred = from_uint8(alpha8)  # what read_alpha returns for the saved PNG
    if "conn" in keys:
        values = compute_metrics(pred, gt, trimap, protocol)
        return {k: values[k] for k in keys}
    # compute_metrics always computes Conn; these are its definitions for the other metrics
    # (pred holds 8-bit values already, as compute_metrics' quantisation would make them).
    mask = None
    if protocol == "comp1k":
        trimap = normalise_trimap(trimap)
        mask = trimap == 128
        forced = (trimap == 255).astype(np.float32)  # known regions forced, as compute_metrics does
        np.copyto(forced, pred, where=mask)
        pred = forced
    return {"sad": sad(pred, gt, mask), "mse": mse(pred, gt, mask), "grad": grad(pred, gt, mask)}


def disagreement(alphas: list[np.ndarray]) -> float:
    """Mean over model pairs of the mean |a - b| of their 8-bit predictions, in [0, 1]."""
    pairs = [np.abs(a.astype(np.int16) - b).mean() / 255.0 for a, b in combinations(alphas, 2)]
    return float(np.mean(pairs)) if pairs else 0.0


def sort_rows(rows: list[Row], how: str) -> list[Row]:
    """By name, or largest disagreement first (SAD spread with ground truth), ties by name."""
    if how == "name":
        return sorted(rows, key=lambda r: r.name)
    with_gt = any(r.scores for r in rows)
    return sorted(rows, key=lambda r: (-(r.spread if with_gt else r.disagreement), r.name))


# ---------------------------------------------------------------------------- reports


def model_means(models: list[Model], rows: list[Row], keys: tuple[str, ...]) -> list[dict[str, float]]:
    """Per model: mean over images of each metric (raw scale); empty without ground truth."""
    if not rows or not rows[0].scores:
        return [{} for _ in models]
    return [{k: float(np.mean([r.scores[i][k] for r in rows], dtype=np.float64)) for k in keys} for i in range(len(models))]


def metrics_csv(models: list[Model], rows: list[Row], keys: tuple[str, ...]) -> str:
    """CSV text: image, model, then each metric in the units and digits of evaluate's per_image.csv."""
    return csv_text([["image", "model"] + [METRIC_HEADERS[k] for k in keys]]
                    + [[row.name, model.name] + [format_metric(k, scores[k], digits=6) for k in keys]
                       for row in sorted(rows, key=lambda r: r.name) for model, scores in zip(models, row.scores)])


CSS = """
body { font: 14px/1.35 system-ui, sans-serif; margin: 16px; color: #222; }
table { border-collapse: collapse; margin-bottom: 20px; }
th, td { border: 1px solid #ccc; padding: 4px 6px; vertical-align: top; }
th { background: #f2f2f2; text-align: left; }
.gallery thead th { position: sticky; top: 0; z-index: 1; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
.pair { display: flex; gap: 4px; }
img { display: block; background: #777; }
.metrics { font-size: 12px; font-variant-numeric: tabular-nums; margin-top: 2px; }
.best { background: #dff3df; outline: 3px solid #2e9a2e; outline-offset: -3px; }
.path { font-family: monospace; font-size: 12px; word-break: break-all; }
.note { color: #555; }
"""


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _url(path: Path) -> str:
    return _e(quote(path.as_posix()))


def _img(path: Path, row: Row, alt: str, link: Path | None = None) -> str:
    """An <img> shown at half its stored size (sharp on high-DPI screens), optionally linked."""
    height, width = row.thumb
    tag = f'<img src="{_url(path)}" width="{max(1, width // 2)}" height="{max(1, height // 2)}" alt="{_e(alt)}" loading="lazy">'
    return f'<a href="{_url(link)}">{tag}</a>' if link is not None else tag


def _metric_lines(scores: dict[str, float], keys: tuple[str, ...]) -> str:
    return "<br>".join(f'{SHORT_NAMES[k]} <span data-metric="{k}">{format_metric(k, scores[k])}</span>' for k in keys)


def summary_html(models: list[Model], rows: list[Row], keys: tuple[str, ...]) -> str:
    """The table at the top: one line per model."""
    means = model_means(models, rows, keys)
    with_gt = bool(means[0])
    head = "<tr><th>model</th>" + "".join(f"<th>{_e(METRIC_HEADERS[k])}<br>mean</th>" for k in keys if with_gt)
    head += ("<th>best on</th>" if with_gt else "") + "<th>parameters</th><th>checkpoint</th></tr>"
    lines = ['<table class="summary">', head]
    for i, (model, mean) in enumerate(zip(models, means)):
        cells = [f"<td>{_e(model.name)}</td>"]
        cells += [f'<td class="num" data-metric="{k}">{format_metric(k, mean[k])}</td>' for k in keys if with_gt]
        if with_gt:
            wins = sum(i in r.best for r in rows)
            cells.append(f'<td class="num">{wins} / {len(rows)}</td>')
        cells.append(f'<td class="num">{model.params:,}</td>')
        # The file name only: the page is shared, and where it was made says nothing to its reader.
        cells.append(f'<td class="path">{_e(model.path.name)}</td>')
        lines.append(f'<tr data-model="{_e(model.slug)}">' + "".join(cells) + "</tr>")
    lines.append("</table>")
    return "\n".join(lines)


def _row_html(row: Row, models: list[Model], keys: tuple[str, ...], with_gt: bool) -> str:
    if with_gt:
        order = f"{SHORT_NAMES[PRIMARY]} spread {format_metric(PRIMARY, row.spread)}"
    else:
        order = f"models differ by {row.disagreement * 1e3:.3f} (x1e-3)"
    cells = [f'<th>{_e(row.name)}<div class="note metrics">{order}</div></th>',
             f"<td>{_img(input_file(row.name), row, 'input')}</td>"]
    if with_gt:
        cells.append(f"<td>{_img(gt_file(row.name), row, 'ground truth')}</td>")
    elif len(models) >= 2:
        cells.append(f"<td>{_img(diff_file(row.name), row, 'difference of the first two models')}</td>")
    best = row.best
    for i, model in enumerate(models):
        pred = _img(pred_thumb_file(model.slug, row.name), row, f"{model.name} prediction", alpha_file(model.slug, row.name))
        if with_gt:
            error = _img(error_file(model.slug, row.name), row, f"{model.name} error")
            body = f'<div class="pair">{pred}{error}</div><div class="metrics">{_metric_lines(row.scores[i], keys)}</div>'
        else:
            body = pred
        css = ' class="best"' if i in best else ""
        cells.append(f'<td{css} data-model="{_e(model.slug)}">{body}</td>')
    return f'<tr data-image="{_e(row.name)}">' + "".join(cells) + "</tr>"


def render_html(models: list[Model], rows: list[Row], keys: tuple[str, ...], skipped: list[str], *, sort: str,
                inference: str, gt_dir: Path | None, protocol: str) -> str:
    """The whole page: settings, summary table, then one row per image.

    Args:
        models, rows, keys: the columns, the (sorted) rows and the metric keys.
        skipped: a message per image left out (listed on the page).
        sort: how the rows were sorted (``name`` or ``sad-spread``).
        inference: the inference settings, as text.
        gt_dir: the ground-truth folder (None without ground truth).
        protocol: the metric protocol.
    """
    with_gt = bool(rows and rows[0].scores)
    if sort == "name":
        order = "by image name"
    elif with_gt:
        order = f"by the spread of {SHORT_NAMES[PRIMARY]} across models (max - min), largest first"
    else:
        order = "by the mean absolute difference between the models' predictions, largest first"
    about = [f"{len(rows)} image(s), {len(models)} model(s); inference as <code>matting predict</code>: {_e(inference)}."]
    if with_gt:
        about.append(f"Ground truth: <span class=\"path\">{_e(Path(gt_dir).resolve().name)}/</span>, protocol "
                     f"<code>{_e(protocol)}</code>; metrics of the 8-bit predictions as saved "
                     "(<code>matting evaluate</code> on <code>alpha/&lt;model&gt;/</code> gives the same; "
                     "per-image values in <a href=\"metrics.csv\">metrics.csv</a>). "
                     f"Best model per image (lowest {SHORT_NAMES[PRIMARY]}) highlighted; error maps show "
                     "|prediction - ground truth| (black = exact, yellow = off by 1).")
    else:
        about.append("No ground truth: the column after the input shows |first model - second model| "
                     "(black = same, yellow = opposite).")
    about.append(f"Rows sorted {order}. Click a prediction for the full-resolution matte.")
    header = ["<th>image</th>", "<th>input</th>"]
    if with_gt:
        header.append("<th>ground truth</th>")
    elif len(models) >= 2:
        header.append(f"<th>|{_e(models[0].name)} - {_e(models[1].name)}|</th>")
    header += [f"<th>{_e(m.name)}" + (" (prediction, error)" if with_gt else "") + "</th>" for m in models]
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        "<title>matting gallery</title>", f"<style>{CSS}</style>", "</head>", "<body>",
        "<h1>Matting gallery</h1>", "\n".join(f'<p class="note">{line}</p>' for line in about),
        summary_html(models, rows, keys),
    ]
    if skipped:
        items = "".join(f"<li>{_e(s)}</li>" for s in skipped)
        parts.append(f'<details><summary>{len(skipped)} image(s) skipped (--allow-missing)</summary><ul>{items}</ul></details>')
    parts += ['<table class="gallery">', "<thead><tr>" + "".join(header) + "</tr></thead>", "<tbody>"]
    parts += [_row_html(row, models, keys, with_gt) for row in rows]
    parts += ["</tbody>", "</table>", "</body>", "</html>"]
    return "\n".join(parts) + "\n"
