"""Train and evaluate every arm of a study with several seeds under one fixed budget.

    python tools/study.py run experiments/decoder_heads --seeds 0 1 2 [--arms A B ...]
                              [--out runs/decoder_heads] [--max-steps N] [--overwrite]
                              [--keep-checkpoints] [-c EXTRA.yaml ...] [any LightningCLI option, e.g.
                              --trainer.precision=32-true]

A study folder holds ``base.yaml`` (the shared budget, on top of ``configs/default.yaml``) and
one YAML delta per arm in ``arms/``. Each arm x seed is trained in this process through
LightningCLI with the configs ``configs/default.yaml``, ``<study>/base.yaml``, ``<study>/arms/<arm>.yaml``
(then any ``-c`` files given here, e.g. a data config) and ``--seed_everything <seed>`` (then
any other LightningCLI options given here), its best
checkpoint (by the ModelCheckpoint of its config: val/sad, or val/iou for segmentation arms) is
scored on the test split of the config's data module by ``trainer.test``, the network's
parameters are counted and its CPU inference time is measured (median of ``--timing-runs`` runs
after three warm-up runs, batch 1, float32 channels-last, 2 threads, on a ``--timing-size`` px square).

One arm needs no training and no YAML: ``color_threshold``, the colour-threshold remover with its
threshold searched on the validation split (lowest SAD; the sweep, with precision and recall, is
saved as ``sweep.md``) and its border-sampling seed set to the run's seed, scored on the test
split through the same ``MattingModule.test_step`` as the networks.

Writes ``<out>/<arm>/seed<k>/``: ``result.json`` (test metrics, parameters, ms, steps, time, the
command), ``config.yaml`` (the resolved config), ``logs/`` (metrics.csv of training). Checkpoints
are deleted once scored unless ``--keep-checkpoints``. Work happens in ``seed<k>.partial`` and is
renamed when complete, so a pair with a ``result.json`` is done: it is skipped when the inputs
(config files, options, seed) are unchanged, and the run stops with an error when they differ or
when a folder without a result is in the way, unless ``--overwrite``. ``tools/study.py collect``
turns the folders into ``results.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from matting.study import inputs_digest

REPO = Path(__file__).resolve().parents[2]
DEFAULT_BASE = REPO / "configs" / "default.yaml"
COLOR_THRESHOLD = "color_threshold"
METRICS = ("sad", "mse", "mad", "grad", "conn", "iou", "precision", "recall")


class StudyError(RuntimeError):
    """A problem with the study's inputs or output folders; reported without a traceback."""


# ---------------------------------------------------------------------------- arms and folders


def study_arms(study: Path) -> dict[str, Path | None]:
    """Arm name -> YAML delta (``None`` for the colour-threshold baseline, which needs none)."""
    arms_dir = study / "arms"
    if not (study / "base.yaml").is_file() or not arms_dir.is_dir():
        raise StudyError(f"{study} is not a study folder: it needs base.yaml and arms/*.yaml")
    arms: dict[str, Path | None] = {p.stem: p for p in sorted(arms_dir.glob("*.yaml"))}
    if COLOR_THRESHOLD in arms:
        raise StudyError(f"{arms[COLOR_THRESHOLD]}: the name {COLOR_THRESHOLD!r} is the built-in colour-threshold arm")
    arms[COLOR_THRESHOLD] = None
    return arms


def fingerprint(files: list[Path], options: list[str], seed: int, extra: dict | None = None) -> str:
    """Hash of everything that decides a result: config file contents, options, seed."""
    return inputs_digest(files, {"options": options, "seed": seed, "extra": extra or {}})


