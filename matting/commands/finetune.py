"""``matting finetune``: fine-tune a trained checkpoint on a folder of photos and their alpha mattes.

    matting finetune CKPT --data DIR [--val-fraction 0.1] [--freeze-encoder] [--lr 1e-4]
                     [--lr-scales net.encoder=0.1 ...] [--schedule cosine|constant]
                     [--steps N | --epochs N] [--size 512] [--batch-size 8] [--val-every 100]
                     [--out RUN_DIR] [-c extra.yaml ...] [--overwrite] [--key=value ...]

DIR holds ``image/`` and ``alpha/`` (optionally ``fg/`` and ``bg/``), paired by file stem; see
:mod:`matting.data.folder` for the accepted folder names and the validation split.

The run is LightningCLI's ``fit`` on generated arguments, later ones winning:

1. ``configs/default.yaml`` and ``configs/finetune.yaml`` (the fine-tuning defaults: AdamW, cosine
   schedule, checkpoints by ``val/sad``, the photo augmentation);
2. ``RUN_DIR/from_checkpoint.yaml``: the checkpoint's own network config and loss, and
   ``model.init_weights: CKPT`` (weights loaded without unpickling objects);
3. every ``-c`` file;
4. the options above (data folder, crop and batch size, budget, schedule, output folder);
5. any other ``--key=value``, passed to LightningCLI unchanged (``--data.init_args.num_workers=0``).

The network is the checkpoint's: when a ``-c`` file or an option configures a different one, the
command stops and names the differences. The cosine schedule spans the whole run, computed from
``--steps``, or from ``--epochs`` x the batches per epoch; set the batch size with ``--batch-size``.

RUN_DIR (default ``runs/finetune/<ckpt stem>-<data folder name>``) receives
``from_checkpoint.yaml`` and ``logs/version_0/`` with ``config.yaml`` (the complete resolved
config: ``matting fit -c`` it to repeat the run), ``metrics.csv`` and
``checkpoints/{best-*.ckpt,last.ckpt}``. An existing RUN_DIR is replaced only with ``--overwrite``;
a run that fails (a diverged loss, bad data) removes its RUN_DIR. The progress bar is off when
stdout is not a terminal (``--trainer.enable_progress_bar=true`` turns it back on).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from matting.io.errors import MattingInputError, ToolArgumentParser
from matting.io.files import check_output, make_run_folder
from matting.io.limits import add_reader_options, apply_reader_options
from matting.runtime.run_config import (
    config_dir,
    run_folder_arguments,
    write_checkpoint_config,
)

if TYPE_CHECKING:
    from matting.io.checkpoints import Checkpoint

MARKER = "from_checkpoint.yaml"
LOSS_CLASS = "matting.losses.MattingLoss"


def _finetune_defaults(configs: Path) -> dict[str, Any]:
    """The option defaults, read from configs/finetune.yaml so that they are defined once."""
    data = yaml.safe_load((configs / "finetune.yaml").read_text())
    trainer, model, folder = data["trainer"], data["model"], data["data"]["init_args"]
    return {"steps": trainer["max_steps"], "val_every": trainer["val_check_interval"],
            "lr": model["optimizer"]["init_args"]["lr"], "val_fraction": folder["val_fraction"],
            "size": folder["crop_size"], "batch_size": folder["batch_size"]}


def build_parser(defaults: dict[str, Any]) -> argparse.ArgumentParser:
    p = ToolArgumentParser(
        prog="matting finetune",
        allow_abbrev=False,  # --data.init_args.x and other LightningCLI keys must pass through untouched
        description="Fine-tune a checkpoint on a folder of photos (image/) and alpha mattes (alpha/).",
        epilog="Any other --key=value is passed to LightningCLI, e.g. --data.init_args.num_workers=0.",
    )
    p.add_argument("ckpt", type=Path, help="checkpoint written by `matting fit` (.ckpt) or `matting export --safetensors`")
    p.add_argument("--data", type=Path, required=True, help="folder with image/ and alpha/ (optionally fg/ and bg/)")
    p.add_argument("--val-fraction", type=float, default=defaults["val_fraction"],
                   help=f"share of pairs held out for validation, by stem hash (default {defaults['val_fraction']})")
    p.add_argument("--freeze-encoder", action="store_true", help="keep the encoder fixed (lr scale 0 for net.encoder)")
    p.add_argument("--lr", type=float, help=f"AdamW learning rate (default {defaults['lr']:g})")
    p.add_argument("--lr-scales", nargs="+", default=[], metavar="PREFIX=SCALE",
                   help="learning-rate multipliers by parameter-name prefix, e.g. net.encoder=0.1 (0 freezes)")
    p.add_argument("--schedule", choices=("cosine", "constant"), default="cosine", help="learning-rate schedule (default cosine)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, help=f"optimizer steps (default {defaults['steps']})")
    budget.add_argument("--epochs", type=int, help="passes over the training pairs, instead of --steps")
    p.add_argument("--size", type=int, default=defaults["size"], help=f"side of the square training crops (default {defaults['size']})")
    p.add_argument("--batch-size", type=int, default=defaults["batch_size"], help=f"training batch size (default {defaults['batch_size']})")
    p.add_argument("--val-every", type=int, default=defaults["val_every"],
                   help=f"validate (and keep the best checkpoint by val/sad) every N steps (default {defaults['val_every']})")
    p.add_argument("--out", type=Path, help="run folder (default runs/finetune/<ckpt stem>-<data folder name>)")
    p.add_argument("-c", "--config", action="append", default=[], type=Path, help="extra LightningCLI config, repeatable")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    add_reader_options(p, mattes=True)
    return p


def parse_lr_scales(items: list[str], freeze_encoder: bool) -> dict[str, float]:
    """``["net.encoder=0.1"]`` -> ``{"net.encoder": 0.1}``; ``--freeze-encoder`` adds ``net.encoder: 0``."""
    scales: dict[str, float] = {}
    for item in items:
        prefix, _, value = item.partition("=")
        try:
            scale = float(value)
        except ValueError:
            scale = float("nan")
        if not prefix.strip() or not scale >= 0:
            raise MattingInputError(f"--lr-scales {item!r}: expected PREFIX=SCALE with SCALE >= 0, e.g. net.encoder=0.1")
        scales[prefix.strip()] = scale
    if freeze_encoder:
        if scales.get("net.encoder", 0) != 0:
            raise MattingInputError(f"--freeze-encoder contradicts --lr-scales net.encoder={scales['net.encoder']:g}")
        scales["net.encoder"] = 0.0
    return scales


def _checked_options(args: argparse.Namespace, passthrough: list[str]) -> None:
    for name in ("size", "batch_size", "steps", "epochs", "val_every"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise MattingInputError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if args.size < 32:
        raise MattingInputError(f"--size must be at least 32, got {args.size}")
    if args.lr is not None and not args.lr > 0:
        raise MattingInputError(f"--lr must be positive, got {args.lr}")
    for path in args.config:
        if not path.is_file():
            raise MattingInputError(f"-c {path}: config file not found")
    stray = [a for a in passthrough if not a.startswith("--")]
    if stray:
        raise MattingInputError(f"unexpected argument(s) {' '.join(stray)}: LightningCLI options take the form --key=value")


# ---------------------------------------------------------------------------- the checkpoint's config


def checkpoint_loss_config(checkpoint: Checkpoint) -> dict | None:
    """The checkpoint's ``MattingLoss`` config (plain numbers only), or None to keep the default loss."""
    loss = checkpoint.hyper_parameters().get("loss")
    if not isinstance(loss, dict) or loss.get("class_path") != LOSS_CLASS:
        return None
    init_args = loss.get("init_args") or {}
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in init_args.values()):
        return None
    return {"class_path": LOSS_CLASS, "init_args": dict(init_args)}


