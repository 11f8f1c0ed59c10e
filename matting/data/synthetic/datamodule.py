"""LightningDataModule for the embedded procedural dataset."""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import DataLoader

from matting.data.base import MattingDataModule
from matting.data.synthetic.dataset import SyntheticMattingDataset, generator_files
from matting.data.synthetic.scene import HOLES, TRAIN_MARKINGS


class SyntheticDataModule(MattingDataModule):
    """Train / val / test splits of :class:`SyntheticMattingDataset`, generated on the fly.

    Samples are pure functions of (seed, split, index), so every worker, process and rerun sees
    the same data and the three splits never share a sample.

    Args:
        train_length, val_length, test_length: samples per split (one training epoch = train_length).
        size: square side in pixels of training samples.
        eval_size: side of validation and test samples (defaults to ``size``).
        batch_size: training batch size; evaluation uses the same.
        num_workers: DataLoader worker processes.
        worker_start_method: ``spawn`` (default) or ``fork`` (see :mod:`matting.data.workers`).
        seed: dataset seed (independent of the training seed).
        texture_cue: the first generator, in which fine texture and focus told subject from
            background (kept to reproduce older runs and to measure what dropping the cue buys).
        hair: probability that a subject part grows hair or fur strands (0.8; 1.0 for hair-rich
            data, as the refiner study trains on).
        zoom: the largest factor by which half the training samples enlarge their subject, as a
            close-up frames it (1.0, the default: none; the validation and test splits never zoom,
            so their figures stay comparable).
        holes: probability that a training sample's subject part has holes (0.45).
        markings: probability that a training sample's subject part carries opaque markings in the
            background's clutter colours and shapes (0.5, chosen on real photos: the main job's
            model finds more of each photographed subject, ``experiments/real_foregrounds``;
            0.0 gives the samples from before, byte for byte). Like ``zoom``, both leave the
            validation and test splits as they are, so their figures stay comparable.

    Fingerprint: these arguments (minus the loader settings) and the generator's source files.
    """

    def __init__(
        self,
        train_length: int = 2000,
        val_length: int = 64,
        test_length: int = 128,
        size: int = 256,
        eval_size: int | None = None,
        batch_size: int = 8,
        num_workers: int = 1,
        seed: int = 0,
        worker_start_method: str | None = "spawn",
        texture_cue: bool = False,
        hair: float = 0.8,
        zoom: float = 1.0,
        holes: float = HOLES,
        markings: float = TRAIN_MARKINGS,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.eval_size = eval_size or size
        self.check_loader_settings()

    def setup(self, stage: str | None = None) -> None:
        hp = self.hparams
        self.train_set = SyntheticMattingDataset("train", hp.train_length, hp.size, hp.seed, hp.texture_cue, hp.hair,
                                                hp.zoom, hp.holes, hp.markings)
        self.val_set = SyntheticMattingDataset("val", hp.val_length, self.eval_size, hp.seed, hp.texture_cue, hp.hair)
        self.test_set = SyntheticMattingDataset("test", hp.test_length, self.eval_size, hp.seed, hp.texture_cue, hp.hair)

    def identity_files(self) -> dict[str, Path]:
        # The generator has no version constant: its source files stand for it.
        return generator_files()

    def train_dataloader(self) -> DataLoader:
        return self.training_loader(self.train_set)

    def _eval_loader(self, dataset) -> DataLoader:
        # Samples share one size: batched like training, with all the workers.
        return self.evaluation_loader(dataset, batch_size=self.hparams.batch_size, max_workers=None)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.test_set)
