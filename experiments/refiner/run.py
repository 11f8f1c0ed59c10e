"""What the refiner buys: the upsampled base vs the patch refiner vs the guided filter, on hair-rich
high-resolution data.

    python experiments/refiner/run.py --stage1 CKPT [--steps 2000] [--train-size 1024] [--batch-size 1]
        [--base-scale 0.25] [--hair 1.0] [--test-sizes 1024 2048] [--test-length 16] [--band 12]
        [--jobs 2] [--out runs/refiner] [--results experiments/refiner] [--score-only]

Stage 1 is a base checkpoint written by ``matting fit`` (the best checkpoint of ``make demo``, trained
at 256 px). Each refiner (``configs/refiner/{patch,guided}.yaml`` + ``configs/refiner/stage2.yaml``,
base frozen: ``lr_scales {net: 0, net.refiner: 1}``) is trained from the same stage-1 weights for
the same steps, on synthetic scenes rendered at ``--train-size`` with hair or fur on every subject
part (``--hair 1.0``) and the base pass at ``--base-scale`` of the image (0.25 at 1024 px is the
256 px the base was trained at). Each trains as its own process with one torch thread, ``--jobs``
side by side, in float32 where the CPU would emulate bfloat16 (``matting/runtime/precision.py``).

Scored on the hair-rich test split at each ``--test-size``, base pass at the same scale, with the
comp1k protocol over a band of radius ``--band`` px around the ground-truth edge, where a refiner
can change anything. Rows: the frozen base upsampled bilinearly ("base only"); the patch refiner as
trained (the 1/16 of the pixels with the largest predicted error) and, with the same weights, with
1/4 of the pixels and with every cell (is the selection short, or the refinement?); the guided
filter. For the patch refiner, where the upsampled base's band error lies: the share of it inside
the refined cells, against the share inside as many cells chosen by the true error (an oracle).

Writes ``<out>/<refiner>/`` (the stage-2 runs) and, in ``--results``, ``results.json`` and
``results.md`` (its text after the analysis marker is kept when the tables are rewritten).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

STUDY = Path(__file__).resolve().parent
REPO = STUDY.parents[1]
# Refiner -> its config files after configs/default.yaml, before configs/refiner/stage2.yaml.
REFINERS = {"patch": ["configs/refiner/patch.yaml"], "guided": ["configs/refiner/guided.yaml"],
            "patch (residual)": ["configs/refiner/patch.yaml", "configs/refiner/patch_residual.yaml"]}
# Refiners scored as trained, one row each (the patch refiner also gets the budget rows).
PLAIN_ROWS = [name for name in REFINERS if name != "patch"]
METRICS = ["sad", "mse", "grad", "conn"]
# Patch-refiner budgets scored with the trained weights: share of full-resolution pixels refined.
PATCH_BUDGETS = {"patch (1/4 of pixels)": 0.25, "patch (every cell)": None}
ANALYSIS_MARKER = "<!-- analysis: kept when run.py rewrites the tables above -->"


def fit_args(name: str, args: argparse.Namespace) -> list[str]:
    """The LightningCLI arguments of refiner ``name``'s stage-2 run (``matting fit`` composes the same)."""
    from matting.runtime.precision import cpu_has_native_bf16

    run_dir = args.out / run_folder(name)
    logger = {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(run_dir), "name": "logs"}}
    files = ["configs/default.yaml", *REFINERS[name], "configs/refiner/stage2.yaml"]
    return [*(a for f in files for a in ("-c", str(REPO / f))),
            *([f"--model.net={args.net}"] if args.net else []),
            f"--model.init_weights={args.stage1}", "--model.lr_scales={net: 0.0, net.refiner: 1.0}",
            f"--data.init_args.size={args.train_size}", f"--data.init_args.batch_size={args.batch_size}",
            f"--data.init_args.hair={args.hair}", "--data.init_args.val_length=4", "--data.init_args.num_workers=1",
            "--data.init_args.markings=0.0",  # the generator results.md was made with (markings came later)
            f"--model.net.init_args.base_scale={args.base_scale}",
            f"--trainer.precision={'bf16-mixed' if cpu_has_native_bf16() else '32-true'}",
            f"--trainer.max_steps={args.steps}", "--trainer.max_epochs=-1", f"--trainer.val_check_interval={args.steps}",
            "--trainer.check_val_every_n_epoch=null", "--trainer.num_sanity_val_steps=0", "--trainer.enable_progress_bar=false",
            "--trainer.log_every_n_steps=50", f"--trainer.default_root_dir={run_dir}", f"--trainer.logger={json.dumps(logger)}"]


