"""Scoring folders of predicted alpha mattes against ground truth: pairing, workers, summaries, reports.

``matting evaluate`` is the command over this; the demo and the experiments call it directly.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from matting.io.errors import MattingInputError, WrongContent
from matting.io.files import check_output, csv_text, staged_folder
from matting.io.images import TRIMAP_UNKNOWN, list_images, read_alpha, read_trimap
from matting.io.pairing import group_by_stem
from matting.metrics import (
    DISPLAY_SCALES,
    METRIC_HEADERS,
    compute_metrics,
    display_value,
    format_metric,
    metric_keys,
)

PROTOCOL_REGIONS = {
    "comp1k": "Composition-1k (official MATLAB definitions): unknown region of the trimap (trimap == 128), "
    "prediction's known regions forced to the trimap",
    # --no-force: the file as saved, as the official evaluate.m scores it.
    "comp1k-unforced": "Composition-1k (official MATLAB definitions): unknown region of the trimap (trimap == 128), "
    "prediction scored as saved (known regions not forced)",
    "whole": "whole image (AM-2k / P3M / AIM); '... unknown' over trimap == 128, 'fg'/'bg' over trimap 255/0",
    "modnet": "whole image (PPM-100, MODNet)",
}


@dataclass(frozen=True)
class Pair:
    """Files of one image: prediction, ground truth and (optional) trimap."""

    name: str
    pred: Path
    gt: Path
    trimap: Path | None = None


@dataclass(frozen=True)
class Problem:
    """Why an image could not be scored; ``message`` names every file involved."""

    kind: str
    name: str
    message: str


def match_files(
    pred_dir: Path, gt_dir: Path, trimap_dir: Path | None = None
) -> tuple[list[Pair], list[Problem]]:
    """Pair files by stem. Returns the complete pairs and the problems found, sorted by name."""
    listings = {"pred": list_images(pred_dir), "gt": list_images(gt_dir),
                "trimap": list_images(trimap_dir) if trimap_dir is not None else None}
    pairs, problems = [], []
    for group in group_by_stem(listings, leading=("pred", "gt")):
        name, files = group.stem, group.files
        if "gt" in group.missing:
            message = f"prediction {files['pred']} has no ground truth in {gt_dir}"
            problems.append(Problem("stray prediction", name, message))
        elif "pred" in group.missing:
            message = f"ground truth {files['gt']} has no prediction in {pred_dir}"
            problems.append(Problem("missing prediction", name, message))
        elif "trimap" in group.missing:
            message = f"ground truth {files['gt']} has no trimap in {trimap_dir}"
            problems.append(Problem("missing trimap", name, message))
        else:
            pairs.append(Pair(name, files["pred"], files["gt"], files.get("trimap")))
    return pairs, problems


def _load(pair: Pair, protocol: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Read one pair, checking that the sizes agree; MattingInputError names the files.

    Under ``comp1k`` a trimap without unknown pixels is refused: only they are scored, so every
    metric would be a perfect 0 (a 0/255 mask given as the trimap).
    """
    pred, gt = read_alpha(pair.pred), read_alpha(pair.gt)
    trimap = read_trimap(pair.trimap) if pair.trimap is not None else None
    if protocol == "comp1k" and trimap is not None and not (trimap == TRIMAP_UNKNOWN).any():
        raise WrongContent(f"trimap {pair.trimap} has no unknown pixel (128): comp1k scores only those, so every "
                           "metric would be a perfect 0; give this image's trimap, or use --protocol whole",
                           kind="no unknown region")
    size = lambda a: f"{a.shape[1]}x{a.shape[0]}"
    if pred.shape != gt.shape:
        raise MattingInputError(
            f"size mismatch: prediction {pair.pred} is {size(pred)}, ground truth {pair.gt} is {size(gt)}"
        )
    if trimap is not None and trimap.shape != gt.shape:
        raise MattingInputError(
            f"size mismatch: trimap {pair.trimap} is {size(trimap)}, ground truth {pair.gt} is {size(gt)}"
        )
    return pred, gt, trimap