def _check_same_network(cli, ckpt: Path, net_config: dict, state: dict) -> None:
    """Refuse a run whose configured network is not the checkpoint's (a conflicting -c or option)."""
    from matting.io.checkpoints import config_diff, state_fit

    resolved = yaml.safe_load(cli.parser.dump(cli.config, skip_none=False))["model"]["net"]
    differences = config_diff(net_config, resolved)
    fit = state_fit(cli.model.net.state_dict(), state)
    if not differences and fit.exact:
        return
    lines = differences[:6] + ([f"... {len(differences) - 6} more"] if len(differences) > 6 else [])
    if not fit.exact:
        lines.append(f"the checkpoint's weights do not fit the configured network: {fit.describe()}")
    raise MattingInputError(
        f"{ckpt}: the network configured by the -c files and options is not the checkpoint's; fine-tuning keeps "
        "the checkpoint's architecture (drop the setting that changes model.net, or train it with "
        "`matting fit --model.init_weights=CKPT`):\n  " + "\n  ".join(lines))


# ---------------------------------------------------------------------------- the command


def cli_arguments(args: argparse.Namespace, configs: Path, out: Path, train_pairs: int,
                  lr_scales: dict[str, float], passthrough: list[str], default_steps: int) -> tuple[list[str], int]:
    """The LightningCLI argument list of the run, and its total number of optimizer steps."""
    from matting.data.folder import train_batches

    if args.epochs is not None:
        total = args.epochs * train_batches(train_pairs, args.batch_size)
        budget = [f"--trainer.max_epochs={args.epochs}", "--trainer.max_steps=-1"]
    else:
        total = args.steps or default_steps
        budget = [f"--trainer.max_steps={total}", "--trainer.max_epochs=-1"]
    argv = ["-c", str(configs / "default.yaml"), "-c", str(configs / "finetune.yaml"), "-c", str(out / MARKER)]
    for extra in args.config:
        argv += ["-c", str(extra)]
    argv += [
        f"--data.init_args.root={args.data.resolve()}",
        f"--data.init_args.val_fraction={args.val_fraction}",
        f"--data.init_args.crop_size={args.size}",
        f"--data.init_args.batch_size={args.batch_size}",
        # Crops see the subject at about the scale of inference (the long side at --size).
        f"--data.init_args.max_side={2 * args.size}",
        *budget,
        f"--trainer.val_check_interval={min(args.val_every, total)}",
        *run_folder_arguments(out),
    ]
    if args.lr is not None:
        argv.append(f"--model.optimizer.init_args.lr={args.lr}")
    if lr_scales:
        argv.append(f"--model.lr_scales={json.dumps(lr_scales)}")
    if args.schedule == "cosine":
        cosine = {"class_path": "torch.optim.lr_scheduler.CosineAnnealingLR", "init_args": {"T_max": total}}
        argv.append(f"--model.scheduler={json.dumps(cosine)}")
    else:
        argv.append("--model.scheduler=null")
    if not sys.stdout.isatty():  # Lightning's bar writes to stdout: redirected, it would fill the log with \r lines
        argv.append("--trainer.enable_progress_bar=false")
    return argv + passthrough, total


