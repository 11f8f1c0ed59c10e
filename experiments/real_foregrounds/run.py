"""Train every arm of the real-foreground study under one budget and score it on five real photos.

    python experiments/real_foregrounds/prepare.py                  # data root (once)
    python experiments/real_foregrounds/run.py [--arms A B ...] [--jobs 2] [--data DIR] [--out DIR]
                                               [--results experiments/real_foregrounds] [--score-only]

Each arm trains with ``matting fit -c configs/default.yaml -c base.yaml -c <its files>`` as its own
process with one torch thread (``--jobs`` of them side by side), from random weights, for the
budget of ``base.yaml``; its last checkpoint is then run through ``matting predict`` (the path a user
takes, base pass at 512 px) on GT16-GT20 as photographed, and the mattes are scored by ``matting
evaluate``: whole image (SAD, MSE, Grad) and comp1k with the benchmark's Trimap1 (SAD, MSE, Grad,
Conn), plus IoU, precision and recall of the mask alpha > 0.5 pooled over the five photos. A
constant all-background matte is scored beside them. Nothing is chosen on the five photos.

Writes ``<out>/train/<arm>/`` (logs, checkpoints, ``train.json``: steps, wall and CPU time, whether
the time limit cut it short), ``<out>/pred/<arm>/alpha/``, ``<out>/eval/<arm>_{whole,comp1k}/``,
``<out>/grid_full.png`` (photos, ground truth and every arm) and, in ``--results``, ``results.md``,
``results.json`` and ``grid.png`` (the arms' mattes only: the photos have no redistribution licence).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

STUDY = Path(__file__).resolve().parent
REPO = STUDY.parents[1]

# Arm -> config files after configs/default.yaml and base.yaml, in order. The MODNet recipe comes
# before the data so that its network, loss, optimizer and schedule apply to the mixed data.
ARMS: dict[str, list[str]] = {
    "synthetic_texture_cue": ["arms/synthetic_texture_cue.yaml"],
    "synthetic": ["arms/synthetic.yaml"],
    "real": ["data_real.yaml"],
    "mixed": ["data_real.yaml", "arms/mixed.yaml"],
    "modnet_mixed": ["../../configs/recipes/modnet.yaml", "data_real.yaml", "arms/mixed.yaml", "arms/modnet_trimap.yaml"],
}
USES_DATA_ROOT = {"real", "mixed", "modnet_mixed"}
ANALYSIS_MARKER = "<!-- analysis: kept when run.py rewrites the tables above -->"
ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}


def config_files(arm: str) -> list[Path]:
    return [REPO / "configs" / "default.yaml", STUDY / "base.yaml"] + [(STUDY / f).resolve() for f in ARMS[arm]]


def fit_command(arm: str, data: Path, run_dir: Path, options: list[str] = ()) -> list[str]:
    logger = {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(run_dir), "name": "logs"}}
    cmd = [sys.executable, "-m", "matting", "fit"] + [a for f in config_files(arm) for a in ("-c", str(f))]
    if arm in USES_DATA_ROOT:
        cmd.append(f"--data.init_args.root={data}")
    return cmd + [*options, f"--trainer.default_root_dir={run_dir}", f"--trainer.logger={json.dumps(logger)}"]


def _last_checkpoint(run_dir: Path) -> Path | None:
    found = sorted(run_dir.rglob("last.ckpt"))
    return found[-1] if found else None


def _steps(ckpt: Path) -> int:
    from matting.io.checkpoints import read_checkpoint

    return int(read_checkpoint(ckpt)["global_step"])


def train_arms(arms: list[str], data: Path, out: Path, jobs: int, max_steps: int, options: list[str] = ()) -> None:
    """Train the arms without a ``train.json``, ``jobs`` at a time; CPU time is each process tree's."""
    todo = [a for a in arms if not (out / "train" / a / "train.json").is_file()]
    running: dict[int, tuple[str, subprocess.Popen, float, list[str]]] = {}
    while todo or running:
        while todo and len(running) < jobs:
            arm = todo.pop(0)
            run_dir = out / "train" / arm
            run_dir.mkdir(parents=True, exist_ok=True)
            cmd = fit_command(arm, data, run_dir, options)
            log = open(run_dir / "fit.log", "w")  # noqa: SIM115 (closed when the process ends)
            proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, **ENV}, stdout=log, stderr=subprocess.STDOUT)
            running[proc.pid] = (arm, proc, time.time(), cmd)
            print(f"[{arm}] training (pid {proc.pid}) -> {run_dir}", flush=True)
        pid, status, usage = os.wait4(-1, 0)
        if pid not in running:
            continue
        arm, proc, start, cmd = running.pop(pid)
        run_dir = out / "train" / arm
        ckpt = _last_checkpoint(run_dir)
        if os.waitstatus_to_exitcode(status) != 0 or ckpt is None:
            print(f"[{arm}] training failed (exit {os.waitstatus_to_exitcode(status)}); see {run_dir / 'fit.log'}", flush=True)
            continue
        steps = _steps(ckpt)
        record = {"arm": arm, "command": shlex.join(cmd), "env": ENV, "steps": steps, "max_steps": max_steps,
                  "cut_short": steps < max_steps, "wall_seconds": round(time.time() - start, 1),
                  "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1), "checkpoint": str(ckpt.relative_to(run_dir)),
                  "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} cores"}
        (run_dir / "train.json").write_text(json.dumps(record, indent=2) + "\n")
        print(f"[{arm}] trained: {steps} steps, {record['wall_seconds'] / 60:.1f} min wall, "
              f"{record['cpu_seconds'] / 60:.1f} CPU-min", flush=True)


