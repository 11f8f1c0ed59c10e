"""LightningDataModule for the embedded procedural dataset."""

from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader

from matting.data.resumable import ResumableTrainData
from matting.data.synthetic.dataset import SyntheticMattingDataset
from matting.data.workers import worker_context


class SyntheticDataModule(ResumableTrainData, L.LightningDataModule):
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
    ):
        super().__init__()
        self.save_hyperparameters()
        self.eval_size = eval_size or size
        worker_context(num_workers, worker_start_method)  # validates the name now, not at the first loader

    def setup(self, stage: str | None = None) -> None:
        hp = self.hparams
        self.train_set = SyntheticMattingDataset("train", hp.train_length, hp.size, hp.seed)
        self.val_set = SyntheticMattingDataset("val", hp.val_length, self.eval_size, hp.seed)
        self.test_set = SyntheticMattingDataset("test", hp.test_length, self.eval_size, hp.seed)

    def _loader(self, dataset) -> DataLoader:
        hp = self.hparams
        return DataLoader(dataset, batch_size=hp.batch_size, shuffle=False, num_workers=hp.num_workers,
                          persistent_workers=hp.num_workers > 0,
                          multiprocessing_context=worker_context(hp.num_workers, hp.worker_start_method))

    def train_dataloader(self) -> DataLoader:
        # Shuffled by (training seed, epoch) and resumable mid-epoch (see matting.data.resumable).
        return self.training_loader(self.train_set)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set)
