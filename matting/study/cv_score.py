"""Scoring of the real-photo stage: held-out photos predicted and evaluated as a user does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from matting.io.files import atomic_write

__all__ = ["SCORER", "mask_counts", "score_run"]

# Bumped whenever the path from photo to score changes (predict's resize, evaluate's metrics): a cached
# score of another version is made again, so every arm of a table is scored the same way.
# 2: the base pass shrinks the photo with antialiased bilinear (the exported graphs' resize), not area.
SCORER = 2


def _matting(args: list[str]) -> None:
    """``matting ARGS`` as a user runs it, two torch threads; its errors reach this process's stderr."""
    env = {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}
    subprocess.run([sys.executable, "-m", "matting", *args], env={**os.environ, **env}, check=True,
                   stdout=subprocess.DEVNULL)


def score_run(checkpoint: Path | None, constant: float | None, heldout: Path, out: Path) -> dict:
    """Predict the held-out photos (or write the constant matte) into ``out/alpha`` and score them.

    Returns ``{"whole": per-photo rows, "comp1k": per-photo rows, "mask": per-photo IoU / precision /
    recall counts}``; cached in ``out/scores.json``.
    """
    cached = out / "scores.json"
    if cached.is_file():
        scores = json.loads(cached.read_text())
        if scores.get("scorer") == SCORER:
            return scores
    pred = out / "alpha"
    if constant is not None:
        import numpy as np

        from matting.io.images import read_alpha, write_png

        pred.mkdir(parents=True, exist_ok=True)
        for gt in sorted((heldout / "alpha").glob("*.png")):
            write_png(pred / gt.name, np.full_like(read_alpha(gt), constant), overwrite=True)
    else:
        _matting(["predict", "--ckpt", str(checkpoint), "--out", str(out), "--no-cutout", "--no-progress",
                  "--overwrite", "--threads", "2", str(heldout / "image")])
    scores = {}
    for protocol, extra in (("whole", []), ("comp1k", ["--trimap", str(heldout / "trimap")])):
        folder = out / f"eval_{protocol}"
        _matting(["evaluate", "--pred", str(pred), "--gt", str(heldout / "alpha"), "--protocol", protocol,
                  "--out", str(folder), "--overwrite", "--no-progress", *extra])
        scores[protocol] = json.loads((folder / "summary.json").read_text())["per_image"]
    scores["mask"] = mask_counts(pred, heldout / "alpha")
    scores["scorer"] = SCORER
    atomic_write(cached, json.dumps(scores, indent=2) + "\n")
    return scores


def mask_counts(pred: Path, gt: Path) -> list[dict]:
    """Per photo: true-positive, false-positive and false-negative pixel counts of alpha > 0.5.

    Counts, not ratios, so that IoU, precision and recall can be pooled over any set of photos.
    """
    import numpy as np

    from matting.io.images import read_alpha

    rows = []
    for path in sorted(gt.glob("*.png")):
        p, t = read_alpha(pred / path.name) > 0.5, read_alpha(path) > 0.5
        rows.append({"name": path.stem, "tp": int(np.sum(p & t)), "fp": int(np.sum(p & ~t)), "fn": int(np.sum(~p & t))})
    return rows
