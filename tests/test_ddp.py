"""Two-process DDP on CPU (gloo), the way Lightning runs it on GPUs: data sharded, metrics reduced."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest
import torch

from .conftest import REPO, run_matting

RUN_CONFIG = """
trainer:
  accelerator: cpu
  max_steps: 4
  max_epochs: -1
  limit_val_batches: null
  val_check_interval: null
  check_val_every_n_epoch: 1
  callbacks:
    - class_path: lightning.pytorch.callbacks.ModelCheckpoint
      init_args: {save_last: true, save_top_k: 0}
data:
  class_path: matting.data.SyntheticDataModule
  init_args: {train_length: 8, val_length: 6, test_length: 2, size: 64, batch_size: 2, num_workers: 0}
"""
TRAIN_NAMES = {f"train_{i:05d}" for i in range(8)}
VAL_NAMES = {f"val_{i:05d}" for i in range(6)}


def _run(tmp_path: Path, command: str, *extra: str) -> subprocess.CompletedProcess:
    config = tmp_path / "ddp_run.yaml"
    config.write_text(RUN_CONFIG)
    proc = run_matting(command, tmp_path / command, config, *extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _last_val(root: Path) -> dict[str, float]:
    rows = [r for p in root.rglob("metrics.csv") for r in csv.DictReader(p.open()) if r.get("val/sad")]
    assert rows, f"no validation metrics under {root}"
    return {k: float(v) for k, v in rows[-1].items() if k.startswith("val/") and v}


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("ddp")
    probe = {"class_path": "tests.fault_probe.RecordSamples", "init_args": {"folder": str(tmp / "seen")}}
    # The shipped multi-GPU config, on two CPU processes (gloo); SyncBatchNorm needs CUDA.
    _run(tmp, "fit", "-c", str(REPO / "configs" / "scale" / "ddp.yaml"), "--trainer.devices=2",
         "--trainer.accelerator=cpu", "--trainer.sync_batchnorm=false", "--trainer.precision=32-true",
         "--trainer.callbacks+=" + json.dumps(probe))
    return tmp


def _seen(ddp_run: Path, rank: int) -> dict:
    return json.loads((ddp_run / "seen" / f"rank{rank}.json").read_text())


@pytest.mark.slow
def test_each_rank_trains_on_its_own_half_of_every_epoch(ddp_run):
    ranks = [_seen(ddp_run, r) for r in (0, 1)]
    for epoch in (0, 1):  # 8 samples, batch 2, 2 ranks: 2 steps per epoch, 4 steps in all
        halves = [{n for e, names in seen["train"] if e == epoch for n in names} for seen in ranks]
        assert len(halves[0]) == len(halves[1]) == 4
        assert not halves[0] & halves[1], f"epoch {epoch}: both ranks trained on {halves[0] & halves[1]}"
        assert halves[0] | halves[1] == TRAIN_NAMES
    orders = [[n for e, names in ranks[0]["train"] if e == epoch for n in names] for epoch in (0, 1)]
    assert orders[0] != orders[1], "each epoch is shuffled anew"


@pytest.mark.slow
def test_validation_is_sharded_and_its_metrics_are_reduced_over_all_samples(ddp_run, tmp_path):
    halves = [{n for _, names in _seen(ddp_run, r)["val"] for n in names} for r in (0, 1)]
    assert not halves[0] & halves[1] and halves[0] | halves[1] == VAL_NAMES
    ddp_metrics = _last_val(ddp_run / "fit")
    last = next((ddp_run / "fit").rglob("last.ckpt"))
    assert torch.load(last, map_location="cpu", weights_only=False)["global_step"] == 4
    # One process scoring the same weights on the whole split gives the same numbers only if
    # the two ranks' sums were added (rank 0 alone saw half the images).
    _run(tmp_path, "validate", f"--ckpt_path={last}")
    single = _last_val(tmp_path / "validate")
    for key in ("val/sad", "val/mse", "val/grad", "val/conn", "val/iou"):
        assert ddp_metrics[key] == pytest.approx(single[key], rel=1e-5, abs=1e-7), key
