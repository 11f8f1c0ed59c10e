"""LightningDataModule for the public matting datasets, read through their manifests.

(Old configs name it ``matting.data.MatteDataModule``, ``matting.data.matte_datamodule.MatteDataModule``
or ``matting.data.mixed.MixedDataModule``: the same class, under those names too.)

One config file switches the data (``configs/data/<name>.yaml``)::

    matting fit -c configs/default.yaml -c configs/data/am2k.yaml
    matting test -c configs/default.yaml -c configs/data/ppm100.yaml --ckpt_path ...

Each split is named ``<dataset>/<split>`` (``am2k/train``, ``p3m10k/p3m500np``, ``bg20k/train``;
a bare dataset name takes its first training or evaluation split). A dataset's files are in
``<root>/<dataset>`` (override per dataset with ``paths``) and its manifests, written by
``matting prepare-data``, in ``<that folder>/manifests`` (override with ``manifests``). ``root``
defaults to the ``MATTING_DATA_ROOT`` environment variable.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader

from matting.data.augment import Augment
from matting.data.base import MattingDataModule
from matting.data.manifest import ENV_VERIFY_HASHES, Resolver, data_root, dataset_folder, read_split, verify_hashes
from matting.data.matte_dataset import (
    BackgroundPool,
    MatteEvalDataset,
    MatteTrainDataset,
)
from matting.data.prepare.layouts import get_layout
from matting.io.errors import MattingInputError

__all__ = ["ManifestDataModule", "parse_split"]

# Where a dataset lives; its manifests' bytes identify the content instead.
LOCATION_KEYS = frozenset({"root", "paths", "manifests"})
MIN_SYNTHETIC_SIZE = 16  # SyntheticMattingDataset's smallest side


def check_synthetic_share(fraction, seed, samples_per_epoch: int | None, crop_size: int) -> None:
    """Refuse a ``synthetic_fraction`` / ``synthetic_seed`` pair the training set cannot be built from."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
        raise MattingInputError(f"synthetic_fraction must be a number in [0, 1], got {fraction!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise MattingInputError(f"synthetic_seed must be an integer >= 0, got {seed!r}")
    if samples_per_epoch is not None and samples_per_epoch < 1:
        raise MattingInputError(f"samples_per_epoch must be >= 1, got {samples_per_epoch}")
    if fraction > 0 and crop_size < MIN_SYNTHETIC_SIZE:
        raise MattingInputError(f"crop_size must be >= {MIN_SYNTHETIC_SIZE} for procedural samples, got {crop_size}")
    if fraction == 1 and samples_per_epoch is None:
        raise MattingInputError("samples_per_epoch must be set when synthetic_fraction is 1 "
                                "(there are no training records to count)")


def parse_split(spec: str, purpose: str) -> tuple[str, str]:
    """``"am2k/train"`` -> ("am2k", "train"); a bare name takes the layout's first split for ``purpose``."""
    dataset, _, split = spec.partition("/")
    layout = get_layout(dataset)
    if split:
        return dataset, split
    choices = layout.train_splits if purpose == "train" else layout.eval_splits
    if not choices:
        raise MattingInputError(f"dataset '{dataset}' has no {purpose} split; name one as '{dataset}/<split>'")
    return dataset, choices[0]


class ManifestDataModule(MattingDataModule):
    """Training, validation and test sets from prepared manifests, optionally mixed with procedural subjects.

    Args:
        train: training split (``am2k/train``), or None for evaluation-only use.
        val: validation split (``am2k/validation``), or None.
        test: test split, or None.
        backgrounds: background split for composited training (``bg20k/train``, ``coco/train2014``).
        root: data root (default: ``$MATTING_DATA_ROOT``); a relative root resolves against that variable.
        paths: dataset -> folder, relative to ``root`` or absolute, when not ``<root>/<dataset>``.
        manifests: dataset -> manifest directory, when not ``<dataset folder>/manifests``.
        mode: ``composite`` (foregrounds over random backgrounds), ``original`` (the dataset's photos),
            or ``auto``: composite when the dataset ships foregrounds instead of photos.
        foreground: ``auto``, ``true``, ``estimated`` or ``none`` (see :class:`MatteTrainDataset`).
        augment: the augmentation recipe (:class:`matting.data.augment.Augment`; None: its defaults).
        crop_size: side of the square training crops.
        samples_per_epoch: training samples per epoch (default: one per training record).
        batch_size: training batch size (evaluation uses 1: sizes differ).
        num_workers: DataLoader worker processes.
        worker_start_method: ``spawn`` (default) or ``fork`` (see :mod:`matting.data.workers`).
        val_max_side / test_max_side: cap on the long side of evaluation images (None: full size).
        val_samples: validate on this many samples, evenly spaced over the split (None: all).
        trimap: which trimap evaluation samples carry (``trimap``; alphamatting also has ``trimap2``).
        on_error: ``raise`` or ``skip`` for bad training samples (evaluation always raises).
        cache_decoded: keep decoded training records in memory per worker (small sets of large photos).
        synthetic_fraction: share of training items replaced by procedural subjects of the embedded
            generator at ``crop_size``, in [0, 1] (:class:`matting.data.mixed.MixedTrainDataset`; 1:
            procedural only, ``train`` may then be None and ``samples_per_epoch`` is required).
        synthetic_seed: seed of the procedural generator (independent of the training seed).

    Fingerprint: the arguments (minus the loader settings and where the data lives), the
    augmentation recipe, and the bytes of the split manifests read (``<manifest dir>/<split>.jsonl``).
    """

    def __init__(
        self,
        train: str | None = None,
        val: str | None = None,
        test: str | None = None,
        backgrounds: str | None = None,
        root: str | None = None,
        paths: dict[str, str] | None = None,
        manifests: dict[str, str] | None = None,
        mode: str = "auto",
        foreground: str = "auto",
        augment: Augment | None = None,
        crop_size: int = 512,
        samples_per_epoch: int | None = None,
        batch_size: int = 8,
        num_workers: int = 2,
        val_max_side: int | None = 1024,
        test_max_side: int | None = None,
        val_samples: int | None = None,
        trimap: str = "trimap",
        on_error: str = "raise",
        worker_start_method: str | None = "spawn",
        cache_decoded: bool = False,
        synthetic_fraction: float = 0.0,
        synthetic_seed: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["augment"])
        check_synthetic_share(synthetic_fraction, synthetic_seed, samples_per_epoch, crop_size)
        self.augment = augment or Augment()
        self.check_loader_settings()
        if mode not in ("auto", "composite", "original"):
            raise MattingInputError(f"mode must be auto, composite or original, got '{mode}'")
        self.train_set = self.val_set = self.test_set = None

    # -- locating --------------------------------------------------------------------------

    def _root(self) -> Path:
        return data_root(self.hparams.root)

    def folder(self, dataset: str) -> Path:
        """Folder of ``dataset`` on disk."""
        return dataset_folder(dataset, self._root(), self.hparams.paths)

    def manifest_dir(self, dataset: str) -> Path:
        given = (self.hparams.manifests or {}).get(dataset)
        if given is None:
            return self.folder(dataset) / "manifests"
        path = Path(given).expanduser()
        return path if path.is_absolute() else self._root() / path

    def _records(self, spec: str, purpose: str):
        dataset, split = parse_split(spec, purpose)
        resolver = Resolver(self.folder(dataset), self.manifest_dir(dataset), other=self.folder)
        records = read_split(self.manifest_dir(dataset), split)
        if os.environ.get(ENV_VERIFY_HASHES, "").strip() not in ("", "0"):
            problems = verify_hashes(records, resolver)
            if problems:
                more = f" ({len(problems) - 1} more files differ)" if len(problems) > 1 else ""
                raise MattingInputError(f"{problems[0]}{more}; {ENV_VERIFY_HASHES} is set")
        return dataset, records, resolver

    # -- building ----------------------------------------------------------------------------

    def _train_set(self):
        """The real training set; with ``synthetic_fraction`` > 0 a mix with procedural subjects."""
        hp = self.hparams
        fraction = float(hp.synthetic_fraction)
        if not fraction:
            return self._real_train_set()
        from matting.data.mixed import MixedTrainDataset  # the dataset module imports the generator

        real = None
        if fraction < 1:
            if hp.train is None:
                raise MattingInputError("this data config has no training split (data.init_args.train): name one, "
                                        "or set data.init_args.synthetic_fraction: 1.0 to train on procedural subjects only")
            real = self._real_train_set()
        length = hp.samples_per_epoch or math.ceil(len(real.records) / (1 - fraction))
        return MixedTrainDataset(real, fraction, length, hp.crop_size, hp.synthetic_seed, self.augment.trimap)

    def _real_train_set(self) -> MatteTrainDataset:
        hp = self.hparams
        if hp.train is None:
            raise MattingInputError(
                "this data config has no training split (data.init_args.train); it is for evaluation "
                "(matting validate / test), or combine it with a training data config"
            )
        dataset, records, resolver = self._records(hp.train, "train")
        if not records:
            raise MattingInputError(f"{self.manifest_dir(dataset)}: the training split of '{hp.train}' is empty")
        mode = hp.mode
        if mode == "auto":  # datasets of foregrounds (Composition-1k, Distinctions-646) are composited
            mode = "original" if "image" in records[0].files else "composite"
        pool = None
        if mode == "composite":
            if hp.backgrounds is None:
                raise MattingInputError(f"composited training on {dataset} needs backgrounds: set data.init_args.backgrounds "
                                        "(e.g. coco/train2014 or bg20k/train)")
            _, bg_records, bg_resolver = self._records(hp.backgrounds, "train")
            pool = BackgroundPool([(bg_resolver(r.files["image"].path), (r.files["image"].width, r.files["image"].height))
                                   for r in bg_records])
        return MatteTrainDataset(records, resolver, hp.crop_size, self.augment, mode, pool, hp.foreground,
                                 hp.samples_per_epoch, hp.on_error, hp.cache_decoded)

    def _eval_set(self, spec: str, max_side: int | None, limit: int | None = None) -> MatteEvalDataset:
        _, records, resolver = self._records(spec, "eval")
        if limit is not None and 0 < limit < len(records):
            step = len(records) / limit
            records = [records[int(i * step)] for i in range(limit)]
        return MatteEvalDataset(records, resolver, max_side, self.hparams.trimap)

    def setup(self, stage: str | None = None) -> None:
        hp = self.hparams
        if stage in (None, "fit"):
            self.train_set = self._train_set()
        if stage in (None, "fit", "validate") and hp.val is not None:
            self.val_set = self._eval_set(hp.val, hp.val_max_side, hp.val_samples)
        if stage in (None, "test") and hp.test is not None:
            self.test_set = self._eval_set(hp.test, hp.test_max_side)
        if stage == "validate" and hp.val is None:
            raise MattingInputError("this data config has no validation split (data.init_args.val)")
        if stage == "test" and hp.test is None:
            raise MattingInputError("this data config has no test split (data.init_args.test)")

    # -- loaders -------------------------------------------------------------------------------

    def train_dataloader(self) -> DataLoader:
        return self.training_loader(self.train_set)

    def val_dataloader(self):
        return self.evaluation_loader(self.val_set) if self.val_set is not None else []

    def test_dataloader(self) -> DataLoader:
        return self.evaluation_loader(self.test_set)

    # -- fingerprint ---------------------------------------------------------------------------

    def identity_hyperparameters(self) -> dict[str, Any]:
        hyperparameters = {k: v for k, v in super().identity_hyperparameters().items() if k not in LOCATION_KEYS}
        if not self.hparams.synthetic_fraction:  # nothing procedural: the seed decides nothing
            hyperparameters.pop("synthetic_fraction", None)
            hyperparameters.pop("synthetic_seed", None)
        return {**hyperparameters, "augment": vars(self.augment)}

    def identity_files(self) -> dict[str, Path | None]:
        """``"<dataset>/<split>.jsonl"`` -> its manifest, for each configured split (None: not located)."""
        hp = self.hparams
        files: dict[str, Path | None] = {}
        for spec, purpose in ((hp.train, "train"), (hp.backgrounds, "train"), (hp.val, "eval"), (hp.test, "eval")):
            if spec is None:
                continue
            try:
                dataset, split = parse_split(spec, purpose)
                files[f"{dataset}/{split}.jsonl"] = self.manifest_dir(dataset) / f"{split}.jsonl"
            except MattingInputError:
                files[spec] = None  # unknown dataset or no data root: recorded as unreadable
        if hp.synthetic_fraction:
            from matting.data.synthetic.dataset import generator_files

            files.update(generator_files())  # the generator has no version: its sources stand for it
        return files