def _matting(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "matting", *args], cwd=REPO, env={**os.environ, **ENV, "OMP_NUM_THREADS": "2"},
                   check=True)


def score_arm(arm: str, data: Path, out: Path) -> dict:
    """Predict GT16-GT20 with the arm's last checkpoint and score them; returns the scores."""
    test = data / "test"
    if arm == "constant_background":
        pred = out / "pred" / arm / "alpha"
        pred.mkdir(parents=True, exist_ok=True)
        from matting.io.images import read_alpha, write_png

        for gt in sorted((test / "alpha").glob("*.png")):
            write_png(pred / gt.name, np.zeros_like(read_alpha(gt)), overwrite=True)
    else:
        ckpt = _last_checkpoint(out / "train" / arm)
        _matting("predict", "--ckpt", str(ckpt), "--out", str(out / "pred" / arm), "--no-cutout", "--no-progress",
                 "--overwrite", "--threads", "2", str(test / "image"))
    pred = out / "pred" / arm / "alpha"
    scores = {}
    for protocol, extra in (("whole", []), ("comp1k", ["--trimap", str(test / "trimap")])):
        folder = out / "eval" / f"{arm}_{protocol}"
        _matting("evaluate", "--pred", str(pred), "--gt", str(test / "alpha"), "--protocol", protocol, "--out", str(folder),
                 "--overwrite", "--no-progress", *extra)
        scores[protocol] = json.loads((folder / "summary.json").read_text())
    scores["mask"] = mask_scores(pred, test / "alpha")
    return scores


def mask_scores(pred: Path, gt: Path) -> dict:
    """IoU, precision and recall of alpha > 0.5, pooled over the images and per image (torchmetrics)."""
    import torch
    from torchmetrics.classification import (
        BinaryJaccardIndex,
        BinaryPrecision,
        BinaryRecall,
    )

    from matting.io.images import read_alpha

    pooled = {"iou": BinaryJaccardIndex(threshold=0.5), "precision": BinaryPrecision(threshold=0.5),
              "recall": BinaryRecall(threshold=0.5)}
    per_image = {}
    for path in sorted(gt.glob("*.png")):
        p = torch.from_numpy(read_alpha(pred / path.name)).flatten()
        t = (torch.from_numpy(read_alpha(path)) > 0.5).flatten().long()
        for metric in pooled.values():
            metric.update(p, t)
        per_image[path.stem] = float(BinaryJaccardIndex(threshold=0.5)(p, t))
    return {**{k: float(m.compute()) for k, m in pooled.items()}, "iou_per_image": per_image}


# ---------------------------------------------------------------------------- report


def _grids(arms: list[str], data: Path, out: Path, results: Path, tile: int = 200) -> None:
    """grid.png: one row per photo, one column per arm (mattes only); grid_full.png adds photo and truth."""
    import cv2

    from matting.io.files import atomic_path
    from matting.io.images import read_alpha, read_image
    from matting.report.grid import render_grid, rgb8

    def fit(array: np.ndarray) -> np.ndarray:
        h, w = array.shape[:2]
        return cv2.resize(rgb8(array), (tile, max(1, round(h * tile / w))), interpolation=cv2.INTER_AREA)

    names = sorted(p.stem for p in (data / "test" / "alpha").glob("*.png"))
    mattes = [[fit(read_alpha(out / "pred" / arm / "alpha" / f"{n}.png")) for arm in arms] for n in names]
    photos = [[fit(read_image(data / "test" / "image" / f"{n}.png")), fit(read_alpha(data / "test" / "alpha" / f"{n}.png"))]
              for n in names]
    for path, rows, captions in ((results / "grid.png", mattes, arms),
                                 (out / "grid_full.png", [a + b for a, b in zip(photos, mattes)], ["photo", "truth", *arms])):
        with atomic_path(path, temp=path.with_name(f".{path.stem}.partial.png")) as tmp:
            if not cv2.imwrite(str(tmp), render_grid(rows, captions, names)[..., ::-1]):
                raise OSError(f"could not write {path}")


