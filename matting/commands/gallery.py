"""``matting gallery``: a side-by-side HTML page comparing several checkpoints on the same images.

    matting gallery --ckpt A.ckpt B.safetensors [...] --images DIR_OR_GLOB [...] --out DIR
                    [--alpha GT_DIR] [--trimap TRIMAP_DIR] [--protocol whole|comp1k] [--conn]
                    [--names NAME ...] [--size 512] [--sort sad-spread|name] [--allow-missing]
                    [--base-size 512] [--base-side long|short] [--bf16] [--eager] [--overwrite]

Every checkpoint (anything :func:`matting.inference.load_net` accepts, or a graph from ``matting
export``, ``.onnx``, run by onnxruntime) runs on every image with the settings of ``matting
predict`` (same options, same defaults, :func:`matting.inference.runner.open_network`), so each
prediction is exactly the ``alpha/<stem>.png`` that ``matting predict`` writes. The folder DIR then holds:

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
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from matting.inference.runner import add_inference_options
from matting.io.errors import MattingInputError, ToolArgumentParser
from matting.io.files import atomic_write, check_output, could_not_write, staged_folder
from matting.io.images import (
    from_uint8,
    list_images,
    read_alpha,
    read_image,
    read_trimap,
    shrink_long_side,
    to_uint8,
    write_png,
)
from matting.io.limits import add_reader_options, apply_reader_options
from matting.io.pairing import check_stems, collect_inputs, group_by_stem
from matting.report.gallery_page import (
    Model,
    Row,
    alpha_file,
    diff_file,
    disagreement,
    error_file,
    gt_file,
    input_file,
    metrics_csv,
    pred_thumb_file,
    render_html,
    score,
    sort_rows,
)
from matting.report.grid import error_colours

# Written into every gallery (and its staging folder): --overwrite replaces only folders holding it.
MARKER = ".matting-gallery"
BASE_METRICS = ("sad", "mse", "grad")
JPEG_QUALITY = 90


@dataclass(frozen=True)
class Item:
    """One input image with its ground truth and trimap (None when not given)."""

    name: str
    image: Path
    gt: Path | None = None
    trimap: Path | None = None


# ---------------------------------------------------------------------------- arguments


def build_parser() -> argparse.ArgumentParser:
    p = ToolArgumentParser(
        prog="matting gallery",
        description="Side-by-side HTML gallery of several checkpoints' alpha mattes on the same images, "
        "with per-image metrics when ground truth is given.",
    )
    p.add_argument("--ckpt", required=True, nargs="+", type=Path, help="checkpoints: .ckpt from `matting fit`, or .safetensors; or graphs from `matting export` (.onnx)")
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
    add_inference_options(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_reader_options(p, mattes=True)
    return p


def _check_args(args) -> None:
    """Option combinations that cannot work, before anything is loaded."""
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


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse a file, a non-empty folder without --overwrite, and a non-gallery folder even with it."""
    check_output(out, label="--out", overwrite=overwrite, empty_ok=True, marker=MARKER, messages={
        "is_file": "{where}: exists and is not a folder",
        "exists": "{where}: exists and is not empty (pass --overwrite to replace a gallery)",
        "not_ours": "{where}: not a gallery written by `matting gallery`; refusing to replace it",
    })
    # A leftover of an interrupted run is replaced; anything else by that name is not ours to delete.
    check_output(staging_dir(out), overwrite=True, marker=MARKER, messages={
        "is_file": "{path}: exists and was not left by `matting gallery`; move it away",
        "not_ours": "{path}: exists and was not left by `matting gallery`; move it away",
    })


