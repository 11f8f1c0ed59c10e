"""``matting gallery``: a side-by-side HTML page comparing several checkpoints on the same images.

    matting gallery --ckpt A.ckpt B.safetensors [...] --images DIR_OR_GLOB [...] --out DIR
                    [--alpha GT_DIR] [--trimap TRIMAP_DIR] [--protocol whole|comp1k] [--conn]
                    [--names NAME ...] [--size 512] [--sort sad-spread|name] [--allow-missing]
                    [--base-size 512] [--base-side long|short] [--bf16] [--eager] [--overwrite]

Every checkpoint (anything :func:`matting.inference.load_net` accepts) runs on every image with
the settings of ``matting predict`` (same options, same defaults), so each prediction is exactly
the ``alpha/<stem>.png`` that ``matting predict`` writes. The folder DIR then holds:

- ``index.html``: a summary table (per model: mean metrics, how often it is best, parameters,
  checkpoint), then one row per image: the input, the ground truth, and per model its
  prediction, its error map ``|pred - gt|`` and its metrics, the best model of the row
  highlighted. Without ground truth, a map of ``|first - second|`` model replaces the error maps.
  Self-contained: inline CSS, relative links, no script, nothing fetched.
- ``metrics.csv`` (with ground truth): image, model, then SAD / MSE / Grad (/ Conn with
  ``--conn``) in the units and digits of ``matting evaluate``'s ``per_image.csv``.
- ``alpha/<model>/<stem>.png``: the full-resolution 8-bit predictions, so
  ``matting evaluate --pred DIR/alpha/<model> --gt GT_DIR`` reproduces ``metrics.csv``.
- ``images/``: thumbnails (long side ``--size``, shown at half that size for high-DPI screens).

Metrics are :func:`matting.metrics.compute_metrics` of the 8-bit prediction as saved, against the
ground truth matched by file stem (as ``matting evaluate`` matches them). Rows are sorted by
default by the spread of SAD across models (max - min, largest first), so the images where the
models disagree come first; without ground truth, by the mean absolute difference between the
models' predictions.

The gallery is built in ``DIR.partial`` and renamed to DIR only when complete; with
``--overwrite`` an old gallery is replaced only then, so an interrupted run never leaves half a
gallery in its place. Bad input (a checkpoint that is missing or holds no matting network, an
image without ground truth, an ``--out`` that is a file or a non-empty folder) raises
``MattingInputError`` before anything is written.
"""

from __future__ import annotations

import argparse
import csv
import html
import io
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from urllib.parse import quote

import cv2
import numpy as np

from matting.io.errors import MattingInputError, ToolArgumentParser
from matting.io.images import (
    list_images,
    normalise_trimap,
    read_alpha,
    read_image,
    read_trimap,
    to_uint8,
    write_png,
)
from matting.metrics import (
    METRIC_HEADERS,
    compute_metrics,
    format_metric,
    grad,
    mse,
    quantize_8bit,
    sad,
)

# Written into every gallery (and its staging folder): --overwrite replaces only folders holding it.
MARKER = ".matting-gallery"
BASE_METRICS = ("sad", "mse", "grad")
PRIMARY = "sad"  # the metric that picks the best model of a row and orders the rows
SHORT_NAMES = {"sad": "SAD", "mse": "MSE", "grad": "Grad", "conn": "Conn"}
JPEG_QUALITY = 90


@dataclass
class Model:
    """One checkpoint: display name, folder-safe slug, file, parameter count and the prepared network."""

    name: str
    slug: str
    path: Path
    params: int
    net: object


@dataclass(frozen=True)
class Item:
    """One input image with its ground truth and trimap (None when not given)."""

    name: str
    image: Path
    gt: Path | None = None
    trimap: Path | None = None


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


# ---------------------------------------------------------------------------- arguments


