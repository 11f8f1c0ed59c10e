"""Latency of every arm of a study against its reference arm, interleaved in one process.

    python tools/benchmark.py frontier experiments/efficiency [--arms A B ...] [--reference reference]
                                   [--sizes 512 1024] [--rounds 15] [--threads 2] [--together]
                                   [--out FILE.json]

Each arm's network is built as ``matting fit`` composes it (``configs/default.yaml``, the study's
``base.yaml``, ``arms/<arm>.yaml``; random weights: speed does not depend on them) and prepared as
``matting predict`` prepares it (BatchNorm folded, channels-last, frozen TorchScript graph). One
timed call is ``matting.inference.predict_alpha`` on a photo-sized random image with the base pass
at that size (``matting predict --base-size S``): input conversion, network, upsampling and clipping.
After three warm-up calls per arm and size, ``--rounds`` rounds each time every arm once, in turn,
so a slower or busier stretch of the run hits every arm alike; the figure per arm is the median over
rounds, and its ratio to the reference is the median of the per-round ratios. Run nothing else
meanwhile (check ``uptime``). Prints a table and writes it as JSON with ``--out``.

By default each arm is timed in a fresh process of its own, interleaved with a reference of its
own: a process that holds one network is what ``matting predict`` runs, and a process holding a
dozen networks of different sizes slows the small ones (measured here: the cheapest arm took 0.29x
the reference with fourteen arms loaded, 0.20x beside the reference alone). The reference row then
gives the median over those processes. ``--together`` times every arm in this one process.
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
from pathlib import Path

from matting.bench.measure import interleaved_ms

REPO = Path(__file__).resolve().parents[2]


def build_predictor(study: Path, arm: str, extra: list[Path] = ()):
    """``image (H, W, 3) float32 -> alpha`` in ``matting predict``'s path, for one arm (random weights)
    with the config files ``extra`` on top of it."""
    from matting.inference import prepare_for_inference
    from matting.inference.predict import predict_alpha
    from matting.runtime.lightning_cli import configured_net

    net = configured_net(["-c", str(REPO / "configs" / "default.yaml"), "-c", str(study / "base.yaml"),
                          "-c", str(study / "arms" / f"{arm}.yaml"), *(a for f in extra for a in ("-c", str(f)))])
    prepared = prepare_for_inference(net)

    def run(image, size: int):
        return predict_alpha(prepared, image, base_size=size)

    return run


def measure(study: Path, arms: list[str], reference: str, sizes: list[int], rounds: int, threads: int,
            extra: list[Path] = ()) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    predictors = {arm: build_predictor(study, arm, [] if arm == reference else extra) for arm in arms}
    rng = np.random.default_rng(0)
    results: dict = {}
    with torch.no_grad():
        for size in sizes:
            image = rng.random((size, size, 3), dtype=np.float32)
            # Three warm-up rounds: oneDNN kernel choice, graph specialisation, allocator.
            times = interleaved_ms({arm: (lambda run=run: run(image, size)) for arm, run in predictors.items()},
                                   rounds, warmup=3)
            results[size] = {arm: {"ms": statistics.median(t), "ms_min": min(t),
                                   "ratio": statistics.median(a / r for a, r in zip(t, times[reference]))}
                             for arm, t in times.items()}
    return results


def measure_pairs(study: Path, arms: list[str], reference: str, sizes: list[int], rounds: int, threads: int,
                  extra: list[Path] = ()) -> dict:
    """As :func:`measure`, each arm but the reference in a process of its own with its own reference."""
    pairs: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for arm in arms:
            if arm == reference:
                continue
            out = Path(tmp) / f"{arm}.json"
            subprocess.run([sys.executable, "-m", "matting.bench", "frontier", str(study), "--together", "--arms", reference, arm,
                            "--reference", reference, "--sizes", *map(str, sizes), "--rounds", str(rounds),
                            "--threads", str(threads), "--out", str(out), *(a for f in extra for a in ("--with", str(f)))],
                           check=True, stdout=subprocess.DEVNULL)
            pairs[arm] = json.loads(out.read_text())["results"]
    if not pairs:  # the reference alone
        return measure(study, [reference], reference, sizes, rounds, threads)
    results: dict = {}
    for size in sizes:
        refs = [pair[str(size)][reference] for pair in pairs.values()]
        results[size] = {reference: {"ms": statistics.median(r["ms"] for r in refs),
                                     "ms_min": min(r["ms_min"] for r in refs), "ratio": 1.0}}
        results[size].update({arm: pair[str(size)][arm] for arm, pair in pairs.items()})
    return results


def main(argv: list[str] | None = None) -> int:
    from matting.runtime.process import quiet_defaults, tune_malloc

    tune_malloc()
    quiet_defaults()
    p = argparse.ArgumentParser(prog="python tools/benchmark.py frontier", description=__doc__.split("\n\n")[0])
    p.add_argument("study", type=Path, help="study folder with base.yaml and arms/*.yaml")
    p.add_argument("--arms", nargs="+", help="arms to time (default: all)")
    p.add_argument("--reference", default="reference", help="the arm every ratio is taken to (default reference)")
    p.add_argument("--sizes", type=int, nargs="+", default=[512, 1024], help="square sides in px (default 512 1024)")
    p.add_argument("--rounds", type=int, default=15, help="timed rounds after warm-up (default 15)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--together", action="store_true", help="time every arm in this one process (default: each arm "
                   "in a fresh process with its own reference)")
    p.add_argument("--with", dest="extra", type=Path, action="append", default=[], metavar="FILE",
                   help="config applied on top of every arm but the reference (repeatable), e.g. a decoder-head delta")
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    args = p.parse_args(argv)
    missing = [str(f) for f in args.extra if not f.is_file()]
    if missing:
        print(f"benchmark frontier: error: --with: no such file {', '.join(missing)}", file=sys.stderr)
        return 2
    available = sorted(f.stem for f in (args.study / "arms").glob("*.yaml"))
    arms = args.arms or available
    unknown = [a for a in [*arms, args.reference] if a not in available]
    if unknown or args.rounds < 1 or args.threads < 1:
        what = f"unknown arms {unknown}; {args.study}/arms has {available}" if unknown else "--rounds and --threads must be >= 1"
        print(f"benchmark frontier: error: {what}", file=sys.stderr)
        return 2
    arms = [args.reference] + [a for a in arms if a != args.reference]
    load = os.getloadavg()[0]
    timer = measure if args.together else measure_pairs
    results = timer(args.study, arms, args.reference, args.sizes, args.rounds, args.threads, args.extra)
    if args.extra:
        print(f"arms other than {args.reference} with: {', '.join(map(str, args.extra))}")
    print("| arm | " + " | ".join(f"ms at {s} | x reference" for s in args.sizes) + " |")
    print("|---|" + "---:|---:|" * len(args.sizes))
    for arm in arms:
        print(f"| {arm} | " + " | ".join(f"{results[s][arm]['ms']:.1f} | {results[s][arm]['ratio']:.3f}" for s in args.sizes) + " |")
    if args.out is not None:
        from matting.io.files import atomic_write

        command = " ".join(["python", "tools/benchmark.py", "frontier", *(argv if argv is not None else sys.argv[1:])])
        atomic_write(args.out, json.dumps({"command": command, "machine": f"{platform.machine()} {platform.system()}, "
                                           f"{os.cpu_count()} cores, torch threads {args.threads}",
                                           "load_average_before": load, "rounds": args.rounds,
                                           "with": [str(f) for f in args.extra],
                                           "processes": "one" if args.together else "one per arm, with its own reference",
                                           "results": {str(s): r for s, r in results.items()}}, indent=2) + "\n")
    return 0

