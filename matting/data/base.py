"""What every data module of the package shares: loader settings, the loaders, and a fingerprint.

:class:`MattingDataModule` is the base of ``SyntheticDataModule``, ``ManifestDataModule``,
``FolderDataModule`` and ``UnlabeledImageDataModule``. Each subclass lists all of its arguments
in its own ``__init__`` (LightningCLI reads them from there), the shared ones among them:

- ``batch_size``: training batch size;
- ``num_workers``: DataLoader worker processes;
- ``worker_start_method``: ``spawn`` (default) or ``fork`` (see :mod:`matting.data.workers`);

then calls ``self.save_hyperparameters(...)`` and :meth:`~MattingDataModule.check_loader_settings`.

Loaders:

- :meth:`~MattingDataModule.training_loader`: shuffled by ``(training seed, epoch)`` and
  resumable mid-epoch: checkpoints store the loader's position (:mod:`matting.data.resumable`);
- :meth:`~MattingDataModule.evaluation_loader`: file order, one worker at most (evaluation
  images differ in size), batch size 1 unless told;
- :meth:`~MattingDataModule.worker_settings`: the worker arguments of any other DataLoader.

Fingerprint: :meth:`~MattingDataModule.fingerprint` hashes what decides the samples, which each
subclass names with :meth:`~MattingDataModule.identity_hyperparameters` (its arguments, minus
loader settings and locations) and :meth:`~MattingDataModule.identity_files` (files whose bytes
stand for the data: generator sources, manifests, the photos themselves). A run records it
(``matting.runtime.run_record``) so that two runs can be told to have seen the same data.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import lightning as L
from torch.utils.data import DataLoader

from matting.data.resumable import ResumableDataLoader, SeededRandomSampler
from matting.data.workers import worker_context

__all__ = ["LOADER_KEYS", "MattingDataModule", "data_fingerprint", "file_sha256"]

# Data-module arguments that change how samples are loaded, not which samples there are.
LOADER_KEYS = frozenset({"num_workers", "worker_start_method", "cache_decoded"})
_CHUNK = 1 << 20


def file_sha256(path: Path) -> str | None:
    """SHA-256 of a file's bytes, or None when it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def _saved_hyperparameters(datamodule: L.LightningDataModule) -> dict[str, Any]:
    """The data module's saved init arguments, without LightningCLI's bookkeeping keys."""
    hparams = dict(getattr(datamodule, "hparams", {}) or {})
    return {k: v for k, v in hparams.items() if not k.startswith("_")}


def _fingerprint(datamodule: L.LightningDataModule, hyperparameters: dict[str, Any],
                 files: dict[str, Path | None]) -> dict[str, Any]:
    hashes = {name: None if path is None else file_sha256(Path(path)) for name, path in files.items()}
    cls = type(datamodule)
    identity = {"class": f"{cls.__module__}.{cls.__qualname__}", "hyperparameters": hyperparameters, "files": hashes}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()
    return {"sha256": digest, **identity,
            "files": {name: {"path": None if files[name] is None else str(files[name]), "sha256": hashes[name]}
                      for name in files}}


def data_fingerprint(datamodule: L.LightningDataModule | None) -> dict[str, Any] | None:
    """The data module's own ``fingerprint()`` (:meth:`MattingDataModule.fingerprint`); for a data
    module without one, the same record over its saved hyper-parameters (minus loader settings);
    None without a data module."""
    if datamodule is None:
        return None
    if callable(getattr(datamodule, "fingerprint", None)):
        return datamodule.fingerprint()
    hyperparameters = {k: v for k, v in _saved_hyperparameters(datamodule).items() if k not in LOADER_KEYS}
    return _fingerprint(datamodule, hyperparameters, {})


class MattingDataModule(L.LightningDataModule):
    """Base of the package's data modules (see the module docstring).

    Subclasses need ``batch_size``, ``num_workers`` and ``worker_start_method`` among their saved
    hyper-parameters.
    """

    _resume_position: dict | None = None

    def check_loader_settings(self) -> None:
        """Refuse a bad ``worker_start_method`` now, not at the first loader."""
        worker_context(self.hparams.num_workers, self.hparams.worker_start_method)

    # -- loaders -------------------------------------------------------------------------------

    def worker_settings(self, max_workers: int | None = None) -> dict[str, Any]:
        """DataLoader arguments for the workers: ``num_workers`` (at most ``max_workers``), persistent
        (a spawned worker costs seconds to start, and loaders are iterated many times) and the start method."""
        workers = self.hparams.num_workers if max_workers is None else min(self.hparams.num_workers, max_workers)
        return {"num_workers": workers, "persistent_workers": workers > 0,
                "multiprocessing_context": worker_context(workers, self.hparams.worker_start_method)}

    def training_loader(self, dataset) -> ResumableDataLoader:
        """The training loader: ``batch_size`` samples, shuffled by the training seed, at the
        checkpoint's position (a last partial batch is dropped unless it is the only one)."""
        batch_size = self.hparams.batch_size
        position, self._resume_position = self._resume_position, None
        epoch, done = 0, 0
        if position:
            epoch, done = position["train_epoch"], position["train_batches_done"]
        return ResumableDataLoader(dataset, sampler=SeededRandomSampler(dataset, epoch=epoch), start_epoch=epoch,
                                   skip_batches=done, batch_size=batch_size, drop_last=len(dataset) >= batch_size,
                                   **self.worker_settings())

    def evaluation_loader(self, dataset, batch_size: int = 1, max_workers: int | None = 1) -> DataLoader:
        """An evaluation loader in file order (by default one worker at most and batch size 1:
        evaluation images differ in size)."""
        return DataLoader(dataset, batch_size=batch_size, shuffle=False, **self.worker_settings(max_workers))

    # -- resuming ------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """The training loader's position (epoch, batches done) while fitting; saved in every checkpoint."""
        trainer = getattr(self, "trainer", None)
        if trainer is None or trainer.state.fn != "fit":
            return {}
        loop = trainer.fit_loop
        return {"train_epoch": int(trainer.current_epoch),
                "train_batches_done": int(loop.epoch_loop.batch_progress.current.processed)}

    def load_state_dict(self, state: dict) -> None:
        self._resume_position = dict(state) if state else None

    # -- fingerprint ---------------------------------------------------------------------------

    def identity_hyperparameters(self) -> dict[str, Any]:
        """The arguments that decide the samples: the saved ones minus the loader settings."""
        return {k: v for k, v in _saved_hyperparameters(self).items() if k not in LOADER_KEYS}

    def identity_files(self) -> dict[str, Path | None]:
        """Name -> file whose bytes stand for the data (None: could not be located); none by default."""
        return {}

    def fingerprint(self) -> dict[str, Any]:
        """A SHA-256 of what decides the data, with what it covers.

        Returns ``{"sha256", "class", "hyperparameters", "files"}`` (files: name -> {"path",
        "sha256"}, sha256 None when unreadable), in plain JSON types.
        """
        return json.loads(json.dumps(_fingerprint(self, self.identity_hyperparameters(), self.identity_files()),
                                     default=str))
