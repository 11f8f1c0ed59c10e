"""Metrics of fixed predictors on the 20 alphamatting.com training images.

    python experiments/metrics_alphamatting/run.py [--data ../shared/data/alphamatting]

Predictors, all derived from the ground truth alpha (H, W) in [0, 1]:

- ``blur2`` / ``blur4``: ``cv2.GaussianBlur(gt, (0, 0), sigma, borderType=BORDER_REPLICATE)``,
  sigma 2 and 4 px;
- ``threshold``: ``gt >= 0.5`` as 0/1.

Each is scored under ``comp1k`` and ``whole`` with the tight trimaps (``trimap/``, Trimap1).
Predictions are scored as 8-bit PNGs (``compute_metrics``' default). The script then writes
the ``blur2`` predictions as PNGs, runs ``matting evaluate`` on them and checks that the tool
reports the same means. The numbers are recorded in results.md next to this file and a few
are asserted by tests/test_metrics.py.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from matting.evaluation import evaluate_arrays, summarise
from matting.io.images import list_images, read_alpha, read_trimap, write_png
from matting.metrics import METRIC_HEADERS, format_metric

PREDICTORS = ("blur2", "blur4", "threshold")
PROTOCOLS = ("comp1k", "whole")
DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "alphamatting"


def predict(gt_alpha: np.ndarray, predictor: str) -> np.ndarray:
    """Fixed prediction from the ground truth: float32 (H, W) in [0, 1]."""
    if predictor.startswith("blur"):
        sigma = float(predictor[len("blur"):])
        return cv2.GaussianBlur(gt_alpha, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    if predictor == "threshold":
        return (gt_alpha >= 0.5).astype(np.float32)
    raise ValueError(predictor)


def load(data: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, gt_alpha, trimap) for every image with an alpha in ``data/alpha``."""
    return [(name, read_alpha(path), read_trimap(data / "trimap" / path.name)) for name, path in list_images(data / "alpha").items()]


def table(summaries: dict[str, dict], keys: list[str]) -> str:
    lines = ["| predictor | " + " | ".join(METRIC_HEADERS[k] for k in keys) + " |"]
    lines.append("|---|" + "---:|" * len(keys))
    for predictor, summary in summaries.items():
        cells = [format_metric(k, summary["metrics"][k]["mean"]) for k in keys]
        lines.append(f"| {predictor} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def check_tool(data: Path, samples, protocol: str, expected: dict) -> None:
    """Write blur2 predictions as PNGs, run ``matting evaluate`` on them, compare its means.

    The command runs in its own process, as a user runs it: its reading of the PNGs and its
    report are checked end to end, not just the library functions it calls.
    """
    with tempfile.TemporaryDirectory() as tmp:
        for name, gt, _ in samples:
            write_png(Path(tmp) / "pred" / f"{name}.png", predict(gt, "blur2"))
        out = Path(tmp) / "eval"
        command = [sys.executable, "-m", "matting", "evaluate",
                   "--pred", str(Path(tmp) / "pred"), "--gt", str(data / "alpha"), "--trimap", str(data / "trimap"),
                   "--protocol", protocol, "--out", str(out), "--no-progress"]
        done = subprocess.run(command, capture_output=True, text=True)  # the tool prints its own summary
        if done.returncode != 0:
            raise RuntimeError(f"matting evaluate failed ({done.returncode}):\n{done.stderr[-2000:]}")
        reported = json.loads((out / "summary.json").read_text())["metrics"]
    for key, entry in expected["metrics"].items():
        assert reported[key]["mean"] == entry["mean"], (key, reported[key]["mean"], entry["mean"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python experiments/metrics_alphamatting/run.py", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"alphamatting folder with alpha/ and trimap/ (default {DEFAULT_DATA})")
    args = parser.parse_args(argv)
    samples = load(args.data)
    print(f"{len(samples)} images from {args.data}\n")
    means = {}
    for protocol in PROTOCOLS:
        summaries = {}
        for predictor in PREDICTORS:
            rows = evaluate_arrays(((name, predict(gt, predictor), gt, trimap) for name, gt, trimap in samples), protocol)
            summaries[predictor] = summarise(rows, protocol)
        keys = list(summaries[PREDICTORS[0]]["metrics"])
        print(f"## {protocol} (Trimap1), mean over {len(samples)} images\n\n{table(summaries, keys)}\n")
        means[protocol] = {p: {k: s["metrics"][k]["mean"] for k in keys} for p, s in summaries.items()}
        check_tool(args.data, samples, protocol, summaries["blur2"])
    print("`matting evaluate` on the blur2 PNGs reports the same means (comp1k, whole).\n")
    print("Full-precision means (raw scale: sad/grad/conn /1000, mse/mad unscaled):\n")
    print("```json\n" + json.dumps(means, indent=1) + "\n```")
    return 0


if __name__ == "__main__":
    sys.exit(main())
