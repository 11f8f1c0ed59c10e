"""``matting prepare-data``: check a downloaded dataset's layout and write its manifests."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import sys

from matting.data.prepare.build import ESTIMATORS, prepare, verify_manifests
from matting.data.prepare.layouts import LAYOUTS
from matting.io.errors import MattingInputError, ToolArgumentParser
from matting.io.limits import add_reader_options, apply_reader_options


def main(argv: list[str] | None = None) -> int:
    parser = ToolArgumentParser(prog="matting prepare-data",
                                     description="Scan a downloaded dataset tree, check it and write its manifests "
                                                 "(datasets/README.md describes each dataset).",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=sorted(LAYOUTS))
    parser.add_argument("--root", required=True, help="the dataset's raw folder, as downloaded")
    parser.add_argument("--out", help="manifest directory (default: ROOT/manifests)")
    parser.add_argument("--voc", help="VOC2012 folder (with JPEGImages/): backgrounds of the comp1k / d646 test sets")
    parser.add_argument("--annotations", nargs="+",
                        help="coco: instances_<split>.json (and stuff_<split>.json) files for a coarse-mask split")
    parser.add_argument("--classes", metavar="GROUPS.yaml",
                        help="coco: subject and background classes of that split (default: person against the rest; "
                             "e.g. datasets/coco/things_vs_stuff.yaml)")
    parser.add_argument("--foreground", action="store_true", help="estimate and cache foreground colours")
    parser.add_argument("--estimator", choices=ESTIMATORS, default="ours",
                        help="foreground estimator: the project's (no compilation) or pymatting's (numba; faster per "
                             "image once compiled, worth it for thousands of images)")
    parser.add_argument("--refresh", action="store_true", help="recompute cached foregrounds")
    parser.add_argument("--skip-bad", action="store_true", help="leave bad samples out instead of refusing")
    parser.add_argument("--strict", action="store_true", help="refuse sample counts that differ from the official release")
    parser.add_argument("--no-hash", action="store_true", help="do not hash file contents (faster)")
    parser.add_argument("--quick", action="store_true", help="do not decode alphas and trimaps (faster)")
    parser.add_argument("--verify", action="store_true",
                        help="write nothing: check every file against the sha256 stored in the existing manifests")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="worker processes")
    add_reader_options(parser, mattes=True)
    args = parser.parse_args(argv)
    apply_reader_options(args)  # the --jobs worker processes inherit it
    if args.verify:
        out = Path(args.out) if args.out else Path(args.root) / "manifests"
        checked, problems = verify_manifests(Path(args.root), out, Path(args.voc) if args.voc else None)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            raise MattingInputError(f"{out}: {len(problems)} files do not match the sha256 stored in their manifest")
        print(f"{out}: the files of {checked} records match their stored sha256")
        return 0
    prepare(args.dataset, Path(args.root), Path(args.out) if args.out else None,
            Path(args.voc) if args.voc else None, [Path(a) for a in args.annotations or []],
            classes=Path(args.classes) if args.classes else None,
            foreground=args.foreground, skip_bad=args.skip_bad, strict=args.strict,
            with_hash=not args.no_hash, check_content=not args.quick, refresh=args.refresh, jobs=args.jobs,
            estimator=args.estimator)
    return 0
