"""Runs that ``trainer.max_time`` stopped before their budget say so: the check itself,
``matting fit``'s console and ``matting demo``'s report."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest
from lightning.pytorch.callbacks import Timer

from matting.runtime.time_limit import time_limit_message

from .conftest import REPO
from .tiny_checkpoint import smoke_cli

CFG = ["-c", str(REPO / "configs" / "default.yaml"), "-c", str(REPO / "configs" / "smoke.yaml")]
# One second of a budget far too long for it: the timer always stops the run (at step 1 or later).
CUT_SHORT = ["--trainer.max_time=00:00:00:01", "--trainer.max_steps=100000", "--data.init_args.train_length=100000"]
ADVICE = (": undertrained; this machine is slower than the budget assumed (busy, or a slower CPU); "
          "raise trainer.max_time")


def _trainer(duration: str | None, max_steps: int, max_epochs: int, step: int, epoch: int, last_batch: bool = False):
    """What time_limit_message reads of a Trainer after fit; a Timer of zero duration has no time left."""
    timer = Timer(duration=duration) if duration else None
    batches = SimpleNamespace(total=SimpleNamespace(completed=step), is_last_batch=last_batch)
    return SimpleNamespace(callbacks=[timer] if timer else [], max_steps=max_steps, max_epochs=max_epochs,
                           global_step=step, current_epoch=epoch,
                           fit_loop=SimpleNamespace(epoch_loop=SimpleNamespace(batch_progress=batches)))


def test_message_names_the_step_or_epoch_it_stopped_at():
    assert time_limit_message(_trainer("00:00:00:00", 400, -1, 55, 1)) == (
        "stopped by the time limit (00:00:00:00) at step 55 of 400" + ADVICE)
    # current_epoch counts the epoch the timer stopped inside (epoch index 2: the third).
    assert time_limit_message(_trainer("00:00:00:00", -1, 20, 30, 3)).startswith(
        "stopped by the time limit (00:00:00:00) at epoch 3 of 20:")
    # Stopped right after the last batch of the third epoch: the fourth is the one it did not train.
    assert "at epoch 4 of 20:" in time_limit_message(_trainer("00:00:00:00", -1, 20, 30, 3, last_batch=True))


@pytest.mark.parametrize("trainer", [
    _trainer("00:00:00:00", 400, -1, 400, 1),  # the step budget was reached, the time ran out after it
    _trainer("00:00:00:00", 400, 2, 20, 2, last_batch=True),  # max_epochs ended the run before max_steps
    _trainer("00:00:00:00", -1, -1, 20, 2),  # no budget but the time
    _trainer("01:00:00:00", 400, -1, 55, 1),  # time left: stopped for another reason
    _trainer(None, 400, -1, 55, 1),  # no time limit
], ids=["steps-reached", "epochs-reached", "time-is-the-budget", "time-left", "no-timer"])
def test_no_message_when_the_time_limit_did_not_cut_the_budget(trainer):
    assert time_limit_message(trainer) is None


@pytest.mark.slow
def test_tiny_fit_stopped_by_the_timer_and_one_that_finishes(tmp_path, one_torch_thread):
    cli = smoke_cli(tmp_path / "short", *CUT_SHORT)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    step = cli.trainer.global_step
    assert 0 < step < 100000
    assert time_limit_message(cli.trainer) == (
        f"stopped by the time limit (00:00:00:01) at step {step} of 100000" + ADVICE)

    cli = smoke_cli(tmp_path / "full", "--trainer.max_time=00:01:00:00")
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.trainer.global_step == cli.trainer.max_steps == 2
    assert time_limit_message(cli.trainer) is None


@pytest.mark.slow
def test_tiny_fit_with_an_epoch_budget(tmp_path, one_torch_thread):
    cli = smoke_cli(tmp_path, "--trainer.max_time=00:00:00:01", "--trainer.max_steps=-1", "--trainer.max_epochs=100000")
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    message = time_limit_message(cli.trainer)
    assert re.fullmatch(r"stopped by the time limit \(00:00:00:01\) at epoch \d+ of 100000" + re.escape(ADVICE), message)


@pytest.mark.slow
def test_fit_prints_the_message(tmp_path, capsys, one_torch_thread):
    from matting.cli import main

    logger = {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(tmp_path), "name": "logs"}}
    assert main(["fit", *CFG, *CUT_SHORT, f"--trainer.default_root_dir={tmp_path}", f"--trainer.logger={json.dumps(logger)}"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^warning: stopped by the time limit \(00:00:00:01\) at step \d+ of 100000: undertrained", out, re.MULTILINE)


@pytest.mark.slow
def test_demo_report_and_console_say_training_was_cut_short(tmp_path, capsys, one_torch_thread):
    from matting.cli import main

    run_dir = tmp_path / "run"
    assert main(["demo", *CFG, *CUT_SHORT, "--run-dir", str(run_dir), "--grid-images", "1",
                 "--data.init_args.test_length=2", "--data.init_args.val_length=2"]) == 0
    report = run_dir / "report"
    meta = json.loads((report / "metrics.json").read_text())["meta"]
    message = meta["stopped_early"]
    assert message == f"stopped by the time limit (00:00:00:01) at step {meta['global_steps']} of 100000" + ADVICE
    lines = (report / "metrics.md").read_text().splitlines()
    assert lines[0] == f"**Warning: {message}.**"
    assert lines[2].startswith("# Synthetic test split")
    out = capsys.readouterr().out
    # Once right after training, once after the summary table (the last line).
    assert out.count(f"warning: {message}") == 2
    assert out.rstrip().splitlines()[-1] == f"warning: {message}"