def claim_run_dir(run_dir: Path, fp: str, overwrite: bool) -> Path | None:
    """The ``.partial`` folder to work in, or None when this pair is already done with these inputs."""
    result = run_dir / "result.json"
    if result.is_file() and not overwrite:
        done = json.loads(result.read_text())
        if done.get("fingerprint") == fp:
            return None
        raise StudyError(f"{run_dir} holds a result made from different inputs (config files, options or seed "
                         f"changed: fingerprint {done.get('fingerprint')} != {fp}); pass --overwrite to replace it "
                         "or --out to write elsewhere")
    if run_dir.exists() and not overwrite:
        raise StudyError(f"{run_dir} exists but has no result.json (not a finished run of this tool); "
                         "remove it or pass --overwrite")
    from matting.io.errors import MattingInputError
    from matting.io.files import open_staging

    # A leftover .partial is an interrupted run of this tool: replaced; one another live process is
    # writing is refused.
    try:
        return open_staging(run_dir, staging=run_dir.with_name(run_dir.name + ".partial"))
    except MattingInputError as exc:
        raise StudyError(str(exc)) from None


def finish_run_dir(partial: Path, run_dir: Path, result: dict) -> None:
    (partial / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    for config in partial.rglob("config.yaml"):  # the saved configs name the final folder
        config.write_text(config.read_text().replace(str(partial), str(run_dir)))
    from matting.io.files import publish

    publish(partial, run_dir)  # an old run (--overwrite) is deleted only once the new one is in place


# ---------------------------------------------------------------------------- measuring


def test_metrics(trainer, module, datamodule, ckpt_path) -> dict[str, float]:
    """``trainer.test`` of the module (weights from ``ckpt_path`` when given), as {metric: value}."""
    out = trainer.test(module, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)[0]
    return {k.split("/", 1)[1]: float(v) for k, v in out.items() if k.startswith("test/")}


# ---------------------------------------------------------------------------- one run


def _cli_args(files: list[Path], seed: int, options: list[str]) -> list[str]:
    return [a for f in files for a in ("-c", str(f))] + [f"--seed_everything={seed}"] + options


def budget_options(files: list[Path], seed: int, options: list[str], max_steps: int | None) -> list[str]:
    """Options that shrink the budget to ``max_steps``: the step limit, the OneCycle length, and
    a validation at the last step at the latest (so a checkpoint is chosen by validation)."""
    if max_steps is None:
        return []
    from matting.runtime.lightning_cli import build_cli

    cfg = build_cli(_cli_args(files, seed, options + ["--trainer.logger=false"]), run=False).config
    out = [f"--trainer.max_steps={max_steps}"]
    vci = cfg.trainer.val_check_interval
    if isinstance(vci, int) and vci > max_steps:
        out.append(f"--trainer.val_check_interval={max_steps}")
    scheduler = cfg.model.get("scheduler")
    if scheduler is not None and "total_steps" in (scheduler.get("init_args") or {}):
        out.append(f"--model.scheduler.init_args.total_steps={max_steps}")
    return out


def _logger_options(partial: Path) -> list[str]:
    logger = {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(partial), "name": "logs"}}
    return [f"--trainer.default_root_dir={partial}", f"--trainer.logger={json.dumps(logger)}"]


def run_network(files: list[Path], seed: int, options: list[str], partial: Path, args) -> dict:
    from matting.runtime.lightning_cli import build_cli
    from matting.bench.measure import inference_ms, network_forward

    cli = build_cli(_cli_args(files, seed, options + _logger_options(partial)), run=False)
    (partial / "config.yaml").write_text(cli.parser.dump(cli.config, skip_none=False))
    trainer, module, data = cli.trainer, cli.model, cli.datamodule
    t0 = time.time()
    trainer.fit(module, datamodule=data)
    train_seconds = time.time() - t0
    callback = trainer.checkpoint_callback
    best = callback.best_model_path if callback is not None and callback.best_model_path else None
    metrics = test_metrics(trainer, module, data, best)
    params = sum(p.numel() for p in module.net.parameters())
    ms, ms_min = inference_ms(network_forward(module), args.timing_size, args.timing_runs)
    if not args.keep_checkpoints:
        for ckpt in partial.rglob("*.ckpt"):
            ckpt.unlink()
    best_score = callback.best_model_score if callback is not None else None
    return {
        "metrics": metrics,
        "params": int(params),
        "ms": ms,
        "ms_min": ms_min,
        "train_seconds": round(train_seconds, 1),
        "steps": int(trainer.global_step),
        "monitor": getattr(callback, "monitor", None),
        "best_checkpoint": Path(best).name if best else None,
        "best_score": None if best_score is None else float(best_score),
    }


