"""Photos without ground truth, as random square crops (self-supervised adaptation, ``matting adapt``).

The folder's images (directly inside it, any extension :func:`matting.io.images.list_images`
reads) are checked up front: every unreadable file is named in one :class:`MattingInputError`.
A sample is the photo scaled so that its short side is ``size`` times a random factor in
[1, ``max_zoom``], a random ``size`` x ``size`` crop of it, flipped horizontally half the time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from matting.data.base import MattingDataModule
from matting.data.manifest import image_size
from matting.data.matte_dataset import sample_rng
from matting.io.errors import MattingInputError
from matting.io.images import list_images, read_image, resize_image

__all__ = ["UnlabeledImageDataModule", "UnlabeledImageDataset", "scan_images"]

MAX_LISTED_PROBLEMS = 20


def scan_images(root: str | Path) -> list[Path]:
    """The folder's images, sorted by stem; raises naming every unreadable one (all at once)."""
    root = Path(root)
    if not root.exists():
        raise MattingInputError(f"{root}: image folder not found")
    if not root.is_dir():
        raise MattingInputError(f"{root}: not a folder")
    paths = list(list_images(root).values())
    problems = []
    for path in paths:
        try:
            image_size(path)
        except MattingInputError as exc:
            problems.append(str(exc))
    if problems:
        more = f"\n  ... and {len(problems) - MAX_LISTED_PROBLEMS} more" if len(problems) > MAX_LISTED_PROBLEMS else ""
        raise MattingInputError(f"{root}: {len(problems)} unreadable image(s):\n  " + "\n  ".join(problems[:MAX_LISTED_PROBLEMS]) + more)
    if not paths:
        raise MattingInputError(f"{root}: no images in this folder (sub-folders are not searched)")
    return paths


class UnlabeledImageDataset(Dataset):
    """Random crops of photos: ``{"image": (3, size, size) float32 RGB in [0, 1], "name": stem}``.

    Args:
        paths: the photos.
        size: crop side in pixels.
        length: samples per epoch (default: one per photo); sample ``i`` uses photo ``i % len(paths)``.
        max_zoom: the short side is scaled to ``size`` x U(1, max_zoom) before cropping.
    """

    def __init__(self, paths: list[Path], size: int = 512, length: int | None = None, max_zoom: float = 1.25):
        if not paths:
            raise MattingInputError("the unlabeled image set is empty")
        self.paths, self.size, self.max_zoom = list(paths), int(size), float(max_zoom)
        self.length = int(length or len(self.paths))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        rng = sample_rng(index)
        path = self.paths[index % len(self.paths)]
        image = read_image(path)
        h, w = image.shape[:2]
        scale = self.size * rng.uniform(1.0, self.max_zoom) / min(h, w)
        nh, nw = max(self.size, round(h * scale)), max(self.size, round(w * scale))
        image = resize_image(image, nh, nw, clip=True)
        y0, x0 = int(rng.integers(0, nh - self.size + 1)), int(rng.integers(0, nw - self.size + 1))
        crop = image[y0:y0 + self.size, x0:x0 + self.size]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        tensor = torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1), dtype=np.float32))
        return {"image": tensor, "name": path.stem}


class UnlabeledImageDataModule(MattingDataModule):
    """Training batches of random crops from a folder of photos (no validation: there are no labels).

    Configured by class path like every data module of ``matting fit``
    (``data: {class_path: matting.data.unlabeled.UnlabeledImageDataModule, init_args: {root: DIR}}``).

    Args:
        root: the image folder.
        size: crop side in pixels.
        batch_size: batch size (MODNet's SOC: 1).
        num_workers: DataLoader worker processes.
        samples_per_epoch: crops per epoch (default: one per photo).
        worker_start_method: ``spawn`` (default) or ``fork`` (see :mod:`matting.data.workers`).

    Fingerprint: these arguments (minus where the folder is and the loader settings) and the
    photos' file names and bytes.
    """

    def __init__(self, root: str, size: int = 512, batch_size: int = 1, num_workers: int = 2,
                 samples_per_epoch: int | None = None, worker_start_method: str | None = "spawn"):
        super().__init__()
        self.save_hyperparameters()
        self.check_loader_settings()
        self.train_set = None

    def setup(self, stage: str | None = None) -> None:
        hp = self.hparams
        self.train_set = UnlabeledImageDataset(scan_images(hp.root), hp.size, hp.samples_per_epoch)

    def identity_hyperparameters(self) -> dict[str, Any]:
        # The photos' bytes identify the data; the folder may move.
        return {k: v for k, v in super().identity_hyperparameters().items() if k != "root"}

    def identity_files(self) -> dict[str, Path]:
        return {path.name: path for path in scan_images(self.hparams.root)}

    def train_dataloader(self) -> DataLoader:
        return self.training_loader(self.train_set)
