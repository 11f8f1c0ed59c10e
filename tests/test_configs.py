"""Every YAML under configs/ and experiments/ parses, instantiates, and trains one step."""

import os
from pathlib import Path

import pytest
import torch
import yaml

from matting.runtime.lightning_cli import build_cli

from .conftest import REPO

BASE = REPO / "configs" / "default.yaml"
SMOKE = REPO / "configs" / "smoke.yaml"
# Data configs point at datasets on disk; tests/test_data_configs.py trains on each layout, built in tmp.
# The real-foreground study's files are deltas composed per arm: tests/test_study_cv.py trains
# each composition one step on a data root it builds.
# Network specs (configs/nets/) are values of model.net, not -c files: tests/test_default_network.py builds them.
NOT_ALONE = (REPO / "configs" / "data", REPO / "configs" / "nets", REPO / "experiments" / "real_foregrounds")
# A study's cv.yaml describes its real-photo stage, not a LightningCLI config: tests/test_study_cv.py reads them.
CONFIGS = sorted(p for d in ("configs", "experiments") for p in (REPO / d).rglob("*.yaml")
                 if not any(folder in p.parents for folder in NOT_ALONE) and p.name != "cv.yaml")


def smoke_for(config: Path, tmp_path: Path) -> Path:
    """smoke.yaml, without its encoder swap when ``config`` replaces MattingNet by a network that
    has no encoder (the segmentation baselines FCDenseNet, PatchClassifier), and with the band
    drawn from the ground truth when ``config`` (a recipe with its data) takes the band from the
    data pipeline's trimap, which smoke's synthetic data does not make."""
    model = (yaml.safe_load(config.read_text()) or {}).get("model") or {}
    net = model.get("net") or {}
    if isinstance(net, str):  # a network spec file (configs/nets/), relative to the config
        net = yaml.safe_load((config.parent / net).read_text())
    own_net = net.get("class_path", "matting.models.MattingNet") != "matting.models.MattingNet"
    pipeline_band = model.get("band") == "pipeline"
    if not (own_net or pipeline_band):
        return SMOKE
    smoke = yaml.safe_load(SMOKE.read_text())
    if own_net:
        del smoke["model"]["net"]
    if pipeline_band:
        smoke["model"]["band"] = "random"
    path = tmp_path / "smoke_for_config.yaml"
    path.write_text(yaml.safe_dump(smoke))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: str(p.relative_to(REPO)))
def test_config_instantiates_and_trains_one_step(config: Path, tmp_path):
    files = [BASE] + ([config] if config not in (BASE, SMOKE) else []) + [smoke_for(config, tmp_path)]
    args = [a for f in files for a in ("-c", str(f))]
    if (REPO / "configs" / "scale") in config.parents and not torch.cuda.is_available():
        args += ["--trainer.sync_batchnorm=false"]  # SyncBatchNorm needs CUDA; the rest runs on CPU
    cli = build_cli(args + [f"--trainer.default_root_dir={tmp_path}", "--trainer.logger=false",
                            "--trainer.enable_checkpointing=false", "--trainer.callbacks=[]",
                            "--trainer.max_steps=1", "--trainer.limit_val_batches=0"], run=False)
    environ = dict(os.environ)
    try:
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    finally:
        if torch.distributed.is_initialized():  # configs/scale/ddp.yaml: a one-process group on CPU
            torch.distributed.destroy_process_group()
        os.environ.clear()  # and the rank variables DDP set for it
        os.environ.update(environ)
    assert cli.trainer.global_step == 1
    assert all(torch.isfinite(p).all() for p in cli.model.parameters())
