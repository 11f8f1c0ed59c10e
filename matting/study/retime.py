"""Re-measure the CPU inference time of every arm of a finished study, on a quiet machine.

    python tools/study.py retime runs/decoder_heads [--size 512] [--runs 20] [--threads 2]

``tools/study.py run`` times each network right after training it, while whatever else runs on
the machine competes for the cores. This command rebuilds each arm's network from the resolved
``config.yaml`` of its first seed (speed does not depend on the weights; the trained checkpoints
are usually deleted), times it the same way (batch 1, float32 channels-last, median after warm-up),
and writes the figure into every seed's ``result.json`` as ``ms`` (the figure measured during
the study is kept as ``ms_during_study``) with ``timing.retimed`` describing the measurement.
``tools/study.py collect`` then reports it. Run nothing else meanwhile.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import yaml


def arm_forward(config_path: Path):
    """A batch-1 forward of the arm described by a run's saved config (networks or the remover)."""
    config = yaml.safe_load(config_path.read_text())
    if "method" in config:  # the colour-threshold remover: not a network
        from matting.baselines.color_threshold import ColorThresholdRemover

        remover = ColorThresholdRemover(**config["method"]["init_args"])
        return lambda image: remover.predict(image[0].permute(1, 2, 0).numpy())
    from matting.runtime.lightning_cli import build_cli
    from matting.bench.measure import network_forward

    # Only the network matters here; the data module is built but never loaded (its saved worker
    # start method may predate the current choices).
    cli = build_cli(["-c", str(config_path), "--trainer.logger=false", "--trainer.callbacks=[]",
                     "--trainer.enable_checkpointing=false", "--run_record.enabled=false",
                     "--data.init_args.num_workers=0", "--data.init_args.worker_start_method=null"], run=False)
    return network_forward(cli.model)


def main(argv: list[str] | None = None) -> int:
    from matting.runtime.process import quiet_defaults, tune_malloc
    from matting.bench.measure import inference_ms

    tune_malloc()
    quiet_defaults()
    p = argparse.ArgumentParser(prog="python tools/study.py retime", description=__doc__.split("\n\n")[0])
    p.add_argument("runs", type=Path, help="output folder of tools/study.py run")
    p.add_argument("--size", type=int, default=512, help="side of the timed square image (default 512)")
    p.add_argument("--runs", dest="timed_runs", type=int, default=20, help="timed runs after warm-up (default 20)")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    args = p.parse_args(argv)
    arms = sorted(d for d in args.runs.iterdir() if d.is_dir()) if args.runs.is_dir() else []
    if not arms:
        print(f"retime_study: error: no arm folders in {args.runs}", file=sys.stderr)
        return 2
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    for arm in arms:
        results = sorted(arm.glob("seed*/result.json"))
        if not results:
            continue
        forward = arm_forward(results[0].parent / "config.yaml")
        ms, ms_min = inference_ms(forward, args.size, args.timed_runs, threads=args.threads)
        for path in results:
            result = json.loads(path.read_text())
            result.setdefault("ms_during_study", result.get("ms"))
            result["ms"], result["ms_min"] = ms, ms_min
            result.setdefault("timing", {})
            result["timing"]["retimed"] = {"size": args.size, "runs": args.timed_runs, "threads": args.threads,
                                           "when": when, "machine": platform.processor() or platform.machine(),
                                           "command": "python tools/study.py retime " + " ".join(argv or sys.argv[1:])}
            path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"{arm.name}: {ms:.1f} ms (min {ms_min:.1f}) at {args.size} px")
    return 0

