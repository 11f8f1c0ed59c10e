"""Summarise a study's runs: results.md (mean +- std over seeds per arm) and results.png.

    python tools/study.py collect runs/decoder_heads [--out experiments/decoder_heads] [--reference ARM]

Reads every ``<runs>/<arm>/seed<k>/result.json`` written by ``tools/study.py run``. What each
arm is (its label and kind: two-decoder, single-decoder, seed baseline, upper bound) is read
from the run's saved ``config.yaml``, not from folder names. Writes into ``--out`` (default: the
study folder recorded in the results):

- ``results.md``: the commands that produced the runs, what was held fixed, a table of test
  SAD, MSE, Grad, Conn, IoU, precision and recall (mean +- sample std over seeds), parameters,
  CPU inference ms and training time per arm, the colour-threshold search, and one line saying
  whether the two-decoder model (the MODNet-style arm, or ``--reference``) has a lower mean test
  SAD than every single-decoder arm and every seed baseline;
- ``results.png``: test SAD and IoU per arm, mean +- std, drawn with OpenCV.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import yaml

from matting.io.files import atomic_write
from matting.metrics import METRIC_HEADERS, format_metric
from matting.study.cv_report import REAL_PAGE

REPO = Path(__file__).resolve().parents[2]

TABLE_METRICS = ("sad", "mse", "grad", "conn", "iou", "precision", "recall")
KIND_ORDER = ("two-decoder", "single-decoder", "seed baseline", "upper bound", "other")
KIND_COLOURS = {  # BGR
    "two-decoder": (180, 119, 31), "single-decoder": (14, 127, 255), "seed baseline": (44, 160, 44),
    "upper bound": (150, 150, 150), "other": (189, 103, 148),
}
MATTING_TERMS = ("semantic", "glance", "detail", "alpha", "composition", "laplacian", "gradient")


class CollectError(RuntimeError):
    pass


# ---------------------------------------------------------------------------- reading


def load_runs(runs: Path) -> dict[str, list[dict]]:
    """arm -> results (each with its parsed ``config``), seeds in order. Unfinished runs are ignored."""
    arms: dict[str, list[dict]] = defaultdict(list)
    for path in sorted(runs.glob("*/seed*/result.json")):
        if path.parent.name.endswith(".partial"):
            continue
        result = json.loads(path.read_text())
        config_path = path.parent / "config.yaml"
        if not config_path.is_file():
            raise CollectError(f"{path.parent} has a result.json but no config.yaml")
        result["config"] = yaml.safe_load(config_path.read_text())
        result["dir"] = str(path.parent)
        arms[result["arm"]].append(result)
    if not arms:
        raise CollectError(f"no finished runs (<arm>/seed<k>/result.json) under {runs}")
    return {arm: sorted(rows, key=lambda r: r["seed"]) for arm, rows in arms.items()}


def _short(part: dict | None) -> str | None:
    return part["class_path"].rsplit(".", 1)[-1] if part else None


def describe(config: dict) -> tuple[str, str]:
    """(kind, label) of a run from its saved config."""
    if "method" in config:
        init = config["method"].get("init_args", {})
        return "seed baseline", f"colour threshold (+-{init.get('threshold', 0):g}, {init.get('n_samples')} border blocks, tuned on val)"
    model = config.get("model") or {}
    net = model.get("net") or {}
    cls, init = _short(net) or "?", net.get("init_args") or {}
    loss = (model.get("loss") or {}).get("init_args") or {}
    masks_only = loss.get("segmentation", 0) > 0 and not any(loss.get(k, 0) for k in MATTING_TERMS)
    training = ", binary masks + BCE" if masks_only else ""
    if cls == "MattingNet":
        sem, det = _short(init.get("semantic_head")), _short(init.get("detail_head"))
        encoder = ((init.get("encoder") or {}).get("init_args") or {}).get("name", "?")
        fusion = init.get("fusion") if sem and det else None
        fusion_name = _short(fusion)
        if fusion_name == "CollaborativeFusion":
            fusion_name += f" {(fusion.get('init_args') or {}).get('mode', 'TT')}"
        heads = " + ".join(h for h in (sem, det) if h)
        joined = f"{heads}, {fusion_name or 'no fusion'}" if sem and det else heads
        if masks_only and not sem and det == "FocusHead":
            return "seed baseline", f"U-Net ({encoder} encoder + FocusHead){training}"
        if init.get("trimap_input"):
            return "upper bound", f"{joined}, RGB + trimap input ({encoder})"
        if masks_only:
            return "seed baseline", f"{joined} ({encoder}){training}"
        return ("two-decoder" if sem and det else "single-decoder"), f"{joined} ({encoder})"
    if cls == "FCDenseNet":
        down = list(init.get("down_layers", (4, 5, 7, 10, 12)))
        depth = 2 * sum(down) + init.get("bottleneck", 15) + 2 * len(down) + 2
        return "seed baseline", f"FC-DenseNet-{depth} (growth {init.get('growth', 16)}){training}"
    if cls == "PatchClassifier":
        k = init.get("patch", 15)
        form = f"dense form, {k}x{k} tiles" if init.get("dense") else f"centre form, {k}x{k} receptive field"
        return "seed baseline", f"patch classifier ({form}){training}"
    return ("seed baseline" if masks_only else "other"), f"{cls}{training}"


def is_modnet_two_decoder(config: dict) -> bool:
    init = ((config.get("model") or {}).get("net") or {}).get("init_args") or {}
    return (_short(init.get("semantic_head")), _short(init.get("detail_head")), _short(init.get("fusion")),
            bool(init.get("trimap_input"))) == ("SemanticHead", "DetailHead", "ModnetFusion", False)


# ---------------------------------------------------------------------------- summarising


def summarise(arms: dict[str, list[dict]]) -> list[dict]:
    rows = []
    for arm, results in arms.items():
        kinds = {describe(r["config"]) for r in results}
        kind = next(iter(kinds))[0]
        labels = sorted({label for _, label in kinds})
        row = {"arm": arm, "kind": kind, "label": labels[0] if len(labels) == 1 else " / ".join(labels),
               "seeds": [r["seed"] for r in results], "results": results}
        for m in TABLE_METRICS:
            values = np.array([r["metrics"].get(m, np.nan) for r in results], np.float64)
            row[m] = (float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else float("nan"))
        for key in ("params", "ms", "train_seconds", "steps"):
            row[key] = float(np.mean([r[key] for r in results]))
        rows.append(row)
    rows.sort(key=lambda r: (KIND_ORDER.index(r["kind"]) if r["kind"] in KIND_ORDER else len(KIND_ORDER), r["sad"][0]))
    return rows


def cell(key: str, mean_std: tuple[float, float]) -> str:
    mean, std = mean_std
    if np.isnan(mean):
        return "-"
    fmt = (lambda v: format_metric(key, v)) if key in METRIC_HEADERS else (lambda v: f"{v:.3f}")
    return fmt(mean) + ("" if np.isnan(std) else f" +- {fmt(std)}")


def reference_arm(rows: list[dict], requested: str | None) -> dict:
    if requested:
        found = [r for r in rows if r["arm"] == requested]
        if not found:
            raise CollectError(f"--reference {requested}: no such arm among {[r['arm'] for r in rows]}")
        return found[0]
    found = [r for r in rows if is_modnet_two_decoder(r["results"][0]["config"])]
    if len(found) != 1:
        raise CollectError(f"{len(found)} arms are the MODNet-style two-decoder model "
                           f"({[r['arm'] for r in found]}); name the reference with --reference")
    return found[0]


def verdict(rows: list[dict], ref: dict) -> str:
    """The line answering: lower mean SAD than every single-decoder arm and every seed baseline?"""
    rivals = [r for r in rows if r["kind"] in ("single-decoder", "seed baseline")]
    if not rivals:
        return f"No single-decoder arm or seed baseline was run, so {ref['arm']} has nothing to beat yet."
    mean, std = ref["sad"]
    losses = [r for r in rivals if r["sad"][0] <= mean]
    clear = [r for r in rivals if r["sad"][0] > mean and r["sad"][0] - r["sad"][1] > mean + std]
    head = f"**Does the two-decoder model (`{ref['arm']}`, SAD {cell('sad', ref['sad'])}) beat every single-decoder arm and every seed baseline on test SAD under the same budget?** "
    if not losses:
        return (head + f"Yes: its mean SAD is lower than all {len(rivals)} of them; "
                f"for {len(clear)} of {len(rivals)} the mean +- std ranges do not overlap"
                + ("" if len(clear) == len(rivals) else
                   f" (they overlap for {', '.join('`' + r['arm'] + '`' for r in rivals if r not in clear)})") + ".")
    names = ", ".join(f"`{r['arm']}` ({cell('sad', r['sad'])})" for r in losses)
    return head + f"No: {names} {'has' if len(losses) == 1 else 'have'} a mean SAD at or below it."


def held_fixed(rows: list[dict]) -> list[str]:
    """What every run shared, and warnings where runs differ (budget, options, data)."""
    trained = [r for row in rows for r in row["results"] if row["results"][0]["steps"] > 0]
    everything = [r for row in rows for r in row["results"]]
    lines = []
    steps = sorted({r["steps"] for r in trained})
    options = {json.dumps(r["options"]) for r in everything if r["steps"] > 0}
    data = {json.dumps(r["config"].get("data"), sort_keys=True) for r in everything}
    seeds = sorted({r["seed"] for r in everything})
    if trained:
        cfg = trained[0]["config"]
        lines.append(f"- budget: {', '.join(map(str, steps))} optimizer steps of batch "
                     f"{(cfg.get('data', {}).get('init_args') or {}).get('batch_size', '?')}, precision "
                     f"{cfg.get('trainer', {}).get('precision')}; the checkpoint kept is the best on the validation split "
                     "(val/sad, or val/iou for arms trained on masks)")
    if len(data) == 1:
        d = json.loads(next(iter(data))) or {}
        lines.append(f"- data: `{d.get('class_path')}` {json.dumps(d.get('init_args'))}; test metrics on its test split")
    else:
        lines.append(f"- **warning: the runs used {len(data)} different data configs**")
    if len(steps) > 1:
        lines.append(f"- **warning: the trained runs differ in steps: {steps} (not an equal budget)**")
    if len(options) > 1:
        lines.append("- **warning: the runs were made with different command-line options:** "
                     + "; ".join(f"`{' '.join(json.loads(o)) or '(none)'}`" for o in sorted(options)))
    lines.append(f"- seeds: {', '.join(map(str, seeds))} (training seed; the colour threshold's border-sampling seed)")
    timing = everything[0].get("timing", {})
    retimed = {json.dumps(r.get("timing", {}).get("retimed"), sort_keys=True) for r in everything}
    if len(retimed) == 1 and timing.get("retimed"):
        again = timing["retimed"]
        lines.append(f"- inference: re-measured after the study on a quiet machine by `{again['command']}` "
                     f"({again['when']}): median of {again['runs']} runs at {again['size']} x {again['size']} px, "
                     f"batch 1, float32, {again['threads']} threads, on {everything[0].get('machine', '?')}")
    else:
        if len(retimed) > 1:
            lines.append("- **warning: only some runs were re-timed by tools/study.py retime**")
        lines.append(f"- inference: median of {timing.get('runs')} runs at {timing.get('size')} x {timing.get('size')} px, "
                     f"batch 1, float32, {timing.get('threads')} threads, on {everything[0].get('machine', '?')}, "
                     "measured right after each training (other work on the machine adds noise)")
    return lines


def sweep_section(rows: list[dict]) -> str:
    for row in rows:
        for r in row["results"]:
            if "threshold_sweep" in r:
                from matting.baselines.threshold_search import sweep_markdown

                chosen = [x["threshold"] for x in row["results"]]
                return (f"## Colour-threshold search (validation split, seed {r['seed']})\n\n"
                        f"Thresholds chosen per seed (lowest val SAD): {', '.join(f'{c:g}' for c in chosen)}. "
                        "IoU, precision and recall of the foreground mask, pooled over pixels.\n\n"
                        + sweep_markdown(r["threshold_sweep"], r["threshold"]) + "\n")
    return ""


REAL_POINTER = (f"This page is the synthetic split. The same study on real photos (4-fold cross-validation over "
                f"20 photos, `python tools/study.py cv`) is in [`{REAL_PAGE}`]({REAL_PAGE}).")


def markdown(rows: list[dict], ref: dict | None, verdict_line: str, collector_command: str,
             real_page: bool = False) -> str:
    commands = sorted({r["command"] for row in rows for r in row["results"]})
    head = ("| arm | method | kind | seeds | " + " | ".join(
        METRIC_HEADERS.get(m, m if m != "iou" else "IoU") for m in TABLE_METRICS)
        + " | params (M) | ms @ {} px | train s |".format(rows[0]["results"][0].get("timing", {}).get("size", "?")))
    lines = [head, "|---|---|---|---:|" + "---:|" * (len(TABLE_METRICS) + 3)]
    for r in rows:
        name = f"**{r['arm']}**" if ref is not None and r is ref else r["arm"]
        cells = [cell(m, r[m]) for m in TABLE_METRICS]
        lines.append(f"| {name} | {r['label']} | {r['kind']} | {len(r['seeds'])} | " + " | ".join(cells)
                     + f" | {r['params'] / 1e6:.2f} | {r['ms']:.0f} | {r['train_seconds']:.0f} |")
    text = [
        "# Results: decoder heads study" if "decoder_heads" in rows[0]["results"][0].get("study", "") else "# Results",
        "",
        *([REAL_POINTER, ""] if real_page else []),
        "Made by:",
        "",
        "```",
        *commands,
        collector_command,
        "```",
        "",
        "Held fixed:",
        "",
        *held_fixed(rows),
        "",
        f"Test split metrics, mean +- sample std over seeds (whole image; {METRIC_HEADERS['sad']} etc. as "
        "`matting evaluate` reports them; IoU, precision, recall of the mask alpha > 0.5, pooled over pixels). "
        "Rows: two-decoder arms, single-decoder arms, seed baselines, upper bound; by SAD within each.",
        "",
        *lines,
        "",
        verdict_line,
        "",
        "![test SAD and IoU per arm](results.png)",
        "",
    ]
    sweep = sweep_section(rows)
    return "\n".join(text) + ("\n" + sweep if sweep else "")


# ---------------------------------------------------------------------------- plot


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k (times 5 ticks) at or above ``value``: round axis ticks."""
    if not value > 0:
        return 1.0
    step = value / 5
    base = 10 ** np.floor(np.log10(step))
    for m in (1, 2, 2.5, 5, 10):
        if m * base >= step:
            return float(5 * m * base)
    return float(value)