def run_folder(name: str) -> str:
    """The folder name of refiner ``name``'s stage-2 run ("patch (residual)" -> "patch_residual")."""
    return name.replace(" (", "_").replace(")", "")


def train_one(name: str, args: argparse.Namespace) -> None:
    """Train refiner ``name`` (in this process) and record where its last checkpoint is."""
    from matting.io.files import atomic_write
    from matting.runtime.lightning_cli import build_cli

    t0, cpu0 = time.time(), time.process_time()
    cli = build_cli(fit_args(name, args), run=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    last = Path(cli.trainer.checkpoint_callback.last_model_path)
    atomic_write(args.out / run_folder(name) / "train.json", json.dumps({
        "checkpoint": str(last), "steps": cli.trainer.global_step, "wall_s": round(time.time() - t0, 1),
        "cpu_s": round(time.process_time() - cpu0, 1), "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()} {platform.system()}", "args": fit_args(name, args)}, indent=2) + "\n")


def trained(name: str, args: argparse.Namespace) -> Path | None:
    record = args.out / run_folder(name) / "train.json"
    if not record.is_file():
        return None
    data = json.loads(record.read_text())
    checkpoint = Path(data["checkpoint"])
    return checkpoint if data["args"] == fit_args(name, args) and checkpoint.is_file() else None


def train_all(args: argparse.Namespace, argv: list[str]) -> int:
    """Train the refiners not trained yet with these settings, ``--jobs`` processes at a time."""
    from matting.study.jobs import Job, run_jobs

    env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}
    jobs = [Job(name, [sys.executable, __file__, *argv, "--train-one", name], args.out / f"{run_folder(name)}.log", env)
            for name in REFINERS if trained(name, args) is None]
    failed = [f.job.name for f in run_jobs(jobs, args.jobs) if f.exit_code != 0]
    if failed:
        print(f"run.py: error: training failed for {failed}; see their logs in {args.out}", file=sys.stderr)
    return 1 if failed else 0


def scored_trimap(alpha: np.ndarray, radius: int) -> np.ndarray:
    """(H, W) uint8 trimap of the scored region: unknown (128) within ``radius`` px of the ground
    truth's transition (:func:`~matting.data.trimap.transition_band`), else 0 / 255 by alpha > 0.5."""
    from matting.data.trimap import transition_band, trimap_from_band

    gt = torch.from_numpy(alpha)[None, None]
    return (trimap_from_band(transition_band(gt, radius), gt)[0, 0].numpy() * 255).round().astype(np.uint8)


def cell_errors(alpha: torch.Tensor, gt: torch.Tensor, band: torch.Tensor) -> torch.Tensor:
    """(N,) mean |alpha - gt| within ``band`` in each 4x4 cell; tensors (1, 1, H, W). The cells are
    the patch refiner's grid: the image padded to a multiple of 4 (with zero error)."""
    err = (alpha - gt).abs() * band
    err = torch.nn.functional.pad(err, (0, -err.shape[-1] % 4, 0, -err.shape[-2] % 4))
    return torch.nn.functional.avg_pool2d(err, 4).flatten()


def error_shares(base_up: torch.Tensor, gt: torch.Tensor, band: torch.Tensor, cells: torch.Tensor) -> tuple[float, float]:
    """Share of the upsampled base's band error |base - gt| inside ``cells`` (B, 1, H/4, W/4) bool,
    and inside as many cells chosen by the true error. base_up, gt, band: (1, 1, H, W)."""
    per_cell = cell_errors(base_up, gt, band)
    total = float(per_cell.sum())
    if total == 0:
        return 1.0, 1.0
    chosen = float(per_cell[cells.flatten()].sum())
    oracle = float(per_cell.topk(int(cells.sum())).values.sum())
    return chosen / total, oracle / total


def refinement_gain(base_up: torch.Tensor, refined: torch.Tensor, gt: torch.Tensor, band: torch.Tensor,
                    count: int) -> tuple[float, float]:
    """How much of the upsampled base's band error a refinement of every cell leaves: in the
    ``count`` 4x4 cells with the largest true error of the base, and in the other cells. Tensors
    (1, 1, H, W); returns (refined / base error in those cells, the same elsewhere)."""
    before, after = cell_errors(base_up, gt, band), cell_errors(refined, gt, band)
    worst = torch.zeros_like(before, dtype=torch.bool)
    worst[before.topk(count).indices] = True
    ratio = lambda m: float(after[m].sum() / before[m].sum()) if float(before[m].sum()) > 0 else 1.0
    return ratio(worst), ratio(~worst)


