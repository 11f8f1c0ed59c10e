"""Checkpoint writes: a full disk leaves the previous checkpoint intact and stops with a clear error."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest
import torch

from matting.cli import main
from matting.io.errors import CheckpointWriteError
from matting.runtime import checkpoint_io
from matting.runtime.checkpoint_io import (
    AtomicCheckpointIO,
    atomic_write_bytes,
    remove_stale_temps,
)

from .conftest import REPO


def _disk_full_after(monkeypatch, good_writes: int) -> None:
    """Every checkpoint write after the first ``good_writes`` fails like a full disk, halfway through."""
    calls = {"n": 0}

    def write(f, data):
        calls["n"] += 1
        if calls["n"] > good_writes:
            f.write(bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        f.write(data)

    monkeypatch.setattr(checkpoint_io, "write_all", write)


def test_full_disk_keeps_the_previous_file_and_names_the_path(tmp_path, monkeypatch):
    target = tmp_path / "last.ckpt"
    atomic_write_bytes(target, b"previous checkpoint")
    _disk_full_after(monkeypatch, good_writes=0)
    with pytest.raises(CheckpointWriteError, match=r"last\.ckpt: No space left on device.*unchanged") as info:
        atomic_write_bytes(target, b"new checkpoint" * 1000)
    assert info.value.errno == errno.ENOSPC
    assert target.read_bytes() == b"previous checkpoint"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # no temporary file left


def test_checkpoint_io_round_trip(tmp_path):
    io = AtomicCheckpointIO()
    state = {"state_dict": {"w": torch.arange(6.0)}, "global_step": 3}
    io.save_checkpoint(state, tmp_path / "sub" / "a.ckpt")
    loaded = io.load_checkpoint(tmp_path / "sub" / "a.ckpt")
    assert loaded["global_step"] == 3 and torch.equal(loaded["state_dict"]["w"], state["state_dict"]["w"])


@pytest.mark.slow
def test_only_temporary_files_of_dead_writers_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".last.ckpt.{dead_pid}.partial"
    live = tmp_path / f".last.ckpt.{os.getpid()}.partial"
    other = tmp_path / "notes.partial"
    for p in (stale, live, other):
        p.write_bytes(b"x")
    remove_stale_temps(tmp_path)
    assert not stale.exists() and live.exists() and other.exists()


@pytest.mark.slow
def test_fit_on_a_full_disk_exits_with_an_error_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    _disk_full_after(monkeypatch, good_writes=1)
    code = main(["fit", "-c", str(REPO / "configs" / "default.yaml"), "-c", str(REPO / "configs" / "smoke.yaml"),
                 f"--trainer.default_root_dir={tmp_path}", "--trainer.logger=false", "--trainer.max_steps=3",
                 "--trainer.callbacks=[{class_path: lightning.pytorch.callbacks.ModelCheckpoint, "
                 "init_args: {save_last: true, every_n_train_steps: 1, save_top_k: 0}}]"])
    assert code == 1
    err = capsys.readouterr().err
    assert "matting: error: could not write checkpoint" in err and "No space left on device" in err
    last = next(tmp_path.rglob("last.ckpt"))
    assert torch.load(last, map_location="cpu", weights_only=False)["global_step"] == 1
    assert not list(tmp_path.rglob("*.partial"))
