"""Equal training time: the step count that spends an arm's CPU budget on this machine.

An arm of a ``cv.yaml`` may state ``cpu_minutes`` instead of ``steps``. Its training stack (fold
0's data for a fold arm) is then run twice through ``matting fit``, for ``SHORT`` and ``LONG``
steps, one torch thread, no logger, checkpoint or validation; the difference of the two runs' CPU
time (the process and its loader workers, start-up cancelled out) over ``LONG - SHORT`` steps is
the CPU cost of a step, and ``steps = cpu_minutes * 60 / cost``. The measurement is kept in
``<runs>/calibration/<key>.json``, keyed by the stack's inputs and the CPU's name, so a study is
calibrated once per machine; it is a measurement, so a loaded machine gives a larger cost to every
arm alike, and the record says when and where it was taken.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from matting.io.files import atomic_write
from matting.study import inputs_digest
from matting.study.jobs import Job, run_jobs

__all__ = ["LONG", "SHORT", "calibrated_steps", "step_cpu_seconds"]

SHORT, LONG = 10, 40


def _key(files: list[Path], options: list[str], cpu: str) -> str:
    return inputs_digest(files, {"options": options, "cpu": cpu, "steps": [SHORT, LONG]})


def step_cpu_seconds(files: list[Path], options: list[str], runs: Path, env: dict[str, str], cpu: str, log=print) -> dict:
    """``{"cpu_seconds_per_step", "short", "long", "measured", "cpu"}`` for the stack ``files`` + ``options``."""
    cache = Path(runs) / "calibration" / f"{_key(files, options, cpu)}.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    seconds = {}
    with tempfile.TemporaryDirectory(prefix="calibrate_") as tmp:
        for steps in (SHORT, LONG):
            command = [sys.executable, "-m", "matting", "fit", *(a for f in files for a in ("-c", str(f))), *options,
                       f"--trainer.max_steps={steps}", f"--model.scheduler.init_args.total_steps={steps}",
                       "--trainer.logger=false", "--trainer.callbacks=[]", "--trainer.enable_checkpointing=false",
                       "--trainer.limit_val_batches=0", f"--trainer.default_root_dir={tmp}/{steps}"]
            done = run_jobs([Job(f"calibrate {steps} steps", command, Path(tmp) / f"{steps}.log", env)], 1, log=log)[0]
            if done.exit_code != 0:
                raise RuntimeError(f"calibration run failed (exit {done.exit_code}): {(Path(tmp) / f'{steps}.log').read_text()[-2000:]}")
            seconds[steps] = done.cpu_seconds
    record = {"cpu_seconds_per_step": max(1e-3, (seconds[LONG] - seconds[SHORT]) / (LONG - SHORT)),
              "short": seconds[SHORT], "long": seconds[LONG], "cpu": cpu, "measured": time.strftime("%Y-%m-%d %H:%M:%S")}
    atomic_write(cache, json.dumps(record, indent=2) + "\n")
    return record


def calibrated_steps(cpu_minutes: float, record: dict) -> int:
    """Steps whose CPU time is ``cpu_minutes`` at the calibrated cost per step."""
    return max(1, round(cpu_minutes * 60 / record["cpu_seconds_per_step"]))