def _row(arm: str, r: dict) -> str:
    whole, comp = ({k: v["display_mean"] for k, v in r["scores"][p]["metrics"].items()} for p in ("whole", "comp1k"))
    mask, train = r["scores"]["mask"], r["train"]
    cost = "- | - | -" if train is None else (f"{train['steps']}{' (cut short)' if train['cut_short'] else ''} | "
                                              f"{train['wall_seconds'] / 60:.1f} | {train['cpu_seconds'] / 60:.1f}")
    return (f"| {arm} | {cost} | {whole['sad']:.2f} | {whole['mse']:.2f} | {whole['grad']:.2f} | {comp['sad']:.2f} | "
            f"{comp['mse']:.2f} | {comp['grad']:.2f} | {comp['conn']:.2f} | {mask['iou']:.3f} | {mask['precision']:.3f} | "
            f"{mask['recall']:.3f} |")


def write_results(results: dict, data: Path, out: Path, folder: Path, command: str) -> None:
    """results.json (everything), results.md (the tables) and grid.png into ``folder``."""
    from matting.io.files import atomic_write, write_keeping_tail

    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / "results.json", json.dumps({"command": command, "results": results}, indent=2) + "\n")
    _grids([a for a in results], data, out, folder)
    names = sorted(next(iter(results.values()))["scores"]["mask"]["iou_per_image"])
    lines = [
        ("| arm | steps | train min (wall) | CPU-min | SAD | MSE | Grad | comp1k SAD | comp1k MSE | comp1k Grad | comp1k Conn "
        "| IoU | precision | recall |"),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *(_row(arm, r) for arm, r in results.items()),
        "",
        "IoU per photo:",
        "",
        "| arm | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
        *(f"| {arm} | " + " | ".join(f"{r['scores']['mask']['iou_per_image'][n]:.3f}" for n in names) + " |"
          for arm, r in results.items()),
    ]
    train = next(r["train"] for r in results.values() if r["train"])
    head = [
        "# Real foregrounds: scored on five real photos (GT16-GT20)",
        "",
        (f"Made by `{command}` after `python experiments/real_foregrounds/prepare.py`, on {train['machine']}, "
        "no GPU; each arm trained as its own process with one torch thread, two side by side, from random weights "
        f"for {train['max_steps']} steps of 8 crops at 256 px (`base.yaml`). Scored with the last checkpoint through "
        "`matting predict` (base pass at 512 px on the long side) and `matting evaluate`: SAD, MSE, Grad over the "
        "whole image (the units of `matting evaluate`: SAD and Grad / 1000, MSE x 1e-3), comp1k with the benchmark's "
        "Trimap1, and IoU / precision / recall of alpha > 0.5 pooled over the five photos. Means over the five photos."),
        "",
    ]
    # Text after the marker is written by people, not by this script: it survives a rerun.
    write_keeping_tail(folder / "results.md", "\n".join(head + lines) + "\n\n", ANALYSIS_MARKER, new_tail=ANALYSIS_MARKER + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python experiments/real_foregrounds/run.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS))
    p.add_argument("--jobs", type=int, default=2, help="arms trained side by side, one torch thread each (default 2)")
    p.add_argument("--data", type=Path, default=REPO / "runs" / "real_foregrounds" / "data", help="prepare.py's data root")
    p.add_argument("--out", type=Path, default=REPO / "runs" / "real_foregrounds")
    p.add_argument("--results", type=Path, default=STUDY, help="where results.md, results.json and grid.png go")
    p.add_argument("--score-only", action="store_true", help="score the arms already trained; train nothing")
    p.epilog = "Options after the known ones (or after --) go to LightningCLI for every arm, e.g. --trainer.max_steps=20."
    args, extra = p.parse_known_args(argv)
    options = [a for a in extra if a != "--"]
    bad = [a for a in options if not a.startswith("--")]
    if bad:
        p.error(f"unrecognised arguments {bad}; LightningCLI options look like --trainer.max_steps=10")
    if not (args.data / "test" / "image").is_dir():
        print(f"run: error: {args.data}: no data root; run experiments/real_foregrounds/prepare.py first", file=sys.stderr)
        return 2
    import yaml

    max_steps = int(yaml.safe_load((STUDY / "base.yaml").read_text())["trainer"]["max_steps"])
    for option in options:  # a budget given on the command line is the one a run is measured against
        if option.startswith("--trainer.max_steps="):
            max_steps = int(option.split("=", 1)[1])
    if not args.score_only:
        train_arms(args.arms, args.data, args.out, args.jobs, max_steps, options)
    results = {}
    for arm in [a for a in args.arms if (args.out / "train" / a / "train.json").is_file()] + ["constant_background"]:
        print(f"[{arm}] scoring on GT16-GT20", flush=True)
        train = json.loads((args.out / "train" / arm / "train.json").read_text()) if arm != "constant_background" else None
        results[arm] = {"train": train, "scores": score_arm(arm, args.data, args.out)}
    command = shlex.join(["python", "experiments/real_foregrounds/run.py", *(argv if argv is not None else sys.argv[1:])])
    write_results(results, args.data, args.out, args.results, command)
    print(f"run: wrote {args.results / 'results.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
