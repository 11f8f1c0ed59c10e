"""The data root of the real-photo cross-validation (read by :class:`matting.data.manifest_datamodule.ManifestDataModule`).

From the photos with alpha (``<shared>/alphamatting``: ``image/ alpha/ trimap/``) and the
background photos (``<shared>/backgrounds``), :func:`build_cv_root` writes::

    <root>/alphamatting -> the photos (a link: they stay where they are)
    <root>/manifests/alphamatting/   splits all, fold<k>_train, fold<k>_test; the foreground and
                                     background colours of every photo estimated from photo and alpha
                                     (multi-level estimation, Germer et al.), cached in foreground/all/
    <root>/backgrounds/train/        the real backgrounds (links) and procedural ones, manifests/bg20k/
    <root>/heldout/fold<k>/{image,alpha,trimap}/   links to fold k's held-out photos, for
                                     ``matting predict`` and ``matting evaluate``
    <root>/unlabeled/fold<k>/        links to the photos fold k may adapt to without labels (MODNet's
                                     SOC): its training photos (without their alpha) and the photos
                                     without ground truth (``<shared>/alphamatting-test-nogt/image``)
    <root>/synthetic_test/{image,alpha,fg,bg}/   the embedded generator's test split as the main job
                                     scores it (128 samples of 256 px, data seed 0), written when first
                                     needed: every run is also scored there (the synthetic columns)

A photo's estimated foreground depends on that photo alone, so estimating all of them once leaks
nothing between folds. Fold k trains on ``alphamatting/fold<k>_train`` and never reads its
held-out photos; ``all`` trains on every photo, for use on other photographs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2

from matting.data.manifest import ManifestInfo, Record, describe_file, read_split, write_manifest
from matting.data.prepare.build import estimate_split_foregrounds, prepare
from matting.data.synthetic.dataset import SyntheticMattingDataset
from matting.io.errors import MattingInputError
from matting.io.files import check_output, staged_folder
from matting.io.images import to_uint8
from matting.study.folds import Folds

__all__ = ["BACKGROUND_SIZE", "SYNTHETIC_TEST", "add_unlabeled_pools", "build_cv_root", "heldout_folder", "synthetic_test_folder",
           "unlabeled_folder"]

BACKGROUND_SIZE = 512
PROCEDURAL_BACKGROUND_SEED = 1  # not the seed of the procedural subjects' own backgrounds
SYNTHETIC_TEST = {"length": 128, "size": 256}  # the test split of configs/default.yaml (the demo's)


def heldout_folder(root: Path, fold: int) -> Path:
    """``<root>/heldout/fold<k>``: ``image/ alpha/ trimap/`` of fold k's held-out photos."""
    return Path(root) / "heldout" / f"fold{fold}"


def synthetic_test_folder(root: Path) -> Path:
    """``<root>/synthetic_test``: ``image/ alpha/`` of the generator's test split, written if missing."""
    from matting.data.synthetic.dataset import write_split

    folder = Path(root) / "synthetic_test"
    if not (folder / "alpha").is_dir():
        write_split(SyntheticMattingDataset("test", SYNTHETIC_TEST["length"], SYNTHETIC_TEST["size"], seed=0), folder)
    return folder


def unlabeled_folder(root: Path, fold: int) -> Path:
    """``<root>/unlabeled/fold<k>``: photos fold k may adapt to without labels (never its held-out ones)."""
    return Path(root) / "unlabeled" / f"fold{fold}"