def main(argv: list[str] | None = None) -> int:
    configs = config_dir("finetune.yaml")
    defaults = _finetune_defaults(configs)
    args, passthrough = build_parser(defaults).parse_known_args(argv)
    apply_reader_options(args)  # DataLoader workers inherit it
    _checked_options(args, passthrough)
    lr_scales = parse_lr_scales(args.lr_scales, args.freeze_encoder)
    ckpt = args.ckpt.expanduser().resolve()
    out = args.out or Path("runs/finetune") / f"{ckpt.stem}-{args.data.resolve().name}"
    check_output(out, label="--out", overwrite=args.overwrite, marker=MARKER)

    from matting.data.folder import scan_pairs, split_by_stem
    from matting.inference.loading import net_from_parts
    from matting.io.checkpoints import read_checkpoint, reading_once

    train, _ = split_by_stem(scan_pairs(args.data, check_alpha=True), args.val_fraction)
    with reading_once():  # model.init_weights (while the CLI is built) reuses this read of the checkpoint
        checkpoint = read_checkpoint(ckpt)
        net_config, state = checkpoint.net_config(), checkpoint.net_state()
        net_from_parts(net_config, state, ckpt)  # the weights fit their config (and it names matting classes only)
        loss_config = checkpoint_loss_config(checkpoint)

        make_run_folder(out, overwrite=args.overwrite, marker=MARKER)
        out = out.resolve()
        try:
            write_checkpoint_config(out / MARKER, ckpt, net_config, loss_config)
            cli_args, total = cli_arguments(args, configs, out, len(train), lr_scales, passthrough, defaults["steps"])
            from matting.runtime.lightning_cli import build_cli

            cli = build_cli(cli_args, run=False)
            _check_same_network(cli, ckpt, net_config, state)
        except BaseException:
            shutil.rmtree(out, ignore_errors=True)  # nothing was trained: leave no half-made run behind
            raise
        del checkpoint, state  # training does not need the file's tensors
    print(f"fine-tuning {ckpt.name} on {args.data} ({len(train)} training pairs) for {total} steps -> {out}")
    # Lightning does not call train() when fitting starts; MattingModule.train() is what puts frozen
    # BatchNorm layers (lr scale 0) in eval mode, so that their running statistics stay the checkpoint's.
    cli.model.train()
    try:
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    except Exception as exc:
        _failed(exc, cli.trainer, out)
    callback = cli.trainer.checkpoint_callback
    best = getattr(callback, "best_model_path", "") if callback else ""
    print(f"run folder: {out}\n  config: {Path(cli.trainer.log_dir) / 'config.yaml'}\n  best checkpoint: {best or '(no validation ran)'}")
    return 0


def _failed(exc: Exception, trainer, out: Path) -> None:
    """A run that failed (a diverged loss, a bad setting, bad data): its folder goes, so that the same
    command can run again without --overwrite, and a fixable failure is one line. SIGTERM keeps it: its
    last.ckpt is saved to resume from."""
    from matting.runtime.failures import as_input_error

    if type(exc).__name__ != "SIGTERMException":
        shutil.rmtree(out, ignore_errors=True)
    error = as_input_error(exc, trainer)
    if error is None:
        raise exc
    raise error from exc
