"""The real-photo stage of a study: cross-validation over the photos with alpha.

A study folder's ``cv.yaml`` names the folds, the configs under every arm, and the arms::

    folds: ../../datasets/alphamatting/folds.yaml
    base: [../../configs/default.yaml, ../../configs/study/real_cv.yaml]
    real_data: ../../configs/data/alphamatting_cv.yaml   # put before the arm's configs when data: folds
    seeds: [0]
    budget: "600 steps of the default network: ~8 CPU-minutes per fold on a 2-core CPU"
    arms:
      real:      {configs: [], data: folds, steps: 600}
      synthetic: {configs: [arms/synthetic.yaml], data: none, steps: 600}
      all_background: {constant: 0.0}
      soc: {adapt: real, epochs: 10}

- ``data: folds``: fold k trains on the composites of the photos outside fold k
  (``alphamatting/fold<k>_train``) and is scored on fold k's photos as photographed;
- ``data: none``: the arm uses no photo (procedural data only): trained once per seed and scored
  on every fold, so its per-fold spread is the photos' alone;
- ``constant``: an alpha of that value everywhere, for scale; nothing trains.
- ``baseline: color_threshold``: the colour-threshold remover, its threshold searched on each
  fold's training photos (lowest SAD) and applied to its held-out photos; nothing trains.
- ``cpu_minutes: M`` or ``cpu_of: ARM`` instead of ``steps``: the steps that spend M CPU-minutes, or ARM's CPU time, here;
- ``adapt: ARM``: ARM's model of each fold, adapted by ``matting adapt`` (MODNet's SOC) for
  ``epochs`` passes over that fold's unlabeled pool (its training photos without alpha and the
  photos without ground truth; never its held-out photos), then scored like ARM.

Each training run is ``matting fit`` as its own process (:mod:`matting.study.jobs`), then
``matting predict`` (base pass at 512 px) and ``matting evaluate`` (whole image, and comp1k with
the benchmark's Trimap1) score the held-out photos: the path a user takes (and the generator's
test split: the synthetic columns). IoU, precision and
recall of alpha > 0.5 are computed from the same mattes. Runs live in ``<runs>/train/<fingerprint>/``:
a fingerprint is a hash of every input (config file contents, options, seed, steps, training
photos), so two studies that run the same arm share it, and a finished run is never redone.
"""

from __future__ import annotations

import json
import platform
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from matting.io.errors import MattingInputError
from matting.io.files import atomic_write
from matting.study import inputs_digest
from matting.study.cv_data import heldout_folder
from matting.study.cv_score import color_threshold_matte, constant_matte, mask_counts, score_run, score_synthetic
from matting.study.cv_spec import CvArm, CvSpec, read_cv_spec
from matting.study.jobs import Finished, Job, run_jobs

__all__ = ["CvArm", "CvSpec", "RunPlan", "calibrate_arms", "mask_counts", "plan_runs", "read_cv_spec", "score_plans", "train_runs"]

# One torch thread per training process: ``jobs`` of them share the machine.
TRAIN_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled",
             "MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "1073741824"}


# ---------------------------------------------------------------------------- runs


@dataclass
class RunPlan:
    """One training run: an arm, a seed, and the fold it holds out (None: trained on no photo)."""

    arm: CvArm
    seed: int
    fold: int | None
    files: list[Path]
    options: list[str]
    fingerprint: str
    folder: Path
    source: RunPlan | None = None  # the run an adapt arm starts from

    @property
    def label(self) -> str:
        return f"{self.arm.name} seed {self.seed}" + ("" if self.fold is None else f" fold {self.fold}")

    @property
    def trained(self) -> bool:
        return (self.folder / "train.json").is_file()

    def checkpoint(self) -> Path:
        return self.folder / "last.ckpt"


def _fingerprint(files: list[Path], options: list[str], seed: int, photos: list[str]) -> str:
    return inputs_digest(files, {"options": options, "seed": seed, "photos": photos})