def build_parser() -> argparse.ArgumentParser:
    p = ToolArgumentParser(
        prog="matting gallery",
        description="Side-by-side HTML gallery of several checkpoints' alpha mattes on the same images, "
        "with per-image metrics when ground truth is given.",
    )
    p.add_argument("--ckpt", required=True, nargs="+", type=Path, help="checkpoints: .ckpt from `matting fit`, or .safetensors")
    p.add_argument("--images", required=True, nargs="+", metavar="DIR_OR_GLOB", help="image files, folders or glob patterns")
    p.add_argument("--out", required=True, type=Path, help="gallery folder (index.html, metrics.csv, alpha/, images/)")
    p.add_argument("--alpha", type=Path, default=None, help="folder of ground-truth alpha mattes, matched by file stem")
    p.add_argument("--trimap", type=Path, default=None, help="folder of trimaps, matched by file stem (needed by comp1k)")
    p.add_argument("--protocol", choices=("whole", "comp1k"), default="whole", help="metric protocol (default whole)")
    p.add_argument("--conn", action="store_true", help="also compute Conn (the slowest metric)")
    p.add_argument("--names", nargs="+", default=None, help="model names, one per --ckpt (default: checkpoint file stems, with parent folders when stems repeat)")
    p.add_argument("--size", type=int, default=512, help="long side of the thumbnails in pixels (default 512)")
    p.add_argument("--sort", choices=("sad-spread", "name"), default="sad-spread",
                   help="row order: largest SAD spread across models first (without ground truth: largest "
                   "difference between the models' predictions), or by image name (default sad-spread)")
    p.add_argument("--allow-missing", action="store_true", help="skip (and list) images that have no ground truth")
    p.add_argument("--overwrite", action="store_true", help="replace an existing gallery once the new one is complete")
    p.add_argument("--base-size", type=int, default=512, help="as `matting predict`: size of the base pass (default 512)")
    p.add_argument("--base-side", choices=("long", "short"), default="long", help="as `matting predict` (default long)")
    p.add_argument("--bf16", action="store_true", help="as `matting predict`: bfloat16 autocast")
    p.add_argument("--eager", action="store_true", help="as `matting predict`: no frozen TorchScript graphs")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _check_args(args) -> None:
    """Option combinations that cannot work, before anything is loaded."""
    if args.base_size < 32:
        raise MattingInputError(f"--base-size must be at least 32, got {args.base_size}")
    if args.size < 16:
        raise MattingInputError(f"--size must be at least 16, got {args.size}")
    if args.names is not None and len(args.names) != len(args.ckpt):
        raise MattingInputError(f"--names gives {len(args.names)} name(s) for {len(args.ckpt)} --ckpt file(s)")
    if args.names is not None and len(set(args.names)) != len(args.names):
        raise MattingInputError(f"--names must be distinct, got {args.names}")
    if args.protocol == "comp1k" and (args.alpha is None or args.trimap is None):
        raise MattingInputError("--protocol comp1k needs --alpha and --trimap (only trimap == 128 pixels count)")
    if args.trimap is not None and args.protocol != "comp1k":
        raise MattingInputError("--trimap is only used by --protocol comp1k")


def model_names(paths: list[Path], names: list[str] | None) -> list[str]:
    """The given names, or checkpoint stems with as many parent folders as it takes to tell them
    apart (``a/last.ckpt``, ``b/last.ckpt`` -> ``a/last``, ``b/last``); the same file twice is numbered."""
    if names is not None:
        return list(names)
    parts = [Path(os.path.abspath(p)).with_suffix("").parts[1:] for p in paths]  # without the root
    for depth in range(1, max(len(p) for p in parts) + 1):
        result = ["/".join(p[-depth:]) for p in parts]
        if len(set(result)) == len(result):
            return result
    files = [Path(p).name for p in paths]  # m.ckpt next to m.safetensors
    if len(set(files)) == len(files):
        return files
    stems = [p.stem for p in paths]
    return [f"{n} #{i + 1}" if stems.count(n) > 1 else n for i, n in enumerate(stems)]


