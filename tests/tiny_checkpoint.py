"""A tiny `matting fit` checkpoint and tiny image folders, made by the tests that need them."""

from __future__ import annotations

from pathlib import Path

import torch

from matting.data.synthetic.dataset import SyntheticMattingDataset, write_split
from matting.runtime.lightning_cli import build_cli

REPO = Path(__file__).resolve().parents[1]
SMOKE = ["-c", str(REPO / "configs" / "default.yaml"), "-c", str(REPO / "configs" / "smoke.yaml")]


def make_tiny_checkpoint(folder: Path, *extra: str) -> Path:
    """Train the smoke config's `test_resnet` network for 2 steps at 64 px and save its checkpoint."""
    cli = build_cli(SMOKE + [f"--trainer.default_root_dir={folder}", "--trainer.logger=false",
                             "--trainer.enable_checkpointing=false", "--trainer.callbacks=[]", *extra], run=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    path = folder / "tiny.ckpt"
    cli.trainer.save_checkpoint(path)
    return path


def write_pairs(folder: Path, count: int = 6, size: int = 64) -> Path:
    """``folder/{image,alpha,fg,bg}/train_0000<i>.png``: ``count`` synthetic pairs of ``size`` px."""
    return write_split(SyntheticMattingDataset("train", count, size, seed=0), folder)


def state_of(path: Path) -> dict[str, torch.Tensor]:
    """The network weights of a checkpoint (without the ``net.`` prefix)."""
    from matting.io.checkpoints import load_net_parts

    return load_net_parts(path)[1]
