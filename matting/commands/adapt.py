"""``matting adapt``: adapt a trained checkpoint to a folder of unlabeled photos (MODNet's SOC).

    matting adapt CKPT --images DIR [--epochs 10] [--lr 1e-5] [--size 512] [--batch-size 1]
                  [--num-workers 2] [--seed 0] [--out RUN_DIR] [--overwrite]

Self-supervised sub-objective consistency (:class:`matting.soc_loss.SOCLoss`,
:class:`matting.soc_module.SOCModule`): the network's coarse semantic prediction and its matte are
trained to agree on the new photos, while the detail predictions stay anchored to a copy of the
network taken at the start of each epoch. It needs a network with a semantic head
(``pred_semantic``) and a detail head (``pred_detail``), that is already trained on labeled data:
SOC only refines what the network can do.

The run is LightningCLI's ``fit`` (the runtime of ``matting fit``) on generated arguments:
``configs/adapt.yaml`` (the SOC defaults: SOCModule, SOCLoss, Adam, the unlabeled data module, a
checkpoint every epoch), then ``RUN_DIR/adapt.yaml`` (the checkpoint's network config and
``model.init_weights: CKPT``), then the options above.

RUN_DIR (default ``runs/adapt/<ckpt stem>-<image folder name>``) receives ``adapt.yaml`` and
``logs/version_0/`` with ``config.yaml`` (the complete resolved config: ``matting fit -c`` it to
repeat the run), ``run.json`` (code, versions, seed and the fingerprint of the photos),
``metrics.csv`` (``train/soc_loss``, ``train/soc_semantic``, ``train/soc_detail`` per logged step,
``train/soc_loss_epoch`` per epoch) and ``checkpoints/adapted-epoch=<n>.ckpt`` after every epoch
plus ``last.ckpt``; each loads with ``matting predict --ckpt`` like a ``matting fit`` checkpoint.
SOC has no labels to tell when to stop: compare the epochs' predictions on a few photos. An
existing RUN_DIR is replaced only with ``--overwrite``.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

import yaml

from matting.io.errors import MattingInputError, ToolArgumentParser
from matting.io.files import check_output, make_run_folder
from matting.io.limits import add_reader_options, apply_reader_options
from matting.runtime.run_config import (
    config_dir,
    run_folder_arguments,
    write_checkpoint_config,
)

MARKER = "adapt.yaml"
DEFAULTS_FILE = "adapt.yaml"  # under configs/


def _adapt_defaults(configs: Path) -> dict[str, Any]:
    """The option defaults, read from configs/adapt.yaml so that they are defined once."""
    data = yaml.safe_load((configs / DEFAULTS_FILE).read_text())
    model, loader = data["model"]["init_args"], data["data"]["init_args"]
    return {"epochs": data["trainer"]["max_epochs"], "lr": model["optimizer"]["init_args"]["lr"],
            "size": loader["size"], "batch_size": loader["batch_size"], "num_workers": loader["num_workers"],
            "seed": data["seed_everything"]}


def build_parser(defaults: dict[str, Any]) -> argparse.ArgumentParser:
    p = ToolArgumentParser(
        prog="matting adapt",
        description="Adapt a trained checkpoint to unlabeled photos with MODNet's self-supervised SOC.",
    )
    p.add_argument("ckpt", type=Path, help="checkpoint written by `matting fit` (.ckpt) or `matting export --safetensors`")
    p.add_argument("--images", type=Path, required=True, help="folder of unlabeled photos (not searched recursively)")
    p.add_argument("--epochs", type=int, default=defaults["epochs"], help=f"passes over the photos (default {defaults['epochs']})")
    p.add_argument("--lr", type=float, default=defaults["lr"], help=f"Adam learning rate (default {defaults['lr']:g})")
    p.add_argument("--size", type=int, default=defaults["size"], help=f"side of the square training crops (default {defaults['size']})")
    p.add_argument("--batch-size", type=int, default=defaults["batch_size"], help=f"photos per step (default {defaults['batch_size']})")
    p.add_argument("--num-workers", type=int, default=defaults["num_workers"],
                   help=f"data loader processes (default {defaults['num_workers']})")
    p.add_argument("--seed", type=int, default=defaults["seed"], help=f"random seed (default {defaults['seed']})")
    p.add_argument("--out", type=Path, help="run folder (default runs/adapt/<ckpt stem>-<image folder name>)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    add_reader_options(p)
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


def cli_arguments(args: argparse.Namespace, configs: Path, out: Path, images: Path, photos: int) -> list[str]:
    """The LightningCLI argument list of the run."""
    steps_per_epoch = max(1, photos // args.batch_size)
    return [
        "-c", str(configs / DEFAULTS_FILE), "-c", str(out / MARKER),
        f"--data.init_args.root={images}",
        f"--data.init_args.size={args.size}",
        f"--data.init_args.batch_size={args.batch_size}",
        f"--data.init_args.num_workers={args.num_workers}",
        f"--model.init_args.optimizer.init_args.lr={args.lr}",
        f"--trainer.max_epochs={args.epochs}",
        f"--trainer.log_every_n_steps={min(10, steps_per_epoch)}",
        f"--seed_everything={args.seed}",
        *run_folder_arguments(out),
    ]


def main(argv: list[str] | None = None) -> int:
    configs = config_dir(DEFAULTS_FILE)
    args = build_parser(_adapt_defaults(configs)).parse_args(argv)
    apply_reader_options(args)  # DataLoader workers inherit it
    _check_options(args)
    ckpt = args.ckpt.expanduser().resolve()
    images = args.images.expanduser().resolve()
    out = args.out or Path("runs/adapt") / f"{ckpt.stem}-{images.name}"
    check_output(out, label="--out", overwrite=args.overwrite, marker=MARKER)

    from matting.data.unlabeled import scan_images
    from matting.inference.loading import net_from_parts
    from matting.io.checkpoints import read_checkpoint, reading_once
    from matting.soc_module import check_soc_outputs

    photos = scan_images(images)
    with reading_once():  # model.init_weights (while the CLI is built) reuses this read of the checkpoint
        checkpoint = read_checkpoint(ckpt)
        net_config = checkpoint.net_config()
        # Before any folder is made: the weights fit their config, and the network has SOC's heads.
        check_soc_outputs(net_from_parts(net_config, checkpoint.net_state(), ckpt), str(ckpt))

        make_run_folder(out, overwrite=args.overwrite, marker=MARKER)
        out = out.resolve()
        try:
            write_checkpoint_config(out / MARKER, ckpt, net_config, None, command="matting adapt")
            from matting.runtime.lightning_cli import build_cli

            cli = build_cli(cli_arguments(args, configs, out, images, len(photos)), run=False)
        except BaseException:
            shutil.rmtree(out, ignore_errors=True)  # nothing was trained: leave no half-made run behind
            raise
        del checkpoint  # training does not need the file's tensors
    print(f"adapting {ckpt.name} to {len(photos)} photo(s) in {images} for {args.epochs} epoch(s) -> {out}")
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    last = Path(cli.trainer.log_dir) / "checkpoints" / "last.ckpt"
    print(f"run folder: {out}\n  config: {Path(cli.trainer.log_dir) / 'config.yaml'}\n  adapted checkpoint: {last}\n"
          f"  try it: matting predict --ckpt {last} PHOTOS --out CUTOUTS")
    return 0
