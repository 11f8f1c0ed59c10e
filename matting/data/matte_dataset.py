"""Datasets over manifests: composited or original training crops, and full-size evaluation samples.

Samples are dicts of tensors, as :class:`matting.module.MattingModule` expects:

- ``image``: float32 (3, H, W) RGB in [0, 1];
- ``alpha``: float32 (1, H, W) in [0, 1];
- ``fg``, ``bg``: float32 (3, H, W), when the foreground colours are known (true or estimated);
- ``trimap``: uint8 (1, H, W) with 0 / 128 / 255 (training: generated; evaluation: the dataset's own);
- ``name``: the sample's name.

Randomness: each training sample draws its own ``numpy.random.Generator`` from
``(s, index)``, where ``s`` comes from the torch random generator of the process that loads it.
PyTorch seeds each DataLoader worker's torch generator from the main process's (``base_seed +
worker_id``), and LightningCLI calls ``seed_everything(seed, workers=True)``; so a run is
reproducible for a given seed and number of workers, and every epoch sees new augmentations.
Evaluation samples involve no randomness.

Bad data: a missing, unreadable or inconsistent file (image and alpha of different sizes, an
alpha that is zero everywhere, a colour alpha whose channels differ, ...) raises
:class:`matting.io.errors.MattingInputError` naming the file. With ``on_error="skip"`` a training
set logs a warning naming it and loads the next sample instead. Evaluation sets always raise: a
benchmark score over a silently smaller set would not be comparable (drop a file for good with
``matting prepare-data --skip-bad``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from matting.data.augment import Augment, joint_noise
from matting.data.composite import (
    comp1k_from_files,
    composite,
    merge_foregrounds,
    random_background_crop,
    read_background,
)
from matting.data.manifest import Record
from matting.io.errors import MattingInputError
from matting.io.images import (
    read_alpha,
    read_image,
    read_trimap,
    resize_image,
    shrink_long_side,
)

__all__ = ["BackgroundPool", "MatteEvalDataset", "MatteTrainDataset", "sample_rng"]

log = logging.getLogger("matting.data")

MAX_CONSECUTIVE_SKIPS = 50
FOREGROUND_CHOICES = ("auto", "true", "estimated", "none")
MODES = ("composite", "original")


def sample_rng(index: int) -> np.random.Generator:
    """A generator for one sample, seeded from this process's torch generator and the index."""
    return np.random.default_rng([int(torch.randint(0, 2**62, ()).item()), int(index)])


def _chw(array: np.ndarray) -> torch.Tensor:
    """(H, W) or (H, W, C) numpy -> (C, H, W) tensor."""
    if array.ndim == 2:
        array = array[..., None]
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def _size(array: np.ndarray) -> str:
    return f"{array.shape[1]}x{array.shape[0]}"


def _check_alpha(alpha: np.ndarray, path: Path) -> None:
    if not alpha.any():
        raise MattingInputError(f"{path}: alpha matte is zero everywhere (no foreground)")


def _check_same_size(reference: np.ndarray, reference_path: Path, other: np.ndarray, other_path: Path, what: str) -> None:
    if reference.shape[:2] != other.shape[:2]:
        raise MattingInputError(
            f"size mismatch: {what} {other_path} is {_size(other)}, alpha {reference_path} is {_size(reference)}"
        )


def _as_input_error(exc: Exception, record: Record, resolve: Callable[[str], Path]) -> MattingInputError:
    """Wrap an unexpected decoding error so that the message names the sample's files."""
    if isinstance(exc, MattingInputError):
        return exc
    files = ", ".join(str(resolve(entry.path)) for entry in record.files.values())
    return MattingInputError(f"sample '{record.name}' ({files}): {type(exc).__name__}: {exc}")


