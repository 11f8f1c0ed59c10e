"""Equal training time: the step count that spends an arm's CPU budget on this machine.

An arm of a ``cv.yaml`` may state ``cpu_minutes`` instead of ``steps``. Its training stack (fold
0's data for a fold arm) is then run twice through ``matting fit``, for ``SHORT`` and ``LONG``
steps, one torch thread, no logger, checkpoint or validation; the difference of the two runs' CPU
time (the process and its loader workers, start-up cancelled out) over ``LONG - SHORT`` steps is
the CPU cost of a step, and ``steps = cpu_minutes * 60 / cost``. The measurement is kept in
``<runs>/calibration/<key>.json``, keyed by the stacks' inputs and the CPU's name, so a study is
calibrated once per machine; the record says when and where it was taken.

An arm whose budget is another arm's training time (``cpu_of``) needs a ratio of two costs, and a
shared machine's load changes from one hour to the next (the same stack measured 2.08, 1.20 and
0.94 CPU-s per step at three hours of one day). So several stacks are measured in one sitting, interleaved
(every stack's short run, then every stack's long run), and kept as one record.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from matting.io.files import atomic_write
from matting.study import inputs_digest
from matting.study.jobs import Job, exit_reason, run_jobs

__all__ = ["LONG", "SHORT", "calibrated_steps", "step_cpu_seconds"]

SHORT, LONG = 10, 40


def _key(stacks: list[tuple[list[Path], list[str]]], cpu: str) -> str:
    if len(stacks) == 1:  # a single stack keeps the key it has always had
        (files, options), = stacks
        return inputs_digest(files, {"options": options, "cpu": cpu, "steps": [SHORT, LONG]})
    return inputs_digest([f for files, _ in stacks for f in files],
                         {"stacks": [[len(files), *options] for files, options in stacks], "cpu": cpu,  # contents, not paths
                          "steps": [SHORT, LONG]})


def step_cpu_seconds(stacks: list[tuple[list[Path], list[str]]], runs: Path, env: dict[str, str], cpu: str,
                     log=print, measure: bool = True) -> list[dict] | None:
    """One ``{"cpu_seconds_per_step", "short", "long", "measured", "cpu"}`` per training stack
    (config ``files``, ``options``), all measured in one sitting; None when nothing is kept for
    these stacks and ``measure`` is False."""
    cache = Path(runs) / "calibration" / f"{_key(stacks, cpu)}.json"
    if cache.is_file():
        kept = json.loads(cache.read_text())
        return kept["stacks"] if "stacks" in kept else [kept]  # a bare record: one stack, as first written
    if not measure:
        return None
    seconds = [{} for _ in stacks]
    with tempfile.TemporaryDirectory(prefix="calibrate_") as tmp:
        for steps in (SHORT, LONG):
            for i, (files, options) in enumerate(stacks):
                log_file = Path(tmp) / f"{i}_{steps}.log"
                command = [sys.executable, "-m", "matting", "fit", *(a for f in files for a in ("-c", str(f))), *options,
                           f"--trainer.max_steps={steps}", f"--model.scheduler.init_args.total_steps={steps}",
                           "--trainer.logger=false", "--trainer.callbacks=[]", "--trainer.enable_checkpointing=false",
                           "--trainer.limit_val_batches=0", f"--trainer.default_root_dir={tmp}/{i}_{steps}"]
                label = f"calibrate {steps} steps" + (f", stack {i + 1} of {len(stacks)}" if len(stacks) > 1 else "")
                done = run_jobs([Job(label, command, log_file, env)], 1, log=log)[0]
                if done.exit_code != 0:
                    raise RuntimeError(f"calibration run failed ({exit_reason(done.exit_code)}): {log_file.read_text()[-2000:]}")
                seconds[i][steps] = done.cpu_seconds
    measured = time.strftime("%Y-%m-%d %H:%M:%S")
    records = [{"cpu_seconds_per_step": max(1e-3, (s[LONG] - s[SHORT]) / (LONG - SHORT)), "short": s[SHORT],
                "long": s[LONG], "cpu": cpu, "measured": measured} for s in seconds]
    atomic_write(cache, json.dumps({"stacks": records}, indent=2) + "\n")
    return records


def calibrated_steps(cpu_minutes: float, record: dict) -> int:
    """Steps whose CPU time is ``cpu_minutes`` at the calibrated cost per step."""
    return max(1, round(cpu_minutes * 60 / record["cpu_seconds_per_step"]))
