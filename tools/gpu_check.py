"""The GPU check: the GPU tests, then measured training throughput and inference latency, offline.

    make gpu-check OUT=DIR [WHEELHOUSE=DIR]
    python tools/gpu_check.py --out DIR [--wheelhouse DIR] [--dry-run] [--skip-tests]

1. With ``--wheelhouse``, installs this checkout from it first (``tools/wheelhouse.py install``).
2. ``pytest -m gpu`` (tests/test_gpu.py), its summary line kept.
3. Training throughput, crops/s in steady state (median step after ``WARMUP`` steps, the step from one
   ``on_train_batch_end`` to the next, kernels waited for) at 512 px, batch 16, ``bf16-mixed``, for the
   default, the MODNet recipe and the GFM R34 recipe, each fed twice: by the compositing loader
   (``configs/data/am2k_comp.yaml``: foregrounds over backgrounds, augmentation, trimaps, one worker per
   CPU) on a small AM-2k-shaped set generated here, and from memory (one batch already on the GPU), so
   a loader-bound run shows as a gap between the two.
4. Inference latency (median ms, batch 1, BatchNorm folded, channels_last, eager) at 1024², 2048² and
   3840x2160 for the default network alone and with each refiner, in float32 (IEEE, as ``matting predict``
   runs it), bf16 and fp16 autocast, with the peak GPU memory of each.

Writes ``OUT/gpu_check.json`` and ``OUT/gpu_check.md`` and prints the table last. ``--dry-run`` runs it all
on the CPU at tiny sizes with the smoke config's test encoder, to check the tool itself
(tests/test_gpu_check.py); its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
# member -> (configs after default.yaml, overrides); the recipes' own encoders
MEMBERS = {
    "default": ([], []),
    "modnet": (["recipes/modnet.yaml"], []),
    "gfm_r34_tt": (["recipes/gfm_r34_tt.yaml"], []),
}
REFINERS = {"none": [], "guided": ["refiner/guided.yaml"], "patch": ["refiner/patch.yaml"],
            "patch_residual": ["refiner/patch.yaml", "refiner/patch_residual.yaml"]}
PRECISIONS = ("fp32", "bf16", "fp16")
FULL = {"crop": 512, "batch": 16, "warmup": 10, "steps": 20, "train_precision": "bf16-mixed", "samples": 48, "sample_size": 640,
        "sizes": {"1024x1024": (1024, 1024), "2048x2048": (2048, 2048), "3840x2160": (2160, 3840)}, "base_size": 512, "runs": 10}
DRY = {"crop": 64, "batch": 2, "warmup": 1, "steps": 2, "train_precision": "32-true", "samples": 4, "sample_size": 96,
       "sizes": {"64x64": (64, 64), "72x128": (72, 128)}, "base_size": 32, "runs": 1}


def machine() -> dict:
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "cpus": os.cpu_count(), "gpu": None, "driver": None}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1), gpus=torch.cuda.device_count())
        try:
            info["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                            capture_output=True, text=True, timeout=30).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            pass
    return info


def run_gpu_tests() -> dict:
    """``pytest -m gpu``: exit code and pytest's summary line."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-rs", "-p", "no:cacheprovider", "tests/test_gpu.py"],
                          cwd=REPO, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"})
    lines = [line for line in proc.stdout.splitlines() if re.search(r"\d+ (passed|failed|skipped|deselected|error)", line)]
    if proc.returncode not in (0, 5):
        print(proc.stdout[-5000:], proc.stderr[-2000:], sep="\n", file=sys.stderr)
    return {"returncode": proc.returncode, "summary": lines[-1].strip("= ") if lines else "", "seconds": round(time.perf_counter() - started, 1)}


def make_composite_data(root: Path, count: int, size: int) -> Path:
    """An AM-2k-shaped training set (photos, mattes, foregrounds, backgrounds) and BG-20k-shaped backgrounds,
    from the procedural generator, prepared with their manifests: what the compositing loader reads."""
    import shutil

    import cv2
    import numpy as np

    from matting.data.prepare.build import prepare
    from matting.data.trimap import make_trimap
    from matting.data.synthetic.dataset import SyntheticMattingDataset, write_split

    split = write_split(SyntheticMattingDataset("train", count, size, seed=0), root / "generated")
    for role, target in {"image": "am2k/train/original", "alpha": "am2k/train/mask", "fg": "am2k/train/fg", "bg": "am2k/train/bg"}.items():
        (root / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(split / role, root / target)
    for target in ("bg20k/train", "bg20k/testval"):
        shutil.copytree(split / "bg", root / target)
    # the layout needs a validation split with trimaps; the check trains only
    for path in sorted((split / "alpha").glob("*.png"))[:2]:
        for role, folder in (("image", "original"), ("alpha", "mask")):
            (root / "am2k/validation" / folder).mkdir(parents=True, exist_ok=True)
            shutil.copy(split / role / path.name, root / "am2k/validation" / folder / path.name)
        alpha = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255
        (root / "am2k/validation/trimap").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "am2k/validation/trimap" / path.name), make_trimap("gfm", alpha))
    quiet = lambda *_args, **_kw: None  # noqa: E731
    prepare("am2k", root / "am2k", log=quiet)
    prepare("bg20k", root / "bg20k", log=quiet)
    return root


