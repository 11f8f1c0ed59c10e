"""What a training run records about itself, next to its metrics and checkpoints.

:class:`RunRecord` (always on in ``matting fit``; YAML section ``run_record``) writes, in the
run's log folder (the logger's ``log_dir``, e.g. ``runs/default/logs/version_0/``):

- ``run.json`` at fit start: the code (git commit, dirty flag), package versions, command line,
  machine, trainer layout (world size, nodes, strategy, precision), seed, the resolved config
  file (``config.yaml``, written by LightningCLI) and a fingerprint of the data. The same record
  goes to every logger as the hyper-parameter ``run`` (wandb config, TensorBoard hparams,
  ``hparams.yaml`` of the CSV logger).
- ``predictions/epoch{E:03d}-step{S:06d}.png`` after each validation epoch: one row per
  validation sample (the first ``grid_samples``) with input, ground-truth alpha, predicted alpha
  and the error ``|pred - gt|`` in a colour map, labelled with the sample's SAD (/1000, as
  ``val/sad``), drawn by :mod:`matting.report.grid`. The grid is also logged to TensorBoard and
  wandb when those loggers are used.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn

from matting.io.errors import MattingInputError
from matting.io.files import atomic_write
from matting.io.images import write_png
from matting.report.grid import GridSample, grid_sample, prediction_grid

__all__ = [
    "RunRecord",
    "data_fingerprint",
    "git_state",
    "package_versions",
]

RUN_FILE = "run.json"
GRID_FOLDER = "predictions"
GRID_KEY = "val/predictions"
RECORD_FORMAT = 1

# Distribution names per reported package; the first one installed wins (OpenCV ships as several).
PACKAGES = {
    "torch": ("torch",),
    "torchvision": ("torchvision",),
    "lightning": ("lightning",),
    "timm": ("timm",),
    "kornia": ("kornia",),
    "opencv": ("opencv-python-headless", "opencv-python", "opencv-contrib-python-headless", "opencv-contrib-python"),
    "numpy": ("numpy",),
    "torchmetrics": ("torchmetrics",),
    "matting": ("matting",),
}
GIT_TIMEOUT_S = 10
MAX_LISTED_CHANGES = 50

PACKAGE_DIR = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------- code and environment


def _git(directory: Path, *args: str) -> str | None:
    """Output of ``git <args>`` run in ``directory``, or None when git fails or is not installed."""
    # No optional locks: a run must not block, or be blocked by, someone else's git command.
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    try:
        done = subprocess.run(["git", *args], check=False, cwd=directory, capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_S, env=env)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def git_state(directory: str | os.PathLike = PACKAGE_DIR) -> dict[str, Any]:
    """The git state of the checkout holding ``directory`` (by default the ``matting`` package).

    Returns:
        ``{"commit": 40-hex str or None, "dirty": bool or None, "changes": [porcelain lines]}``;
        commit and dirty are None (never an error) when ``directory`` is not tracked by a git
        checkout (not a repository, no commit yet, git missing, or an installed copy that merely
        sits inside some repository's folder). ``changes`` lists at most 50 lines of
        ``git status --porcelain``.
    """
    unknown = {"commit": None, "dirty": None, "changes": []}
    directory = Path(directory)
    commit = _git(directory, "rev-parse", "--verify", "HEAD")
    if commit is None or not (_git(directory, "ls-files", "--", ".") or "").strip():
        return unknown
    status = _git(directory, "status", "--porcelain")
    if status is None:
        return unknown
    changes = status.splitlines()
    return {"commit": commit.strip(), "dirty": bool(changes), "changes": changes[:MAX_LISTED_CHANGES]}


def _distribution_version(distributions: tuple[str, ...]) -> str | None:
    """Version of the first installed distribution among ``distributions``, or None."""
    for distribution in distributions:
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return None


def package_versions() -> dict[str, str | None]:
    """Versions of python, the packages in ``PACKAGES`` (None for a missing one) and torch's CUDA.

    torch and torchvision report their own ``__version__``: its local tag (``+cu130``, ``+cpu``)
    names the build, and the distribution metadata may leave it out.
    """
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name, distributions in PACKAGES.items():
        versions[name] = _distribution_version(distributions)
    versions["torch"] = torch.__version__
    try:
        import torchvision

        versions["torchvision"] = torchvision.__version__
    except ImportError:
        pass
    versions["torch_cuda"] = torch.version.cuda
    return versions


def machine_info() -> dict[str, Any]:
    """Host name, platform, CPU counts and CUDA device names (an empty list without CUDA)."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cuda = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return {"hostname": socket.gethostname(), "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "cpus_usable": usable, "cuda_devices": cuda}


