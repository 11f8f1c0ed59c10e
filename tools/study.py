"""The study tool: train a study's arms under one budget, score them, and write the results pages.

    python tools/study.py run experiments/<study> [--seeds 0 1 2] [--arms A ...] [--jobs 2] [...]
    python tools/study.py collect runs/<study> [--out experiments/<study>]
    python tools/study.py frontier runs/efficiency --latency experiments/efficiency/latency.json
    python tools/study.py retime runs/<study> [--size 512]
    python tools/study.py configs --out DIR
    python tools/study.py cv-data [--shared ../shared/data] [--out runs/cv/data]
    python tools/study.py cv experiments/<study> [--arms A B ...] [--seeds 0 1] [--jobs 2]
                                                 [--runs runs/cv] [--data runs/cv/data]
                                                 [--score-only | --calibrate-only | --all-photos]
                                                 [-- LightningCLI options for every run]

The synthetic stage: ``run`` trains every arm x seed of a study folder (``base.yaml`` and
``arms/*.yaml``) on the embedded generator and scores the test split (``matting/study/synthetic.py``;
``--jobs N`` runs N arm x seed pairs side by side as separate processes); ``collect`` writes
``results.md`` and ``results.png``; ``frontier`` joins them with measured latency; ``retime``
re-measures inference time on a quiet machine; ``configs`` writes every config stack resolved,
to ``diff -r`` two checkouts.

The real-photo stage: ``cv-data`` writes the cross-validation data root once (estimated foregrounds of the 20 photos
with alpha, backgrounds, the held-out photos of each fold). ``cv`` trains every arm of the study's
``cv.yaml`` on each fold (``--jobs`` runs side by side, one torch thread each), scores the held-out
photos through ``matting predict`` and ``matting evaluate``, and writes ``results_real.md``,
``results_real.json`` and ``grid_real.png`` into the study folder (see ``matting/study/cv.py``).
Finished runs are kept and never redone: an interrupted study resumes where it stopped.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Subcommands whose argument parsing lives with their module in matting/study/.
MODULE_COMMANDS = {"run": "matting.study.synthetic", "collect": "matting.study.results", "frontier": "matting.study.frontier",
                   "retime": "matting.study.retime", "configs": "matting.study.config_stacks"}



def cmd_cv_data(args) -> int:
    from matting.study.cv_data import build_cv_root
    from matting.study.folds import read_folds

    build_cv_root(args.shared, args.out, read_folds(args.folds), args.procedural_backgrounds, args.overwrite)
    print(f"study: wrote {args.out}")
    return 0


def cmd_cv(args, argv: list[str]) -> int:
    import numpy as np

    from matting.io.errors import MattingInputError
    from matting.study.cv import (calibrate_arms, method_folder, plan_runs, read_cv_spec, score_plans, train_record,
                                  train_runs, training_precision)
    from matting.study.cv_data import SYNTHETIC_TEST
    from matting.study.cv_report import stored_arms, write_cv_results
    from matting.study.cv_score import SCORER
    from matting.study.synthetic import shown

    spec = read_cv_spec(args.study)
    if not (args.data / "heldout").is_dir():
        raise MattingInputError(f"{args.data}: no cross-validation data root; run `python tools/study.py cv-data` first")
    arms = args.arms or list(spec.arms)
    sources = [spec.arms[a].adapt for a in arms if a in spec.arms and spec.arms[a].adapt]
    # Scoring alone measures nothing: an arm never calibrated here has no runs here either.
    calibration = calibrate_arms(spec, args.runs, args.data, [a for a in dict.fromkeys(arms + sources) if a in spec.arms],
                                 measure=not args.score_only)
    if args.calibrate_only:  # the budgets alone, measured once and kept: nothing is trained, scored or written
        for arm, record in calibration.items():
            print(f"{arm}: {record['steps']} steps, {record['cpu_seconds_per_step']:.2f} CPU-s per step, "
                  f"{record['cpu_minutes']:.1f} CPU-min" + (f" (the time of {record['cpu_of']}'s steps)" if record["cpu_of"] else "")
                  + f"; measured {record.get('measured', 'earlier')} on {record.get('cpu', 'this CPU')}")
        return 0
    uncalibrated = {a for a, arm in spec.arms.items() if arm.steps is None and (arm.cpu_minutes or arm.cpu_of)}
    arms = [a for a in arms if a not in uncalibrated]
    if args.all_photos:  # for use on other photographs: trained on every photo, so nothing is scored here
        plans = plan_runs(spec, args.runs, args.data, arms, args.seeds, args.options, all_photos=True)
        failed = train_runs(plans, args.jobs, args.data)
        for plan in plans:
            if plan.trained:
                print(f"{plan.arm.name} seed {plan.seed}: {plan.checkpoint()}")
        return 1 if failed else 0
    plans = plan_runs(spec, args.runs, args.data, arms, args.seeds, args.options)
    failed = [] if args.score_only else train_runs(plans, args.jobs, args.data)
    results = score_plans(spec, plans, args.runs, args.data, arms, synthetic=not args.no_synthetic)
    costs, mattes = {}, {}
    for arm in results:
        records = [train_record(p) for p in plans if p.arm.name == arm and p.trained]
        if records:
            steps = records[0]["max_steps"] or f"+{records[0]['epochs']} epochs"
            costs[arm] = {"steps": steps, "cpu_minutes": float(np.mean([r["cpu_seconds"] for r in records])) / 60,
                          "wall_minutes": float(np.mean([r["wall_seconds"] for r in records])) / 60,
                          "cut_short": sum(r["cut_short"] for r in records),
                          "steps_reached": sorted({r["steps"] for r in records}), "machine": records[0]["machine"],
                          "precision": training_precision(records[0])}
        first_seed = min(results[arm])
        mattes[arm] = {}
        for plan in [p for p in plans if p.arm.name == arm and p.seed == first_seed and p.trained]:
            for score in plan.folder.glob("score_fold*/alpha"):
                if plan.fold is None or score.parent.name == f"score_fold{plan.fold}":
                    mattes[arm].update({f.stem: f for f in score.glob("*.png")})
        if spec.arms[arm].constant is not None or spec.arms[arm].baseline is not None:
            for k in range(len(spec.folds)):
                score = method_folder(spec, args.runs, spec.arms[arm], k) / "alpha"
                mattes[arm].update({f.stem: f for f in score.glob("*.png")})
    machine = next((f"{c['machine']} (training precision: {c['precision']})" for c in costs.values()), "this machine")
    kept_results, kept_costs = stored_arms(args.study, list(spec.arms), results, SCORER)
    results = {arm: results.get(arm) or kept_results[arm] for arm in spec.arms if arm in results or arm in kept_results}
    costs.update(kept_costs)
    for arm, record in calibration.items():
        if arm in costs:
            costs[arm]["calibration"] = record
    command = shlex.join(["python", "tools/study.py", *argv])
    header = [f"Made by `{command}` after `python tools/study.py cv-data`, on {machine} (2 cores, no GPU); "
              f"folds: `{shown(spec.folds_file)}`. {spec.budget}",
              "Each run trains as its own process with one torch thread, from random weights, on composites of the "
              "photos outside its fold (`data: none` arms on procedural data only, trained once per seed), and is "
              "scored with its last weights through `matting predict` (base pass at 512 px on the long side) and "
              "`matting evaluate` on its held-out photos as photographed. Figures: the mean over a fold's photos "
              "(SAD and Grad / 1000, MSE x 1e-3, comp1k with the benchmark's Trimap1; IoU, precision and recall of "
              "alpha > 0.5 pooled over the fold's pixels), then mean +- std (ddof 1) over folds and seeds."
              + ("" if args.no_synthetic else
                 " Synthetic SAD and IoU: the same runs (a fold arm's four, a procedural arm's one) through the same "
                 f"commands on the embedded generator's test split ({SYNTHETIC_TEST['length']} samples of "
                 f"{SYNTHETIC_TEST['size']} px, data seed 0: the main job's), whole-image; `-` where a run was not "
                 "scored there (a row kept from a page made before these columns, a constant or baseline, a network "
                 "that takes a trimap).")]
    # A kept row was trained on its own calibration (its steps are in the table), not on this machine's.
    shown_here = {arm: c for arm, c in calibration.items() if arm in costs and not costs[arm].get("stored")}
    if shown_here:
        header.append("Steps calibrated to each arm's CPU budget (`cpu_minutes`, or `cpu_of` another arm's, "
                      "matting/study/calibrate.py): " + "; ".join(
            f"{arm} {c['cpu_seconds_per_step']:.2f} CPU-s per step, {c['steps']} steps for {c['cpu_minutes']:.1f} CPU-min"
            for arm, c in shown_here.items()) + ".")
    page = write_cv_results(args.study, f"{spec.study.resolve().name}: real photos, {len(spec.folds)}-fold cross-validation",
                            results, mattes, costs, header)
    print(f"study: wrote {page}")
    if failed:
        print(f"study: {len(failed)} run(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def cmd_run(argv: list[str]) -> int:
    """The synthetic stage; with ``--jobs N`` > 1 each arm x seed pair is a child process of this tool."""
    from matting.study import synthetic
    from matting.study.jobs import Job, run_jobs

    args = synthetic.parse_args(argv)
    if args.jobs <= 1:
        return synthetic.main(argv)
    arms = args.arms or list(synthetic.study_arms(args.study))
    rest = _without(_without(_without(argv, "--arms"), "--seeds"), "--jobs")
    out = args.out or Path("runs") / args.study.resolve().name
    children = [Job(f"{arm} seed {seed}", [sys.executable, str(Path(__file__).resolve()), "run", *rest, "--arms", arm,
                                           "--seeds", str(seed), "--jobs", "1"],
                    out / "logs" / f"{arm}_seed{seed}.log", {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
                for arm in arms for seed in args.seeds]
    return 1 if any(f.exit_code != 0 for f in run_jobs(children, args.jobs)) else 0


def _without(argv: list[str], flag: str) -> list[str]:
    """``argv`` without ``flag`` and the values after it (up to the next option)."""
    if flag not in argv:
        return argv
    at = argv.index(flag)
    end = at + 1
    while end < len(argv) and not argv[end].startswith("-"):
        end += 1
    return argv[:at] + argv[end:]


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python tools/study.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("cv-data", help="write the cross-validation data root")
    d.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data", help="folder with alphamatting/ and backgrounds/")
    d.add_argument("--out", type=Path, default=REPO / "runs" / "cv" / "data")
    d.add_argument("--folds", type=Path, default=REPO / "datasets" / "alphamatting" / "folds.yaml")
    d.add_argument("--procedural-backgrounds", type=int, default=36)
    d.add_argument("--overwrite", action="store_true")
    c = sub.add_parser("cv", help="train and score a study's arms by cross-validation on the real photos")
    c.add_argument("study", type=Path, help="study folder with cv.yaml")
    c.add_argument("--arms", nargs="+", help="arms of cv.yaml to run (default all)")
    c.add_argument("--seeds", type=int, nargs="+", help="seeds (default: cv.yaml's)")
    c.add_argument("--jobs", type=int, default=2, help="training runs side by side, one torch thread each (default 2)")
    c.add_argument("--runs", type=Path, default=REPO / "runs" / "cv", help="where runs are kept (shared by the studies)")
    c.add_argument("--data", type=Path, default=REPO / "runs" / "cv" / "data", help="the root `cv-data` wrote")
    only = c.add_mutually_exclusive_group()
    only.add_argument("--score-only", action="store_true", help="train nothing; score and report what is trained")
    only.add_argument("--calibrate-only", action="store_true", help="measure the steps of the arms with a CPU budget "
                      "(cpu_minutes, cpu_of) on this machine, keep and print them; train, score and write nothing")
    c.add_argument("--no-synthetic", action="store_true", help="leave out the synthetic columns (scoring a run on the "
                   "generator's test split takes about a minute on a 2-core CPU; kept once made)")
    only.add_argument("--all-photos", action="store_true", help="train each arm once on all 20 photos (for use on other "
                   "photographs; nothing is held out, so nothing is scored) and print the checkpoints")
    args, extra = p.parse_known_args(argv)
    args.options = [a for a in extra if a != "--"]
    bad = [a for a in args.options if not a.startswith("--")]
    if bad or (args.options and args.command != "cv"):
        p.error(f"unrecognised arguments {bad or args.options}; LightningCLI options look like --trainer.max_steps=10")
    return args


def main(argv: list[str] | None = None) -> int:
    from matting.io.errors import MattingInputError
    from matting.runtime.process import quiet_defaults

    quiet_defaults()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in MODULE_COMMANDS:
        if argv[0] == "run":
            return cmd_run(argv[1:])
        import importlib

        return importlib.import_module(MODULE_COMMANDS[argv[0]]).main(argv[1:])
    args = parse_args(argv)
    try:
        return cmd_cv_data(args) if args.command == "cv-data" else cmd_cv(args, argv)
    except MattingInputError as exc:
        print(f"study: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
