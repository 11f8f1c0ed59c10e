"""SIGTERM to ``matting fit`` (a scheduler's notice): a checkpoint at the current step, a non-zero exit,
and ``--ckpt_path last`` resumes from that step to the end an uninterrupted run reaches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import run_matting
from .test_resume import MAX_STEPS, RUN_CONFIG, _assert_same_end, _last, _load

# Checkpoints only at epoch ends (4 steps per epoch): a SIGTERM at step 6 finds last.ckpt at step 4.
EPOCH_CHECKPOINTS = RUN_CONFIG.replace("{save_last: true, every_n_train_steps: 1, save_top_k: 0}",
                                       "{save_last: true, save_top_k: 0}")


def _fit(root: Path, *extra: str):
    config = root.parent / "sigterm_run.yaml"
    config.write_text(EPOCH_CHECKPOINTS)
    return run_matting("fit", root, config, *extra)


@pytest.mark.slow
def test_sigterm_saves_the_current_step_exits_non_zero_and_resumes_exactly(tmp_path):
    reference = tmp_path / "reference"
    assert _fit(reference).returncode == 0
    root = tmp_path / "run"
    term = json.dumps({"class_path": "tests.fault_probe.TermAtStep", "init_args": {"step": 6}})
    proc = _fit(root, f"--trainer.callbacks+={term}")
    assert proc.returncode == 143, proc.stderr[-3000:]
    last = _last(root)
    assert _load(last)["global_step"] == 6
    lines = proc.stderr.strip().splitlines()
    assert lines[-1] == (f"matting fit: stopped by SIGTERM at step 6; saved {last}: resume with the same command "
                         "and --ckpt_path last"), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    resumed = _fit(root, "--ckpt_path=last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {last}" in resumed.stdout
    _assert_same_end(root, reference)
    assert MAX_STEPS == 12
