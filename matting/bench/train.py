"""Training throughput of a study's arms against its reference arm, in ``matting fit``'s own loop.

    python tools/benchmark.py train experiments/efficiency [--arms A B ...] [--reference reference]
                                [--steps 20] [--warmup 5] [--rounds 3] [--threads 1] [--out FILE.json]

Each arm is configured as ``matting fit`` composes it (``configs/default.yaml``, the study's
``base.yaml``, ``arms/<arm>.yaml``) and trained by the Lightning trainer that command builds, with its
data module, loss, optimizer, precision and callbacks, for ``--warmup`` + ``--steps`` steps, with
validation and the run record off and logs and checkpoints in a temporary folder. A step is the time
from one ``on_train_batch_end`` to the next, so it includes waiting for the data loader. Every fit runs in a fresh process; a round
runs every arm once, in turn, so a busier stretch of the machine hits every arm alike. The figure per
arm is the median step over all rounds, ``images/s`` the batch size over it, and ``x reference`` the
median over rounds of the arm's median step over the reference's in that round: the factor by which
the arm's step budget can grow for the reference's training time. Run nothing else meanwhile (check
``uptime``); the studies train with ``--threads 1``, one run per core.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def fit_step_times(study: Path, arm: str, steps: int, warmup: int, root: Path) -> dict:
    """Train ``arm`` for ``warmup + steps`` steps in this process; the timed steps (s) and the batch size."""
    import lightning as L

    from matting.runtime.lightning_cli import build_cli

    class StepTimer(L.Callback):
        def __init__(self) -> None:
            self.ends: list[float] = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self.ends.append(time.perf_counter())

    cli = build_cli(["-c", str(REPO / "configs" / "default.yaml"), "-c", str(study / "base.yaml"),
                     "-c", str(study / "arms" / f"{arm}.yaml"), "--seed_everything=0",
                     f"--trainer.max_steps={warmup + steps}", "--trainer.limit_val_batches=0",
                     "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
                     f"--trainer.default_root_dir={root}", "--run_record.enabled=false"], run=False)
    timer = StepTimer()
    cli.trainer.callbacks.append(timer)
    cli.trainer.fit(cli.model, cli.datamodule)
    ends = timer.ends[warmup - 1:] if warmup > 0 else timer.ends
    # every data module of the package keeps batch_size among its saved hyperparameters (data/base.py)
    return {"steps_s": [b - a for a, b in zip(ends, ends[1:])], "batch_size": cli.datamodule.hparams.batch_size}


def measure(study: Path, arms: list[str], reference: str, steps: int, warmup: int, rounds: int, threads: int) -> dict:
    """Per arm: median step (s), images/s and the median per-round ratio to ``reference``."""
    per_round: list[dict[str, dict]] = []
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            row = {}
            for arm in arms:
                out = Path(tmp) / f"{arm}-{r}.json"
                subprocess.run([sys.executable, "-m", "matting.bench", "train", str(study), "--child", arm, "--steps", str(steps),
                                "--warmup", str(warmup), "--threads", str(threads), "--out", str(out)],
                               check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                row[arm] = json.loads(out.read_text())
            per_round.append(row)
    results = {}
    for arm in arms:
        all_steps = [s for row in per_round for s in row[arm]["steps_s"]]
        step = statistics.median(all_steps)
        ratio = statistics.median(statistics.median(row[arm]["steps_s"]) / statistics.median(row[reference]["steps_s"])
                                  for row in per_round)
        results[arm] = {"step_s": step, "images_per_s": per_round[0][arm]["batch_size"] / step,
                        "batch_size": per_round[0][arm]["batch_size"], "x_reference_step": ratio,
                        "steps_timed": len(all_steps)}
    return results


def main(argv: list[str] | None = None) -> int:
    from matting.runtime.process import quiet_defaults, tune_malloc

    tune_malloc()
    quiet_defaults()
    p = argparse.ArgumentParser(prog="python tools/benchmark.py train", description=__doc__.split("\n\n")[0])
    p.add_argument("study", type=Path, help="study folder with base.yaml and arms/*.yaml")
    p.add_argument("--arms", nargs="+", help="arms to time (default: all)")
    p.add_argument("--reference", default="reference", help="the arm every ratio is taken to (default reference)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per fit (default 20)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    p.add_argument("--rounds", type=int, default=3, help="rounds, each fitting every arm once (default 3)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per fit (default 1, as the studies train)")
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    available = sorted(f.stem for f in (args.study / "arms").glob("*.yaml"))
    arms = [args.child] if args.child else (args.arms or available)
    unknown = [a for a in [*arms, args.reference] if a not in available]
    if unknown or args.rounds < 1 or args.threads < 1 or args.steps < 2 or args.warmup < 1:
        what = (f"unknown arms {unknown}; {args.study}/arms has {available}" if unknown
                else "--rounds and --threads must be >= 1, --steps >= 2, --warmup >= 1")
        print(f"benchmark train: error: {what}", file=sys.stderr)
        return 2
    from matting.io.files import atomic_write

    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        with tempfile.TemporaryDirectory() as root:
            result = fit_step_times(args.study, args.child, args.steps, args.warmup, Path(root))
        atomic_write(args.out, json.dumps(result) + "\n")
        return 0
    arms = [args.reference] + [a for a in arms if a != args.reference]
    load = os.getloadavg()[0]
    results = measure(args.study, arms, args.reference, args.steps, args.warmup, args.rounds, args.threads)
    print("| arm | s per step | images/s | x reference step |")
    print("|---|---:|---:|---:|")
    for arm in arms:
        r = results[arm]
        print(f"| {arm} | {r['step_s']:.3f} | {r['images_per_s']:.2f} | {r['x_reference_step']:.3f} |")
    if args.out is not None:
        command = " ".join(["python", "tools/benchmark.py", "train", *(argv if argv is not None else sys.argv[1:])])
        atomic_write(args.out, json.dumps({"command": command, "machine": f"{platform.machine()} {platform.system()}, "
                                           f"{os.cpu_count()} cores, torch threads {args.threads}",
                                           "load_average_before": load, "rounds": args.rounds, "steps": args.steps,
                                           "warmup": args.warmup, "results": results}, indent=2) + "\n")
    return 0