@torch.no_grad()
def score(nets: dict, size: int, args: argparse.Namespace) -> dict:
    """Mean metrics per method on ``args.test_length`` hair-rich test images of ``size`` px."""
    from matting.data.synthetic.dataset import SyntheticMattingDataset

    data = SyntheticMattingDataset("test", args.test_length, size, seed=0, hair=args.hair)
    patch = nets["patch"]
    rows: dict[str, list] = {k: [] for k in ["base only", "patch", *PATCH_BUDGETS, *PLAIN_ROWS]}
    seconds: dict[str, list] = {k: [] for k in rows}
    shares = []
    trained_as = (patch.refiner.mode, patch.refiner.pixel_fraction, patch.refiner.sample_pixels)
    try:
        for i in range(len(data)):
            _score_one(data[i], size, args, nets, trained_as, rows, seconds, shares)
    finally:  # the budget rows change the refiner's selection: leave it as it was trained
        patch.refiner.mode, patch.refiner.pixel_fraction, patch.refiner.sample_pixels = trained_as
    out = {k: {**{m: float(np.mean([r[m] for r in v])) for m in METRICS}, "seconds": float(np.median(seconds[k]))} for k, v in rows.items()}
    out["patch"]["error_share_refined"] = float(np.mean([s[0] for s in shares]))
    out["patch"]["error_share_oracle"] = float(np.mean([s[1] for s in shares]))
    out["patch (every cell)"]["error_left_worst_cells"] = float(np.mean([s[2] for s in shares]))
    out["patch (every cell)"]["error_left_other_cells"] = float(np.mean([s[3] for s in shares]))
    return out


def _score_one(sample: dict, size: int, args: argparse.Namespace, nets: dict, trained_as: tuple,
               rows: dict, seconds: dict, shares: list) -> None:
    """Every method on one test sample; appends to ``rows``, ``seconds`` and ``shares``.
    ``trained_as``: the patch refiner's (mode, pixel_fraction, sample_pixels) as trained."""
    from matting.metrics import compute_metrics
    from matting.models.blocks import resize_to

    patch = nets["patch"]
    image, gt = sample["image"][None], sample["alpha"][None]
    trimap = scored_trimap(gt[0, 0].numpy(), args.band)
    preds = {}
    t0 = time.perf_counter()
    small, _ = patch.downsample(image, None, None)
    base = patch.base_pass(small, None, every=False)  # the frozen base, the same in every net
    preds["base only"] = resize_to(base.pred_alpha, (size, size))
    seconds["base only"].append(time.perf_counter() - t0)
    budgets = [("patch", trained_as), *((k, ("full", 1 / 16, None) if f is None else ("sampling", f, None))
                                        for k, f in PATCH_BUDGETS.items())]
    for name, setting in budgets:
        patch.refiner.mode, patch.refiner.pixel_fraction, patch.refiner.sample_pixels = setting
        t0 = time.perf_counter()
        out = patch.refiner(image, small, base.pred_alpha, base.feat_finest)
        seconds[name].append(seconds["base only"][-1] + time.perf_counter() - t0)
        preds[name] = out.pred_alpha
        if name == "patch":
            band = torch.from_numpy(trimap == 128)[None, None].float()
            shares.append(error_shares(preds["base only"], gt, band, out.refined_cells))
            count = int(out.refined_cells.sum())
        elif name == "patch (every cell)":
            shares[-1] += refinement_gain(preds["base only"], out.pred_alpha, gt, band, count)
    for name in PLAIN_ROWS:
        t0 = time.perf_counter()
        preds[name] = nets[name](image)["pred_alpha"]
        seconds[name].append(time.perf_counter() - t0)
    for name, pred in preds.items():
        rows[name].append(compute_metrics(pred[0, 0].float().clamp(0, 1).numpy(), gt[0, 0].numpy(), trimap, protocol="comp1k"))


