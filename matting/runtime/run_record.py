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
  ``val/sad``). The grid is also logged to TensorBoard and wandb when those loggers are used.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import cv2
import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn

from matting.io.errors import MattingInputError
from matting.io.images import write_png

__all__ = [
    "GridSample",
    "RunRecord",
    "data_fingerprint",
    "git_state",
    "grid_sample",
    "package_versions",
    "prediction_grid",
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
# Data-module arguments that change how samples are loaded, not which samples there are.
LOADER_KEYS = frozenset({"num_workers", "worker_start_method"})
# Where a manifest-backed dataset lives; its manifests' bytes identify the content instead.
LOCATION_KEYS = frozenset({"root", "paths", "manifests"})
# The procedural generator has no version constant: its source files stand for it.
GENERATOR_SOURCES = ("data/synthetic/dataset.py", "data/synthetic/procedural.py")
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


def _sha256_file(path: Path) -> str | None:
    """SHA-256 of a file's bytes, or None when it cannot be read."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _jsonable(value: Any) -> Any:
    """``value`` as plain JSON types (tuples as lists, paths and other objects as strings)."""
    return json.loads(json.dumps(value, default=str))


def _data_hyperparameters(datamodule: L.LightningDataModule) -> dict[str, Any]:
    """The data module's saved init arguments, without LightningCLI's bookkeeping keys."""
    hparams = dict(getattr(datamodule, "hparams", {}) or {})
    return {k: v for k, v in hparams.items() if not k.startswith("_")}


def _manifest_files(datamodule) -> dict[str, Path]:
    """``"<dataset>/<split>.jsonl"`` -> its file, for each split a MatteDataModule is configured with."""
    from matting.data.matte_datamodule import parse_split

    hp = datamodule.hparams
    files = {}
    for spec, purpose in ((hp.train, "train"), (hp.backgrounds, "train"), (hp.val, "eval"), (hp.test, "eval")):
        if spec is None:
            continue
        try:
            dataset, split = parse_split(spec, purpose)
            files[f"{dataset}/{split}.jsonl"] = datamodule.manifest_dir(dataset) / f"{split}.jsonl"
        except MattingInputError:
            files[spec] = None  # unknown dataset or no data root: recorded as unreadable
    return files


def data_fingerprint(datamodule: L.LightningDataModule | None) -> dict[str, Any] | None:
    """A SHA-256 of what decides the data, with what it covers.

    - ``SyntheticDataModule``: its arguments and the generator's source files.
    - ``MatteDataModule``: its arguments (minus where the data lives) and the augmentation
      recipe, and the bytes of the split manifests it reads (``<manifest dir>/<split>.jsonl``).
    - any other data module: its saved hyper-parameters.

    Loader settings (``num_workers``, ``worker_start_method``) are left out: they do not change
    any sample. Returns ``{"sha256", "class", "hyperparameters", "files"}`` (files: name ->
    {"path", "sha256"}, sha256 None when unreadable), or None without a data module.
    """
    if datamodule is None:
        return None
    from matting.data import MatteDataModule, SyntheticDataModule

    hyperparameters = {k: v for k, v in _data_hyperparameters(datamodule).items() if k not in LOADER_KEYS}
    files: dict[str, Path | None] = {}
    if isinstance(datamodule, SyntheticDataModule):
        files = {f"matting/{name}": PACKAGE_DIR / name for name in GENERATOR_SOURCES}
    elif isinstance(datamodule, MatteDataModule):
        hyperparameters = {k: v for k, v in hyperparameters.items() if k not in LOCATION_KEYS}
        hyperparameters["augment"] = vars(datamodule.augment)
        files = _manifest_files(datamodule)
    hashes = {name: None if path is None else _sha256_file(Path(path)) for name, path in files.items()}
    cls = type(datamodule)
    identity = {"class": f"{cls.__module__}.{cls.__qualname__}", "hyperparameters": hyperparameters, "files": hashes}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()
    return _jsonable({"sha256": digest, **identity,
                      "files": {name: {"path": None if files[name] is None else str(files[name]), "sha256": hashes[name]}
                                for name in files}})


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


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, so a killed run
    leaves either the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


@dataclass
class GridSample:
    """One validation sample, shrunk for a grid row.

    Attributes:
        image: (h, w, 3) float32 RGB in [0, 1].
        alpha, pred: (h, w) float32 in [0, 1], ground truth and prediction.
        error: (h, w) float32 in [0, 1], |pred - gt| at full resolution, then shrunk.
        sad: SAD of the full-resolution prediction (/1000), scored as ``val/sad`` scores it.
    """

    image: np.ndarray
    alpha: np.ndarray
    pred: np.ndarray
    error: np.ndarray
    sad: float


def _shrink(array: np.ndarray, max_side: int) -> np.ndarray:
    """(H, W[, C]) -> at most ``max_side`` on its longer side, aspect kept (area averaging)."""
    h, w = array.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return array
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(array, size, interpolation=cv2.INTER_AREA)


def _to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """Any tensor (bf16 included) -> float32 numpy on the CPU."""
    return tensor.detach().float().cpu().numpy()


def grid_sample(image: torch.Tensor, alpha: torch.Tensor, pred: torch.Tensor, max_side: int = 256) -> GridSample:
    """One row of a prediction grid from a sample's tensors.

    Args:
        image: (3, H, W) RGB in [0, 1].
        alpha, pred: (1, H, W) or (H, W) in [0, 1], ground truth and prediction.
        max_side: longest side of the shrunk tiles, in pixels.
    """
    from matting.metrics import quantize_8bit, sad

    image_np = np.clip(_to_numpy(image).transpose(1, 2, 0), 0, 1)
    alpha_np = np.clip(_to_numpy(alpha).reshape(image_np.shape[:2]), 0, 1)
    pred_np = np.clip(_to_numpy(pred).reshape(image_np.shape[:2]), 0, 1)
    error = np.abs(pred_np - alpha_np)
    shrunk = [_shrink(np.ascontiguousarray(a), max_side) for a in (image_np, alpha_np, pred_np, error)]
    return GridSample(*shrunk, sad=sad(quantize_8bit(pred_np), alpha_np))


HEADER_PX = 20  # column captions above the grid
LABEL_PX = 16  # sample number and SAD above each row
CAPTIONS = ("input", "ground truth", "prediction", "|pred - gt|")
STRIP_GREY = 235  # background of the caption and label strips
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _text_scale(texts: tuple[str, ...], max_width: int, max_scale: float) -> float:
    """The largest font scale up to ``max_scale`` at which every text fits ``max_width`` pixels."""
    widest = max(cv2.getTextSize(text, FONT, max_scale, 1)[0][0] for text in texts)
    return max_scale * min(1.0, (max_width - 4) / max(widest, 1))


def _put_text(canvas: np.ndarray, text: str, x: int, baseline: int, scale: float) -> None:
    """Black text with its baseline's left end at (x, baseline)."""
    cv2.putText(canvas, text, (x, baseline), FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """(h, w) or (h, w, 3) in [0, 1] -> (h, w, 3) uint8 (grey maps repeated over the channels)."""
    levels = np.rint(np.clip(array, 0, 1) * 255).astype(np.uint8)
    return levels if levels.ndim == 3 else np.repeat(levels[..., None], 3, axis=2)


def _error_colours(error: np.ndarray) -> np.ndarray:
    """(h, w) error in [0, 1] -> (h, w, 3) uint8 RGB, black = exact, bright yellow = off by 1."""
    levels = np.clip(np.rint(error * 255), 0, 255).astype(np.uint8)
    return cv2.applyColorMap(levels, cv2.COLORMAP_INFERNO)[..., ::-1]


def prediction_grid(samples: list[GridSample]) -> np.ndarray:
    """Input | ground truth | prediction | error map, one row per sample.

    Every tile sits top-left in a cell as large as the largest tile. Layout: a ``HEADER_PX``
    caption strip, then per sample a ``LABEL_PX`` strip (``#i  SAD x.xxx``) above its tiles.

    Returns:
        (HEADER_PX + N * (LABEL_PX + cell_h), 4 * cell_w, 3) uint8 RGB.
    """
    cell_h = max(s.image.shape[0] for s in samples)
    cell_w = max(s.image.shape[1] for s in samples)
    grid = np.full((HEADER_PX + len(samples) * (LABEL_PX + cell_h), 4 * cell_w, 3), STRIP_GREY, np.uint8)
    caption_scale = _text_scale(CAPTIONS, cell_w, 0.45)
    for column, caption in enumerate(CAPTIONS):
        _put_text(grid, caption, column * cell_w + 2, HEADER_PX - 6, caption_scale)
    for row, sample in enumerate(samples):
        top = HEADER_PX + row * (LABEL_PX + cell_h)
        label = f"#{row}  SAD {sample.sad:.3f}"
        _put_text(grid, label, 2, top + LABEL_PX - 4, _text_scale((label,), 4 * cell_w, 0.4))
        top += LABEL_PX
        grid[top:top + cell_h, :] = 0  # cells larger than a tile show black around it
        tiles = (_to_uint8(sample.image), _to_uint8(sample.alpha), _to_uint8(sample.pred), _error_colours(sample.error))
        for column, tile in enumerate(tiles):
            h, w = tile.shape[:2]
            grid[top:top + h, column * cell_w:column * cell_w + w] = tile
    return grid


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
    return a dict with ``pred_alpha`` (B, 1, H, W); batches need ``image`` and ``alpha``.

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
        _write_atomic(Path(self.log_dir) / RUN_FILE, text.encode())
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
