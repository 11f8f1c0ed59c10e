"""The main job: make data, train the default model, evaluate it against baselines, write a report.

``matting demo`` trains with LightningCLI configs (default: ``configs/default.yaml`` then
``configs/demo.yaml``), evaluates the best checkpoint on the held-out synthetic test split next to
the colour-threshold remover (threshold tuned on the validation split) and the better constant
alpha, and writes one run folder:

    <run-dir>/
      logs/version_0/        config.yaml (resolved), metrics.csv, checkpoints/{best-*.ckpt,last.ckpt}
      data/test/             the test split as PNGs (image/ alpha/ fg/ bg/)
      predictions/<method>/  one alpha PNG per test image
      report/                metrics.md, metrics.json, per_image_<method>.csv, grid.png

When ``trainer.max_time`` (a safety net in ``configs/demo.yaml``) stops training before
``max_steps``, the model is undertrained: the demo says so right after training, at the end, as
the first line of ``report/metrics.md`` and in ``metrics.json``'s ``meta.stopped_early``.

Everything is written to ``<run-dir>.partial`` and renamed at the end, so an interrupted or failed
run never leaves a half-written run folder behind.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from matting.baselines import best_constant, tune_threshold
from matting.evaluation import evaluate_dirs, per_image_csv
from matting.io.errors import MattingInputError, ToolArgumentParser
from matting.io.files import check_output, open_staging, publish
from matting.io.images import write_png
from matting.metrics import METRIC_HEADERS, sad
from matting.report import method_table, save_grid

# In the repository's configs/ folder, found from any working folder (matting.runtime.run_config.config_dir).
DEFAULT_CONFIGS = ["default.yaml", "demo.yaml"]
REPORT_METRICS = ["sad", "mse", "mad", "grad", "conn"]


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = ToolArgumentParser(prog="matting demo", description=__doc__.split("\n\n")[0])
    p.add_argument("-c", "--config", action="append",
                   help=f"LightningCLI config, repeatable (default: the repository's {' '.join(f'configs/{c}' for c in DEFAULT_CONFIGS)})")
    p.add_argument("--run-dir", type=Path, help="output folder (default: runs/demo/<date-time>); must not exist")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --run-dir")
    p.add_argument("--grid-images", type=int, default=6, help="test images shown in report/grid.png")
    p.epilog = "Any other argument is passed to LightningCLI, e.g. --trainer.max_steps=20."
    args, args.overrides = p.parse_known_args(argv)
    return args


def _prepare_run_dir(run_dir: Path, overwrite: bool) -> Path:
    """Check ``run_dir``, then make the empty ``<run-dir>.partial`` the run is written into."""
    check_output(run_dir, label="--run-dir", overwrite=overwrite, empty_ok=True, messages={
        "exists": "{where} already exists and is not empty; pass --overwrite to replace it",
    })
    # A leftover .partial is an interrupted run of ours: replaced.
    return open_staging(run_dir, staging=run_dir.with_name(run_dir.name + ".partial"), label="--run-dir")


def _to_numpy_image(t: torch.Tensor) -> np.ndarray:
    """(C, H, W) tensor in [0, 1] -> (H, W, C) or (H, W) float32 array."""
    a = t.detach().float().cpu().numpy()
    return a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)


@torch.no_grad()
def _predict_network(module, dataset, out_dir: Path) -> None:
    module.eval()
    for i in range(len(dataset)):
        sample = dataset[i]
        pred = module(sample["image"][None].to(module.device))["pred_alpha"][0]
        write_png(out_dir / f"{sample['name']}.png", _to_numpy_image(pred))


def _predict_baseline(predictor, dataset, out_dir: Path) -> None:
    for i in range(len(dataset)):
        sample = dataset[i]
        write_png(out_dir / f"{sample['name']}.png", predictor.predict(_to_numpy_image(sample["image"])))


def default_configs() -> list[str]:
    """The shipped ``configs/default.yaml`` and ``configs/demo.yaml``, wherever the command runs from."""
    from matting.runtime.run_config import config_dir

    folder = config_dir(DEFAULT_CONFIGS[-1])
    return [str(folder / name) for name in DEFAULT_CONFIGS]


def run(args: argparse.Namespace) -> Path:
    configs = args.config or default_configs()
    for c in configs:
        if not Path(c).is_file():
            raise MattingInputError(f"config file not found: {c}")
    run_dir = args.run_dir or Path("runs/demo") / time.strftime("%Y%m%d-%H%M%S")
    from matting.runtime.lightning_cli import build_cli
    from matting.runtime.precision import cpu_precision_override
    from matting.runtime.time_limit import time_limit_message

    cli_args = [a for c in configs for a in ("-c", c)] + list(args.overrides)
    # Parse once before touching the disk, so a bad config fails with nothing written.
    checked = build_cli(cli_args, run=False)
    override = cpu_precision_override(checked.trainer, list(args.overrides))
    precision_note = None
    if override:
        cli_args.append(override[0])
        precision_note = override[1]
        print(f"note: {precision_note}", flush=True)
    partial = _prepare_run_dir(run_dir, args.overwrite)
    logger = {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(partial), "name": "logs"}}
    cli = build_cli(cli_args + [f"--trainer.default_root_dir={partial}", f"--trainer.logger={json.dumps(logger)}"], run=False)
    trainer, module, data = cli.trainer, cli.model, cli.datamodule

    t0 = time.time()
    trainer.fit(module, datamodule=data)
    train_seconds = time.time() - t0
    stopped_early = time_limit_message(trainer)
    if stopped_early:
        print(f"warning: {stopped_early}", flush=True)
    ckpt = trainer.checkpoint_callback.best_model_path or "last"
    trainer.test(module, datamodule=data, ckpt_path=ckpt, verbose=False)

    from matting.data.synthetic.dataset import write_split

    gt_root = write_split(data.test_set, partial / "data" / "test")
    gt_dir = gt_root / "alpha"
    preds = partial / "predictions"
    _predict_network(module, data.test_set, preds / "model")

    # Baselines see the same test split; their one parameter is chosen on the validation split.
    val = [data.val_set[i] for i in range(len(data.val_set))]
    val_images = [_to_numpy_image(s["image"]) for s in val]
    val_alphas = [_to_numpy_image(s["alpha"]) for s in val]
    remover, curve = tune_threshold(val_images, val_alphas, score=sad)
    constant = best_constant(val_alphas, score=sad)
    _predict_baseline(remover, data.test_set, preds / "color_threshold")
    _predict_baseline(constant, data.test_set, preds / "constant")

    report = partial / "report"
    report.mkdir()
    methods = {
        "model": "two-decoder network (this run)",
        "color_threshold": f"colour threshold (+-{remover.threshold:g}, tuned on val)",
        "constant": f"constant alpha = {constant.value:g} (better of all-fg / all-bg on val)",
    }
    results = {}
    for key in methods:
        # The same scoring as `matting evaluate --protocol whole` on these folders.
        rows, _ = evaluate_dirs(preds / key, gt_dir, protocol="whole", workers=1, progress=False)
        (report / f"per_image_{key}.csv").write_text(per_image_csv(rows, "whole"))
        results[key] = rows
    table = method_table(results, methods, REPORT_METRICS)
    meta = {
        "configs": configs,
        "overrides": list(args.overrides),
        "best_checkpoint": str(Path(ckpt).relative_to(partial)) if ckpt != "last" else "last",
        "train_seconds": round(train_seconds, 1),
        "global_steps": trainer.global_step,
        "precision": str(trainer.precision),
        "precision_note": precision_note,
        "stopped_early": stopped_early,
        "test_images": len(data.test_set),
        "color_threshold_curve": curve,
        "metric_headers": {k: METRIC_HEADERS[k] for k in REPORT_METRICS},
    }
    summary = {key: {m: float(np.mean([r[m] for r in rows])) for m in REPORT_METRICS} for key, rows in results.items()}
    (report / "metrics.json").write_text(json.dumps({"summary": summary, "meta": meta}, indent=2))
    warning = f"**Warning: {stopped_early}.**\n\n" if stopped_early else ""
    (report / "metrics.md").write_text(
        f"{warning}# Synthetic test split: {len(data.test_set)} images, whole-image metrics\n\n{table}\n\n"
        f"Training: {trainer.global_step} steps in {train_seconds:.0f} s ({trainer.precision}); best checkpoint by val/sad.\n"
        + (f"Precision: {precision_note}.\n" if precision_note else "")
    )
    save_grid(data.test_set, preds, ["model", "color_threshold"], report / "grid.png", n=args.grid_images)

    publish(partial, run_dir)  # an old run folder (--overwrite) is deleted only once the new one is in place
    print(f"\n{table}\n\nrun folder: {run_dir}")
    if stopped_early:
        print(f"warning: {stopped_early}")
    return run_dir


def main(argv: list[str]) -> int:
    run(parse_args(argv))
    return 0