def plan_runs(spec: CvSpec, runs: Path, data_root: Path, arms: list[str] | None = None,
              seeds: list[int] | None = None, extra_options: list[str] = (), all_photos: bool = False) -> list[RunPlan]:
    """The training runs the chosen arms need (constant arms need none). ``all_photos``: one run per
    fold arm and seed on every photo (``alphamatting/all``), for use on other photographs; nothing
    is held out, so such a run is never scored here."""
    plans = []
    for name in arms or list(spec.arms):
        if name not in spec.arms:
            raise MattingInputError(f"unknown arm {name!r}; {spec.study / 'cv.yaml'} has {', '.join(spec.arms)}")
        arm = spec.arms[name]
        if arm.constant is not None or arm.baseline is not None:
            continue
        if arm.adapt is not None:
            if all_photos:
                raise MattingInputError(f"arm {name!r} adapts each fold's model: it has no all-photos run")
            sources = plan_runs(spec, runs, data_root, [arm.adapt], seeds, extra_options)
            for src in sources:
                photos = spec.folds.train(src.fold)
                fp = _fingerprint([], ["adapt", src.fingerprint, f"--epochs={arm.epochs}"], src.seed, photos)
                plans.append(RunPlan(arm, src.seed, src.fold, [], [f"--epochs={arm.epochs}"], fp, runs / "train" / fp, src))
            continue
        files = arm_files(spec, arm)
        if arm.steps is None:
            raise MattingInputError(f"arm {name!r} states a CPU budget: calibrate its steps first (calibrate_arms)")
        for seed in seeds or spec.seeds:
            if arm.data == "folds" and all_photos:
                options = [f"--trainer.max_steps={arm.steps}", f"--model.scheduler.init_args.total_steps={arm.steps}",
                           f"--data.init_args.root={data_root.resolve()}", "--data.init_args.train=alphamatting/all",
                           *arm.options, *extra_options]
                fp = _fingerprint(files, options, seed, spec.folds.names)
                plans.append(RunPlan(arm, seed, None, files, options, fp, runs / "train" / fp))
                continue
            for fold in (range(len(spec.folds)) if arm.data == "folds" else [None]):
                options = [f"--trainer.max_steps={arm.steps}", f"--model.scheduler.init_args.total_steps={arm.steps}"]
                photos = []
                if fold is not None:
                    photos = spec.folds.train(fold)
                    options += [f"--data.init_args.root={data_root.resolve()}",
                                f"--data.init_args.train=alphamatting/fold{fold}_train"]
                options += arm.options + list(extra_options)
                fp = _fingerprint(files, options, seed, photos)
                plans.append(RunPlan(arm, seed, fold, files, options, fp, runs / "train" / fp))
    return plans


def method_folder(spec: CvSpec, runs: Path, arm: CvArm, fold: int) -> Path:
    """Where an arm that trains nothing (a constant, a baseline) keeps fold ``fold``'s mattes and
    scores; a baseline's folder is keyed by the training photos its threshold is searched on."""
    if arm.constant is not None:
        return runs / "constant" / f"{arm.constant:g}" / f"fold{fold}"
    return runs / "baseline" / arm.baseline / inputs_digest([], {"photos": spec.folds.train(fold)}) / f"fold{fold}"


def arm_files(spec: CvSpec, arm: CvArm) -> list[Path]:
    """The ``-c`` files of an arm's training stack: the base, the real recipe for a fold arm, its own."""
    return spec.base + ([spec.real_data] if arm.data == "folds" else []) + arm.configs


