"""tools/gpu_check.py end to end on the CPU at tiny sizes (--dry-run): the tool itself works where no GPU is."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tools import gpu_check

from .conftest import REPO, subprocess_env


@pytest.mark.slow
def test_the_dry_run_writes_the_table_and_the_json(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "gpu_check.py"), "--out", str(out), "--dry-run"],
                          cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "gpu_check.json").read_text())
    assert result["dry_run"] and result["tests"]["returncode"] in (0, 5) and "skipped" in result["tests"]["summary"]
    assert {(r["member"], r["feed"]) for r in result["train"]} == {(m, f) for m in gpu_check.MEMBERS for f in ("loader", "memory")}
    assert all(r["crops_per_s"] > 0 for r in result["train"])
    assert {(r["refiner"], r["precision"]) for r in result["inference"]} == {(k, p) for k in gpu_check.REFINERS for p in gpu_check.PRECISIONS}
    table = (out / "gpu_check.md").read_text()
    assert proc.stdout.rstrip().endswith(table.rstrip())  # the table is printed last
    assert "| gfm_r34_tt | memory |" in table and "| patch | 72x128 |" in table


def test_without_cuda_the_full_check_refuses_and_points_to_the_dry_run(monkeypatch, capsys):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.pick_device(dry_run=False) is None and "--dry-run" in capsys.readouterr().err
    assert gpu_check.pick_device(dry_run=True) == "cpu"
