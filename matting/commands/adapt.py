"""``matting adapt``: adapt a trained checkpoint to a folder of unlabeled photos (MODNet's SOC).

    matting adapt CKPT --images DIR [--epochs 10] [--lr 1e-5] [--size 512] [--batch-size 1]
                  [--num-workers 2] [--seed 0] [--out RUN_DIR] [--overwrite]

Self-supervised sub-objective consistency (:mod:`matting.soc_loss`, :class:`SOCModule`): the
network's coarse semantic prediction and its matte are trained to agree on the new photos, while
the detail predictions stay anchored to a copy of the network taken at the start of each epoch.
It needs a network with a semantic head (``pred_semantic``) and a detail head (``pred_detail``),
that is already trained on labeled data: SOC only refines what the network can do.

RUN_DIR (default ``runs/adapt/<ckpt stem>-<image folder name>``) receives ``adapt.yaml`` (the
settings), ``logs/version_0/metrics.csv`` (``train/soc_loss``, ``train/soc_semantic``,
``train/soc_detail`` per logged step, ``train/soc_loss_epoch`` per epoch) and ``checkpoints/adapted-epoch=<n>.ckpt`` after every epoch plus
``last.ckpt``; each loads with ``matting predict --ckpt`` like a ``matting fit`` checkpoint. SOC
has no labels to tell when to stop: compare the epochs' predictions on a few photos. An existing
RUN_DIR is replaced only with ``--overwrite``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from matting.io.errors import MattingInputError, ToolArgumentParser
from matting.io.files import check_run_folder, make_run_folder

MARKER = "adapt.yaml"


def build_parser() -> argparse.ArgumentParser:
    p = ToolArgumentParser(
        prog="matting adapt",
        description="Adapt a trained checkpoint to unlabeled photos with MODNet's self-supervised SOC.",
    )
    p.add_argument("ckpt", type=Path, help="checkpoint written by `matting fit` (.ckpt) or `matting export --safetensors`")
    p.add_argument("--images", type=Path, required=True, help="folder of unlabeled photos (not searched recursively)")
    p.add_argument("--epochs", type=int, default=10, help="passes over the photos (default 10)")
    p.add_argument("--lr", type=float, default=1e-5, help="Adam learning rate (default 1e-5)")
    p.add_argument("--size", type=int, default=512, help="side of the square training crops (default 512)")
    p.add_argument("--batch-size", type=int, default=1, help="photos per step (default 1)")
    p.add_argument("--num-workers", type=int, default=2, help="data loader processes (default 2)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", type=Path, help="run folder (default runs/adapt/<ckpt stem>-<image folder name>)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    return p


def _check_options(args: argparse.Namespace) -> None:
    for name in ("epochs", "batch_size"):
        if getattr(args, name) < 1:
            raise MattingInputError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.size < 32:
        raise MattingInputError(f"--size must be at least 32, got {args.size}")
    if args.num_workers < 0:
        raise MattingInputError(f"--num-workers must be 0 or more, got {args.num_workers}")
    if not args.lr > 0:
        raise MattingInputError(f"--lr must be positive, got {args.lr}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _check_options(args)
    ckpt = args.ckpt.expanduser().resolve()
    images = args.images.expanduser().resolve()
    out = args.out or Path("runs/adapt") / f"{ckpt.stem}-{images.name}"
    check_run_folder(out, args.overwrite, MARKER)

    from matting.data.unlabeled import UnlabeledImageDataModule, scan_images
    from matting.inference.loading import net_from_parts
    from matting.io.checkpoints import load_net_parts
    from matting.soc_module import SOCModule

    photos = scan_images(images)
    net_config, state = load_net_parts(ckpt)
    module = SOCModule(net_from_parts(net_config, state, ckpt).train(), net_config, lr=args.lr, source_checkpoint=str(ckpt))

    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    make_run_folder(out, args.overwrite, MARKER)
    out = out.resolve()
    settings = {"checkpoint": str(ckpt), "images": str(images), "photos": len(photos), "epochs": args.epochs,
                "lr": args.lr, "betas": [0.9, 0.99], "size": args.size, "batch_size": args.batch_size, "seed": args.seed}
    (out / MARKER).write_text("# Written by `matting adapt` (self-supervised SOC).\n" + yaml.safe_dump(settings, sort_keys=False))

    L.seed_everything(args.seed, workers=True)
    data = UnlabeledImageDataModule(str(images), size=args.size, batch_size=args.batch_size, num_workers=args.num_workers)
    steps_per_epoch = max(1, len(photos) // args.batch_size)
    checkpoints = ModelCheckpoint(dirpath=out / "checkpoints", filename="adapted-{epoch}", save_top_k=-1,
                                  every_n_epochs=1, save_last=True)
    trainer = L.Trainer(max_epochs=args.epochs, default_root_dir=out, logger=CSVLogger(out, name="logs"),
                        callbacks=[checkpoints], log_every_n_steps=min(10, steps_per_epoch), precision="32-true",
                        devices=1, num_sanity_val_steps=0, enable_model_summary=False)
    print(f"adapting {ckpt.name} to {len(photos)} photo(s) in {images} for {args.epochs} epoch(s) -> {out}")
    trainer.fit(module, datamodule=data)
    last = out / "checkpoints" / "last.ckpt"
    print(f"run folder: {out}\n  adapted checkpoint: {last}\n  try it: matting predict --ckpt {last} PHOTOS --out CUTOUTS")
    return 0