def run_color_threshold(files: list[Path], seed: int, options: list[str], partial: Path, args) -> dict:
    """The colour-threshold remover: threshold searched on val, scored on test by MattingModule."""
    import torch

    from matting.baselines.color_threshold import ColorThresholdRemover
    from matting.baselines.threshold_search import (
        best_row,
        samples_from_batches,
        sweep_markdown,
        sweep_thresholds,
    )
    from matting.module import MattingModule
    from matting.runtime.lightning_cli import build_cli
    from matting.bench.measure import inference_ms

    cli = build_cli(_cli_args(files, seed, options + _logger_options(partial)), run=False)
    data = cli.datamodule
    data.setup("validate")
    t0 = time.time()
    rows = sweep_thresholds(samples_from_batches(data.val_dataloader()), args.thresholds, seed=seed)
    chosen = best_row(rows)["threshold"]
    tune_seconds = time.time() - t0
    remover = ColorThresholdRemover(threshold=chosen, seed=seed)
    (partial / "sweep.md").write_text(
        f"# Colour-threshold sweep on the validation split (border-sampling seed {seed})\n\n"
        f"{sweep_markdown(rows, chosen)}\n\nChosen: the lowest SAD. IoU, precision and recall are of the "
        "foreground mask (alpha > 0.5), pooled over all pixels.\n")
    method = {"class_path": "matting.baselines.ColorThresholdRemover",
              "init_args": {k: getattr(remover, k) for k in ("threshold", "n_samples", "block", "strip_fraction", "seed")}}
    import yaml

    evaluation = yaml.safe_load(cli.parser.dump(cli.config, skip_none=False))
    evaluation.pop("model", None)  # the base's network, unused here
    config = {"method": method, "threshold_search": {"split": "val", "thresholds": list(args.thresholds),
                                                     "criterion": "lowest SAD"}, **evaluation}
    (partial / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    from matting.models.contract import MattingNetwork

    class RemoverNet(MattingNetwork):
        """The remover as a network for MattingModule: (B, 3, H, W) -> pred_alpha (B, 1, H, W)."""

        def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
            images = image.float().permute(0, 2, 3, 1).cpu().numpy()
            alpha = np.stack([remover.predict(np.ascontiguousarray(im)) for im in images])[:, None]
            return {"pred_alpha": torch.from_numpy(alpha).to(image.device)}

    import warnings

    with warnings.catch_warnings():  # the remover is not picklable into hparams, and need not be
        warnings.filterwarnings("ignore", message=".*removed from hparams.*")
        module = MattingModule(net=RemoverNet(), channels_last=False)
        metrics = test_metrics(cli.trainer, module, data, None)
    ms, ms_min = inference_ms(lambda image: remover.predict(image[0].permute(1, 2, 0).numpy()), args.timing_size, args.timing_runs)
    return {"metrics": metrics, "params": 0, "ms": ms, "ms_min": ms_min, "train_seconds": round(tune_seconds, 1), "steps": 0,
            "threshold": chosen, "threshold_sweep": rows}


# ---------------------------------------------------------------------------- main


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python tools/study.py run", description=__doc__.split("\n\n")[0],
                                epilog="Options after the known ones (or after --) go to LightningCLI for every arm.")
    p.add_argument("study", type=Path, help="study folder with base.yaml and arms/*.yaml")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (default 0 1 2)")
    p.add_argument("--arms", nargs="+", help=f"arms to run (YAML names in arms/, or {COLOR_THRESHOLD}; default all)")
    p.add_argument("--out", type=Path, help="output folder (default runs/<study folder name>)")
    p.add_argument("--jobs", type=int, default=1, help="arm x seed pairs trained side by side as processes (tools/study.py; default 1)")
    p.add_argument("--max-steps", type=int, help="override the budget's step count and OneCycle length (smoke tests, or a longer budget such as equal training time)")
    p.add_argument("--base", type=Path, action="append", help=f"config(s) under the study's base.yaml (default {DEFAULT_BASE.relative_to(REPO)})")
    p.add_argument("-c", "--config", type=Path, action="append", default=[],
                   help="config(s) applied after each arm's file, e.g. a data config (repeatable)")
    p.add_argument("--overwrite", action="store_true", help="replace finished or foreign run folders instead of stopping")
    p.add_argument("--keep-checkpoints", action="store_true", help="keep the .ckpt files (several hundred MB per study)")
    p.add_argument("--timing-size", type=int, default=512, help="side of the timed inference image (default 512)")
    p.add_argument("--timing-runs", type=int, default=5, help="timed inference runs after a warm-up (default 5)")
    p.add_argument("--thresholds", type=float, nargs="+", default=list(range(2, 101, 2)),
                   help="colour thresholds searched on val (default 2 4 ... 100)")
    args, extra = p.parse_known_args(argv)
    args.options = [a for a in extra if a != "--"]
    bad = [a for a in args.options if a.startswith("-") and not a.startswith("--")]
    if bad:
        p.error(f"unrecognised options {bad}; LightningCLI options look like --trainer.max_steps=10")
    return args


