"""What the refiner buys: base alone vs patch refiner vs guided filter, on high-resolution data.

    python experiments/refiner/run.py --stage1 CKPT [--steps 200] [--train-size 512]
                                      [--test-size 1024] [--test-length 24] [--out DIR]

Stage 1 is any base checkpoint written by ``matting fit`` (e.g. the best checkpoint of
``make demo``, trained at 256 px). For each refiner, stage 2 trains it on ``--train-size``
synthetic crops with the base frozen (``lr_scales {net: 0, net.refiner: 1}``), from the same
stage-1 weights, for the same number of steps. All three are then scored on a high-resolution
synthetic test split with the base pass at its stage-1 size (``--base-size``): "base only" is the frozen
base's alpha upsampled bilinearly. Metrics use the ``comp1k`` protocol with a trimap made from
the ground truth (unknown band of radius ``--band`` px), so SAD / MSE / Grad / Conn count the
transition region only, where a refiner can make a difference. Writes ``results.md`` and
``results.json`` into ``--out`` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[2]
REFINERS = {"patch": "configs/refiner/patch.yaml", "guided": "configs/refiner/guided.yaml"}
METRICS = ["sad", "mse", "grad", "conn"]


def train_refiner(name: str, stage1: str, steps: int, size: int, base_size: int, run_dir: Path):
    from matting.runtime.lightning_cli import build_cli

    logger = {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(run_dir), "name": name}}
    args = ["-c", str(REPO / "configs/default.yaml"), "-c", str(REPO / REFINERS[name]), "-c", str(REPO / "configs/refiner/stage2.yaml"),
            f"--model.init_weights={stage1}", "--model.lr_scales={net: 0.0, net.refiner: 1.0}",
            f"--data.init_args.size={size}", "--data.init_args.val_length=8", "--data.init_args.num_workers=0",
            # The base keeps the input size it was trained at; the refiner covers the rest.
            f"--model.net.init_args.base_scale={base_size / size}", "--trainer.precision=bf16-mixed",
            f"--trainer.max_steps={steps}", "--trainer.max_epochs=-1", f"--trainer.val_check_interval={steps}",
            "--trainer.check_val_every_n_epoch=null", "--trainer.num_sanity_val_steps=0",
            f"--trainer.default_root_dir={run_dir}", f"--trainer.logger={json.dumps(logger)}"]
    cli = build_cli(args, run=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return cli.model.eval()


def trimap_from(alpha: np.ndarray, radius: int) -> np.ndarray:
    from matting.losses import transition_band

    band = transition_band(torch.from_numpy(alpha)[None, None], radius)[0, 0].numpy() > 0
    return np.where(band, 128, np.where(alpha > 0.5, 255, 0)).astype(np.uint8)


@torch.no_grad()
def evaluate(models: dict, test_size: int, length: int, band: int, base_size: int) -> dict:
    from matting.data.synthetic.dataset import SyntheticMattingDataset
    from matting.metrics import compute_metrics

    data = SyntheticMattingDataset("test", length, test_size, seed=0)
    for module in models.values():
        module.net.base_scale = base_size / test_size
    rows = {k: [] for k in ["base only", *models]}
    seconds = {k: [] for k in rows}
    for i in range(len(data)):
        sample = data[i]
        image, gt = sample["image"][None], sample["alpha"][0].numpy()
        trimap = trimap_from(gt, band)
        for name, module in models.items():
            t0 = time.perf_counter()
            out = module(image)
            seconds[name].append(time.perf_counter() - t0)
            preds = {name: out["pred_alpha"]}
            if name == next(iter(models)):  # the frozen base is the same in every model
                t1 = time.perf_counter()
                with torch.no_grad():
                    base = module.net.base_pass(F.interpolate(image, size=module.net.base_shape(test_size, test_size), mode="bilinear", antialias=True))
                    preds["base only"] = F.interpolate(base.pred_alpha, size=(test_size, test_size), mode="bilinear", align_corners=False)
                seconds["base only"].append(time.perf_counter() - t1)
            for key, pred in preds.items():
                rows[key].append(compute_metrics(pred[0, 0].float().clamp(0, 1).numpy(), gt, trimap, protocol="comp1k"))
    return {k: {**{m: float(np.mean([r[m] for r in v])) for m in METRICS}, "seconds": float(np.median(seconds[k]))} for k, v in rows.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stage1", required=True, help="stage-1 checkpoint (matting fit)")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--train-size", type=int, default=512)
    p.add_argument("--test-size", type=int, default=1024)
    p.add_argument("--test-length", type=int, default=24)
    p.add_argument("--band", type=int, default=12, help="radius in px of the evaluated transition band")
    p.add_argument("--base-size", type=int, default=256, help="input size of the base pass (the stage-1 training size)")
    p.add_argument("--out", type=Path, default=REPO / "experiments/refiner")
    args = p.parse_args(argv)
    from matting.metrics import METRIC_HEADERS, format_metric
    from matting.runtime.process import tune_malloc

    tune_malloc()
    torch.manual_seed(0)
    runs = args.out / "runs"
    models = {name: train_refiner(name, args.stage1, args.steps, args.train_size, args.base_size, runs) for name in REFINERS}
    torch.set_num_threads(2)
    results = evaluate(models, args.test_size, args.test_length, args.band, args.base_size)
    head = "| method | " + " | ".join(METRIC_HEADERS[m] for m in METRICS) + " | s / image |"
    lines = [head, "|---|" + "---:|" * (len(METRICS) + 1)]
    for name, r in results.items():
        lines.append(f"| {name} | " + " | ".join(format_metric(m, r[m]) for m in METRICS) + f" | {r['seconds']:.2f} |")
    table = "\n".join(lines)
    cmd = "python experiments/refiner/run.py " + " ".join(argv if argv is not None else sys.argv[1:])
    (args.out / "results.json").write_text(json.dumps({"results": results, "args": {k: str(v) for k, v in vars(args).items()}}, indent=2))
    (args.out / "results.md").write_text(
        f"# Refiner comparison ({args.test_length} synthetic test images at {args.test_size} px, base pass at {args.base_size} px)\n\n"
        f"comp1k protocol over a ground-truth band of radius {args.band} px; each refiner trained "
        f"{args.steps} steps on {args.train_size} px crops from the same frozen stage-1 base.\n\n{table}\n\n"
        f"Command: `{cmd}`  \nMachine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads "
        f"(2-core CPU, no GPU).\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
