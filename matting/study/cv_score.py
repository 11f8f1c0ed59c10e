"""Scoring of the real-photo stage: held-out photos predicted and evaluated as a user does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

from matting.io.files import atomic_write

__all__ = ["SCORER", "color_threshold_matte", "constant_matte", "kept_scores", "mask_counts", "score_run",
           "score_synthetic", "takes_trimap"]

# Bumped whenever the path from photo to score changes (predict's resize, evaluate's metrics): a cached
# score of another version is made again, so every arm of a table is scored the same way.
# 2: the base pass shrinks the photo with antialiased bilinear (the exported graphs' resize), not area.
SCORER = 2


def _matting(args: list[str]) -> None:
    """``matting ARGS`` as a user runs it, two torch threads; its errors reach this process's stderr."""
    env = {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}
    subprocess.run([sys.executable, "-m", "matting", *args], env={**os.environ, **env}, check=True,
                   stdout=subprocess.DEVNULL)


def score_run(checkpoint: Path | None, heldout: Path, out: Path, method: Callable | None = None,
              protocols: tuple[str, ...] = ("whole", "comp1k"), base_size: int | None = None,
              split: dict | None = None) -> dict:
    """Predict the held-out photos into ``out/alpha`` and score them: with ``matting predict`` of
    ``checkpoint`` (its base pass at ``base_size`` px on the long side, predict's default if None),
    or with ``method``, a non-learned matte applied to each photo as photographed ((H, W, 3) float
    RGB in [0, 1] -> (H, W) alpha in [0, 1]; :func:`constant_matte`, :func:`color_threshold_matte`).

    Returns ``{"whole": per-photo rows, "comp1k": per-photo rows, "mask": per-photo IoU / precision /
    recall counts}`` (the ``protocols`` asked for; comp1k reads ``heldout/trimap``); cached in
    ``out/scores.json`` with ``split``, what defines a generated ``heldout`` (kept scores of another
    split are made again).
    """
    scores = kept_scores(out, split)
    if scores is not None:
        return scores
    pred = out / "alpha"
    if method is not None:
        from matting.io.images import list_images, read_image, write_png

        pred.mkdir(parents=True, exist_ok=True)
        for stem, image in list_images(heldout / "image").items():
            write_png(pred / f"{stem}.png", method(read_image(image)), overwrite=True)
    else:  # a trimap-based network (the upper bound) is given the benchmark's trimap of each photo
        trimap = ["--trimap", str(heldout / "trimap")] if takes_trimap(checkpoint) else []
        size = ["--base-size", str(base_size)] if base_size else []
        _matting(["predict", "--ckpt", str(checkpoint), "--out", str(out), "--no-cutout", "--no-progress",
                  "--overwrite", "--threads", "2", *trimap, *size, str(heldout / "image")])
    scores = {}
    for protocol in protocols:
        extra = ["--trimap", str(heldout / "trimap")] if protocol == "comp1k" else []
        folder = out / f"eval_{protocol}"
        _matting(["evaluate", "--pred", str(pred), "--gt", str(heldout / "alpha"), "--protocol", protocol,
                  "--out", str(folder), "--overwrite", "--no-progress", *extra])
        scores[protocol] = json.loads((folder / "summary.json").read_text())["per_image"]
    scores["mask"] = mask_counts(pred, heldout / "alpha")
    scores["scorer"] = SCORER
    if split is not None:
        scores["split"] = split
    atomic_write(out / "scores.json", json.dumps(scores, indent=2) + "\n")
    return scores


def kept_scores(out: Path, split: dict | None = None) -> dict | None:
    """The scores :func:`score_run` kept in ``out/scores.json``, None if absent, made by another
    scorer version or of another ``split``."""
    cached = out / "scores.json"
    scores = json.loads(cached.read_text()) if cached.is_file() else None
    kept = scores is not None and scores.get("scorer") == SCORER and scores.get("split") == split
    return scores if kept else None


def score_synthetic(checkpoint: Path, data_root: Path, out: Path) -> dict:
    """A run scored on the generator's test split (:func:`matting.study.cv_data.synthetic_test_folder`),
    whole-image, at the split's own size: the synthetic columns beside the real-photo ones. Returns
    the split's figures (:func:`matting.study.cv_report.synthetic_figures`), {} for a network that
    takes a trimap (the split has none)."""
    from matting.study.cv_data import SYNTHETIC_TEST, synthetic_test_folder
    from matting.study.cv_report import synthetic_figures

    scores = kept_scores(out, SYNTHETIC_TEST)  # kept: no need to open the checkpoint to ask whether it takes a trimap
    if scores is None:
        if takes_trimap(checkpoint):
            return {}
        scores = score_run(checkpoint, synthetic_test_folder(data_root), out, protocols=("whole",),
                           base_size=SYNTHETIC_TEST["size"], split=SYNTHETIC_TEST)
    return synthetic_figures(scores)


def takes_trimap(checkpoint: Path) -> bool:
    """Whether the checkpoint's network reads a trimap with each photo (``trimap_input``)."""
    from matting.io.checkpoints import read_checkpoint

    return bool((read_checkpoint(checkpoint).net_config().get("init_args") or {}).get("trimap_input"))


def constant_matte(value: float) -> Callable:
    """The same alpha everywhere: the scale of a table (all background, all subject)."""
    import numpy as np

    return lambda image: np.full(image.shape[:2], value, np.float32)


def color_threshold_matte(images: Path, alphas: Path, names: list[str], out: Path) -> Callable:
    """The colour-threshold remover with its threshold searched on the training photos ``names``
    (lowest mean whole-image SAD over ``images``/``alphas``); the sweep is kept in ``out/sweep.md``
    and ``out/threshold.json``. Nothing of the held-out photos is seen."""
    from matting.baselines.color_threshold import ColorThresholdRemover
    from matting.baselines.threshold_search import best_row, sweep_markdown, sweep_thresholds
    from matting.io.images import read_alpha, read_image

    chosen_file = out / "threshold.json"
    kept = json.loads(chosen_file.read_text()) if chosen_file.is_file() else None
    if kept is not None and kept["photos"] == names:
        threshold = kept["threshold"]
    else:
        samples = ((read_image(images / f"{n}.png"), read_alpha(alphas / f"{n}.png")) for n in names)
        rows = sweep_thresholds(samples)
        threshold = best_row(rows)["threshold"]
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / "sweep.md", f"# Colour-threshold sweep on {len(names)} training photos\n\n"
                     f"{sweep_markdown(rows, threshold)}\n")
        atomic_write(chosen_file, json.dumps({"threshold": threshold, "photos": names, "criterion": "lowest SAD"}) + "\n")
    return ColorThresholdRemover(threshold=threshold).predict


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
