"""A folder of photos and their alpha mattes as training and validation data, without a manifest.

Layout (files are paired by stem; any extension :func:`matting.io.images.list_images` reads)::

    DIR/
      image/   a.jpg  b.png ...   photos           (also accepted: images/ im/ img/)
      alpha/   a.png  b.png ...   mattes, gray     (also accepted: alphas/ matte/ mattes/ mask/ masks/ gt/)
      fg/      a.png ...          optional: true foreground colours   (also: foreground/)
      bg/      a.png ...          optional: true background colours   (also: background/)

With both ``fg/`` and ``bg/`` the batches carry ``fg`` and ``bg`` and the composition loss uses
them (``matting make-data`` writes this layout). Every problem found while scanning (a photo
without a matte or the reverse, an unreadable file, a photo and matte of different sizes) is
reported in one :class:`MattingInputError` that names the files.

Validation split: a pair goes to validation when the hash of its stem falls below
``val_fraction``, so adding photos later never moves existing ones between the splits. At least
one pair is held out, and at least one is kept for training.

Training samples reuse :class:`MatteTrainDataset` in its ``original`` mode (the photo itself,
augmented together with its matte: :class:`Augment`); photos smaller than the crop are upscaled
by the augmentation, and photos larger than ``max_side`` are first downscaled so that crops see
the subject at about the scale ``matting predict`` runs at. Validation uses
:class:`MatteEvalDataset` (whole photos, long side capped at ``max_side``, batch size 1).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import DataLoader

from matting.data.augment import Augment
from matting.data.base import MattingDataModule
from matting.data.manifest import FileEntry, Record, Resolver, image_size
from matting.data.matte_dataset import MatteEvalDataset, MatteTrainDataset
from matting.io.errors import MattingInputError
from matting.io.images import list_images, read_alpha, shrink_long_side
from matting.io.pairing import group_by_stem

__all__ = ["FOLDER_NAMES", "FolderDataModule", "photo_augment", "scan_pairs", "split_by_stem", "train_batches"]

# Role -> accepted sub-folder names, in order of preference.
FOLDER_NAMES = {
    "image": ("image", "images", "im", "img"),
    "alpha": ("alpha", "alphas", "matte", "mattes", "mask", "masks", "gt"),
    "fg": ("fg", "foreground"),
    "bg": ("bg", "background"),
}
MAX_LISTED_PROBLEMS = 20


def photo_augment() -> Augment:
    """Augmentation for real photos: random crops and flips, mild colour jitter; no compositing,
    resizing or affine warps (a warp would smear the photo's own border into the matte's zero border)."""
    return Augment(p_merge=0.0, p_resize=0.0, p_affine=0.0, p_flip=0.5, p_hsv=0.5, hue_degrees=10.0, trimap="dim")


def _role_folders(root: Path) -> dict[str, Path]:
    """Sub-folder of each role present under ``root``; image and alpha are required."""
    if not root.exists():
        raise MattingInputError(f"{root}: data folder not found")
    if not root.is_dir():
        raise MattingInputError(f"{root}: not a folder")
    folders: dict[str, Path] = {}
    for role, names in FOLDER_NAMES.items():
        present = [root / n for n in names if (root / n).is_dir()]
        if len(present) > 1:
            raise MattingInputError(f"{root}: both {present[0].name}/ and {present[1].name}/ hold {role} files; keep one")
        if present:
            folders[role] = present[0]
        elif role in ("image", "alpha"):
            raise MattingInputError(f"{root}: no {role} folder; expected one of {', '.join(n + '/' for n in names)}")
    return folders


def _problem_report(root: Path, problems: list[str]) -> MattingInputError:
    listed = problems[:MAX_LISTED_PROBLEMS]
    more = f"\n  ... and {len(problems) - len(listed)} more" if len(problems) > len(listed) else ""
    return MattingInputError(f"{root}: {len(problems)} problem(s) in the data folder:\n  " + "\n  ".join(listed) + more)


def scan_pairs(root: str | Path, check_alpha: bool = False) -> list[Record]:
    """The folder's pairs as records (paths relative to ``root``, sizes from the file headers).

    With ``check_alpha`` every matte is also decoded, so that one that ``read_alpha`` refuses
    (a 0/1 mask under ``--alpha-scale auto``, damaged pixel data) is listed now, not in a worker.
    Raises one MattingInputError listing every unpaired stem, unreadable file and size mismatch.
    """
    root = Path(root)
    folders = _role_folders(root)
    listed = {role: list_images(folder) for role, folder in folders.items()}
    groups = group_by_stem(listed, leading=("image", "alpha"))
    pairs = [g for g in groups if "image" in g.files and "alpha" in g.files]
    problems = [f"{g.files['image']}: no matte {folders['alpha'].name}/{g.stem}.* for this photo"
                for g in groups if "alpha" in g.missing]
    problems += [f"{g.files['alpha']}: no photo {folders['image'].name}/{g.stem}.* for this matte"
                 for g in groups if "image" in g.missing]
    for role in ("fg", "bg"):
        if role in listed:
            problems += [f"{folders[role]}: no {role} file for '{g.stem}' (every pair needs one when {folders[role].name}/ exists)"
                         for g in pairs if role in g.missing]
    records = []
    for group in pairs:
        stem, entries = group.stem, {}
        for role, path in group.files.items():
            try:
                width, height = image_size(path)
            except MattingInputError as exc:
                problems.append(str(exc))
                continue
            if role == "alpha" and check_alpha:
                try:
                    read_alpha(path)
                except MattingInputError as exc:
                    problems.append(str(exc))
                    continue
            entries[role] = FileEntry(f"{folders[role].name}/{path.name}", width, height)
        alpha = entries.get("alpha")
        for role, entry in entries.items():
            if alpha is not None and role != "alpha" and (entry.width, entry.height) != (alpha.width, alpha.height):
                problems.append(f"size mismatch: {role} {root / entry.path} is {entry.width}x{entry.height}, "
                                f"alpha {root / alpha.path} is {alpha.width}x{alpha.height}")
        records.append(Record(stem, entries))
    if problems:
        raise _problem_report(root, problems)
    if not records:
        raise MattingInputError(f"{root}: no photo / matte pairs in {folders['image'].name}/ and {folders['alpha'].name}/")
    return records


def stem_fraction(stem: str) -> float:
    """A stable number in [0, 1) from the stem alone (SHA-1), for the validation split."""
    return int(hashlib.sha1(stem.encode("utf-8")).hexdigest()[:12], 16) / 16**12


def split_by_stem(records: list[Record], val_fraction: float) -> tuple[list[Record], list[Record]]:
    """(train, val): a record is held out when ``stem_fraction(name) < val_fraction``.

    At least one record goes to each side (the lowest / highest stem fractions move over).
    """
    if not 0 < val_fraction < 1:
        raise MattingInputError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    if len(records) < 2:
        raise MattingInputError(f"{len(records)} photo / matte pair(s): need at least 2 (one is held out for validation)")
    ranked = sorted(records, key=lambda r: stem_fraction(r.name))
    held_out = sum(stem_fraction(r.name) < val_fraction for r in ranked)
    held_out = min(max(held_out, 1), len(ranked) - 1)
    return sorted(ranked[held_out:], key=lambda r: r.name), sorted(ranked[:held_out], key=lambda r: r.name)


def train_batches(samples: int, batch_size: int) -> int:
    """Optimizer steps per epoch of :class:`FolderDataModule` (the last partial batch is dropped
    unless it is the only one)."""
    return samples // batch_size if samples >= batch_size else 1


def _downscale(alpha: np.ndarray, colours: dict[str, np.ndarray], max_side: int | None):
    """Scale (H, W) alpha and (H, W, 3) colour layers so that the long side is at most ``max_side``."""
    if not max_side:
        return alpha, colours
    return shrink_long_side(alpha, max_side), {k: shrink_long_side(v, max_side, clip=True) for k, v in colours.items()}


class _CappedTrainDataset(MatteTrainDataset):
    """MatteTrainDataset whose photos are downscaled to ``max_side`` before augmentation."""

    def __init__(self, *args, max_side: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_side = max_side

    def _load(self, record: Record, with_image: bool):
        alpha, colours = super()._load(record, with_image)
        return _downscale(alpha, colours, self.max_side)


class FolderDataModule(MattingDataModule):
    """Training and validation sets from a folder of photo / matte pairs (see the module docstring).

    Batches are dicts: ``image`` (B, 3, crop, crop) and ``alpha`` (B, 1, crop, crop) float32 in
    [0, 1], ``trimap`` (B, 1, crop, crop) uint8, ``fg`` / ``bg`` (B, 3, crop, crop) with true
    colours, and ``name``; validation batches hold one whole photo (1, 3, H, W).

    Args:
        root: the data folder.
        val_fraction: share of pairs held out for validation (by stem hash; at least one).
        crop_size: side of the square training crops.
        batch_size: training batch size (validation uses 1: sizes differ).
        num_workers: DataLoader worker processes.
        max_side: photos with a longer long side are downscaled to it first (training and
            validation); None keeps the full resolution.
        samples_per_epoch: training samples per epoch (default: one per training pair).
        augment: the augmentation recipe (default: :func:`photo_augment`).
        on_error: ``raise`` or ``skip`` for training samples that fail to load.
        worker_start_method: ``spawn`` (default) or ``fork`` (see :mod:`matting.data.workers`).

    Fingerprint: the arguments (minus the loader settings and the folder's location), the
    augmentation recipe, and the names and bytes of every photo, matte and colour file of the
    folder (all of them are read once at fit start to hash them).
    """

    def __init__(
        self,
        root: str,
        val_fraction: float = 0.1,
        crop_size: int = 512,
        batch_size: int = 8,
        num_workers: int = 2,
        max_side: int | None = 1024,
        samples_per_epoch: int | None = None,
        augment: Augment | None = None,
        on_error: str = "raise",
        worker_start_method: str | None = "spawn",
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["augment"])
        self.augment = augment or photo_augment()
        self.check_loader_settings()
        self.root = Path(root).expanduser()
        self.train_set = self.val_set = None

    def setup(self, stage: str | None = None) -> None:
        hp = self.hparams
        train, val = split_by_stem(scan_pairs(self.root), hp.val_fraction)
        resolve = Resolver(self.root, self.root)
        self.train_set = _CappedTrainDataset(train, resolve, hp.crop_size, self.augment, mode="original",
                                             length=hp.samples_per_epoch, on_error=hp.on_error, max_side=hp.max_side)
        self.val_set = MatteEvalDataset(val, resolve, max_side=hp.max_side)

    def train_dataloader(self) -> DataLoader:
        return self.training_loader(self.train_set)

    def val_dataloader(self) -> DataLoader:
        return self.evaluation_loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        """The held-out pairs, so ``matting test`` scores a fine-tuned checkpoint on them."""
        return self.evaluation_loader(self.val_set)

    # -- fingerprint ---------------------------------------------------------------------------

    def identity_hyperparameters(self) -> dict[str, Any]:
        # The folder's contents identify the data, wherever it lives.
        hyperparameters = {k: v for k, v in super().identity_hyperparameters().items() if k != "root"}
        return {**hyperparameters, "augment": vars(self.augment)}

    def identity_files(self) -> dict[str, Path | None]:
        """``"<sub-folder>/<file name>"`` -> the file, for every image of each role's sub-folder."""
        try:
            folders = _role_folders(self.root)
        except MattingInputError:
            return {str(self.root): None}  # recorded as unreadable; setup names the problem
        return {f"{folder.name}/{path.name}": path
                for folder in folders.values() for path in sorted(list_images(folder).values())}
