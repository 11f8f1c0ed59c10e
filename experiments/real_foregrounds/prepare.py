"""Data of the real-foreground study: estimated foregrounds, backgrounds, and the held-out photos.

    python experiments/real_foregrounds/prepare.py [--shared ../shared/data] [--out runs/real_foregrounds/data]
                                                   [--procedural-backgrounds 36] [--overwrite]

From the 20 alphamatting.com training photos with alpha (``<shared>/alphamatting``), writes a data
root for :class:`matting.data.mixed.MixedDataModule` (``--data.init_args.root=<out>``):

- ``alphamatting`` -> a link to the photos (they stay where they are: no redistribution licence);
- ``manifests/alphamatting/``: split ``train`` = GT01-GT15 with foreground and background colours
  estimated from photo and alpha (:func:`matting.data.prepare.build.estimate_split_foregrounds`, the
  multi-level method of Germer et al., cached in ``foreground/train/``), split ``test`` = GT16-GT20;
- ``backgrounds/train/``: the real photos and textures of ``<shared>/backgrounds`` (links) and
  ``--procedural-backgrounds`` 512 px backgrounds of the embedded generator (data seed 1, so none is a
  background of the procedural subjects), with ``manifests/bg20k/`` (read as the bg20k layout);
- ``test/{image,alpha,trimap}/``: links to GT16-GT20, for ``matting predict`` and ``matting evaluate``.

The split is fixed by name, not chosen: GT16-GT20 are only ever predicted and scored.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2

from matting.data.manifest import (
    ManifestInfo,
    Record,
    describe_file,
    read_split,
    write_manifest,
)
from matting.data.prepare.build import estimate_split_foregrounds, prepare
from matting.data.synthetic.dataset import SyntheticMattingDataset
from matting.io.errors import MattingInputError
from matting.io.files import check_output, staged_folder
from matting.io.images import to_uint8

REPO = Path(__file__).resolve().parents[2]
TRAIN = [f"GT{i:02d}" for i in range(1, 16)]
TEST = [f"GT{i:02d}" for i in range(16, 21)]
BACKGROUND_SIZE = 512


def _procedural_backgrounds(folder: Path, count: int) -> None:
    data = SyntheticMattingDataset("train", count, BACKGROUND_SIZE, seed=1)
    for i in range(count):
        path = folder / f"procedural_{i:03d}.png"
        if not cv2.imwrite(str(path), to_uint8(data.arrays(i)["bg"])[..., ::-1]):
            raise MattingInputError(f"could not write {path}")


def build(shared: Path, out: Path, procedural: int, overwrite: bool, log=print) -> Path:
    """Write the data root ``out`` (staged, then renamed into place); returns it."""
    photos, backgrounds = (shared / "alphamatting").resolve(), (shared / "backgrounds").resolve()
    for folder in (photos, backgrounds):
        if not folder.is_dir():
            raise MattingInputError(f"{folder}: not found (the study needs ../shared/data or --shared DIR)")
    check_output(out, overwrite=overwrite, empty_ok=True)
    with staged_folder(out) as root:
        (root / "alphamatting").symlink_to(photos, target_is_directory=True)
        manifests = root / "manifests" / "alphamatting"
        prepare("alphamatting", photos, out=manifests, log=log)
        records = {r.name: r for r in read_split(manifests, "lowres")}
        missing = [n for n in TRAIN + TEST if n not in records]
        if missing:
            raise MattingInputError(f"{photos}: missing {', '.join(missing)}")
        train, test = [records[n] for n in TRAIN], [records[n] for n in TEST]
        count = estimate_split_foregrounds(train, photos, manifests, "train")
        log(f"alphamatting/train: foreground colours estimated for {count} photos")
        (manifests / "lowres.jsonl").unlink()
        write_manifest(manifests, ManifestInfo("alphamatting", {}, notes=[
            "train = GT01-GT15 (estimated foregrounds), test = GT16-GT20 (photos as they are)"]),
            {"train": train, "test": test})

        bg_folder = root / "backgrounds" / "train"
        bg_folder.mkdir(parents=True)
        real = sorted(p for p in backgrounds.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        for path in real:
            (bg_folder / path.name).symlink_to(path)
        _procedural_backgrounds(bg_folder, procedural)
        bg_records = [Record(p.stem, {"image": describe_file(p, f"train/{p.name}")}) for p in sorted(bg_folder.iterdir())]
        write_manifest(root / "manifests" / "bg20k", ManifestInfo("bg20k", {}, notes=[
            f"{len(real)} real backgrounds and {procedural} procedural ones (data seed 1, {BACKGROUND_SIZE} px)"]),
            {"train": bg_records})
        log(f"backgrounds/train: {len(real)} real, {procedural} procedural")

        for kind in ("image", "alpha", "trimap"):
            (root / "test" / kind).mkdir(parents=True)
            for name in TEST:
                (root / "test" / kind / f"{name}.png").symlink_to(photos / kind / f"{name}.png")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python experiments/real_foregrounds/prepare.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data", help="folder with alphamatting/ and backgrounds/")
    p.add_argument("--out", type=Path, default=REPO / "runs" / "real_foregrounds" / "data", help="data root to write")
    p.add_argument("--procedural-backgrounds", type=int, default=36, help="procedural backgrounds beside the real ones (default 36)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing data root")
    args = p.parse_args(argv)
    try:
        build(args.shared, args.out, args.procedural_backgrounds, args.overwrite)
    except MattingInputError as exc:
        print(f"prepare: error: {exc}", file=sys.stderr)
        return 2
    print(f"prepare: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