def staging_dir(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


# ---------------------------------------------------------------------------- inputs


def collect_items(args) -> tuple[list[Item], list[str]]:
    """Images (as ``matting predict`` collects them) paired with ground truth and trimaps by stem.

    Returns:
        (items, skipped): the images to show, and a message per image skipped (--allow-missing).
    """
    paths, problems = collect_inputs(args.images)
    if problems:
        raise MattingInputError("; ".join(problems))
    if not paths:
        raise MattingInputError("no input images")
    listings = {"image": check_stems(paths),
                "gt": list_images(args.alpha) if args.alpha is not None else None,
                "trimap": list_images(args.trimap) if args.trimap is not None else None}
    items, missing = [], []
    for group in group_by_stem(listings, leading=("image",), sort=False):
        path = group.files["image"]
        if "gt" in group.missing:
            missing.append(f"{path} has no ground truth in {args.alpha}")
        elif "trimap" in group.missing:
            missing.append(f"{path} has no trimap in {args.trimap}")
        else:
            items.append(Item(group.stem, path, group.files.get("gt"), group.files.get("trimap")))
    if missing and not args.allow_missing:
        shown = "\n  - ".join(missing[:20]) + (f"\n  (and {len(missing) - 20} more)" if len(missing) > 20 else "")
        raise MattingInputError(f"{len(missing)} image(s) cannot be scored (pass --allow-missing to skip them):\n  - {shown}")
    if not items:
        raise MattingInputError("no image left to show: " + "; ".join(missing[:5]))
    return items, missing


def load_models(paths: list[Path], names: list[str], args) -> list[Model]:
    """Load every checkpoint or graph (all of them before any work, so a bad one fails fast)."""
    from matting.inference.runner import open_from_args

    models = []
    for path, name, slug in zip(paths, names, slugs(names)):
        alpha_of = open_from_args(path, "matting gallery", args)
        models.append(Model(name, slug, path, alpha_of.parameters, alpha_of))
    return models


# ---------------------------------------------------------------------------- per image


def write_jpeg(path: Path, rgb: np.ndarray) -> None:
    """uint8 RGB -> JPEG (thumbnails only), written as every output file is."""
    ok, encoded = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise MattingInputError(f"{path}: JPEG encoding failed")
    atomic_write(path, encoded.tobytes(), error=could_not_write)


def _read_same_size(path: Path, reader, shape: tuple[int, int], what: str, image: Path) -> np.ndarray:
    array = reader(path)
    if array.shape != shape:
        size = lambda s: f"{s[1]}x{s[0]}"
        raise MattingInputError(f"size mismatch: {what} {path} is {size(array.shape)}, image {image} is {size(shape)}")
    return array


def process_image(item: Item, models: list[Model], args, keys: tuple[str, ...], root: Path) -> Row:
    """Predict with every model, write the full-size mattes and thumbnails, score against the ground truth."""
    image = read_image(item.image)
    shape = image.shape[:2]
    gt = _read_same_size(item.gt, read_alpha, shape, "ground truth", item.image) if item.gt else None
    trimap = _read_same_size(item.trimap, read_trimap, shape, "trimap", item.image) if item.trimap else None
    small = to_uint8(shrink_long_side(image, args.size))
    write_jpeg(root / input_file(item.name), small)
    if gt is not None:
        write_png(root / gt_file(item.name), shrink_long_side(gt, args.size))
    row = Row(item.name, small.shape[:2])
    alphas = []
    for model in models:
        alpha = model.net(image, item.image)
        alpha8 = to_uint8(alpha)  # exactly what `matting predict` writes
        write_png(root / alpha_file(model.slug, item.name), alpha8)
        quantised = from_uint8(alpha8)
        write_png(root / pred_thumb_file(model.slug, item.name), shrink_long_side(quantised, args.size))
        if gt is not None:
            row.scores.append(score(alpha8, gt, trimap, args.protocol, keys))
            error = shrink_long_side(np.abs(quantised - gt), args.size)
            write_jpeg(root / error_file(model.slug, item.name), error_colours(error))
        alphas.append(alpha8)
    row.disagreement = disagreement(alphas)
    if gt is None and len(alphas) >= 2:
        first, second = (from_uint8(a) for a in alphas[:2])
        write_jpeg(root / diff_file(item.name), error_colours(shrink_long_side(np.abs(first - second), args.size)))
    return row


# ---------------------------------------------------------------------------- main


def inference_settings(args) -> str:
    """The options shared with ``matting predict``, as the page states them."""
    return (f"base size {args.base_size or 512} ({args.base_side or 'long'} side){', bf16' if args.bf16 else ''}"
            f"{', eager' if args.eager else ''}")


def build_gallery(items: list[Item], models: list[Model], args, keys: tuple[str, ...], root: Path, skipped: list[str]) -> list[Row]:
    """Every image through every model, then index.html and metrics.csv, all inside ``root``."""
    from tqdm import tqdm

    rows = []
    for item in tqdm(items, desc="gallery", unit="img", disable=args.no_progress or None, file=sys.stderr):
        rows.append(process_image(item, models, args, keys, root))
    rows = sort_rows(rows, args.sort)
    if args.alpha is not None:
        (root / "metrics.csv").write_text(metrics_csv(models, rows, keys))
    page = render_html(models, rows, keys, skipped, sort=args.sort, inference=inference_settings(args),
                       gt_dir=args.alpha, protocol=args.protocol)
    (root / "index.html").write_text(page, encoding="utf-8")
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the tool: 0 when the gallery is written; MattingInputError on bad input, before any output."""
    args = build_parser().parse_args(argv)
    apply_reader_options(args)
    args.out = Path(os.path.abspath(args.out))  # "." or "x/" still have a name to put ".partial" after
    _check_args(args)
    check_out(args.out, args.overwrite)
    items, skipped = collect_items(args)
    keys = BASE_METRICS + (("conn",) if args.conn else ())
    models = load_models(list(args.ckpt), model_names(list(args.ckpt), args.names), args)

    for message in skipped:
        print(f"matting gallery: skipped: {message}", file=sys.stderr)
    start = time.perf_counter()
    # Marked as ours, so that a later --overwrite may replace it; on failure the old gallery stays.
    with staged_folder(args.out, staging=staging_dir(args.out), marker=MARKER, label="--out",
                       marker_text="written by `matting gallery`; --overwrite may replace this folder\n") as staging:
        rows = build_gallery(items, models, args, keys, staging, skipped)
    seconds = time.perf_counter() - start
    print(f"{len(rows)} image(s) x {len(models)} model(s) in {seconds:.1f} s: {args.out / 'index.html'}")
    return 0
