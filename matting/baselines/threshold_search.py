"""Threshold search for the colour-threshold remover, reporting SAD and mask precision / recall.

For every threshold the remover predicts a hard alpha on each image of a split; the sweep
reports the mean SAD (whole image, as ``matting evaluate --protocol whole``) and the IoU,
precision and recall of the foreground mask (prediction > 0.5 against ground truth > 0.5),
pooled over all pixels of the split, as the networks' ``val/iou`` etc. are. A low threshold
keeps almost everything as foreground (high recall, low precision); a high one removes the
subject with the background.

    python -m matting.baselines.threshold_search [--split val] [--length 64] [--size 256]
                                                 [--thresholds 2 4 ... 100] [--out sweep.md]
    python -m matting.baselines.threshold_search --images DIR --alphas DIR

Without folders the split is the embedded synthetic data (data seed ``--seed``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from matting.baselines.color_threshold import ColorThresholdRemover
from matting.metrics import METRIC_HEADERS, format_metric, sad

DEFAULT_THRESHOLDS = tuple(range(2, 101, 2))


def sweep_thresholds(
    samples: Iterable[tuple[np.ndarray, np.ndarray]],
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    **remover_kwargs,
) -> list[dict]:
    """Score the colour-threshold remover at every threshold on one pass over ``samples``.

    Args:
        samples: (image (H, W, 3) RGB uint8 or float in [0, 1], gt alpha (H, W) float in [0, 1]).
        thresholds: per-channel tolerances on the 0-255 scale.
        remover_kwargs: other :class:`ColorThresholdRemover` arguments (n_samples, block, seed...).

    Returns:
        One row per threshold, in order: ``{"threshold", "sad", "iou", "precision", "recall",
        "images"}``; ``sad`` is the mean over images in the scale of :func:`matting.metrics.sad`
        (/1000), the mask scores are pooled over all pixels (0 when undefined).
    """
    removers = [ColorThresholdRemover(threshold=t, **remover_kwargs) for t in thresholds]
    sad_sum = np.zeros(len(removers))
    counts = np.zeros((len(removers), 3), np.int64)  # true positives, false positives, false negatives
    images = 0
    for image, gt in samples:
        gt = np.asarray(gt, np.float32)
        truth = gt > 0.5
        for i, remover in enumerate(removers):
            pred = remover.predict(image)
            sad_sum[i] += sad(pred, gt)
            fg = pred > 0.5
            counts[i] += (np.count_nonzero(fg & truth), np.count_nonzero(fg & ~truth), np.count_nonzero(~fg & truth))
        images += 1
    if not images:
        raise ValueError("threshold sweep: the split has no images")
    rows = []
    for t, s, (tp, fp, fn) in zip(thresholds, sad_sum, counts):
        ratio = lambda num, den: float(num / den) if den else 0.0
        rows.append({"threshold": float(t), "sad": float(s / images), "iou": ratio(tp, tp + fp + fn),
                     "precision": ratio(tp, tp + fp), "recall": ratio(tp, tp + fn), "images": images})
    return rows


def best_row(rows: Sequence[dict], key: str = "sad") -> dict:
    """The row with the lowest ``key`` (``sad``) or, for ``iou``, the highest; ties go to the lower threshold."""
    if key == "iou":
        return max(rows, key=lambda r: (r["iou"], -r["threshold"]))
    return min(rows, key=lambda r: (r[key], r["threshold"]))


def sweep_markdown(rows: Sequence[dict], chosen: float | None = None) -> str:
    """Markdown table of a sweep; the ``chosen`` threshold's row is marked."""
    lines = [f"| threshold | {METRIC_HEADERS['sad']} | IoU | precision | recall |", "|---:|---:|---:|---:|---:|"]
    for r in rows:
        mark = " (chosen)" if chosen is not None and r["threshold"] == chosen else ""
        lines.append(f"| {r['threshold']:g}{mark} | {format_metric('sad', r['sad'])} | {r['iou']:.3f} | "
                     f"{r['precision']:.3f} | {r['recall']:.3f} |")
    return "\n".join(lines)


def samples_from_batches(batches: Iterable[dict]) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    """(image, alpha) numpy pairs from dataloader batches (``image`` (B, 3, H, W), ``alpha`` (B, 1, H, W))."""
    for batch in batches:
        for image, alpha in zip(batch["image"], batch["alpha"]):
            yield image.float().permute(1, 2, 0).cpu().numpy(), alpha[0].float().cpu().numpy()


def _folder_samples(images: Path, alphas: Path) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    from matting.io.errors import MattingInputError
    from matting.io.images import list_images, read_alpha, read_image
    from matting.io.pairing import group_by_stem

    groups = group_by_stem({"image": list_images(images), "alpha": list_images(alphas)})
    pairs = [g.files for g in groups if g.complete]
    if not pairs:
        raise MattingInputError(f"no image in {images} has an alpha of the same name in {alphas}")
    for files in pairs:
        yield read_image(files["image"]), read_alpha(files["alpha"])


def _synthetic_samples(split: str, length: int, size: int, seed: int) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    from matting.data.synthetic.dataset import SyntheticMattingDataset

    dataset = SyntheticMattingDataset(split, length, size, seed)
    for i in range(len(dataset)):
        d = dataset.arrays(i)
        yield d["image"], d["alpha"]  # (H, W, 3), (H, W)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m matting.baselines.threshold_search", description=__doc__.split("\n\n")[0])
    p.add_argument("--split", default="val", choices=("train", "val", "test"), help="synthetic split (default val)")
    p.add_argument("--length", type=int, default=64, help="synthetic images (default 64)")
    p.add_argument("--size", type=int, default=256, help="synthetic image side (default 256)")
    p.add_argument("--seed", type=int, default=0, help="synthetic data seed (default 0)")
    p.add_argument("--images", type=Path, help="folder of images (instead of synthetic data)")
    p.add_argument("--alphas", type=Path, help="folder of ground-truth alphas with the same names")
    p.add_argument("--thresholds", type=float, nargs="+", default=list(DEFAULT_THRESHOLDS))
    p.add_argument("--sample-seed", type=int, default=0, help="seed of the remover's border sampling")
    p.add_argument("--out", type=Path, help="also write the table to this markdown file")
    args = p.parse_args(argv)
    if (args.images is None) != (args.alphas is None):
        p.error("--images and --alphas go together")
    if args.images is not None:
        samples, source = _folder_samples(args.images, args.alphas), f"{args.images} against {args.alphas}"
    else:
        samples = _synthetic_samples(args.split, args.length, args.size, args.seed)
        source = f"synthetic {args.split} split, {args.length} images of {args.size} px, data seed {args.seed}"
    rows = sweep_thresholds(samples, args.thresholds, seed=args.sample_seed)
    best = best_row(rows)
    text = (f"# Colour-threshold sweep: {source}\n\n{sweep_markdown(rows, best['threshold'])}\n\n"
            f"Lowest SAD at threshold {best['threshold']:g}; highest IoU at {best_row(rows, 'iou')['threshold']:g}. "
            "IoU, precision and recall are of the foreground mask, pooled over all pixels.\n")
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
