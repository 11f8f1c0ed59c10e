"""Training on real foregrounds mixed with procedural subjects.

:class:`MixedDataModule` is :class:`matting.data.matte_datamodule.MatteDataModule` whose training
set replaces a share ``synthetic_fraction`` of the samples by procedural ones
(:class:`matting.data.synthetic.dataset.SyntheticMattingDataset`, at ``crop_size``)::

    data:
      class_path: matting.data.mixed.MixedDataModule
      init_args:
        train: am2k/train
        backgrounds: bg20k/train
        mode: composite
        foreground: estimated
        synthetic_fraction: 0.3

Which kind item ``i`` of an epoch is depends on ``i`` alone (a 64-bit hash of the index, not
Python's ``hash``, which is salted per process), so every worker, process and rerun agrees; and
raising the fraction only turns real items into procedural ones. The k-th real item of the epoch
is item k of the :class:`~matting.data.matte_dataset.MatteTrainDataset` (so the records are
visited in turn, augmented as always), the k-th procedural item is sample k of the generator's
training split with seed ``synthetic_seed``.

Both kinds carry the same keys, so the default collate batches them together:

- ``image``: float32 (3, H, W) RGB in [0, 1];
- ``alpha``: float32 (1, H, W) in [0, 1];
- ``fg``, ``bg``: float32 (3, H, W) in [0, 1], when the real samples carry them (composited
  training, or photos with known foreground and background colours); a procedural sample drops
  its own otherwise;
- ``trimap``: uint8 (1, H, W), 0 / 128 / 255; for a procedural sample made with the recipe's
  ``augment.trimap`` kind from its alpha, with a generator seeded by ``(synthetic_seed, k)``;
- ``name``: the record's name, or ``synthetic_train_<k>`` for a procedural sample.

Procedural samples are not augmented: the generator draws its own variety, and they are the same
in every epoch (real ones get new augmentations each epoch, as in ``MatteDataModule``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from matting.data.augment import Augment
from matting.data.matte_datamodule import MatteDataModule
from matting.data.matte_dataset import MatteTrainDataset
from matting.data.synthetic.dataset import SyntheticMattingDataset, generator_files
from matting.data.trimap import make_trimap
from matting.io.errors import MattingInputError

__all__ = ["SYNTHETIC_PREFIX", "MixedDataModule", "MixedTrainDataset", "carries_layers", "index_uniforms"]

SYNTHETIC_PREFIX = "synthetic_"
MIN_SYNTHETIC_SIZE = 16  # SyntheticMattingDataset's smallest side
_TRIMAP_STREAM = 14  # keeps the trimap generator's stream apart from the generator's own (seed, split, index)
_U64 = np.uint64


def index_uniforms(length: int) -> np.ndarray:
    """float64 (length,) in [0, 1): a fixed 64-bit hash (splitmix64's finaliser) of each index 0..length-1.

    A pure function of the index: the same on every machine, process and run.
    """
    z = np.arange(length, dtype=np.uint64) + _U64(0x9E3779B97F4A7C15)  # array arithmetic wraps mod 2**64
    z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
    z = z ^ (z >> _U64(31))
    return (z >> _U64(11)).astype(np.float64) * 2.0**-53  # the top 53 bits: exact in a float64


def carries_layers(real: MatteTrainDataset) -> bool:
    """Whether the real samples have ``fg`` and ``bg`` (see :meth:`MatteTrainDataset._sample`)."""
    return real.mode == "composite" or (real.fg_role is not None and real.bg_role is not None)


class MixedTrainDataset(Dataset):
    """``length`` training items, each a real composite or a procedural subject (see the module docstring).

    Args:
        real: the real training set, or None when every item is procedural (``fraction`` 1).
        fraction: share of procedural items, in [0, 1].
        length: items per epoch.
        size: side of the procedural samples (the real set's crop size).
        seed: the generator's seed.
        trimap: trimap kind of the procedural samples (one of ``matting.data.trimap.TRIMAP_KINDS``).
    """

    def __init__(self, real: MatteTrainDataset | None, fraction: float, length: int, size: int, seed: int = 0,
                 trimap: str = "dim"):
        self.procedural = index_uniforms(int(length)) < fraction  # fraction 1: all, since every value is < 1
        count = int(self.procedural.sum())
        if real is None and count < len(self.procedural):
            raise MattingInputError("a synthetic_fraction below 1 needs a real training set (data.init_args.train)")
        # rank[i]: how many items of i's kind come before it, i.e. its index into its own dataset.
        self.rank = np.empty(len(self.procedural), np.int64)
        self.rank[self.procedural] = np.arange(count)
        self.rank[~self.procedural] = np.arange(len(self.procedural) - count)
        self.real = real
        self.synthetic = SyntheticMattingDataset("train", count, size, seed)
        self.seed, self.trimap = int(seed), trimap
        self.with_layers = real is None or carries_layers(real)

    def __len__(self) -> int:
        return len(self.procedural)

    def is_procedural(self, index: int) -> bool:
        """Whether item ``index`` is a procedural subject."""
        return bool(self.procedural[index])

    def __getitem__(self, index: int) -> dict:
        rank = int(self.rank[index])
        if not self.procedural[index]:
            return self.real[rank]
        sample = self.synthetic[rank]
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, _TRIMAP_STREAM, rank]))
        trimap = make_trimap(self.trimap, sample["alpha"][0].numpy(), rng)
        sample["trimap"] = torch.from_numpy(np.ascontiguousarray(trimap)[None])
        sample["name"] = SYNTHETIC_PREFIX + sample["name"]
        if not self.with_layers:  # the real samples have none: a batch of mixed keys would not collate
            del sample["fg"], sample["bg"]
        return sample


class MixedDataModule(MatteDataModule):
    """:class:`MatteDataModule` whose training samples are partly procedural subjects.

    Args:
        train, val, test, backgrounds, root, paths, manifests, mode, foreground, augment, crop_size,
            batch_size, num_workers, val_max_side, test_max_side, val_samples, trimap, on_error,
            worker_start_method: as :class:`MatteDataModule` (``train`` and ``backgrounds`` may be
            None when ``synthetic_fraction`` is 1: nothing real is read).
        samples_per_epoch: training items per epoch, both kinds together; default: about one real
            item per training record (``ceil(records / (1 - synthetic_fraction))``); required
            when ``synthetic_fraction`` is 1.
        synthetic_fraction: share of procedural training items, in [0, 1] (0: as MatteDataModule).
        synthetic_seed: seed of the procedural generator (independent of the training seed).

    Validation and test sets are the real ones of :class:`MatteDataModule` (without ``val`` there
    is no validation loader).

    Fingerprint: as :class:`MatteDataModule`, plus, when ``synthetic_fraction`` > 0, the fraction,
    the seed and the generator's source files.
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
        super().__init__(train=train, val=val, test=test, backgrounds=backgrounds, root=root, paths=paths,
                         manifests=manifests, mode=mode, foreground=foreground, augment=augment,
                         crop_size=crop_size, samples_per_epoch=samples_per_epoch, batch_size=batch_size,
                         num_workers=num_workers, val_max_side=val_max_side, test_max_side=test_max_side,
                         val_samples=val_samples, trimap=trimap, on_error=on_error,
                         worker_start_method=worker_start_method, cache_decoded=cache_decoded)
        # The base's save_hyperparameters() has saved the two synthetic_* arguments too (Lightning reads
        # the arguments of every __init__ on the call chain).
        fraction = synthetic_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
            raise MattingInputError(f"synthetic_fraction must be a number in [0, 1], got {fraction!r}")
        if isinstance(synthetic_seed, bool) or not isinstance(synthetic_seed, int) or synthetic_seed < 0:
            raise MattingInputError(f"synthetic_seed must be an integer >= 0, got {synthetic_seed!r}")
        if samples_per_epoch is not None and samples_per_epoch < 1:
            raise MattingInputError(f"samples_per_epoch must be >= 1, got {samples_per_epoch}")
        if fraction > 0 and crop_size < MIN_SYNTHETIC_SIZE:
            raise MattingInputError(f"crop_size must be >= {MIN_SYNTHETIC_SIZE} for procedural samples, got {crop_size}")
        if fraction == 1 and samples_per_epoch is None:
            raise MattingInputError("samples_per_epoch must be set when synthetic_fraction is 1 "
                                    "(there are no training records to count)")

    def _train_set(self) -> MixedTrainDataset:
        hp = self.hparams
        fraction = float(hp.synthetic_fraction)
        real = None
        if fraction < 1:
            if hp.train is None:
                raise MattingInputError("this data config has no training split (data.init_args.train): name one, "
                                        "or set data.init_args.synthetic_fraction: 1.0 to train on procedural subjects only")
            real = super()._train_set()
        length = hp.samples_per_epoch or math.ceil(len(real.records) / (1 - fraction))
        return MixedTrainDataset(real, fraction, length, hp.crop_size, hp.synthetic_seed, self.augment.trimap)

    # -- fingerprint ---------------------------------------------------------------------------

    def identity_hyperparameters(self) -> dict[str, Any]:
        hyperparameters = super().identity_hyperparameters()
        if not self.hparams.synthetic_fraction:  # nothing procedural: the seed decides nothing
            hyperparameters.pop("synthetic_fraction", None)
            hyperparameters.pop("synthetic_seed", None)
        return hyperparameters

    def identity_files(self) -> dict[str, Path | None]:
        files = super().identity_files()
        if self.hparams.synthetic_fraction:
            files.update(generator_files())  # the generator has no version: its sources stand for it
        return files