def trainer_info(trainer: L.Trainer) -> dict[str, Any]:
    """How the run is laid out over processes and devices, and how long it is set to train."""
    return {"world_size": trainer.world_size, "num_nodes": trainer.num_nodes, "devices": trainer.num_devices,
            "accelerator": type(trainer.accelerator).__name__, "strategy": type(trainer.strategy).__name__,
            "precision": str(trainer.precision), "max_epochs": trainer.max_epochs, "max_steps": trainer.max_steps}


def _config_callback(trainer: L.Trainer):
    """LightningCLI's SaveConfigCallback among the trainer's callbacks, or None outside the CLI."""
    from lightning.pytorch.cli import SaveConfigCallback

    return next((cb for cb in trainer.callbacks if isinstance(cb, SaveConfigCallback)), None)


def run_seed(trainer: L.Trainer) -> int | None:
    """The run's global seed: ``seed_everything`` of the CLI config (LightningCLI replaces ``true``
    by the seed it drew), else the seed Lightning last set in this process, else None."""
    callback = _config_callback(trainer)
    if callback is not None:
        seed = callback.config.get("seed_everything")
        return None if isinstance(seed, bool) or seed is None else int(seed)
    seed = os.environ.get("PL_GLOBAL_SEED")
    return int(seed) if seed is not None else None


def config_file(trainer: L.Trainer, log_dir: str | None) -> str | None:
    """Path of the resolved config LightningCLI saves in the log folder, or None when it saves none."""
    callback = _config_callback(trainer)
    if callback is None or not callback.save_to_log_dir or log_dir is None:
        return None
    return str(Path(log_dir) / callback.config_filename)


# ---------------------------------------------------------------------------- data fingerprint


def _jsonable(value: Any) -> Any:
    """``value`` as plain JSON types (tuples as lists, paths and other objects as strings)."""
    return json.loads(json.dumps(value, default=str))


def data_fingerprint(datamodule: L.LightningDataModule | None) -> dict[str, Any] | None:
    """A SHA-256 of what decides the data, with what it covers: the data module's own
    ``fingerprint()`` (see :mod:`matting.data.base`; each data module names what identifies its
    samples). Returns ``{"sha256", "class", "hyperparameters", "files"}``, or None without a data module.
    """
    from matting.data.base import data_fingerprint as fingerprint_of

    return _jsonable(fingerprint_of(datamodule))


# ---------------------------------------------------------------------------- the record


def build_record(trainer: L.Trainer, log_dir: str | None) -> dict[str, Any]:
    """Everything ``run.json`` holds (plain JSON types); see the module docstring."""
    return _jsonable({
        "format": RECORD_FORMAT,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "log_dir": log_dir,
        "config_file": config_file(trainer, log_dir),
        "command": list(sys.argv),
        "code": git_state(PACKAGE_DIR),
        "versions": package_versions(),
        "machine": machine_info(),
        "trainer": trainer_info(trainer),
        "seed": run_seed(trainer),
        "data": data_fingerprint(trainer.datamodule),
    })


def _tensorboard_hyperparameters(trainer: L.Trainer, record: dict) -> dict[str, Any]:
    """The record plus what Lightning logs next (module and data module hyper-parameters).

    TensorBoard's HParams view keeps only the first hparams summary of a run, and this hook runs
    before Lightning logs its own, so the first one must hold both.
    """
    params: dict[str, Any] = {}
    if getattr(trainer, "enable_autolog_hparams", True):
        module, datamodule = trainer.lightning_module, trainer.datamodule
        if datamodule is not None and datamodule._log_hyperparams:
            params.update(datamodule.hparams_initial)
        if module._log_hyperparams:
            params.update(module.hparams_initial)
        params.pop("_class_path", None)
    return {**params, "run": record}


