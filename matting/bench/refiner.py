"""Cost of the refiners: ms per image and peak memory at 512, 1024, 2048 and 4K, on this CPU.

    python tools/benchmark.py refiner [--sizes 512x512 1024x1024 2048x2048 3840x2160] [--repeats 3]
                                  [--out experiments/refiner/cost.md]

Rows: the base alone at 1/4 resolution with bilinear upsampling (what the refiners improve on),
the patch refiner (configs/refiner/patch.yaml) and the guided filter (configs/refiner/guided.yaml),
all on the default model (configs/default.yaml), random weights (timing does not depend on them;
the patch refiner's cell count is fixed by its pixel budget). Each (method, size) runs in a fresh
process so its peak resident memory is its own: ``peak MB`` = peak RSS while running minus RSS
with the model built and the input made (the memory one inference needs). fp32, channels_last, batch 1, 2 threads, median of ``--repeats`` after one warm-up.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
METHODS = {"base only (1/4, bilinear)": None, "patch refiner": "configs/refiner/patch.yaml", "guided filter": "configs/refiner/guided.yaml"}


def worker(method: str, size: str, repeats: int) -> dict:
    import torch
    import torch.nn.functional as F

    from matting.bench.measure import measure
    from matting.runtime.lightning_cli import build_cli
    from matting.runtime.process import tune_malloc

    tune_malloc()
    torch.set_num_threads(2)
    w, h = (int(v) for v in size.split("x"))
    refiner_cfg = METHODS[method]
    files = ["configs/default.yaml"] + ([refiner_cfg] if refiner_cfg else ["configs/refiner/patch.yaml"])
    cli = build_cli([a for f in files for a in ("-c", str(REPO / f))] + ["--trainer.logger=false"], run=False)
    net = cli.model.net.eval().to(memory_format=torch.channels_last)
    image = torch.rand(1, 3, h, w).contiguous(memory_format=torch.channels_last)
    base_size = net.base_shape(h, w)

    def run():
        with torch.no_grad():
            if refiner_cfg:
                return net(image)["pred_alpha"]
            small = F.interpolate(image, size=base_size, mode="bilinear", antialias=True)
            return F.interpolate(net.base_pass(small).pred_alpha, size=(h, w), mode="bilinear")

    measured = measure(run, repeats, warmup=1)  # peak above the level with the model built and the input made
    return {"ms": measured["ms"], "peak_mb": measured["peak_mb"], "base": list(base_size)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", nargs="+", default=["512x512", "1024x1024", "2048x2048", "3840x2160"])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path)
    p.add_argument("--worker", nargs=2, metavar=("METHOD", "SIZE"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.worker[1], args.repeats)))
        return 0
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}
    rows = []
    for method in METHODS:
        for size in args.sizes:
            res = subprocess.run([sys.executable, "-m", "matting.bench", "refiner", "--worker", method, size, "--repeats", str(args.repeats)],
                                 capture_output=True, text=True, env=env, cwd=REPO)
            if res.returncode:
                print(res.stderr[-2000:], file=sys.stderr)
                return 1
            r = json.loads(res.stdout.strip().splitlines()[-1])
            rows.append((method, size, r))
            print(f"{method:28s} {size:>10s}  base {r['base'][1]}x{r['base'][0]}  {r['ms']:9.1f} ms  peak {r['peak_mb']:8.1f} MB", flush=True)
    table = ["| method | input | base pass | ms / image | peak MB |", "|---|---|---|---:|---:|"]
    table += [f"| {m} | {s} | {r['base'][1]}x{r['base'][0]} | {r['ms']:.0f} | {r['peak_mb']:.0f} |" for m, s, r in rows]
    text = "\n".join(table)
    if args.out:
        machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, no GPU"
        args.out.write_text(f"# Refiner cost on CPU\n\n{text}\n\nCommand: `python tools/benchmark.py refiner --sizes {' '.join(args.sizes)} "
                            f"--repeats {args.repeats} --out {args.out}`  \nMachine: {machine}; fp32, channels_last, batch 1, 2 threads.\n")
    print(text)
    return 0

