"""Tables and grid of the real-photo cross-validation (``results_real.md``, ``.json``, ``grid_real.png``).

Per arm and fold: the mean over the fold's photos of whole-image SAD, MSE and Grad and of comp1k
SAD and Grad (Trimap1), and IoU, precision and recall of alpha > 0.5 pooled over the fold's pixels.
Per arm: mean +- std of those fold figures over folds (and seeds), std with ddof 1 (the spread a
fifth fold would show); then a per-photo table and a grid of every held-out matte.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from matting.io.files import atomic_path, atomic_write, write_keeping_tail

__all__ = ["ANALYSIS_MARKER", "REAL_PAGE", "arm_summary", "fold_figures", "stored_arms", "synthetic_figures",
           "write_cv_results"]

ANALYSIS_MARKER = "<!-- analysis: kept when the study tool rewrites the tables above -->"
REAL_PAGE = "results_real.md"  # the page this module writes; the synthetic collector links to it
# (key, protocol, metric, header, decimals): the display units of `matting evaluate`.
COLUMNS = (("sad", "whole", "sad", "SAD", 2), ("mse", "whole", "mse", "MSE x1e3", 2), ("grad", "whole", "grad", "Grad", 2),
           ("comp1k_sad", "comp1k", "sad", "comp1k SAD", 2), ("comp1k_grad", "comp1k", "grad", "comp1k Grad", 2))
MASK = (("iou", "IoU"), ("precision", "precision"), ("recall", "recall"))
# The same runs on the generator's test split (matting.study.cv_score.score_synthetic): (key, header).
SYNTHETIC = (("sad", "synthetic SAD"), ("iou", "synthetic IoU"))
DISPLAY = {"mse": 1e3}


def _pooled(counts: list[dict]) -> dict[str, float]:
    tp, fp, fn = (sum(c[k] for c in counts) for k in ("tp", "fp", "fn"))
    return {"iou": tp / max(1, tp + fp + fn), "precision": tp / max(1, tp + fp), "recall": tp / max(1, tp + fn)}


def fold_figures(scores: dict, protocols: tuple[str, ...] = ("whole", "comp1k")) -> dict[str, float]:
    """One fold's figures from :func:`matting.study.cv_score.score_run`'s scores (display units): the
    means of the columns of ``protocols`` and IoU, precision and recall pooled over the photos."""
    out = {}
    for key, protocol, metric, _, _ in COLUMNS:
        if protocol in protocols:
            out[key] = float(np.mean([row[metric] for row in scores[protocol]])) * DISPLAY.get(metric, 1.0)
    return {**out, **_pooled(scores["mask"])}


def synthetic_figures(scores: dict) -> dict[str, float]:
    """Whole-image SAD, MSE and Grad and pooled IoU, precision and recall of one run on the generator's
    test split (:func:`matting.study.cv_score.score_synthetic`)."""
    return fold_figures(scores, protocols=("whole",))


def _mean_std(values: list[float]) -> dict[str, float]:
    return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0}


def arm_summary(by_seed: dict) -> dict:
    """``{seed: {fold: scores}}`` -> per-figure mean and std over the (seed, fold) pairs, plus per photo;
    ``synthetic_<key>`` where every pair's run was also scored on the generator's test split."""
    figures = [fold_figures(s) for folds in by_seed.values() for s in folds.values()]
    keys = [c[0] for c in COLUMNS] + [m[0] for m in MASK]
    summary = {k: _mean_std([f[k] for f in figures]) for k in keys}
    synthetic = [s.get("synthetic") for folds in by_seed.values() for s in folds.values()]
    if synthetic and all(synthetic):  # a procedural-only run is scored once and counted per fold: its std is 0
        summary.update({f"synthetic_{k}": _mean_std([s[k] for s in synthetic]) for k, _ in SYNTHETIC})
    photos: dict[str, dict[str, list[float]]] = {}
    for folds in by_seed.values():
        for scores in folds.values():
            for row in scores["whole"]:
                photos.setdefault(row["name"], {}).setdefault("sad", []).append(row["sad"])
            for c in scores["mask"]:
                photos.setdefault(c["name"], {}).setdefault("iou", []).append(_pooled([c])["iou"])
    per_photo = {name: {k: float(np.mean(v)) for k, v in d.items()} for name, d in photos.items()}
    return {"figures": summary, "runs": len(figures), "per_photo": per_photo}


def stored_arms(folder: Path, arms: list[str], fresh: dict, scorer: int) -> tuple[dict, dict]:
    """Results and costs of ``arms`` that ``fresh`` lacks, read from ``folder``'s ``results_real.json``.

    Runs live under ``runs/`` and are not committed, so a study re-run on another disk keeps the
    rows it cannot re-score: each kept cost is marked ``"stored": True`` (its mattes are gone, so it
    has no grid row). A row made by another scorer version is dropped, not kept.
    """
    page = folder / "results_real.json"
    if not page.is_file():
        return {}, {}
    old = json.loads(page.read_text())
    results, costs = {}, {}
    for arm in arms:
        by_seed = old.get("results", {}).get(arm)
        if arm in fresh or not by_seed:
            continue
        if any(s.get("scorer") != scorer for folds in by_seed.values() for s in folds.values()):
            continue
        results[arm] = {int(seed): {int(k): s for k, s in folds.items()} for seed, folds in by_seed.items()}
        costs[arm] = {**old.get("costs", {}).get(arm, {}), "stored": True}
    return results, costs


def _cell(entry: dict, decimals: int) -> str:
    return f"{entry['mean']:.{decimals}f} +- {entry['std']:.{decimals}f}"


def _grid(results: dict, mattes: dict[str, dict[str, Path]], path: Path, tile: int = 96) -> None:
    """One row per arm, one column per photo: every held-out matte at ``tile`` px wide."""
    import cv2

    from matting.io.images import read_alpha
    from matting.report.grid import render_grid, rgb8

    arms = [arm for arm in results if mattes.get(arm)]
    names = sorted({n for m in mattes.values() for n in m})

    def fit(file: Path | None) -> np.ndarray:
        if file is None:
            return np.zeros((tile, tile, 3), np.uint8)
        array = rgb8(read_alpha(file))
        h, w = array.shape[:2]
        return cv2.resize(array, (tile, max(1, round(h * tile / w))), interpolation=cv2.INTER_AREA)

    if not arms or not names:  # every row kept from an earlier page: no matte on this disk to draw
        return
    rows = [[fit(mattes[arm].get(n)) for n in names] for arm in arms]
    with atomic_path(path, temp=path.with_name(f".{path.stem}.partial.png")) as tmp:
        if not cv2.imwrite(str(tmp), render_grid(rows, names, arms)[..., ::-1]):
            raise OSError(f"could not write {path}")


def write_cv_results(folder: Path, title: str, results: dict, mattes: dict[str, dict[str, Path]], costs: dict,
                     header: list[str]) -> Path:
    """Write ``results_real.{md,json}`` and ``grid_real.png`` into ``folder``; returns the page.

    ``results``: ``{arm: {seed: {fold: scores}}}``; ``mattes``: ``{arm: {photo: matte file}}`` (first
    seed); ``costs``: ``{arm: {"steps", "cpu_minutes", "wall_minutes"}}`` per training run (means);
    ``header``: paragraphs under the title (command, budget, machine). An arm whose cost says
    ``"stored"`` (:func:`stored_arms`) is marked in the table and named with its machine below it.
    """
    summaries = {arm: arm_summary(by_seed) for arm, by_seed in results.items()}
    atomic_write(folder / "results_real.json", json.dumps({"summaries": summaries, "costs": costs, "results": results},
                                                         indent=2) + "\n")
    _grid(results, mattes, folder / "grid_real.png")
    heads = [c[3] for c in COLUMNS] + [m[1] for m in MASK]
    with_synthetic = any("synthetic_sad" in s["figures"] for s in summaries.values())
    heads += [h for _, h in SYNTHETIC] if with_synthetic else []
    lines = [f"# {title}", "", *header, "",
             "| arm | runs | steps | CPU-min per run | " + " | ".join(heads) + " |",
             "|---|---:|---:|---:|" + "---:|" * len(heads)]
    for arm, s in summaries.items():
        cost = costs.get(arm)
        spent = "- | -" if not cost or "steps" not in cost else f"{cost['steps']} | {cost['cpu_minutes']:.1f}"
        cells = [_cell(s["figures"][c[0]], c[4]) for c in COLUMNS] + [_cell(s["figures"][m[0]], 3) for m in MASK]
        if with_synthetic:
            cells += [_cell(s["figures"][f"synthetic_{k}"], 2 if k == "sad" else 3) if f"synthetic_{k}" in s["figures"]
                      else "-" for k, _ in SYNTHETIC]
        mark = "*" if cost and cost.get("stored") else ""
        lines.append(f"| {arm}{mark} | {s['runs']} | {spent} | " + " | ".join(cells) + " |")
    short = [arm for arm in summaries if costs.get(arm, {}).get("cut_short")]
    if short:
        lines += ["", "Cut short (their scored weights stop before the planned steps): " + "; ".join(
            f"{arm}, {costs[arm]['cut_short']} run(s)" + (f", weights of step {', '.join(map(str, costs[arm]['steps_reached']))}"
                                                           if costs[arm].get("steps_reached") else "") for arm in short) + "."]
    kept = [arm for arm in summaries if costs.get(arm, {}).get("stored")]
    if kept:
        where = "; ".join(f"{arm}: {costs[arm]['machine']}" for arm in kept if "machine" in costs[arm]) or "no training"
        lines += ["", f"\\* kept from the previous `results_real.json`: their runs are not on this disk, so they were "
                  f"not re-scored and have no row in the grid (trained on {where})."]
    names = sorted({n for s in summaries.values() for n in s["per_photo"]})
    lines += ["", "Per photo, whole-image SAD / IoU (each photo scored by the run that held it out):", "",
              "| photo | " + " | ".join(summaries) + " |", "|---|" + "---:|" * len(summaries)]
    for n in names:
        cells = []
        for s in summaries.values():
            p = s["per_photo"].get(n)
            cells.append("-" if p is None else f"{p['sad']:.1f} / {p['iou']:.3f}")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines += ["", "`grid_real.png`: every held-out matte, one row per arm, one column per photo (the photos and "
              "their ground truth are not redistributable).", ""]
    page = folder / REAL_PAGE
    write_keeping_tail(page, "\n".join(lines) + "\n", ANALYSIS_MARKER, new_tail=ANALYSIS_MARKER + "\n")
    return page
