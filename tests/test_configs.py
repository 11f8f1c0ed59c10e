"""Every YAML under configs/ and experiments/ parses, instantiates, and trains one step."""

from pathlib import Path

import pytest
import torch

from matting.cli import build_cli

from .conftest import REPO

BASE = REPO / "configs" / "default.yaml"
SMOKE = REPO / "configs" / "smoke.yaml"
CONFIGS = sorted(p for d in ("configs", "experiments") for p in (REPO / d).rglob("*.yaml"))


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: str(p.relative_to(REPO)))
def test_config_instantiates_and_trains_one_step(config: Path, tmp_path):
    files = [BASE] + ([config] if config not in (BASE, SMOKE) else []) + [SMOKE]
    args = [a for f in files for a in ("-c", str(f))]
    cli = build_cli(args + [f"--trainer.default_root_dir={tmp_path}", "--trainer.logger=false",
                            "--trainer.enable_checkpointing=false", "--trainer.callbacks=[]",
                            "--trainer.max_steps=1", "--trainer.limit_val_batches=0"], run=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.trainer.global_step == 1
    assert all(torch.isfinite(p).all() for p in cli.model.parameters())