def evaluate_pair(pair: Pair, protocol: str, force_known: bool = True) -> dict:
    """Scores of one image: ``{"name": stem, <metric key>: raw value, ...}``.

    The prediction is scored at the bit depth of its file (no 8-bit rounding: an 8-bit PNG holds
    8-bit values already, a 16-bit file keeps its 16 bits), so identical files score 0.
    ``force_known`` as in ``matting.metrics.compute_metrics``.
    """
    pred, gt, trimap = _load(pair, protocol)
    values = compute_metrics(pred, gt, trimap, protocol, quantize=False, force_known=force_known)
    return {"name": pair.name, **values}


def evaluate_arrays(
    items: Iterable[tuple], protocol: str = "whole", quantize: bool = True, force_known: bool = True
) -> list[dict]:
    """Score in-memory predictions, e.g. a training job's own outputs.

    Args:
        items: (name, pred_alpha, gt_alpha, trimap or None) tuples; alphas (H, W) float in [0, 1].
        protocol, quantize, force_known: as in ``matting.metrics.compute_metrics`` (by default
            the prediction is scored as the 8-bit PNG it would be saved as).

    Returns:
        Rows ``{"name": name, <metric key>: raw value}``, ready for ``summarise``/``write_report``.
    """
    return [
        {"name": name, **compute_metrics(pred, gt, trimap, protocol, quantize, force_known)}
        for name, pred, gt, trimap in items
    ]


def _task(job: tuple[Pair, str, bool, bool]) -> tuple[str, dict | None, Problem | None]:
    """Worker: score (or, with check_only, just read) one pair; input problems are returned."""
    pair, protocol, check_only, force_known = job
    try:
        if check_only:
            _load(pair, protocol)
            return pair.name, None, None
        return pair.name, evaluate_pair(pair, protocol, force_known), None
    except MattingInputError as exc:
        kind = "size mismatch" if str(exc).startswith("size mismatch: ") else getattr(exc, "kind", "unreadable")
        # The report prints "kind: message": the message does not repeat the kind.
        message = str(exc).removeprefix(f"{kind}: ")
        return pair.name, None, Problem(kind, pair.name, message)


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)  # one process per core; OpenCV's own threads would oversubscribe


def _pool(workers: int):
    """A pool of ``workers`` spawned processes for ``_task``.

    spawn, not fork: a forked child inherits OpenCV's (or OpenMP's) thread pool in an undefined
    state and can hang once the parent has used it. A spawned worker imports this module (numpy,
    OpenCV, the metrics and readers; no torch) and re-runs the imports of the parent's main
    script, which for the ``matting`` command is only the dispatcher.
    """
    return multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker)


