"""``matting evaluate``: score a folder of predicted alpha mattes against ground truth.

    matting evaluate --pred DIR --gt DIR [--trimap DIR] --protocol comp1k|whole|modnet
                     [--out DIR] [--overwrite] [--allow-missing] [--workers N] [--no-force]

Files are matched by stem (``pred/GT01.png`` <-> ``gt/GT01.jpg`` <-> ``trimap/GT01.png``) and read
with :mod:`matting.io.images` (PNG, JPEG, TIFF, ...; 8 or 16 bit; single-channel or gray in
3 channels; palette trimaps). Metrics and protocols are those of :mod:`matting.metrics`. Each
prediction is scored at the bit depth of its file, so identical files score 0. ``comp1k`` forces
the prediction's known regions to the trimap before scoring; ``--no-force`` scores the file as
saved, as the official ``evaluate.m`` does.

Every problem is an error that names each file: a ground truth without a prediction, a
prediction without a ground truth, a ground truth without a trimap (when trimaps are used), a
size mismatch, an unreadable file, under ``comp1k`` a trimap without unknown pixels (a 0/255 mask:
every metric would be a perfect 0). All of them are gathered and reported together, and nothing
is written. With ``--allow-missing`` the images concerned are skipped and listed in the
summary instead. Trimaps without a ground truth are ignored (a trimap folder may cover a
larger set). ``modnet`` ignores trimaps. ``--pred`` and ``--gt`` naming the same folder is refused;
predictions that are all byte-for-byte copies of their ground truth are scored (0) with a warning.

Output folder (default ``<pred>_eval_<protocol>`` next to the prediction folder), written
only once everything has been computed, and never over an existing folder without
``--overwrite``:

- ``per_image.csv``: one row per image, columns headed with their units (``SAD (/1000)``),
  values in full precision.
- ``summary.md``: mean and standard deviation over images (population, ddof = 0), in the
  same units, plus the skipped files.
- ``summary.json``: the same with raw values (as the metric functions return them), the
  display scales, counts, the list of problems and every image's raw values.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import sys
from pathlib import Path

from matting.evaluation import evaluate_dirs, summary_markdown, write_report
from matting.io.errors import MattingInputError, ToolArgumentParser
from matting.io.files import check_output
from matting.io.images import list_images
from matting.io.limits import add_reader_options, apply_reader_options
from matting.metrics import PROTOCOLS


def build_parser() -> argparse.ArgumentParser:
    parser = ToolArgumentParser(
        prog="matting evaluate",
        description="Score predicted alpha mattes against ground truth (files matched by stem).",
    )
    parser.add_argument("--pred", required=True, type=Path, help="folder of predicted alpha mattes")
    parser.add_argument("--gt", required=True, type=Path, help="folder of ground-truth alpha mattes")
    parser.add_argument("--trimap", type=Path, default=None, help="folder of trimaps (required by comp1k)")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="whole", help="benchmark protocol (default: whole)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: <pred>_eval_<protocol>)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="skip (and list in the summary) images with missing, stray, unreadable or mismatched files",
    )
    parser.add_argument(
        "--workers", type=int, default=None,
        help="processes (default: 1 for small folders, where starting workers costs more than it saves; else 2)",
    )
    parser.add_argument(
        "--no-force",
        action="store_true",
        help="comp1k: score the predictions as saved, without forcing their known regions to the trimap "
        "(as the official evaluate.m does)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_reader_options(parser, mattes=True)
    return parser


def default_out_dir(pred_dir: Path, protocol: str) -> Path:
    pred_dir = pred_dir.resolve()
    return pred_dir.parent / f"{pred_dir.name}_eval_{protocol}"


def _copies_of_ground_truth(pred_dir: Path, gt_dir: Path, rows: list[dict]) -> bool:
    """Every scored prediction file is byte for byte its ground truth (only checked when every score is 0)."""
    if not rows or any(value != 0 for row in rows for key, value in row.items() if key != "name"):
        return False
    preds, gts = list_images(pred_dir), list_images(gt_dir)
    return all(filecmp.cmp(preds[row["name"]], gts[row["name"]], shallow=False) for row in rows)


def main(argv: list[str] | None = None) -> int:
    """Run the tool; MattingInputError (listing every problem file) on bad input."""
    args = build_parser().parse_args(argv)
    apply_reader_options(args)  # the evaluation workers inherit it
    if args.workers is not None and args.workers < 1:
        raise MattingInputError(f"--workers must be at least 1, got {args.workers}")
    if args.no_force and args.protocol != "comp1k":
        raise MattingInputError(f"--no-force applies to --protocol comp1k only; '{args.protocol}' never forces")
    if args.pred.resolve() == args.gt.resolve():
        raise MattingInputError(f"--pred {args.pred} and --gt {args.gt} are the same folder: every prediction would "
                                "score a perfect 0")
    out_dir = args.out if args.out is not None else default_out_dir(args.pred, args.protocol)
    # Before the work, not after; --overwrite replaces a report folder, never a file.
    check_output(out_dir, label="--out", overwrite=args.overwrite)
    force_known = not args.no_force
    rows, problems = evaluate_dirs(
        args.pred, args.gt, args.trimap, args.protocol, args.workers, args.allow_missing, not args.no_progress,
        force_known=force_known,
    )
    if _copies_of_ground_truth(args.pred, args.gt, rows):
        print(f"matting evaluate: warning: every prediction in {args.pred} is a copy of its ground truth in {args.gt}, "
              "so every score is 0 and says nothing about a model", file=sys.stderr)
    sources = {"predictions": args.pred, "ground truth": args.gt}
    if args.trimap is not None and args.protocol != "modnet":
        sources["trimaps"] = args.trimap
    write_report(rows, out_dir, args.protocol, problems, overwrite=args.overwrite, sources=sources, force_known=force_known)
    summary = json.loads((out_dir / "summary.json").read_text())
    print(summary_markdown(summary, sources), end="")
    print(f"\nwritten: {out_dir}")
    return 0
