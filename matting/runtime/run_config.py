"""The generated part of a command's training run (``matting finetune``, ``matting adapt``).

Such a command is LightningCLI's ``fit`` on generated arguments: the repository's YAML defaults
(:func:`config_dir`), a YAML file in the run folder naming the checkpoint's network and its weights
(:func:`write_checkpoint_config`), and the run folder's trainer arguments (:func:`run_folder_arguments`),
so that its run folder has the layout of a ``matting fit`` run: ``logs/version_0/`` with
``config.yaml``, ``run.json``, ``metrics.csv`` and ``checkpoints/``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from matting.io.errors import MattingInputError

LOG_NAME = "logs"  # the CSV logger's folder in a run folder: logs/version_0/


def config_dir(required: str) -> Path:
    """The repository's ``configs/`` folder (next to the package; else ``./configs``), which must hold ``required``."""
    for candidate in (Path(__file__).resolve().parents[2] / "configs", Path("configs")):
        if (candidate / required).is_file():
            return candidate
    raise MattingInputError(f"configs/{required} not found: run from the repository (or an editable install)")


def write_checkpoint_config(path: Path, ckpt: Path, net_config: dict, loss_config: dict | None,
                            command: str = "matting finetune") -> None:
    """A ``-c`` file with the checkpoint's network (and loss) under ``model`` and ``model.init_weights: CKPT``."""
    # Imported here: matting.io.checkpoints loads torch, which a command's --help does not need.
    from matting.io.checkpoints import without_weight_files

    # Pretrained backbones named at training time: init_weights replaces those weights anyway.
    model: dict[str, Any] = {"net": without_weight_files(net_config)}
    if loss_config is not None:
        model["loss"] = loss_config
    model["init_weights"] = str(ckpt)
    header = f"# Written by `{command}`: the network and loss stored in {ckpt}, whose weights start the run.\n"
    path.write_text(header + yaml.safe_dump({"model": model}, sort_keys=False))


def run_folder_arguments(out: Path) -> list[str]:
    """LightningCLI arguments that put a run's logs, config.yaml, run.json and checkpoints under ``out/logs/version_0/``."""
    logger = {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(out), "name": LOG_NAME}}
    return [f"--trainer.default_root_dir={out}", f"--trainer.logger={json.dumps(logger)}"]