def add_unlabeled_pools(root: Path, shared: Path, folds: Folds) -> None:
    """Write ``<root>/unlabeled/fold<k>/`` (links) for every fold; a root that has them is left as it is."""
    if (Path(root) / "unlabeled").is_dir():
        return
    photos = (Path(shared) / "alphamatting" / "image").resolve()
    nogt = (Path(shared) / "alphamatting-test-nogt" / "image").resolve()
    extra = sorted(p for p in nogt.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg")) if nogt.is_dir() else []
    staging = Path(root) / ".unlabeled.partial"
    if staging.exists():  # left by an interrupted call: links only
        shutil.rmtree(staging)
    for k in range(len(folds)):
        folder = staging / f"fold{k}"
        folder.mkdir(parents=True)
        for name in folds.train(k):
            (folder / f"{name}.png").symlink_to(photos / f"{name}.png")
        for path in extra:
            (folder / path.name).symlink_to(path)
    staging.rename(Path(root) / "unlabeled")


def _procedural_backgrounds(folder: Path, count: int) -> None:
    data = SyntheticMattingDataset("train", count, BACKGROUND_SIZE, seed=PROCEDURAL_BACKGROUND_SEED)
    for i in range(count):
        path = folder / f"procedural_{i:03d}.png"
        if not cv2.imwrite(str(path), to_uint8(data.arrays(i)["bg"])[..., ::-1]):
            raise MattingInputError(f"could not write {path}")


def build_cv_root(shared: Path, out: Path, folds: Folds, procedural: int = 36, overwrite: bool = False,
                  log=print) -> Path:
    """Write the data root ``out`` (staged, then renamed into place); returns it."""
    photos, backgrounds = (Path(shared) / "alphamatting").resolve(), (Path(shared) / "backgrounds").resolve()
    for folder in (photos, backgrounds):
        if not folder.is_dir():
            raise MattingInputError(f"{folder}: not found (the real-photo stage needs ../shared/data or --shared DIR)")
    check_output(out, overwrite=overwrite, empty_ok=True)
    with staged_folder(out) as root:
        (root / "alphamatting").symlink_to(photos, target_is_directory=True)
        manifests = root / "manifests" / "alphamatting"
        prepare("alphamatting", photos, out=manifests, log=log)
        records = {r.name: r for r in read_split(manifests, "lowres")}
        missing = [n for n in folds.names if n not in records]
        if missing:
            raise MattingInputError(f"{photos}: the folds name {', '.join(missing)}, which are not there")
        every = [records[n] for n in folds.names]
        count = estimate_split_foregrounds(every, photos, manifests, "all")
        log(f"alphamatting: foreground colours estimated for {count} photos")
        (manifests / "lowres.jsonl").unlink()
        splits: dict[str, list[Record]] = {"all": every}
        for k in range(len(folds)):
            splits[f"fold{k}_train"] = [records[n] for n in folds.train(k)]
            splits[f"fold{k}_test"] = [records[n] for n in folds.held_out[k]]
        write_manifest(manifests, ManifestInfo("alphamatting", {}, notes=[
            f"{len(folds)} cross-validation folds: fold<k>_test is held out, fold<k>_train trains; all = every photo"]),
            splits)

        bg_folder = root / "backgrounds" / "train"
        bg_folder.mkdir(parents=True)
        real = sorted(p for p in backgrounds.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        for path in real:
            (bg_folder / path.name).symlink_to(path)
        _procedural_backgrounds(bg_folder, procedural)
        bg_records = [Record(p.stem, {"image": describe_file(p, f"train/{p.name}")}) for p in sorted(bg_folder.iterdir())]
        write_manifest(root / "manifests" / "bg20k", ManifestInfo("bg20k", {}, notes=[
            f"{len(real)} real backgrounds and {procedural} procedural ones (data seed "
            f"{PROCEDURAL_BACKGROUND_SEED}, {BACKGROUND_SIZE} px)"]), {"train": bg_records})
        log(f"backgrounds/train: {len(real)} real, {procedural} procedural")

        for k, names in enumerate(folds.held_out):
            for kind in ("image", "alpha", "trimap"):
                folder = heldout_folder(root, k) / kind
                folder.mkdir(parents=True)
                for name in names:
                    (folder / f"{name}.png").symlink_to(photos / kind / f"{name}.png")
        add_unlabeled_pools(root, shared, folds)
    return out
