"""Training-data throughput next to the default model's training consumption, on this machine.

    python tools/benchmark.py data [--crop 512] [--batch 8] [--workers 2] [--batches 12] [--steps 3]
                                 [--recipes dim rssn original] [--out FILE.md]

Data: the 20 alphamatting.com photos of ``../shared/data`` (about 800 x 600) with their alphas and
foreground colours estimated once (``matting.foreground``), and the shared backgrounds. Each
recipe runs the real training dataset (``MatteTrainDataset``) through a DataLoader:

- ``dim``: composited training with the DIM / GCA / MatteFormer defaults (two-foreground merge,
  random affine with random interpolation, DIM trimap, crop centred on the unknown region, HSV
  jitter), as configs/data/comp1k.yaml;
- ``rssn``: the same plus RSSN (background blur, denoising, joint noise, each p = 0.5) and JPEG /
  sharpen / blur (p = 0.25 each);
- ``original``: the photo itself with its estimated fg / bg (configs/data/am2k.yaml style).

It prints samples per second for each recipe (after one warm-up batch), then the default model's
training consumption (``configs/default.yaml``: forward, loss, backward and AdamW step at the same
crop and batch size, ``torch.set_num_threads(2)``), then a few training steps fed by the ``dim``
loader to show how much of a step waits for data when both share the CPU.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from matting.bench.measure import timed
from matting.data.augment import Augment
from matting.data.manifest import Resolver, read_split
from matting.data.matte_dataset import BackgroundPool, MatteTrainDataset
from matting.data.prepare.build import estimate_split_foregrounds, prepare
from matting.io.images import list_images

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"

RECIPES = {
    "dim": dict(),
    "rssn": dict(p_bg_blur=0.5, p_denoise=0.5, p_noise=0.5, p_jpeg=0.25, p_sharpen=0.25, p_blur=0.25),
    "original": dict(p_merge=0.0),
}


def build_sets(workdir: Path, crop: int) -> dict:
    source = SHARED / "alphamatting"
    manifests = workdir / "manifests"
    prepare("alphamatting", source, out=manifests, with_hash=False, log=lambda *_: None)
    records = read_split(manifests, "lowres")
    estimate_split_foregrounds(records, source, manifests, "lowres", with_hash=False, jobs=2)
    resolve = Resolver(source, manifests)
    pool = BackgroundPool([(p, None) for p in sorted(list_images(SHARED / "backgrounds").values())])
    sets = {}
    for name, params in RECIPES.items():
        mode = "original" if name == "original" else "composite"
        sets[name] = MatteTrainDataset(records, resolve, crop, Augment(**params), mode, pool, "estimated", length=10_000)
    return sets


def loader_rate(dataset, batch: int, workers: int, batches: int) -> float:
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
                        persistent_workers=False, prefetch_factor=2 if workers else None)
    iterator = iter(loader)
    next(iterator)  # warm-up: worker start, first decodes
    seconds, _ = timed(lambda: [next(iterator) for _ in range(batches)])
    rate = batches * batch / seconds
    del iterator
    return rate


def default_module():
    from matting.runtime.lightning_cli import build_cli

    cli = build_cli(["-c", str(REPO / "configs" / "default.yaml"), "--trainer.logger=false"], run=False)
    module = cli.model
    module.train()
    return module, module.optimizer_factory(module.parameters())


def train_step(module, optimizer, batch: dict) -> None:
    loss = module.training_step(batch, 0)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def model_rate(module, optimizer, batch: int, crop: int, steps: int) -> float:
    rng = torch.Generator().manual_seed(0)
    alpha = torch.rand(batch, 1, crop, crop, generator=rng)
    data = {"image": torch.rand(batch, 3, crop, crop, generator=rng), "alpha": alpha,
            "fg": torch.rand(batch, 3, crop, crop, generator=rng), "bg": torch.rand(batch, 3, crop, crop, generator=rng)}
    module.log = module.log_dict = lambda *a, **k: None  # no trainer attached
    train_step(module, optimizer, data)  # warm-up
    seconds, _ = timed(lambda: [train_step(module, optimizer, data) for _ in range(steps)])
    return steps * batch / seconds


def fed_rate(module, optimizer, dataset, batch: int, workers: int, steps: int) -> tuple[float, float]:
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True)
    iterator = iter(loader)
    train_step(module, optimizer, next(iterator))  # warm-up
    waited = 0.0

    def run() -> None:
        nonlocal waited
        for _ in range(steps):
            seconds, data = timed(lambda: next(iterator))
            waited += seconds
            train_step(module, optimizer, data)

    total, _ = timed(run)
    return steps * batch / total, waited / total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--crop", type=int, default=512)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=12, help="timed batches per recipe")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps")
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--out", type=Path, help="also write the table (markdown) here")
    args = parser.parse_args(argv)
    if not (SHARED / "alphamatting" / "image").is_dir():
        print(f"needs the shared photos at {SHARED}", file=sys.stderr)
        return 2
    torch.set_num_threads(2)
    torch.manual_seed(0)
    lines = [f"Machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads; "
             f"crop {args.crop}, batch {args.batch}, {args.workers} loader workers.", "",
             "| what | samples / s |", "|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        sets = build_sets(Path(tmp), args.crop)
        for name in args.recipes:
            rate = loader_rate(sets[name], args.batch, args.workers, args.batches)
            lines.append(f"| loader, {name} recipe | {rate:.1f} |")
            print(lines[-1], flush=True)
        module, optimizer = default_module()
        rate = model_rate(module, optimizer, args.batch, args.crop, args.steps)
        lines.append(f"| default model training (configs/default.yaml), compute only | {rate:.2f} |")
        print(lines[-1], flush=True)
        rate, waiting = fed_rate(module, optimizer, sets["dim"], args.batch, args.workers, args.steps)
        lines.append(f"| default model training fed by the dim loader | {rate:.2f} ({waiting * 100:.0f}% of the time waiting for data) |")
        print(lines[-1], flush=True)
    text = "\n".join(lines)
    print("\n" + text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0