# Starting the worker pool costs about 0.3 s (two interpreters importing numpy and OpenCV), and
# scoring takes roughly 0.06 s per million pixels in one process. Measured on 2 cores: 8 and 16
# full-HD pairs (16 and 32 million pixels) were only about 10% faster with 2 workers than with 1,
# 4 pairs no faster, and 30 pairs of 256 x 256 50% slower. So below this many prediction pixels
# in all, the default is one process.
PARALLEL_MIN_PIXELS = 32_000_000


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _pixels(path: Path) -> int:
    """Width x height from the file's header (0 if it cannot be read; reading reports that later)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.width * image.height
    except Exception:
        return 0


def default_workers(pairs: Sequence[Pair]) -> int:
    """Processes ``evaluate_dirs`` uses when not told: 1 for little work, else 2 (at most the CPUs).

    The work is estimated as the number of pairs times the mean size of up to three predictions
    (first, middle, last), read from the file headers only.
    """
    if len(pairs) < 2:
        return 1
    sample = [pairs[0], pairs[len(pairs) // 2], pairs[-1]]
    estimate = len(pairs) * sum(_pixels(pair.pred) for pair in sample) / len(sample)
    return 1 if estimate < PARALLEL_MIN_PIXELS else max(1, min(2, _cpus()))


def _run(pairs: Sequence[Pair], protocol: str, workers: int, check_only: bool, progress: bool, force_known: bool = True):
    """Run ``_task`` over ``pairs`` with a progress bar; yields its results in completion order."""
    from tqdm import tqdm

    jobs = [(pair, protocol, check_only, force_known) for pair in pairs]
    desc = "checking files" if check_only else f"evaluate ({protocol})"
    bar = tqdm(total=len(jobs), desc=desc, unit="img", disable=not progress, file=sys.stderr)
    workers = max(1, min(workers, len(jobs)))
    try:
        if workers == 1:
            for job in jobs:
                yield _task(job)
                bar.update()
            return
        with _pool(workers) as pool:
            for result in pool.imap_unordered(_task, jobs):
                yield result
                bar.update()
    finally:
        bar.close()


def evaluate_dirs(
    pred_dir: str | os.PathLike,
    gt_dir: str | os.PathLike,
    trimap_dir: str | os.PathLike | None = None,
    protocol: str = "whole",
    workers: int | None = None,
    allow_missing: bool = False,
    progress: bool = True,
    force_known: bool = True,
) -> tuple[list[dict], list[Problem]]:
    """Score every prediction in ``pred_dir``, each at the bit depth of its file.

    Args:
        workers: processes; None picks ``default_workers`` (1 for small folders, else 2).
        force_known: ``comp1k`` only; False scores the files as saved (``--no-force``).

    Returns:
        (rows sorted by name, problems). Without ``allow_missing`` any problem raises
        MattingInputError listing all of them (files are then only read, not scored).
    """
    metric_keys(protocol)  # validates the name
    if protocol == "comp1k" and trimap_dir is None:
        raise MattingInputError("protocol 'comp1k' needs --trimap (only trimap == 128 pixels count)")
    if protocol == "modnet":
        trimap_dir = None
    pairs, problems = match_files(Path(pred_dir), Path(gt_dir), None if trimap_dir is None else Path(trimap_dir))
    if workers is None:
        workers = default_workers(pairs)
    if problems and not allow_missing:
        # Read the rest too, so that one error message lists every bad file.
        problems += [p for _, _, p in _run(pairs, protocol, workers, True, progress) if p is not None]
        raise MattingInputError(_problem_report(problems))
    rows, read_problems = [], []
    for _, row, problem in _run(pairs, protocol, workers, False, progress, force_known):
        if problem is not None:
            read_problems.append(problem)
        else:
            rows.append(row)
    problems = sorted(problems + read_problems, key=lambda p: (p.name, p.kind))
    if problems and not allow_missing:
        raise MattingInputError(_problem_report(problems))
    if not rows:
        raise MattingInputError(f"nothing to evaluate: no prediction in {pred_dir} could be scored")
    return sorted(rows, key=lambda r: r["name"]), problems


def _problem_report(problems: Sequence[Problem]) -> str:
    problems = sorted(problems, key=lambda p: (p.name, p.kind))
    lines = [f"{len(problems)} file problem(s) (use --allow-missing to skip these images):"]
    lines += [f"  - {p.kind}: {p.message}" for p in problems]
    return "\n".join(lines)


def summarise(
    rows: Sequence[dict], protocol: str, problems: Sequence[Problem] = (), force_known: bool = True
) -> dict:
    """Mean and std (ddof = 0) over images of every metric key present in ``rows``.

    Returns a JSON-ready dict: protocol, region, image count, per-metric
    ``{"header", "display_scale", "mean", "std", "display_mean", "display_std"}`` (raw and
    display scale) and the problems as dicts. ``force_known`` only names the comp1k region.
    """
    keys = [k for k in metric_keys(protocol, with_trimap=True) if rows and all(k in row for row in rows)]
    metrics = {}
    for key in keys:
        values = np.array([row[key] for row in rows], dtype=np.float64)
        mean, std = float(values.mean()), float(values.std())
        metrics[key] = {
            "header": METRIC_HEADERS[key],
            "display_scale": DISPLAY_SCALES[key],
            "mean": mean,
            "std": std,
            "display_mean": mean * DISPLAY_SCALES[key],
            "display_std": std * DISPLAY_SCALES[key],
        }
    region = "comp1k-unforced" if protocol == "comp1k" and not force_known else protocol
    return {
        "protocol": protocol,
        "region": PROTOCOL_REGIONS[region],
        "images": len(rows),
        "std": "population standard deviation over images (ddof=0)",
        "metrics": metrics,
        "skipped": len(problems),
        "problems": [asdict(p) for p in problems],
    }


def summary_markdown(summary: dict, sources: dict | None = None) -> str:
    """Markdown rendering of ``summarise``'s result (display scale, units in the headers)."""
    lines = [f"# Evaluation, protocol `{summary['protocol']}`", ""]
    for label, value in (sources or {}).items():
        lines.append(f"- {label}: `{value}`")
    lines += [f"- region: {summary['region']}", f"- images evaluated: {summary['images']}", ""]
    lines += ["| metric | mean | std |", "|---|---:|---:|"]
    for key, entry in summary["metrics"].items():
        mean, std = format_metric(key, entry["mean"]), format_metric(key, entry["std"])
        lines.append(f"| {entry['header']} | {mean} | {std} |")
    lines += ["", "std: population standard deviation over images. Raw values: summary.json."]
    if summary["problems"]:
        lines += ["", f"## Skipped ({len(summary['problems'])}, --allow-missing)", ""]
        lines += [f"- {p['kind']}: {p['message']}" for p in summary["problems"]]
    return "\n".join(lines) + "\n"


