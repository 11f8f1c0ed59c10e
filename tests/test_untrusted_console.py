"""A clean console for fit, resume and finetune: where the results are, and no warning that contradicts
the exact resume."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO, run_matting, subprocess_env
from .tiny_checkpoint import write_pairs

pytestmark = pytest.mark.slow  # every test runs `matting` in a fresh process

# 4 batches per epoch: a checkpoint at step 3 is mid-epoch, where Lightning warns of a loader that is not resumable.
RUN_CONFIG = """
trainer:
  max_epochs: -1
  callbacks:
    - class_path: lightning.pytorch.callbacks.ModelCheckpoint
      init_args: {save_last: true, every_n_train_steps: 1, save_top_k: 1, monitor: train/loss}
data:
  class_path: matting.data.SyntheticDataModule
  init_args: {train_length: 8, val_length: 2, test_length: 2, size: 64, batch_size: 2, num_workers: 0}
"""


def test_fit_says_where_its_results_are_and_resume_is_quiet(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(RUN_CONFIG)
    root = tmp_path / "run"
    first = run_matting("fit", root, config, "--trainer.max_steps=3")
    assert first.returncode == 0, first.stderr[-3000:]
    lines = first.stdout.splitlines()
    folder = next(line for line in lines if line.startswith("run folder: ")).removeprefix("run folder: ")
    assert Path(folder).is_dir() and Path(folder).is_relative_to(root)
    best = next(line for line in lines if line.strip().startswith("best checkpoint: ")).split(": ", 1)[1]
    assert Path(best).is_file() and Path(best).is_relative_to(Path(folder))
    resumed = run_matting("fit", root, config, "--trainer.max_steps=5", "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    output = resumed.stdout + resumed.stderr
    assert "not resumable" not in output and "dirpath has changed" not in output, output[-3000:]
    assert "the ranking of best checkpoints starts afresh" in resumed.stdout


def test_finetune_writes_no_progress_bar_to_a_redirected_stdout(tiny_ckpt, tmp_path):
    pairs = write_pairs(tmp_path / "pairs", count=6, size=64)
    cmd = [sys.executable, "-m", "matting.cli", "finetune", str(tiny_ckpt), "--data", str(pairs), "--out",
           str(tmp_path / "ft"), "--size", "32", "--batch-size", "2", "--steps", "2", "--val-every", "2",
           "--data.init_args.num_workers=0"]
    proc = subprocess.run(cmd, cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "\r" not in proc.stdout and "it/s" not in proc.stdout, proc.stdout[-2000:]
    assert "best checkpoint: " in proc.stdout
