"""``matting make-data``: write a split of the procedural dataset to disk (image/ alpha/ fg/ bg/)."""

from __future__ import annotations

from pathlib import Path

from matting.data.synthetic.dataset import SyntheticMattingDataset, write_split
from matting.io.errors import ToolArgumentParser
from matting.io.files import check_output


def main(argv: list[str]) -> int:
    p = ToolArgumentParser(prog="matting make-data", description=__doc__.split(":", 1)[1].strip())
    p.add_argument("--out", type=Path, required=True, help="output folder; must not exist unless --overwrite")
    p.add_argument("--split", choices=["train", "val", "test"], default="test")
    p.add_argument("--length", type=int, default=128, help="number of samples")
    p.add_argument("--size", type=int, default=256, help="square side in pixels")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (same seed, same samples)")
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    if args.length < 1 or args.size < 32:
        p.error(f"--length must be >= 1 and --size >= 32 (got {args.length}, {args.size})")
    # Checked here too: write_split's messages name its argument, not the option.
    check_output(args.out, label="--out", overwrite=args.overwrite, empty_ok=True)
    out = write_split(SyntheticMattingDataset(args.split, args.length, args.size, args.seed), args.out, overwrite=args.overwrite)
    print(f"wrote {args.length} {args.split} samples to {out}")
    return 0