def per_image_csv(rows: Sequence[dict], protocol: str) -> str:
    """CSV text: ``image`` then one column per metric headed with its units, display scale.

    Values are written in full (the shortest text that reads back as the same float64), not
    rounded: ``float(cell) == display_value(key, raw)`` exactly.
    """
    keys = [k for k in metric_keys(protocol, with_trimap=True) if rows and all(k in row for row in rows)]
    return csv_text([["image"] + [METRIC_HEADERS[k] for k in keys]]
                    + [[row["name"]] + [repr(display_value(k, row[k])) for k in keys] for row in rows])


def write_report(
    rows: Sequence[dict],
    out_dir: str | os.PathLike,
    protocol: str,
    problems: Sequence[Problem] = (),
    overwrite: bool = False,
    sources: dict | None = None,
    force_known: bool = True,
) -> Path:
    """Write per_image.csv, summary.md and summary.json into ``out_dir`` as one step.

    The files are written into a temporary sibling folder which then replaces ``out_dir``, so
    a reader never sees half a report. An existing ``out_dir`` raises unless ``overwrite``, and a
    file there (or above it) always does.

    Args:
        rows: ``{"name": ..., <metric key>: raw value}`` per image.
        out_dir: destination folder.
        protocol: protocol the rows were computed with.
        problems: skipped images, listed in the summary.
        sources: extra ``label: value`` lines for the summary (folders, checkpoint, ...).
        force_known: whether comp1k rows were scored with forced known regions (names the region).

    summary.json holds the raw value of every image too (``"per_image"``: rows as given).

    Returns:
        ``out_dir`` as a Path.
    """
    out_dir = Path(out_dir)
    check_output(out_dir, overwrite=overwrite)
    summary = summarise(rows, protocol, problems, force_known)
    summary["sources"] = {k: str(v) for k, v in (sources or {}).items()}
    keys = [k for k in metric_keys(protocol, with_trimap=True) if rows and all(k in row for row in rows)]
    summary["per_image"] = [{"name": row["name"], **{k: float(row[k]) for k in keys}} for row in rows]
    with staged_folder(out_dir) as staging:
        (staging / "per_image.csv").write_text(per_image_csv(rows, protocol))
        (staging / "summary.md").write_text(summary_markdown(summary, sources))
        (staging / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return out_dir
