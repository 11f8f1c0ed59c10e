"""Training on real foregrounds mixed with procedural subjects: the training set of
:class:`matting.data.manifest_datamodule.ManifestDataModule` when ``synthetic_fraction`` > 0::

    data:
      class_path: matting.data.ManifestDataModule
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
in every epoch (real ones get new augmentations each epoch).
"""

from __future__ import annotations


import numpy as np
import torch
from torch.utils.data import Dataset

from matting.data.matte_dataset import MatteTrainDataset
from matting.data.synthetic.dataset import SyntheticMattingDataset
from matting.data.trimap import make_trimap
from matting.io.errors import MattingInputError

__all__ = ["SYNTHETIC_PREFIX", "MixedDataModule", "MixedTrainDataset", "carries_layers", "index_uniforms"]

SYNTHETIC_PREFIX = "synthetic_"
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


# Old configs name the manifest data module (which now mixes by itself) under this name.
from matting.data.manifest_datamodule import ManifestDataModule as MixedDataModule  # noqa: E402
