"""Tiny checkpoints and image folders for the tests; ``conftest.py`` makes each once per session.

Two kinds of checkpoint:

- ``make_tiny_checkpoint``: a real ``matting fit`` run of the smoke config (``test_resnet``, 64 px,
  2 steps unless told otherwise), saved by Lightning's Trainer (fixtures ``tiny_fit``, ``tiny_ckpt``);
- ``write_checkpoint``: the layout Lightning writes for a LightningCLI-built MattingModule, with the
  random weights of ``tiny_net(seed)`` (fixture ``net_ckpt``): no training, so any seed is cheap.
"""

from __future__ import annotations

from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
SMOKE = ["-c", str(REPO / "configs" / "default.yaml"), "-c", str(REPO / "configs" / "smoke.yaml")]

# The network config exactly as LightningCLI stores it in a checkpoint's hyper_parameters (tiny widths).
NET_CONFIG = {
    "class_path": "matting.models.MattingNet",
    "init_args": {
        "encoder": {"class_path": "matting.models.TimmEncoder", "init_args": {"name": "test_resnet", "weights_file": None, "stem_channels": 8}},
        "semantic_head": {"class_path": "matting.models.SemanticHead", "init_args": {"hidden_s16": 16, "hidden_s8": 8}},
        "detail_head": {"class_path": "matting.models.DetailHead", "init_args": {"hidden": 8}},
        "fusion": {"class_path": "matting.models.ModnetFusion", "init_args": {"hidden": 8}},
    },
}


def smoke_cli(folder: Path, *extra: str):
    """The smoke config's LightningCLI, built (not run), logging nowhere and writing under ``folder`` only."""
    from matting.runtime.lightning_cli import build_cli

    return build_cli(SMOKE + [f"--trainer.default_root_dir={folder}", "--trainer.logger=false",
                              "--trainer.enable_checkpointing=false", "--trainer.callbacks=[]", *extra], run=False)


def make_tiny_checkpoint(folder: Path, *extra: str) -> Path:
    """Train the smoke config's `test_resnet` network for 2 steps at 64 px and save its checkpoint."""
    cli = smoke_cli(folder, *extra)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    path = folder / "tiny.ckpt"
    cli.trainer.save_checkpoint(path)
    return path


def tiny_net(seed: int = 0) -> torch.nn.Module:
    """The NET_CONFIG network with random weights and non-trivial BatchNorm statistics (so outputs vary)."""
    from matting.inference.loading import build_net

    torch.manual_seed(seed)
    net = build_net(NET_CONFIG)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
    return net.eval()


def write_checkpoint(path: Path, net: torch.nn.Module | None = None, config: dict | None = None) -> Path:
    """A checkpoint in the layout Lightning writes for a MattingModule trained through LightningCLI."""
    net = net or tiny_net()
    torch.save(
        {
            "epoch": 0,
            "global_step": 1,
            "pytorch-lightning_version": "2.6.0",
            "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
            "hyper_parameters": {
                "net": config or NET_CONFIG,
                "loss": {"class_path": "matting.losses.MattingLoss", "init_args": {"semantic": 10.0}},
                "optimizer": {"class_path": "torch.optim.AdamW", "init_args": {"lr": 0.001}},
                "scheduler": None,
                "channels_last": True,
                "_instantiator": "lightning.pytorch.cli.instantiate_module",
            },
        },
        path,
    )
    return path


def write_pairs(folder: Path, count: int = 6, size: int = 64) -> Path:
    """``folder/{image,alpha,fg,bg}/train_0000<i>.png``: ``count`` synthetic pairs of ``size`` px."""
    from matting.data.synthetic.dataset import SyntheticMattingDataset, write_split

    return write_split(SyntheticMattingDataset("train", count, size, seed=0), folder)


def state_of(path: Path) -> dict[str, torch.Tensor]:
    """The network weights of a checkpoint (without the ``net.`` prefix)."""
    from matting.io.checkpoints import read_checkpoint

    return read_checkpoint(path).net_state()
