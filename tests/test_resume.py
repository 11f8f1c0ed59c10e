"""A run killed with SIGKILL and resumed with ``--ckpt_path last`` ends where an uninterrupted run ends.

Each run is a separate ``python -m matting.cli fit`` process (tiny network, 64 px, CPU), so the
kill is a real SIGKILL: no exception handler, no final checkpoint.
"""

from __future__ import annotations

import csv
import json
import signal
import subprocess
from pathlib import Path

import pytest
import torch

from .conftest import run_matting

MAX_STEPS = 12  # 4 batches per epoch: three epochs, the kill lands mid-epoch
RUN_CONFIG = """
trainer:
  max_steps: 12
  max_epochs: -1
  limit_val_batches: null
  val_check_interval: null
  check_val_every_n_epoch: 1
  callbacks:
    - class_path: lightning.pytorch.callbacks.ModelCheckpoint
      init_args: {save_last: true, every_n_train_steps: 1, save_top_k: 0}
data:
  class_path: matting.data.SyntheticDataModule
  init_args: {train_length: 8, val_length: 4, test_length: 2, size: 64, batch_size: 2, num_workers: 0}
"""


def _fit(root: Path, *extra: str, expect_kill: bool = False) -> subprocess.CompletedProcess:
    config = root.parent / "resume_run.yaml"
    config.write_text(RUN_CONFIG)
    proc = run_matting("fit", root, config, *extra)
    if expect_kill:
        assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    else:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _kill_callback(name: str, step: int) -> str:
    return "--trainer.callbacks+=" + json.dumps({"class_path": f"tests.fault_probe.{name}", "init_args": {"step": step}})


def _last(root: Path) -> Path:
    found = sorted(root.rglob("last.ckpt"), key=lambda p: p.stat().st_mtime_ns)
    assert found, f"no last.ckpt under {root}"
    return found[-1]


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def _final_val(root: Path) -> dict[str, float]:
    """The last logged validation metrics of the newest log version under ``root``."""
    newest = max(root.rglob("metrics.csv"), key=lambda p: p.stat().st_mtime_ns)
    rows = [r for r in csv.DictReader(newest.open()) if r.get("val/sad")]
    assert rows, newest
    return {k: float(v) for k, v in rows[-1].items() if k.startswith("val/") and v}


def _assert_same_end(resumed: Path, reference: Path) -> None:
    a, b = _load(_last(resumed)), _load(_last(reference))
    assert a["global_step"] == b["global_step"] == MAX_STEPS
    for key, tensor in b["state_dict"].items():
        torch.testing.assert_close(a["state_dict"][key], tensor, rtol=1e-5, atol=1e-6, msg=key)
    val_a, val_b = _final_val(resumed), _final_val(reference)
    assert val_a.keys() == val_b.keys() and "val/sad" in val_a
    for key in val_b:
        assert val_a[key] == pytest.approx(val_b[key], rel=1e-4, abs=1e-6), key


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("uninterrupted") / "run"
    _fit(root)
    return root


@pytest.mark.slow
def test_sigkill_then_resume_ends_like_an_uninterrupted_run(uninterrupted, tmp_path):
    root = tmp_path / "run"
    _fit(root, _kill_callback("KillAtStep", 6), expect_kill=True)
    killed_at = _load(_last(root))["global_step"]
    assert 0 < killed_at < MAX_STEPS  # the kill landed partway, mid-epoch (4 batches per epoch)
    proc = _fit(root, "--ckpt_path=last")
    assert "resuming from" in proc.stdout
    _assert_same_end(root, uninterrupted)


@pytest.mark.slow
def test_kill_during_a_checkpoint_write_keeps_the_previous_checkpoint(uninterrupted, tmp_path):
    root = tmp_path / "run"
    _fit(root, _kill_callback("KillMidWrite", 4), expect_kill=True)
    last = _last(root)
    partial = list(last.parent.glob(".last.ckpt.*.partial"))
    assert partial, "the kill should have landed while last.ckpt was being rewritten"
    assert _load(last)["global_step"] == 4  # the write for step 5 died: step 4's file is intact
    _fit(root, "--ckpt_path=last")
    assert not list(root.rglob("*.partial")), "the resumed run removes the dead writer's temporary file"
    _assert_same_end(root, uninterrupted)