class Repeat:
    """One batch ``times`` times: a training feed that costs nothing (Lightning reads a list as several loaders)."""

    def __init__(self, batch: dict, times: int):
        self.batch, self.times = batch, times

    def __iter__(self):
        return (self.batch for _ in range(self.times))

    def __len__(self) -> int:
        return self.times


def train_throughput(member: str, feed: str, data_root: Path, work: Path, sizes: dict, device: str, dry: bool) -> dict:
    """crops/s of ``member`` fed by ``feed`` (``loader`` or ``memory``)."""
    import lightning as L
    import torch

    from matting.runtime.lightning_cli import build_cli

    class StepTimer(L.Callback):
        def __init__(self):
            self.ends: list[float] = []

        def on_train_batch_end(self, trainer, *args) -> None:
            if device == "cuda":
                torch.cuda.synchronize()  # the step's kernels, not only their launch
            self.ends.append(time.perf_counter())

    configs, overrides = MEMBERS[member]
    stack = [arg for name in ["default.yaml", *configs, "data/am2k_comp.yaml"] for arg in ("-c", str(CONFIGS / name))]
    workers = 0 if dry else os.cpu_count()
    if dry:  # the smoke config's test encoder: checks the tool, measures nothing
        overrides = [*overrides, "--model.net.init_args.encoder.init_args.name=test_resnet"]
    steps = sizes["warmup"] + sizes["steps"]
    cli = build_cli([*stack, *overrides, f"--trainer.accelerator={'gpu' if device == 'cuda' else 'cpu'}", "--trainer.devices=1",
                     f"--trainer.precision={sizes['train_precision']}", f"--trainer.max_steps={steps}", "--trainer.max_epochs=-1",
                     "--trainer.limit_val_batches=0", "--trainer.logger=false", "--trainer.enable_checkpointing=false",
                     "--trainer.callbacks=[]", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
                     f"--trainer.default_root_dir={work}", "--run_record.enabled=false", f"--data.init_args.root={data_root}",
                     "--data.init_args.val=null", "--data.init_args.test=null", "--data.init_args.foreground=auto", f"--data.init_args.crop_size={sizes['crop']}",
                     f"--data.init_args.batch_size={sizes['batch']}", f"--data.init_args.num_workers={workers}",
                     f"--data.init_args.samples_per_epoch={sizes['batch'] * steps}"], run=False)
    timer = StepTimer()
    cli.trainer.callbacks.append(timer)
    if feed == "loader":
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    else:
        cli.datamodule.setup("fit")
        batch = next(iter(cli.datamodule.train_dataloader()))
        batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        cli.trainer.fit(cli.model, train_dataloaders=Repeat(batch, steps))
    timed = [b - a for a, b in zip(timer.ends[sizes["warmup"] - 1:], timer.ends[sizes["warmup"]:])]
    step = statistics.median(timed)
    return {"member": member, "feed": feed, "workers": workers if feed == "loader" else 0, "step_ms": round(step * 1000, 2),
            "crops_per_s": round(sizes["batch"] / step, 1), "steps_timed": len(timed)}


