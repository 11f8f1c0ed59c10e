"""Time the procedural matting generator: milliseconds per sample at 256 and 512 px.

Runs single-threaded (OpenCV and torch pinned to one thread) so the numbers are the cost
per data-loader worker. "generate" is ``generate_sample`` alone (numpy arrays); "item"
is a full ``SyntheticMattingDataset.__getitem__`` including the conversion to tensors.

Usage: python tools/benchmark.py synthetic [--n N] [--sizes 256 512]
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np
import torch

from matting.bench.measure import timed
from matting.data.synthetic.dataset import SyntheticMattingDataset


def _time(fn, n: int) -> np.ndarray:
    fn(n)  # warm-up: imports, allocator, OpenCV dispatch tables
    fn(n + 1)
    return np.array([timed(lambda i=i: fn(i))[0] * 1e3 for i in range(n)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="samples per size (halved at 512 px and above)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    for size in args.sizes:
        n = args.n if size < 512 else max(args.n // 2, 1)
        ds = SyntheticMattingDataset("train", n + 2, size, args.seed)
        for label, fn in (("generate", ds.arrays), ("item", ds.__getitem__)):
            t = _time(fn, n)
            print(f"{size}x{size} {label:8s}: {t.mean():6.2f} ms/sample mean, "
                  f"{np.median(t):6.2f} median, {np.percentile(t, 95):6.2f} p95, {t.max():6.2f} max  (n={n})")