class BackgroundPool:
    """Background photos to composite over, drawn at random.

    Args:
        files: (path, (width, height) or None) of each background; sizes (from the manifest)
            let large JPEGs decode at reduced scale.
    """

    def __init__(self, files: Sequence[tuple[Path, tuple[int, int] | None]]):
        if not files:
            raise MattingInputError("the background pool is empty")
        self.files = list(files)

    def __len__(self) -> int:
        return len(self.files)

    def draw(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        """A random background region resized to (height, width), float32 RGB."""
        path, size = self.files[int(rng.integers(len(self.files)))]
        bg = read_background(path, width, height, size)
        return random_background_crop(bg, height, width, rng)


class MatteTrainDataset(Dataset):
    """Training crops from a matting manifest.

    Args:
        records: the split's manifest records.
        resolve: manifest path -> file (a :class:`matting.data.manifest.Resolver`).
        crop_size: side of the square crops.
        augment: the augmentation recipe (default: :class:`Augment`'s DIM defaults).
        mode: ``composite`` (foreground colours over a random background from ``backgrounds``,
            the DIM recipe) or ``original`` (the dataset's own photo, augmented with its alpha).
        backgrounds: the pool for ``composite``.
        foreground: which colours to use as ``fg`` (and ``bg``): ``true`` (the dataset's), ``estimated``
            (the cache of ``prepare-data --foreground``), ``none``, or ``auto`` (true, else estimated
            when cached, else none). ``composite`` needs foreground colours.
        length: samples per epoch (default: one per record); sample ``i`` uses record ``i % len(records)``.
        on_error: ``raise`` or ``skip`` (log a warning naming the file, use the next sample).
        cache_decoded: keep every decoded record in memory (per loader worker): for small sets of
            large photos, whose decoding is otherwise half of a sample's cost.
    """

    def __init__(
        self,
        records: Sequence[Record],
        resolve: Callable[[str], Path],
        crop_size: int = 512,
        augment: Augment | None = None,
        mode: str = "composite",
        backgrounds: BackgroundPool | None = None,
        foreground: str = "auto",
        length: int | None = None,
        on_error: str = "raise",
        cache_decoded: bool = False,
    ):
        if mode not in MODES:
            raise MattingInputError(f"unknown training mode '{mode}'; choose one of {', '.join(MODES)}")
        if foreground not in FOREGROUND_CHOICES:
            raise MattingInputError(f"unknown foreground '{foreground}'; choose one of {', '.join(FOREGROUND_CHOICES)}")
        if on_error not in ("raise", "skip"):
            raise MattingInputError(f"on_error must be 'raise' or 'skip', got '{on_error}'")
        if not records:
            raise MattingInputError("the training set is empty")
        self.records = list(records)
        self.resolve = resolve
        self.crop_size = int(crop_size)
        self.augment = augment or Augment()
        self.mode = mode
        self.backgrounds = backgrounds
        self.fg_role, self.bg_role = self._colour_roles(foreground)
        self.length = int(length or len(self.records))
        self.on_error = on_error
        self._decoded: dict[tuple[str, bool], tuple[np.ndarray, dict[str, np.ndarray]]] | None = {} if cache_decoded else None
        if mode == "composite":
            if self.fg_role is None:
                raise MattingInputError(
                    "composited training needs foreground colours: this manifest has neither true ('fg') nor "
                    "estimated ('fg_est') ones; run `matting prepare-data <dataset> --root DIR --foreground` "
                    "or train with mode: original"
                )
            if backgrounds is None:
                raise MattingInputError("composited training needs backgrounds (backgrounds: bg20k/train, coco/train2014, ...)")
        elif "image" not in self.records[0].files:
            raise MattingInputError("mode 'original' needs photos ('image' files); this dataset ships foregrounds: use mode composite")

    def _colour_roles(self, foreground: str) -> tuple[str | None, str | None]:
        roles = set(self.records[0].files)
        true = ("fg", "bg" if "bg" in roles else None) if "fg" in roles else None
        estimated = ("fg_est", "bg_est" if "bg_est" in roles else None) if "fg_est" in roles else None
        if foreground == "none":
            return None, None
        if foreground == "true":
            if true is None:
                raise MattingInputError("foreground: true, but this manifest has no true foreground colours ('fg')")
            return true
        if foreground == "estimated":
            if estimated is None:
                raise MattingInputError(
                    "foreground: estimated, but this manifest has no cached estimates; run "
                    "`matting prepare-data <dataset> --root DIR --foreground`"
                )
            return estimated
        return true or estimated or (None, None)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        rng = sample_rng(index)
        last_error = None
        for attempt in range(MAX_CONSECUTIVE_SKIPS):
            record = self.records[(index + attempt) % len(self.records)]
            try:
                return self._sample(record, rng)
            except (MattingInputError, cv2.error, ValueError, OSError) as exc:
                error = _as_input_error(exc, record, self.resolve)
                if self.on_error != "skip":
                    raise error from exc
                log.warning("skipping training sample '%s': %s", record.name, error)
                last_error = error
        raise MattingInputError(f"{MAX_CONSECUTIVE_SKIPS} consecutive training samples failed; last: {last_error}")

    # -- loading -----------------------------------------------------------------------------

    def _load(self, record: Record, with_image: bool) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Alpha and colour layers of one record, checked for size agreement and an empty matte."""
        if self._decoded is None:
            return self._decode(record, with_image)
        key = (record.name, with_image)
        if key not in self._decoded:
            self._decoded[key] = self._decode(record, with_image)
        alpha, colours = self._decoded[key]
        return alpha.copy(), {k: v.copy() for k, v in colours.items()}  # the augmentations must not touch the cache

    def _decode(self, record: Record, with_image: bool) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        alpha_path = self.resolve(record.files["alpha"].path)
        alpha = read_alpha(alpha_path)
        _check_alpha(alpha, alpha_path)
        roles = {"fg": self.fg_role, "bg": self.bg_role}
        if with_image:
            roles = {"image": "image", **roles}
        colours = {}
        for key, role in roles.items():
            if role is None:
                continue
            if role not in record.files:
                raise MattingInputError(f"sample '{record.name}' has no '{role}' file in the manifest")
            path = self.resolve(record.files[role].path)
            colours[key] = read_image(path)
            _check_same_size(alpha, alpha_path, colours[key], path, role)
        return alpha, colours

    def _sample(self, record: Record, rng: np.random.Generator) -> dict:
        aug, crop = self.augment, self.crop_size
        composite_mode = self.mode == "composite"
        alpha, colours = self._load(record, with_image=not composite_mode)
        if composite_mode:
            colours.pop("bg", None)  # a new background replaces the dataset's
            if rng.random() < aug.p_merge and len(self.records) > 1:
                other = self.records[int(rng.integers(len(self.records)))]
                if other.name != record.name:
                    alpha2, colours2 = self._load(other, with_image=False)
                    h, w = alpha.shape
                    colours["fg"], alpha = merge_foregrounds(
                        colours["fg"], alpha, resize_image(colours2["fg"], h, w, clip=True), resize_image(alpha2, h, w))
        alpha, colours = aug.geometry(rng, alpha, colours)
        alpha, trimap, colours = aug.crop(rng, crop, alpha, colours)
        if composite_mode:
            (fg,) = aug.jitter(rng, alpha, colours["fg"])
            bg = self.backgrounds.draw(rng, crop, crop)
            fg, bg, noisy = aug.realism(rng, fg, bg)
            if noisy:
                fg, bg = joint_noise(rng, aug.noise_sigma / 255, fg, bg)
            image = composite(fg, alpha, bg)
            layers = {"fg": fg, "bg": bg}
        else:
            keys = list(colours)  # image first, then fg / bg when known
            jittered = aug.jitter(rng, alpha, *(colours[k] for k in keys))
            colours = dict(zip(keys, jittered))
            # The photo's own background cannot be blurred or denoised apart from it: only noise applies.
            if rng.random() < aug.p_noise:
                colours = dict(zip(keys, joint_noise(rng, aug.noise_sigma / 255, *(colours[k] for k in keys))))
            image = colours.pop("image")
            layers = colours
        image = aug.degrade(rng, image)
        sample = {"image": _chw(image.astype(np.float32)), "alpha": _chw(alpha.astype(np.float32)),
                  "trimap": _chw(trimap), "name": record.name}
        if "fg" in layers and "bg" in layers:  # the composition loss needs both
            sample["fg"] = _chw(layers["fg"].astype(np.float32))
            sample["bg"] = _chw(layers["bg"].astype(np.float32))
        return sample


class MatteEvalDataset(Dataset):
    """Evaluation samples at full resolution, or with the long side capped at ``max_side``.

    Records with ``"compose": "comp1k"`` are rebuilt from foreground, alpha and VOC background
    exactly as the official Composition-1k script does (``composite.py``); others read the
    dataset's photo. Sizes differ between samples: use batch size 1.

    Args:
        records: the split's manifest records.
        resolve: manifest path -> file.
        max_side: resize (area for image and alpha, nearest for the trimap's three levels) so the
            long side is at most this; None keeps the full resolution (benchmark numbers).
        trimap_role: which trimap to return (``trimap``; alphamatting also has ``trimap2``); a record
            without it yields no ``trimap`` key.
    """

    def __init__(self, records: Sequence[Record], resolve: Callable[[str], Path], max_side: int | None = None,
                 trimap_role: str = "trimap"):
        if not records:
            raise MattingInputError("the evaluation set is empty")
        self.records = list(records)
        self.resolve = resolve
        self.max_side = max_side
        self.trimap_role = trimap_role
        with_trimap = [self.trimap_role in r.files for r in self.records]
        if any(with_trimap) and not all(with_trimap):  # a batch of mixed keys would not collate
            missing = next(r.name for r, has in zip(self.records, with_trimap) if not has)
            raise MattingInputError(f"some evaluation samples have a '{trimap_role}' and some not (e.g. '{missing}')")

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        try:
            return self._sample(record)
        except (MattingInputError, cv2.error, ValueError, OSError) as exc:
            raise _as_input_error(exc, record, self.resolve) from exc

    def _sample(self, record: Record) -> dict:
        files = record.files
        alpha_path = self.resolve(files["alpha"].path)
        if record.extra.get("compose") == "comp1k":
            image_u8, alpha_u8, _, _ = comp1k_from_files(self.resolve(files["fg"].path), alpha_path,
                                                         self.resolve(files["bg"].path))
            image = image_u8.astype(np.float32) / np.float32(255)
            alpha = alpha_u8.astype(np.float32) / np.float32(255)
        else:
            image_path = self.resolve(files["image"].path)
            image, alpha = read_image(image_path), read_alpha(alpha_path)
            _check_same_size(alpha, alpha_path, image, image_path, "image")
        _check_alpha(alpha, alpha_path)
        trimap = None
        if self.trimap_role in files:
            trimap_path = self.resolve(files[self.trimap_role].path)
            trimap = read_trimap(trimap_path)
            _check_same_size(alpha, alpha_path, trimap, trimap_path, "trimap")
        if self.max_side:
            image, alpha = shrink_long_side(image, self.max_side, clip=True), shrink_long_side(alpha, self.max_side)
            if trimap is not None:
                trimap = shrink_long_side(trimap, self.max_side, shrink=cv2.INTER_NEAREST, enlarge=cv2.INTER_NEAREST)
        sample = {"image": _chw(image), "alpha": _chw(alpha), "name": record.name}
        if trimap is not None:
            sample["trimap"] = _chw(trimap)
        return sample