def inference_latency(refiner: str, sizes: dict, device: str, dry: bool) -> list[dict]:
    """Median ms and peak memory of the default network with ``refiner`` at each size and precision."""
    import torch
    import torch.nn.functional as F
    import yaml

    from matting.inference.frozen import prepare_for_inference
    from matting.inference.loading import build_net
    from matting.inference.predict import autocast_for, base_shape
    from matting.bench.measure import inference_ms

    config = yaml.safe_load((CONFIGS / "default.yaml").read_text())["model"]["net"]
    for name in REFINERS[refiner]:  # as LightningCLI merges the refiner configs: init_args of one class add up
        extra = dict(yaml.safe_load((CONFIGS / name).read_text())["model"]["net"]["init_args"])
        new, old = extra.pop("refiner"), config["init_args"].get("refiner") or {}
        if old.get("class_path") == new["class_path"]:
            new = {**new, "init_args": {**old.get("init_args", {}), **new.get("init_args", {})}}
        config = {**config, "init_args": {**config["init_args"], **extra, "refiner": new}}
    if dry:
        config["init_args"]["encoder"] = {"class_path": "matting.models.TimmEncoder", "init_args": {"name": "test_resnet"}}
    net = prepare_for_inference(build_net(config).to(device), jit=False)
    dev = torch.device(device)
    rows = []
    for label, (height, width) in sizes["sizes"].items():
        base = base_shape(height, width, sizes["base_size"])

        def forward(image):  # as predict_alpha runs it, every resize on the device
            if net.refiner is not None:
                return net(image, base_size=base)["pred_alpha"]
            small = F.interpolate(image, size=base, mode="bilinear", antialias=True)
            return F.interpolate(net(small)["pred_alpha"], size=(height, width), mode="bilinear")

        for precision in PRECISIONS:
            if device == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            with autocast_for(dev, precision == "bf16", precision == "fp16"):
                median, fastest = inference_ms(forward, (height, width), sizes["runs"], warmup=max(1, sizes["runs"] // 3), device=dev)
            peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None
            rows.append({"refiner": refiner, "size": label, "precision": precision, "ms": round(median, 2),
                         "ms_min": round(fastest, 2), "peak_mib": None if peak is None else round(peak, 1)})
    return rows


def markdown(result: dict) -> str:
    info = result["machine"]
    lines = [f"# GPU check{' (dry run on the CPU: numbers mean nothing)' if result['dry_run'] else ''}", "",
             f"Machine: {info.get('gpu') or 'no GPU'} ({info.get('gpus', 0)} GPU(s), {info.get('gpu_memory_gib', '-')} GiB), "
             f"driver {info.get('driver') or '-'}, torch {info['torch']} (CUDA {info['cuda']}), Python {info['python']}, "
             f"{info['cpus']} CPUs. Date: {result['date']}.", "",
             f"`pytest -m gpu`: {result['tests'].get('summary') or 'not run'} (exit {result['tests'].get('returncode', '-')}).", "",
             f"## Training throughput ({result['settings']['crop']} px crops, batch {result['settings']['batch']}, "
             f"{result['settings']['train_precision']}, median step after {result['settings']['warmup']} warm-up steps)", "",
             "| member | fed by | workers | step (ms) | crops/s |", "|---|---|---:|---:|---:|"]
    lines += [f"| {r['member']} | {r['feed']} | {r['workers']} | {r['step_ms']} | {r['crops_per_s']} |" for r in result["train"]]
    lines += ["", f"## Inference latency (batch 1, base pass at {result['settings']['base_size']} px on the long side, median ms / peak MiB)", "",
              "| refiner | size | " + " | ".join(PRECISIONS) + " |", "|---|---|" + "---:|" * len(PRECISIONS)]
    cells: dict[tuple[str, str], dict[str, str]] = {}
    for r in result["inference"]:
        cells.setdefault((r["refiner"], r["size"]), {})[r["precision"]] = f"{r['ms']} / {r['peak_mib'] if r['peak_mib'] is not None else '-'}"
    lines += [f"| {refiner} | {size} | " + " | ".join(row.get(p, "-") for p in PRECISIONS) + " |" for (refiner, size), row in cells.items()]
    return "\n".join(lines) + "\n"


def pick_device(dry_run: bool) -> str | None:
    """``cuda``; ``cpu`` for a dry run; None (and why, on stderr) for a real run without CUDA."""
    import torch

    if dry_run:
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    print("gpu_check: no CUDA device here (torch.cuda.is_available() is False); --dry-run checks the tool on the CPU", file=sys.stderr)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="folder for gpu_check.md and gpu_check.json")
    parser.add_argument("--wheelhouse", type=Path, help="install this checkout from this wheelhouse first (offline)")
    parser.add_argument("--dry-run", action="store_true", help="on the CPU at tiny sizes: checks the tool, measures nothing")
    parser.add_argument("--skip-tests", action="store_true", help="leave out `pytest -m gpu`")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("WANDB_MODE", "disabled")
    if args.wheelhouse:
        code = subprocess.run([sys.executable, str(REPO / "tools" / "wheelhouse.py"), "install", str(args.wheelhouse)]).returncode
        if code:
            return code
    import torch

    from matting.io.files import atomic_write

    device = pick_device(args.dry_run)
    if device is None:
        return 2
    sizes = DRY if args.dry_run else FULL
    started = time.perf_counter()
    result = {"dry_run": args.dry_run, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(),
              "settings": {k: v for k, v in sizes.items() if k != "sizes"} | {"sizes": list(sizes["sizes"])},
              "tests": {} if args.skip_tests else run_gpu_tests(), "train": [], "inference": []}
    with tempfile.TemporaryDirectory() as tmp:
        data_root = make_composite_data(Path(tmp) / "data", sizes["samples"], sizes["sample_size"])
        for member in MEMBERS:
            for feed in ("loader", "memory"):
                result["train"].append(train_throughput(member, feed, data_root, Path(tmp) / f"{member}-{feed}", sizes, device, args.dry_run))
                print(json.dumps(result["train"][-1]), flush=True)
    for refiner in REFINERS:
        result["inference"] += inference_latency(refiner, sizes, device, args.dry_run)
    result["seconds"] = round(time.perf_counter() - started, 1)
    table = markdown(result)
    atomic_write(args.out / "gpu_check.json", json.dumps(result, indent=1) + "\n")
    atomic_write(args.out / "gpu_check.md", table)
    print(table)
    return 0 if result["tests"].get("returncode", 0) in (0, 5) else 1


if __name__ == "__main__":
    sys.exit(main())
