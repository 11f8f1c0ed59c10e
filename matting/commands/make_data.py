"""``matting make-data``: write a split of the procedural dataset to disk (image/ alpha/ fg/ bg/)."""

from __future__ import annotations

from pathlib import Path

from matting.data.synthetic.dataset import SyntheticMattingDataset, write_split
from matting.data.synthetic.scene import TRAIN_MARKINGS
from matting.io.errors import ToolArgumentParser
from matting.io.files import check_output


def main(argv: list[str]) -> int:
    p = ToolArgumentParser(prog="matting make-data", description=__doc__.split(":", 1)[1].strip())
    p.add_argument("--out", type=Path, required=True, help="output folder; must not exist unless --overwrite")
    p.add_argument("--split", choices=["train", "val", "test"], default="test")
    p.add_argument("--length", type=int, default=128, help="number of samples")
    p.add_argument("--size", type=int, default=256, help="square side in pixels")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (same seed, same samples)")
    p.add_argument("--markings", type=float, default=None,
                   help=f"share of subject parts with opaque markings (default: {TRAIN_MARKINGS} for the train split, "
                        "as training draws it; 0 for val and test)")
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    if args.length < 1 or args.size < 32:
        p.error(f"--length must be >= 1 and --size >= 32 (got {args.length}, {args.size})")
    markings = args.markings if args.markings is not None else TRAIN_MARKINGS if args.split == "train" else 0.0
    if not 0.0 <= markings <= 1.0:
        p.error(f"--markings is a share in [0, 1], got {markings}")
    # Checked here too: write_split's messages name its argument, not the option.
    check_output(args.out, label="--out", overwrite=args.overwrite, empty_ok=True)
    data = SyntheticMattingDataset(args.split, args.length, args.size, args.seed, markings=markings)
    out = write_split(data, args.out, overwrite=args.overwrite)
    print(f"wrote {args.length} {args.split} samples to {out}")
    return 0
