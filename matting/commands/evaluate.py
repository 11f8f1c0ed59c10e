"""``matting evaluate``: score a folder of predicted alpha mattes against ground truth.

    matting evaluate --pred DIR --gt DIR [--trimap DIR] --protocol comp1k|whole|modnet
                     [--out DIR] [--overwrite] [--allow-missing] [--workers N]

Files are matched by stem (``pred/GT01.png`` <-> ``gt/GT01.jpg`` <-> ``trimap/GT01.png``) and read
with :mod:`matting.io.images` (PNG, JPEG, TIFF, ...; 8 or 16 bit; single-channel or gray in
3 channels; palette trimaps). Metrics and protocols are those of :mod:`matting.metrics`.

Every problem is an error that names each file: a ground truth without a prediction, a
prediction without a ground truth, a ground truth without a trimap (when trimaps are used), a
size mismatch, an unreadable file. All of them are gathered and reported together, and nothing
is written. With ``--allow-missing`` the images concerned are skipped and listed in the
summary instead. Trimaps without a ground truth are ignored (a trimap folder may cover a
larger set). ``modnet`` ignores trimaps.

Output folder (default ``<pred>_eval_<protocol>`` next to the prediction folder), written
only once everything has been computed, and never over an existing folder without
``--overwrite``:

- ``per_image.csv``: one row per image, columns headed with their units (``SAD (/1000)``).
- ``summary.md``: mean and standard deviation over images (population, ddof = 0), in the
  same units, plus the skipped files.
- ``summary.json``: the same with raw values (as the metric functions return them), the
  display scales, counts and the list of problems.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from matting.evaluation import evaluate_dirs, summary_markdown, write_report
from matting.io.errors import MattingInputError, ToolArgumentParser
from matting.io.files import check_output
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
    parser.add_argument("--workers", type=int, default=2, help="processes (default: 2)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def default_out_dir(pred_dir: Path, protocol: str) -> Path:
    pred_dir = pred_dir.resolve()
    return pred_dir.parent / f"{pred_dir.name}_eval_{protocol}"


def main(argv: list[str] | None = None) -> int:
    """Run the tool; MattingInputError (listing every problem file) on bad input."""
    args = build_parser().parse_args(argv)
    if args.workers < 1:
        raise MattingInputError(f"--workers must be at least 1, got {args.workers}")
    out_dir = args.out if args.out is not None else default_out_dir(args.pred, args.protocol)
    # Before the work, not after; --overwrite replaces a report folder, never a file.
    check_output(out_dir, label="--out", overwrite=args.overwrite)
    rows, problems = evaluate_dirs(
        args.pred, args.gt, args.trimap, args.protocol, args.workers, args.allow_missing, not args.no_progress
    )
    sources = {"predictions": args.pred, "ground truth": args.gt}
    if args.trimap is not None and args.protocol != "modnet":
        sources["trimaps"] = args.trimap
    write_report(rows, out_dir, args.protocol, problems, overwrite=args.overwrite, sources=sources)
    summary = json.loads((out_dir / "summary.json").read_text())
    print(summary_markdown(summary, sources), end="")
    print(f"\nwritten: {out_dir}")
    return 0