def plot(rows: list[dict], path: Path) -> None:
    """Two horizontal bar panels (test SAD, IoU), mean with a +- std whisker, coloured by kind."""
    font, row_h, top, label_w, panel_w, gap = cv2.FONT_HERSHEY_SIMPLEX, 30, 70, 230, 330, 40
    height = top + row_h * len(rows) + 70
    width = label_w + 2 * panel_w + 2 * gap
    img = np.full((height, width, 3), 255, np.uint8)
    cv2.putText(img, "Test split, mean +- std over seeds", (10, 24), font, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    panels = [("sad", METRIC_HEADERS["sad"] + "  (lower is better)"), ("iou", "IoU of alpha > 0.5  (higher is better)")]
    for p, (key, title) in enumerate(panels):
        x0 = label_w + p * (panel_w + gap)
        values = [r[key] for r in rows]
        vmax = max((m + (0 if np.isnan(s) else s)) for m, s in values if not np.isnan(m)) if values else 1.0
        vmax = 1.0 if key == "iou" else nice_ceiling(vmax * 1.05)
        cv2.putText(img, title, (x0, 52), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.line(img, (x0, top - 6), (x0, top + row_h * len(rows)), (0, 0, 0), 1)
        for t in np.linspace(0, vmax, 6 if key != "iou" else 5):
            x = int(x0 + t / vmax * panel_w)
            cv2.line(img, (x, top + row_h * len(rows)), (x, top + row_h * len(rows) + 4), (0, 0, 0), 1)
            cv2.putText(img, f"{t:.2f}" if key == "iou" else f"{t:g}", (x - 12, top + row_h * len(rows) + 18),
                        font, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
        for i, r in enumerate(rows):
            y = top + i * row_h
            mean, std = r[key]
            if np.isnan(mean):
                continue
            x1 = int(x0 + mean / vmax * panel_w)
            cv2.rectangle(img, (x0, y + 5), (max(x1, x0 + 1), y + row_h - 5), KIND_COLOURS.get(r["kind"], (0, 0, 0)), -1)
            if not np.isnan(std):
                lo, hi = int(x0 + (mean - std) / vmax * panel_w), int(x0 + (mean + std) / vmax * panel_w)
                cv2.line(img, (lo, y + row_h // 2), (hi, y + row_h // 2), (0, 0, 0), 1)
                for x in (lo, hi):
                    cv2.line(img, (x, y + 9), (x, y + row_h - 9), (0, 0, 0), 1)
            text = f"{mean:.3f}" if key == "iou" else format_metric(key, mean, 2)
            cv2.putText(img, text, (min(x1 + 4, x0 + panel_w - 30), y + row_h - 10), font, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    for i, r in enumerate(rows):
        cv2.putText(img, r["arm"][:28], (10, top + i * row_h + row_h - 10), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    x = 10
    for kind in KIND_ORDER:
        if any(r["kind"] == kind for r in rows):
            y = height - 18
            cv2.rectangle(img, (x, y - 10), (x + 14, y + 2), KIND_COLOURS[kind], -1)
            cv2.putText(img, kind, (x + 20, y), font, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
            x += 30 + 9 * len(kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img):
        raise CollectError(f"could not write {path}")


# ---------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python tools/study.py collect", description=__doc__.split("\n\n")[0])
    p.add_argument("runs", type=Path, help="output folder of tools/study.py run")
    p.add_argument("--out", type=Path, help="where results.md and results.png go (default: the study folder)")
    p.add_argument("--reference", help="arm that is 'the two-decoder model' (default: the one with SemanticHead + DetailHead + ModnetFusion)")
    args = p.parse_args(argv)
    try:
        arms = load_runs(args.runs)
        rows = summarise(arms)
        studies = {r["study"] for row in rows for r in row["results"]}
        if args.out is None:
            if len(studies) != 1:
                raise CollectError(f"runs come from several studies {sorted(studies)}; pass --out")
            study = Path(next(iter(studies)))
            args.out = study if study.is_absolute() else REPO / study
        try:
            ref = reference_arm(rows, args.reference)
            line = verdict(rows, ref)
        except CollectError as exc:
            if args.reference:
                raise
            ref, line = None, f"No verdict: {exc}."
        command = shlex.join(["python", "tools/study.py", "collect", *argv])
        args.out.mkdir(parents=True, exist_ok=True)
        # Pointed to only where the real-photo page sits beside it, so a page never links to nothing.
        page = markdown(rows, ref, line, command, real_page=(args.out / REAL_PAGE).is_file())
        atomic_write(args.out / "results.md", page)
        plot(rows, args.out / "results.png")
    except CollectError as exc:
        print(f"collect_results: error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.out / 'results.md'}\n{line}")
    return 0

