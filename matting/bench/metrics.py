"""Time the matting metrics on synthetic full-HD pairs, on one core.

    python tools/benchmark.py metrics --n 5 --size 1920x1080

Each pair is a soft-edged foreground with anti-aliased hair strands (ground truth), a blurred,
noisy prediction with spurious blobs and holes (so Conn has disconnected parts to find), and a
trimap with a ~20 px unknown band. Both maps are 8-bit quantised, as read from PNG. Prints the
seconds per image of ``compute_metrics`` for each protocol (mean and best run), and the mean
of each comp1k metric alone.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy is imported: one core, as the target is stated

import argparse
import platform

import cv2
import numpy as np

from matting.bench.measure import repeat_ms


def synthetic_pair(rng: np.random.Generator, width: int, height: int):
    """Return (pred_alpha, gt_alpha, trimap): float32 (H, W) in [0, 1] x2 and uint8 {0, 128, 255}."""
    canvas = np.zeros((height, width), np.uint8)
    cx, cy = width // 2, int(height * 0.6)
    cv2.ellipse(canvas, (cx, cy), (width // 5, height // 3), 0, 0, 360, 255, -1, cv2.LINE_AA)
    cv2.circle(canvas, (cx, cy - height // 3), height // 6, 255, -1, cv2.LINE_AA)
    for _ in range(400):  # hair: thin anti-aliased strands of partial opacity
        angle = rng.uniform(0, 2 * np.pi)
        x0 = int(cx + np.cos(angle) * width // 6)
        y0 = int(cy - height // 3 + np.sin(angle) * height // 6)
        length = rng.uniform(20, 120)
        x1, y1 = int(x0 + np.cos(angle) * length), int(y0 + np.sin(angle) * length)
        cv2.line(canvas, (x0, y0), (x1, y1), int(rng.integers(80, 255)), 1, cv2.LINE_AA)
    gt = cv2.GaussianBlur(canvas.astype(np.float32) / 255, (0, 0), 1.2)

    noise = cv2.GaussianBlur(rng.standard_normal((height, width)).astype(np.float32), (0, 0), 8) * 0.6
    pred = cv2.GaussianBlur(gt, (0, 0), 2.0) + noise * (gt * (1 - gt) * 4)
    for _ in range(30):  # spurious foreground blobs and holes
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        cv2.circle(pred, centre, int(rng.integers(3, 25)), float(rng.uniform(0.3, 1.0)), -1)
    for _ in range(10):
        centre = (int(cx + rng.integers(-width // 6, width // 6)), int(cy + rng.integers(-height // 4, height // 4)))
        cv2.circle(pred, centre, int(rng.integers(3, 15)), float(rng.uniform(0.0, 0.6)), -1)

    from matting.io.images import quantize_8bit

    gt, pred = quantize_8bit(gt), quantize_8bit(pred)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (21, 21))
    trimap = np.full((height, width), 128, np.uint8)
    trimap[cv2.dilate((gt > 0).view(np.uint8), kernel) == 0] = 0
    trimap[cv2.erode((gt >= 1).view(np.uint8), kernel) == 1] = 255
    return pred, gt, trimap


def _times(fn, pairs, repeats: int) -> np.ndarray:
    """Seconds of ``fn(pred, gt, trimap)``: one entry per pair and repeat."""
    return np.array([ms / 1000 for pair in pairs for ms in repeat_ms(lambda: fn(*pair), repeats, warmup=0)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5, help="synthetic pairs (default 5)")
    parser.add_argument("--size", default="1920x1080", help="WIDTHxHEIGHT (default 1920x1080)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per pair (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))

    import torch

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    from matting import metrics

    rng = np.random.default_rng(args.seed)
    pairs = [synthetic_pair(rng, width, height) for _ in range(args.n)]
    unknown_share = np.mean([np.mean(t == 128) for _, _, t in pairs])
    print(
        f"{args.n} synthetic pairs, {width}x{height}, unknown region {unknown_share:.1%} of the image, "
        f"{args.repeats} runs each, 1 thread (cv2, torch, BLAS); {platform.machine()}, {os.cpu_count()} logical CPUs"
    )
    for pred, gt, trimap in pairs[:1]:  # warm-up (imports, allocator)
        metrics.compute_metrics(pred, gt, trimap, "comp1k")

    cases = [("comp1k", True), ("whole", True), ("whole", False), ("modnet", False)]
    print("\n| protocol | trimap | keys | s / image (mean) | s / image (best) |\n|---|---|---|---:|---:|")
    for protocol, with_trimap in cases:
        runs = _times(lambda p, g, t: metrics.compute_metrics(p, g, t if with_trimap else None, protocol), pairs, args.repeats)
        keys = ", ".join(metrics.metric_keys(protocol, with_trimap))
        print(f"| {protocol} | {'yes' if with_trimap else 'no'} | {keys} | {runs.mean():.3f} | {runs.min():.3f} |")

    print("\ncomp1k, per metric over the unknown region (s / image, mean):")
    for name in ("sad", "mse", "grad", "conn"):
        fn = getattr(metrics, name)
        print(f"  {name:5s} {_times(lambda p, g, t: fn(p, g, t == 128), pairs, args.repeats).mean():.4f}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\n1-minute load average at the end: {load:.2f} (other processes on the machine inflate the mean)")
    return 0