def calibrate_arms(spec: CvSpec, runs: Path, data_root: Path, arms: list[str], log=print,
                   measure: bool = True) -> dict[str, dict]:
    """Set the steps of every chosen arm that states ``cpu_minutes`` or ``cpu_of``; returns each one's
    calibration. A ``cpu_of`` budget is the other arm's cost per step times its steps, both measured
    in one sitting (a ratio, so the load changes neither arm's steps). ``measure`` False: kept ones only."""
    from matting.study.calibrate import calibrated_steps, step_cpu_seconds

    def stack(arm: CvArm) -> tuple[list[Path], list[str]]:
        data = [] if arm.data == "none" else [f"--data.init_args.root={data_root.resolve()}",
                                              "--data.init_args.train=alphamatting/fold0_train"]
        return arm_files(spec, arm), data + arm.options + precision_options()

    done = {}
    for name in arms:
        arm = spec.arms[name]
        if arm.cpu_minutes is None and arm.cpu_of is None:
            continue
        stacks = ([stack(spec.arms[arm.cpu_of])] if arm.cpu_of else []) + [stack(arm)]
        records = step_cpu_seconds(stacks, runs, TRAIN_ENV, _cpu_name(), log, measure)
        if records is None:  # scoring alone: nothing kept for this arm on this machine
            continue
        record = records[-1]
        if arm.cpu_of is not None:
            arm.cpu_minutes = records[0]["cpu_seconds_per_step"] * spec.arms[arm.cpu_of].steps / 60
        arm.steps = calibrated_steps(arm.cpu_minutes, record)
        done[name] = {**record, "cpu_minutes": arm.cpu_minutes, "cpu_of": arm.cpu_of, "steps": arm.steps}
        log(f"[{name}] {record['cpu_seconds_per_step']:.2f} CPU-s per step: {arm.steps} steps for {arm.cpu_minutes:.2f} CPU-min"
            + (f" (the CPU time of {arm.cpu_of}'s {spec.arms[arm.cpu_of].steps} steps)" if arm.cpu_of else ""))
    return done


def fit_command(plan: RunPlan, data_root: Path | None = None) -> list[str]:
    """``matting fit`` of the plan (``matting adapt`` of its source's checkpoint for an adapt arm)."""
    if plan.source is not None:
        from matting.study.cv_data import unlabeled_folder

        return [sys.executable, "-m", "matting", "adapt", str(plan.source.checkpoint()), "--images",
                str(unlabeled_folder(data_root, plan.fold)), *plan.options, "--num-workers", "1", "--seed", str(plan.seed),
                "--out", str(plan.folder / "adapt"), "--overwrite"]
    logger = {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(plan.folder), "name": "logs"}}
    return [sys.executable, "-m", "matting", "fit", *(a for f in plan.files for a in ("-c", str(f))),
            f"--seed_everything={plan.seed}", *plan.options, f"--trainer.default_root_dir={plan.folder}",
            f"--trainer.logger={json.dumps(logger)}"]


def _record_training(plan: RunPlan, finished: Finished) -> None:
    from matting.io.checkpoints import read_checkpoint

    found = sorted((p for p in plan.folder.rglob("last.ckpt") if p != plan.checkpoint()), key=lambda p: p.stat().st_mtime)
    if finished.exit_code != 0 or not found:
        return
    steps = int(read_checkpoint(found[-1])["global_step"])
    found[-1].replace(plan.checkpoint())
    record = {"arm": plan.arm.name, "seed": plan.seed, "fold": plan.fold, "fingerprint": plan.fingerprint,
              "command": shlex.join(finished.job.command), "env": finished.job.env, "steps": steps,
              "max_steps": plan.arm.steps, "cut_short": plan.arm.steps is not None and steps < plan.arm.steps,
              "epochs": plan.arm.epochs, "source": None if plan.source is None else plan.source.fingerprint,
              "wall_seconds": finished.wall_seconds, "cpu_seconds": finished.cpu_seconds,
              "machine": f"{platform.machine()} {platform.system()}, {_cpu_name()}"}
    atomic_write(plan.folder / "train.json", json.dumps(record, indent=2) + "\n")


def _cpu_name() -> str:
    from matting.runtime.process import cpu_model_and_flags

    return cpu_model_and_flags()[0]