def write_results(results: dict, args: argparse.Namespace, command: str, train: dict) -> str:
    from matting.io.files import atomic_write, write_keeping_tail
    from matting.metrics import METRIC_HEADERS, format_metric

    args.results.mkdir(parents=True, exist_ok=True)
    # Paths inside the repository are written relative to it: the results hold in any checkout.
    record = json.dumps({"command": command, "results": results, "train": train}, indent=2).replace(f"{REPO}/", "")
    atomic_write(args.results / "results.json", record + "\n")
    stage1 = str(args.stage1).replace(f"{REPO}/", "")
    lines = [f"# Refiner comparison at {args.steps} steps on hair-rich data", "",
             f"Each refiner trained {args.steps} steps of batch {args.batch_size} on {args.train_size} px hair-rich synthetic "
             f"scenes (hair {args.hair}) from the same frozen stage-1 base (`{stage1}`), base pass at {args.base_scale} "
             f"of the image. Scored on {args.test_length} hair-rich test images per size, base pass at the same scale; comp1k "
             f"protocol over the band within {args.band} px of the ground-truth edge (SAD, Grad and Conn / 1000, MSE x 1e-3).", ""]
    for size, res in results.items():
        lines += [f"## {size} px", "", "| method | " + " | ".join(METRIC_HEADERS[m] for m in METRICS) + " | s / image |",
                  "|---|" + "---:|" * (len(METRICS) + 1)]
        lines += [f"| {name} | " + " | ".join(format_metric(m, r[m]) for m in METRICS) + f" | {r['seconds']:.2f} |" for name, r in res.items()]
        p = res["patch"]
        every = res["patch (every cell)"]
        lines += ["", f"Share of the upsampled base's band error inside the cells the patch refiner chose: "
                      f"{p['error_share_refined']:.2f}; inside as many cells chosen by the true error: {p['error_share_oracle']:.2f}. "
                      f"Refining every cell leaves {every['error_left_worst_cells']:.2f} of the base's band error in those "
                      f"worst cells and {every['error_left_other_cells']:.2f} of it in the others (below 1: the refinement helps).", ""]
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()}-core CPU, {gpu}"
    minutes = ", ".join(f"{k} {v['wall_s'] / 60:.0f} min" for k, v in train.items())
    lines += [f"Command: `{command}`  ", f"Machine: {machine}; training {minutes} (one torch thread each, "
              f"{args.jobs} side by side); scoring with {torch.get_num_threads()} threads.", ""]
    text = "\n".join(lines)
    write_keeping_tail(args.results / "results.md", text + "\n", ANALYSIS_MARKER, new_tail=ANALYSIS_MARKER + "\n")
    return text


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python experiments/refiner/run.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--stage1", required=True, type=Path, help="stage-1 checkpoint (matting fit)")
    p.add_argument("--net", type=Path, help="the stage-1 network's spec when it is not configs/default.yaml's "
                                            "(e.g. configs/nets/modnet_sized.yaml)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--train-size", type=int, default=1024, help="side of the training scenes in px")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--base-scale", type=float, default=0.25, help="base pass size / image size, in training and scoring")
    p.add_argument("--hair", type=float, default=1.0, help="probability of hair or fur strands per subject part (generator default 0.8)")
    p.add_argument("--test-sizes", type=int, nargs="+", default=[1024, 2048])
    p.add_argument("--test-length", type=int, default=16, help="test images per size")
    p.add_argument("--band", type=int, default=12, help="radius in px of the scored transition band")
    p.add_argument("--jobs", type=int, default=2, help="refiners trained side by side, one torch thread each")
    p.add_argument("--out", type=Path, default=REPO / "runs" / "refiner")
    p.add_argument("--results", type=Path, default=STUDY, help="where results.md and results.json go")
    p.add_argument("--score-only", action="store_true", help="score the refiners trained already; train nothing")
    p.add_argument("--train-one", choices=list(REFINERS), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not args.stage1.is_file():
        p.error(f"--stage1: no checkpoint at {args.stage1}")
    if args.net is not None and not args.net.is_file():
        p.error(f"--net: no network spec at {args.net}")
    args.stage1, args.out = args.stage1.resolve(), args.out.resolve()
    args.net = args.net.resolve() if args.net else None
    return args


def main(argv: list[str] | None = None) -> int:
    from matting.inference.loading import load_net
    from matting.runtime.process import quiet_defaults, tune_malloc

    tune_malloc()
    quiet_defaults()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.train_one:
        train_one(args.train_one, args)
        return 0
    if not args.score_only and train_all(args, argv) != 0:
        return 1
    checkpoints = {n: trained(n, args) for n in REFINERS}
    missing = [n for n, c in checkpoints.items() if c is None]
    if missing:
        print(f"run.py: error: {missing} not trained with these settings in {args.out}", file=sys.stderr)
        return 2
    torch.set_num_threads(2)
    torch.manual_seed(0)
    nets = {n: load_net(c) for n, c in checkpoints.items()}
    for net in nets.values():
        net.base_scale = args.base_scale
    results = {size: score(nets, size, args) for size in args.test_sizes}
    train = {n: json.loads((args.out / run_folder(n) / "train.json").read_text()) for n in REFINERS}
    command = shlex.join(["python", "experiments/refiner/run.py", *argv])
    print(write_results(results, args, command, train))
    return 0


if __name__ == "__main__":
    sys.exit(main())