def slugs(names: list[str]) -> list[str]:
    """Distinct folder names for the models: unsafe characters replaced, clashes numbered."""
    result: list[str] = []
    for i, name in enumerate(names):
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-") or "model"
        if slug in result:
            slug = f"{slug}-{i + 1}"
        result.append(slug)
    return result


# ---------------------------------------------------------------------------- output folder


def _is_gallery(folder: Path) -> bool:
    return (folder / MARKER).is_file()


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse a file, a non-empty folder without --overwrite, and a non-gallery folder even with it."""
    if out.exists() and not out.is_dir():
        raise MattingInputError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise MattingInputError(f"--out {out}: exists and is not empty (pass --overwrite to replace a gallery)")
        if not _is_gallery(out):
            raise MattingInputError(f"--out {out}: not a gallery written by `matting gallery`; refusing to replace it")
    staging = staging_dir(out)
    if staging.exists() and not _is_gallery(staging):
        raise MattingInputError(f"{staging}: exists and was not left by `matting gallery`; move it away")


def staging_dir(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


def make_staging(out: Path) -> Path:
    """A fresh ``OUT.partial`` (a leftover of an interrupted run is removed), marked as ours."""
    staging = staging_dir(out)
    if staging.exists():
        shutil.rmtree(staging)
    try:
        staging.mkdir(parents=True)
        (staging / MARKER).write_text("written by `matting gallery`; --overwrite may replace this folder\n")
    except OSError as exc:
        raise MattingInputError(f"--out {out}: cannot create {staging} ({exc})") from exc
    return staging


def publish(staging: Path, out: Path) -> None:
    """Put the complete gallery in place; an old one is moved away first and deleted after."""
    if not out.exists():
        os.replace(staging, out)
        return
    trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
    os.replace(out, trash / out.name)
    try:
        os.replace(staging, out)
    except BaseException:
        os.replace(trash / out.name, out)  # put the old gallery back
        trash.rmdir()
        raise
    shutil.rmtree(trash, ignore_errors=True)


# ---------------------------------------------------------------------------- inputs


def collect_items(args) -> tuple[list[Item], list[str]]:
    """Images (as ``matting predict`` collects them) paired with ground truth and trimaps by stem.

    Returns:
        (items, skipped): the images to show, and a message per image skipped (--allow-missing).
    """
    from matting.io.pairing import check_stems, collect_inputs

    paths, problems = collect_inputs(args.images)
    if problems:
        raise MattingInputError("; ".join(problems))
    if not paths:
        raise MattingInputError("no input images")
    check_stems(paths)
    gts = list_images(args.alpha) if args.alpha is not None else None
    trimaps = list_images(args.trimap) if args.trimap is not None else None
    items, missing = [], []
    for path in paths:
        if gts is not None and path.stem not in gts:
            missing.append(f"{path} has no ground truth in {args.alpha}")
        elif trimaps is not None and path.stem not in trimaps:
            missing.append(f"{path} has no trimap in {args.trimap}")
        else:
            gt = gts[path.stem] if gts is not None else None
            items.append(Item(path.stem, path, gt, trimaps[path.stem] if trimaps is not None else None))
    if missing and not args.allow_missing:
        shown = "\n  - ".join(missing[:20]) + (f"\n  (and {len(missing) - 20} more)" if len(missing) > 20 else "")
        raise MattingInputError(f"{len(missing)} image(s) cannot be scored (pass --allow-missing to skip them):\n  - {shown}")
    if not items:
        raise MattingInputError("no image left to show: " + "; ".join(missing[:5]))
    return items, missing


def load_models(paths: list[Path], names: list[str], eager: bool) -> list[Model]:
    """Load every checkpoint (all of them before any work, so a bad one fails fast)."""
    from matting.inference.frozen import prepare_for_inference
    from matting.inference.loading import load_net

    models = []
    for path, name, slug in zip(paths, names, slugs(names)):
        net = load_net(path)
        params = sum(p.numel() for p in net.parameters())
        models.append(Model(name, slug, path, params, prepare_for_inference(net, jit=not eager)))
    return models


# ---------------------------------------------------------------------------- per image


def score(alpha8: np.ndarray, gt: np.ndarray, trimap: np.ndarray | None, protocol: str, keys: tuple[str, ...]) -> dict[str, float]:
    """Metrics of an 8-bit prediction, equal to ``matting evaluate`` on its PNG and the ground truth."""
    pred = alpha8.astype(np.float32) / np.float32(255)  # what read_alpha returns for the saved PNG
    if "conn" in keys:
        values = compute_metrics(pred, gt, trimap, protocol)
        return {k: values[k] for k in keys}
    # compute_metrics always computes Conn; these are its definitions for the other metrics.
    pred, mask = quantize_8bit(pred), None
    if protocol == "comp1k":
        trimap = normalise_trimap(trimap)
        mask = trimap == 128
        forced = (trimap == 255).astype(np.float32)  # known regions forced, as compute_metrics does
        np.copyto(forced, pred, where=mask)
        pred = forced
    return {"sad": sad(pred, gt, mask), "mse": mse(pred, gt, mask), "grad": grad(pred, gt, mask)}


def thumbnail(array: np.ndarray, size: int) -> np.ndarray:
    """Shrink (H, W[, C]) so that its long side is at most ``size`` (area averaging; never enlarged)."""
    from matting.inference.predict import resize_image

    height, width = array.shape[:2]
    scale = size / max(height, width)
    if scale >= 1:
        return array
    return resize_image(array, max(1, round(height * scale)), max(1, round(width * scale)))


def colour_map(difference: np.ndarray) -> np.ndarray:
    """An absolute difference in [0, 1] -> uint8 RGB (inferno: black = equal, yellow = off by 1)."""
    return cv2.applyColorMap(to_uint8(difference), cv2.COLORMAP_INFERNO)[..., ::-1]


def write_jpeg(path: Path, rgb: np.ndarray) -> None:
    """uint8 RGB -> JPEG (thumbnails only; the staging folder makes the whole gallery atomic)."""
    ok, encoded = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise MattingInputError(f"{path}: JPEG encoding failed")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encoded.tobytes())


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


def _read_same_size(path: Path, reader, shape: tuple[int, int], what: str, image: Path) -> np.ndarray:
    array = reader(path)
    if array.shape != shape:
        size = lambda s: f"{s[1]}x{s[0]}"
        raise MattingInputError(f"size mismatch: {what} {path} is {size(array.shape)}, image {image} is {size(shape)}")
    return array


def _disagreement(alphas: list[np.ndarray]) -> float:
    """Mean over model pairs of the mean |a - b| of their 8-bit predictions, in [0, 1]."""
    pairs = [np.abs(a.astype(np.int16) - b).mean() / 255.0 for a, b in combinations(alphas, 2)]
    return float(np.mean(pairs)) if pairs else 0.0


def process_image(item: Item, models: list[Model], args, keys: tuple[str, ...], root: Path) -> Row:
    """Predict with every model, write the full-size mattes and thumbnails, score against the ground truth."""
    from matting.inference.predict import predict_alpha

    image = read_image(item.image)
    shape = image.shape[:2]
    gt = _read_same_size(item.gt, read_alpha, shape, "ground truth", item.image) if item.gt else None
    trimap = _read_same_size(item.trimap, read_trimap, shape, "trimap", item.image) if item.trimap else None
    small = to_uint8(thumbnail(image, args.size))
    write_jpeg(root / input_file(item.name), small)
    if gt is not None:
        write_png(root / gt_file(item.name), thumbnail(gt, args.size))
    row = Row(item.name, small.shape[:2])
    alphas = []
    for model in models:
        alpha = predict_alpha(model.net, image, base_size=args.base_size, base_side=args.base_side, bf16=args.bf16)
        alpha8 = to_uint8(alpha)  # exactly what `matting predict` writes
        write_png(root / alpha_file(model.slug, item.name), alpha8)
        quantised = alpha8.astype(np.float32) / np.float32(255)
        write_png(root / pred_thumb_file(model.slug, item.name), thumbnail(quantised, args.size))
        if gt is not None:
            row.scores.append(score(alpha8, gt, trimap, args.protocol, keys))
            write_jpeg(root / error_file(model.slug, item.name), colour_map(thumbnail(np.abs(quantised - gt), args.size)))
        alphas.append(alpha8)
    row.disagreement = _disagreement(alphas)
    if gt is None and len(alphas) >= 2:
        first, second = (a.astype(np.float32) / np.float32(255) for a in alphas[:2])
        write_jpeg(root / diff_file(item.name), colour_map(thumbnail(np.abs(first - second), args.size)))
    return row


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
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["image", "model"] + [METRIC_HEADERS[k] for k in keys])
    for row in sorted(rows, key=lambda r: r.name):
        for model, scores in zip(models, row.scores):
            writer.writerow([row.name, model.name] + [format_metric(k, scores[k], digits=6) for k in keys])
    return buffer.getvalue()


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
        cells.append(f'<td class="path">{_e(model.path.resolve())}</td>')
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


def render_html(models: list[Model], rows: list[Row], keys: tuple[str, ...], args, skipped: list[str]) -> str:
    """The whole page: settings, summary table, then one row per image."""
    with_gt = bool(rows and rows[0].scores)
    if args.sort == "name":
        order = "by image name"
    elif with_gt:
        order = f"by the spread of {SHORT_NAMES[PRIMARY]} across models (max - min), largest first"
    else:
        order = "by the mean absolute difference between the models' predictions, largest first"
    settings = (f"base size {args.base_size} ({args.base_side} side){', bf16' if args.bf16 else ''}"
                f"{', eager' if args.eager else ''}")
    about = [f"{len(rows)} image(s), {len(models)} model(s); inference as <code>matting predict</code>: {_e(settings)}."]
    if with_gt:
        about.append(f"Ground truth: <span class=\"path\">{_e(args.alpha.resolve())}</span>, protocol "
                     f"<code>{_e(args.protocol)}</code>; metrics of the 8-bit predictions as saved "
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


# ---------------------------------------------------------------------------- main


def build_gallery(items: list[Item], models: list[Model], args, keys: tuple[str, ...], root: Path, skipped: list[str]) -> list[Row]:
    """Every image through every model, then index.html and metrics.csv, all inside ``root``."""
    from tqdm import tqdm

    rows = []
    for item in tqdm(items, desc="gallery", unit="img", disable=args.no_progress or None, file=sys.stderr):
        rows.append(process_image(item, models, args, keys, root))
    rows = sort_rows(rows, args.sort)
    if args.alpha is not None:
        (root / "metrics.csv").write_text(metrics_csv(models, rows, keys))
    (root / "index.html").write_text(render_html(models, rows, keys, args, skipped), encoding="utf-8")
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the tool: 0 when the gallery is written; MattingInputError on bad input, before any output."""
    args = build_parser().parse_args(argv)
    args.out = Path(os.path.abspath(args.out))  # "." or "x/" still have a name to put ".partial" after
    _check_args(args)
    check_out(args.out, args.overwrite)
    items, skipped = collect_items(args)
    keys = BASE_METRICS + (("conn",) if args.conn else ())

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # as `matting predict`: denormals make CPU convolutions slow
    models = load_models(list(args.ckpt), model_names(list(args.ckpt), args.names), args.eager)

    for message in skipped:
        print(f"matting gallery: skipped: {message}", file=sys.stderr)
    start = time.perf_counter()
    staging = make_staging(args.out)
    try:
        rows = build_gallery(items, models, args, keys, staging, skipped)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # the old gallery, if any, stays as it was
        raise
    publish(staging, args.out)
    seconds = time.perf_counter() - start
    print(f"{len(rows)} image(s) x {len(models)} model(s) in {seconds:.1f} s: {args.out / 'index.html'}")
    return 0