def train_runs(plans: list[RunPlan], parallel: int, data_root: Path | None = None, log=print) -> list[str]:
    """Train every plan without a ``train.json`` (adapt arms once their source is trained); returns
    the labels of the runs that failed."""
    failed = _train(plans, [p for p in plans if p.source is None], parallel, data_root, log)
    sources = {p.source.fingerprint: p.source for p in plans if p.source is not None}
    failed += _train(plans, list(sources.values()), parallel, data_root, log)  # an adapt arm's own source
    ready = [p for p in plans if p.source is not None and p.source.trained]
    failed += [p.label for p in plans if p.source is not None and not p.source.trained]
    return failed + _train(plans, ready, parallel, data_root, log)


def precision_options() -> list[str]:
    """bf16 autocast is 10x slower where the CPU emulates it: those machines train (and calibrate) in float32."""
    from matting.runtime.precision import cpu_has_native_bf16

    return [] if cpu_has_native_bf16() else ["--trainer.precision=32-true"]


def _train(plans: list[RunPlan], chosen: list[RunPlan], parallel: int, data_root: Path | None, log) -> list[str]:
    precision = precision_options()
    by_name, jobs, seen = {}, [], set()
    # Fold by fold across arms: a study stopped part-way leaves every arm with the same folds done.
    for plan in sorted(chosen, key=lambda p: -1 if p.fold is None else p.fold):
        if plan.trained or plan.fingerprint in seen:
            continue
        seen.add(plan.fingerprint)
        plan.folder.mkdir(parents=True, exist_ok=True)
        name = f"{plan.label} [{plan.fingerprint}]"
        by_name[name] = plan
        command = fit_command(plan, data_root) + (precision if plan.source is None else [])
        jobs.append(Job(name, command, plan.folder / "fit.log", TRAIN_ENV))
    failed = []

    def done(finished: Finished) -> None:
        plan = by_name[finished.job.name]
        _record_training(plan, finished)
        if not plan.trained:
            failed.append(plan.label)

    run_jobs(jobs, parallel, done, log)
    return failed


# ---------------------------------------------------------------------------- scoring


def score_plans(spec: CvSpec, plans: list[RunPlan], runs: Path, data_root: Path, arms: list[str], log=print,
                synthetic: bool = True) -> dict:
    """Scores of every arm: ``{arm: {seed: {fold: scores}}}`` (missing runs are left out); ``synthetic``:
    each run also on the generator's test split (about a minute per run on a 2-core CPU, then kept)."""
    results: dict[str, dict[int, dict[int, dict]]] = {}
    for name in arms:
        arm = spec.arms[name]
        if arm.constant is not None or arm.baseline is not None:
            photos = data_root / "alphamatting"
            results[name] = {0: {}}
            for k in range(len(spec.folds)):
                out = method_folder(spec, runs, arm, k)
                # A baseline is fitted on the fold's training photos, so it is made per fold.
                method = (constant_matte(arm.constant) if arm.constant is not None else
                          color_threshold_matte(photos / "image", photos / "alpha", spec.folds.train(k), out))
                results[name][0][k] = score_run(None, heldout_folder(data_root, k), out, method)
            continue
        for plan in (p for p in plans if p.arm.name == name):
            if not plan.trained:
                log(f"[{plan.label}] not trained: left out")
                continue
            extra = {"synthetic": score_synthetic(plan.checkpoint(), data_root, plan.folder / "score_synthetic")} if synthetic else {}
            for k in range(len(spec.folds)) if plan.fold is None else [plan.fold]:
                log(f"[{plan.label}] scoring fold {k}")
                scores = score_run(plan.checkpoint(), heldout_folder(data_root, k), plan.folder / f"score_fold{k}")
                results.setdefault(name, {}).setdefault(plan.seed, {})[k] = {**scores, **extra}
    return results


def training_precision(record: dict) -> str:
    """The precision a recorded run trained in: its command's ``--trainer.precision``, else the configs' (bf16-mixed)."""
    options = [a for a in shlex.split(record["command"]) if a.startswith("--trainer.precision=")]
    return options[-1].split("=", 1)[1] if options else "as configured (bf16-mixed in configs/study/real_cv.yaml)"


def train_record(plan: RunPlan) -> dict:
    return json.loads((plan.folder / "train.json").read_text())
