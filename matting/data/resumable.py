"""Training loaders that resume mid-epoch exactly where a killed run stopped.

A run restarted from ``last.ckpt`` must see the batches the uninterrupted run would have seen:

- :class:`SeededRandomSampler` shuffles from ``(seed, epoch)`` only, not from the global random
  state (which a restart cannot reproduce). It is a ``RandomSampler``, so under DDP Lightning
  still swaps in its own ``DistributedSampler`` (also a function of seed and epoch).
- :class:`ResumableDataLoader` can start its first pass at a given epoch and skip the batches
  already trained on, without loading them.
- :class:`matting.data.base.MattingDataModule` stores (epoch, batches done) in every checkpoint
  and builds the resumed loader from it (``training_loader``).

Samples that are pure functions of their index (the synthetic data) are then identical after a
restart. Datasets that draw augmentations from the worker's random generator get the same images
in the same order, with fresh augmentation draws.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, RandomSampler


class SeededRandomSampler(RandomSampler):
    """A permutation of ``range(len(data_source))`` that depends on ``(seed, epoch)`` alone.

    Args:
        data_source: the dataset (only its length is used).
        seed: shuffling seed; the training seed by default (``torch.initial_seed()`` after
            ``seed_everything``).
        epoch: the epoch whose order the next pass yields; Lightning calls :meth:`set_epoch`.
    """

    def __init__(self, data_source, seed: int | None = None, epoch: int = 0):
        super().__init__(data_source)
        self.seed = int(torch.initial_seed() if seed is None else seed) % 2**63
        self.epoch = epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        generator = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) % 2**63)
        yield from torch.randperm(len(self.data_source), generator=generator).tolist()


class _SkipFirstPass:
    """The loader's index sampler, minus the first ``skip`` items of its next pass only."""

    def __init__(self, inner, loader: ResumableDataLoader):
        self.inner = inner
        self.loader = loader

    def __iter__(self):
        skip, self.loader.skip_batches = self.loader.skip_batches, 0
        iterator = iter(self.inner)
        for _ in range(skip):
            if next(iterator, None) is None:
                return
        yield from iterator

    def __len__(self) -> int:
        return len(self.inner)


class ResumableDataLoader(DataLoader):
    """A DataLoader whose first pass starts at ``start_epoch`` and skips ``skip_batches`` batches.

    ``len()`` stays the full epoch length: Lightning counts the skipped batches as done.
    Works with any sampler Lightning substitutes (the arguments are constructor arguments, so
    Lightning's re-instantiation for DDP keeps them).
    """

    def __init__(self, *args, start_epoch: int | None = None, skip_batches: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.start_epoch = start_epoch
        self.skip_batches = int(skip_batches)

    @property
    def _index_sampler(self):
        inner = super()._index_sampler
        return _SkipFirstPass(inner, self) if self.skip_batches else inner

    def __iter__(self):
        if self.start_epoch is not None:
            if self.skip_batches >= len(self):  # saved at the end of an epoch: the next one starts
                self.start_epoch, self.skip_batches = self.start_epoch + 1, 0
            # The first pass's order is drawn before Lightning calls set_epoch on a restart.
            for sampler in (self.sampler, getattr(self.batch_sampler, "sampler", None)):
                if hasattr(sampler, "set_epoch"):
                    sampler.set_epoch(self.start_epoch)
            self.start_epoch = None
        return super().__iter__()