def main(argv: list[str] | None = None) -> int:
    from matting.runtime.process import quiet_defaults, tune_malloc

    tune_malloc()
    quiet_defaults()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    try:
        arms = study_arms(args.study)
        chosen = args.arms or list(arms)
        unknown = [a for a in chosen if a not in arms]
        if unknown:
            raise StudyError(f"unknown arms {unknown}; {args.study}/arms has {sorted(arms)}")
        base = [Path(b) for b in (args.base or [DEFAULT_BASE])] + [args.study / "base.yaml"]
        for f in base + args.config:
            if not f.is_file():
                raise StudyError(f"config file not found: {f}")
    except StudyError as exc:
        print(f"run_study: error: {exc}", file=sys.stderr)
        return 2
    out = args.out or Path("runs") / args.study.resolve().name
    command = shlex.join(["python", "tools/study.py", "run", *argv])
    failures, done, skipped = [], 0, 0
    for arm in chosen:
        for seed in args.seeds:
            files = base + ([arms[arm]] if arms[arm] is not None else []) + args.config
            run_dir = out / arm / f"seed{seed}"
            extra = {"thresholds": args.thresholds} if arms[arm] is None else {}
            try:
                budget = budget_options(files, seed, args.options, args.max_steps) if arms[arm] is not None else []
                options = args.options + budget
                fp = fingerprint(files, options, seed, extra)
                partial = claim_run_dir(run_dir, fp, args.overwrite)
                if partial is None:
                    print(f"[{arm} seed {seed}] done already: {run_dir}/result.json")
                    skipped += 1
                    continue
                print(f"[{arm} seed {seed}] -> {run_dir}", flush=True)
                runner = run_network if arms[arm] is not None else run_color_threshold
                result = runner(files, seed, options, partial, args)
            except StudyError as exc:
                print(f"run_study: error: {exc}", file=sys.stderr)
                return 2
            except Exception:  # one broken arm must not lose the others' hours of training
                traceback.print_exc()
                failures.append(f"{arm} seed {seed}")
                continue
            result = {"arm": arm, "seed": seed, "study": shown(args.study), "fingerprint": fp,
                      "config_files": [shown(f) for f in files], "options": options, "command": command,
                      "machine": f"{platform.machine()} {platform.system()}, torch threads {_threads()}",
                      "timing": {"size": args.timing_size, "runs": args.timing_runs, "threads": 2},
                      "finished": time.strftime("%Y-%m-%d %H:%M:%S"), **result}
            finish_run_dir(partial, run_dir, result)
            done += 1
            m = result["metrics"]
            print(f"[{arm} seed {seed}] test SAD {m.get('sad', float('nan')):.3f} IoU {m.get('iou', float('nan')):.3f} "
                  f"params {result['params']} ms@{args.timing_size} {result['ms']:.1f}", flush=True)
    print(f"run_study: {done} run, {skipped} already done, {len(failures)} failed" + (f": {', '.join(failures)}" if failures else ""))
    return 1 if failures else 0


def shown(path: Path) -> str:
    """``path`` relative to the repository when inside it (results stay valid in another checkout)."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def _threads() -> int:
    import torch

    return torch.get_num_threads()

