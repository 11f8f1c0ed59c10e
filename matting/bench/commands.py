"""End-to-end time of ``matting predict`` and ``matting evaluate`` as processes, start-up included.

    python tools/benchmark.py commands --ckpt CKPT [--images 20] [--repeats 5] [--keep DIR]

Writes a folder of photos of mixed sizes (``--images`` samples of the synthetic test split, each
resized to one of six sizes of different aspect ratios, so six different base shapes) with their
ground-truth alpha mattes, then times, interleaved (one run of each variant per round, the order
alternating between rounds, so that load from other processes hits every variant alike):

- ``predict``: ``matting predict --ckpt CKPT photos/ --out ...`` (the default path) against the
  same command with ``--eager``;
- ``evaluate``: ``matting evaluate --pred alpha/ --gt gt/`` with the default workers against
  ``--workers 1``, on the alpha mattes the first predict run wrote.

Each run is a fresh ``python -m matting`` process and a fresh output folder. Prints the median
and minimum seconds of each variant, the ratio of the medians, the load average before and after,
and a markdown table for docs/speed.md. CKPT is any checkpoint ``matting predict`` takes, e.g. the
best checkpoint of ``make demo`` (``runs/demo/DATE/logs/version_0/checkpoints/best-*.ckpt``).
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from matting.bench.measure import timed

# (height, width): 4:3, 3:4, 1:1, 16:9, 9:16 and 2:3, i.e. six different base shapes at --base-size 512.
SIZES = [(480, 640), (640, 480), (600, 600), (405, 720), (720, 405), (750, 500)]
REPO = Path(__file__).resolve().parents[2]


def make_folder(root: Path, count: int) -> tuple[Path, Path]:
    """``root/photos`` (RGB PNGs) and ``root/gt`` (their alpha mattes), sample i at SIZES[i % 6]."""
    from matting.data.synthetic.dataset import SyntheticMattingDataset
    from matting.io.images import resize_image, write_png

    photos, gt = root / "photos", root / "gt"
    data = SyntheticMattingDataset("test", count, 256, seed=0)
    for i in range(count):
        sample = data.arrays(i)
        height, width = SIZES[i % len(SIZES)]
        write_png(photos / f"{data.name(i)}.png", resize_image(sample["image"], height, width, clip=True), overwrite=True)
        write_png(gt / f"{data.name(i)}.png", resize_image(sample["alpha"], height, width, clip=True), overwrite=True)
    return photos, gt


def run(argv: list[str]) -> float:
    """Seconds of one ``python -m matting ARGV`` process; raises when it fails."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="disabled")
    seconds, done = timed(lambda: subprocess.run([sys.executable, "-m", "matting", *argv], cwd=REPO, env=env,
                                                 capture_output=True, text=True))
    if done.returncode != 0:
        raise SystemExit(f"matting {shlex.join(argv)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--ckpt", required=True, type=Path, help="checkpoint for matting predict (e.g. the demo's best)")
    p.add_argument("--images", type=int, default=20, help="photos in the folder (default 20)")
    p.add_argument("--repeats", type=int, default=5, help="rounds; each runs every variant once (default 5)")
    p.add_argument("--keep", type=Path, help="write the folders here instead of a temporary folder")
    args = p.parse_args(argv)
    if not args.ckpt.is_file():
        p.error(f"--ckpt {args.ckpt}: no such file")

    with tempfile.TemporaryDirectory(prefix="bench_commands_") as tmp:
        root = args.keep or Path(tmp)
        for old in ("pred", "runs"):
            shutil.rmtree(root / old, ignore_errors=True)
        photos, gt = make_folder(root, args.images)
        predict = ["predict", "--ckpt", str(args.ckpt), str(photos), "--no-progress"]
        variants = {
            "predict (default)": lambda out: predict + ["--out", str(out)],
            "predict --eager": lambda out: predict + ["--out", str(out), "--eager"],
            "evaluate (default workers)": lambda out: ["evaluate", "--pred", str(root / "pred" / "alpha"), "--gt", str(gt),
                                                      "--out", str(out), "--no-progress"],
            "evaluate --workers 1": lambda out: ["evaluate", "--pred", str(root / "pred" / "alpha"), "--gt", str(gt),
                                                "--out", str(out), "--no-progress", "--workers", "1"],
        }
        run(predict + ["--out", str(root / "pred")])  # the mattes evaluate scores; also warms the file cache
        load_before = os.getloadavg()
        times: dict[str, list[float]] = {name: [] for name in variants}
        for r in range(args.repeats):
            order = list(variants) if r % 2 == 0 else list(reversed(variants))
            for name in order:
                out = root / "runs" / f"{r}_{list(variants).index(name)}"
                times[name].append(run(variants[name](out)))
            print(f"round {r + 1}/{args.repeats}: " + ", ".join(f"{n} {times[n][-1]:.2f} s" for n in variants), file=sys.stderr)
        load_after = os.getloadavg()

    median = {name: statistics.median(t) for name, t in times.items()}
    pairs = [("predict (default)", "predict --eager"), ("evaluate (default workers)", "evaluate --workers 1")]
    command = f"python tools/benchmark.py commands --ckpt {args.ckpt} --images {args.images} --repeats {args.repeats}"
    lines = [
        f"$ {command}",
        f"{args.images} photos of {len(SIZES)} sizes ({', '.join(f'{w}x{h}' for h, w in SIZES)}); {os.cpu_count()} CPUs, "
        f"{platform.processor() or platform.machine()}; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after",
        "",
        "| command | median s | min s |",
        "|---|---:|---:|",
        *[f"| `matting {name}` | {median[name]:.2f} | {min(times[name]):.2f} |" for name in variants],
        "",
        *[f"- {a} / {b}: **{median[a] / median[b]:.2f}**" for a, b in pairs],
    ]
    print("\n".join(lines))
    return 0