def log_record(trainer: L.Trainer, record: dict) -> None:
    """Pass the record to every logger as the hyper-parameter ``run``."""
    from lightning.pytorch.loggers import TensorBoardLogger

    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(_tensorboard_hyperparameters(trainer, record))
        else:
            logger.log_hyperparams({"run": record})


# ---------------------------------------------------------------------------- prediction grids


def log_grid(trainer: L.Trainer, grid: np.ndarray, caption: str) -> None:
    """Send the grid to the TensorBoard and wandb loggers, if any."""
    from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(GRID_KEY, grid, global_step=trainer.global_step, dataformats="HWC")
        elif isinstance(logger, WandbLogger):
            logger.log_image(key=GRID_KEY, images=[grid], step=trainer.global_step, caption=[caption])


# ---------------------------------------------------------------------------- the callback


class RunRecord(Callback):
    """Writes ``run.json`` at fit start and a prediction grid after every validation epoch.

    Only rank zero writes; the sanity check writes no grid. Grids show the first samples of the
    first validation loader (of rank zero's share under DDP) and need ``validation_step`` to
    return a dict with ``pred_alpha`` (B, 1, H, W); batches need ``image`` and ``alpha`` (batches
    without ``alpha`` get no grid; ``run.json`` is written all the same).

    Args:
        enabled: False writes and logs nothing.
        grid_samples: validation samples per grid (rows); 0 turns grids off.
        tile_size: longest side of a grid tile in pixels (larger samples are shrunk).
    """

    def __init__(self, enabled: bool = True, grid_samples: int = 4, tile_size: int = 256):
        if grid_samples < 0 or tile_size < 1:
            raise MattingInputError(f"grid_samples must be >= 0 and tile_size >= 1, got {grid_samples} and {tile_size}")
        self.enabled = enabled
        self.grid_samples = grid_samples
        self.tile_size = tile_size
        self.log_dir: str | None = None
        self.record: dict[str, Any] | None = None
        self._samples: list[GridSample] = []

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.enabled:
            return
        # Every rank asks: trainer.log_dir is a collective call under DDP.
        self.log_dir = trainer.log_dir or trainer.default_root_dir
        if not trainer.is_global_zero:
            return
        self.record = build_record(trainer, self.log_dir)
        text = json.dumps(self.record, indent=2) + "\n"
        # A killed run leaves either the old file or the whole new one.
        atomic_write(Path(self.log_dir) / RUN_FILE, text, fsync=True)
        log_record(trainer, self.record)

    def _collecting(self, trainer: L.Trainer) -> bool:
        return (self.enabled and self.grid_samples > 0 and self.log_dir is not None and trainer.is_global_zero
                and not trainer.sanity_checking and trainer.state.fn == TrainerFn.FITTING)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._samples = []

    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                                batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if dataloader_idx != 0 or len(self._samples) >= self.grid_samples or not self._collecting(trainer):
            return
        if not isinstance(outputs, dict) or "pred_alpha" not in outputs:
            return  # a module whose validation_step returns no outputs gets no grid
        if not isinstance(batch, dict) or "alpha" not in batch:
            return  # unlabeled photos (SOC): no ground truth to draw or score
        take = min(self.grid_samples - len(self._samples), len(batch["image"]))
        for i in range(take):
            self._samples.append(grid_sample(batch["image"][i], batch["alpha"][i], outputs["pred_alpha"][i],
                                             self.tile_size))

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._samples or not self._collecting(trainer):
            return
        epoch, step = trainer.current_epoch, trainer.global_step
        grid = prediction_grid(self._samples)
        write_png(Path(self.log_dir) / GRID_FOLDER / f"epoch{epoch:03d}-step{step:06d}.png", grid, overwrite=True)
        log_grid(trainer, grid, caption=f"epoch {epoch}, step {step}: input | ground truth | prediction | error")
        self._samples = []
