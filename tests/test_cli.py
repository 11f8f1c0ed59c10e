"""The ``matting`` command end to end: fit through LightningCLI, bad input, the demo job."""

import json
import subprocess
import sys

import pytest
import torch

from matting.cli import main

from .conftest import REPO, subprocess_env

CFG = ["-c", str(REPO / "configs" / "default.yaml"), "-c", str(REPO / "configs" / "smoke.yaml")]


@pytest.mark.slow
def test_fit_writes_checkpoints_config_and_log(tmp_path):
    logger = {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(tmp_path), "name": "logs"}}
    assert main(["fit", *CFG, f"--trainer.default_root_dir={tmp_path}", f"--trainer.logger={json.dumps(logger)}"]) == 0
    run = tmp_path / "logs" / "version_0"
    assert (run / "config.yaml").is_file()
    assert "test_resnet" in (run / "config.yaml").read_text()
    metrics = (run / "metrics.csv").read_text()
    assert "val/sad" in metrics and "train/loss" in metrics and "val/iou" in metrics
    ckpts = {p.name for p in (run / "checkpoints").iterdir()}
    assert "last.ckpt" in ckpts and any(n.startswith("best-") for n in ckpts)
    # The checkpoint rebuilds the injected network on its own.
    from matting.module import MattingModule

    model = MattingModule.load_from_checkpoint(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert model(torch.rand(1, 3, 64, 64))["pred_alpha"].shape == (1, 1, 64, 64)


def _run_cli(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "matting.cli", *args], check=False, capture_output=True, text=True,
                          cwd=cwd, timeout=300, env=subprocess_env())


@pytest.mark.slow
def test_unknown_config_key_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  no_such_key: 3\n")
    res = _run_cli("fit", *CFG, "-c", str(bad), f"--trainer.default_root_dir={tmp_path / 'out'}")
    assert res.returncode != 0
    assert "no_such_key" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_missing_config_file_is_named(tmp_path):
    res = _run_cli("demo", "-c", str(tmp_path / "nope.yaml"), "--run-dir", str(tmp_path / "run"))
    assert res.returncode == 2
    assert "nope.yaml" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_demo_end_to_end_and_refuses_to_overwrite(tmp_path):
    run_dir = tmp_path / "run"
    args = ["demo", *CFG, "--run-dir", str(run_dir), "--grid-images", "2",
            "--trainer.max_steps=3", "--data.init_args.test_length=3", "--data.init_args.val_length=2"]
    assert main(args) == 0
    report = run_dir / "report"
    metrics = json.loads((report / "metrics.json").read_text())
    summary = metrics["summary"]
    assert metrics["meta"]["stopped_early"] is None  # max_steps reached: no warning (tests/test_time_limit.py)
    assert (metrics["meta"]["precision"], metrics["meta"]["precision_note"]) == ("32-true", None)  # smoke.yaml's
    assert set(summary) == {"model", "color_threshold", "constant"}
    for method in summary.values():
        assert set(method) == {"sad", "mse", "mad", "grad", "conn"}
    table = (report / "metrics.md").read_text()
    assert table.startswith("# Synthetic test split")
    assert "SAD" in table and "colour threshold" in table
    assert (report / "grid.png").stat().st_size > 0
    assert len(list((run_dir / "predictions" / "model").glob("*.png"))) == 3
    assert len(list((run_dir / "data" / "test" / "alpha").glob("*.png"))) == 3
    assert (run_dir / "logs" / "version_0" / "config.yaml").is_file()
    assert not run_dir.with_name("run.partial").exists()
    # A second run into the same folder is refused and leaves the first one intact.
    before = sorted(p.name for p in run_dir.rglob("*"))
    res = _run_cli(*args)
    assert res.returncode == 2 and "already exists" in res.stderr
    assert sorted(p.name for p in run_dir.rglob("*")) == before


@pytest.mark.slow
def test_fit_console_has_no_advertising_and_each_hardware_line_once(tmp_path):
    logger = {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(tmp_path), "name": "logs"}}
    done = _run_cli("fit", *CFG, f"--trainer.default_root_dir={tmp_path}", f"--trainer.logger={json.dumps(logger)}")
    assert done.returncode == 0, done.stderr
    console = done.stdout + done.stderr
    assert "litlogger" not in console and "Tip" not in console
    assert console.count("GPU available:") == 1


def test_console_filter_drops_the_tip_and_repeats():
    import logging

    from matting.runtime.process import ConsoleFilter

    keep = ConsoleFilter()

    def passes(message: str) -> bool:
        return keep.filter(logging.LogRecord("lightning", logging.INFO, __file__, 1, message, None, None))

    assert not passes("💡 Tip: try installing [litlogger](https://pypi.org/project/litlogger/)")
    assert passes("GPU available: False, used: False") and not passes("GPU available: False, used: False")
    assert passes("`Trainer.fit` stopped: `max_steps=2` reached.") and passes("`Trainer.fit` stopped: `max_steps=2` reached.")
