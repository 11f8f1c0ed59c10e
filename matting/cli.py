"""The ``matting`` command.

``matting fit|validate|test|predict -c configs/...`` is LightningCLI (every option is a YAML key;
``--print_config`` shows the resolved config). ``matting evaluate``, ``matting demo`` and
``matting make-data`` are the project's tools.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from lightning.pytorch.cli import LightningCLI

from .checkpoint_io import CheckpointWriteError, remove_stale_temps
from .errors import MattingInputError
from .runtime import quiet_defaults, tune_malloc


class MattingCLI(LightningCLI):
    """LightningCLI for :class:`matting.module.MattingModule` with any LightningDataModule."""

    def add_arguments_to_parser(self, parser) -> None:
        from .run_record import RunRecord

        parser.set_defaults({"trainer.enable_model_summary": False})
        # Always present, configured under its own key: --run_record.grid_samples 8, --run_record.enabled false.
        parser.add_lightning_class_args(RunRecord, "run_record")

    def instantiate_trainer(self, **kwargs):
        """The trainer, writing checkpoints atomically unless the config chose its own CheckpointIO."""
        from lightning.pytorch.plugins.io import TorchCheckpointIO

        from .checkpoint_io import AtomicCheckpointIO

        trainer = super().instantiate_trainer(**kwargs)
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        return trainer


    def before_fit(self) -> None:
        """``--ckpt_path last`` means the newest ``last*.ckpt`` anywhere under the run folder.

        Lightning looks only in the checkpoint folder of the new logger version, which a
        restarted run has just created empty, and would silently train from scratch.
        """
        config = self.config_init[self.subcommand]
        if config.get("ckpt_path") != "last":
            return
        newest = find_last_checkpoint(self.trainer)
        if newest is None:
            print(f"--ckpt_path last: no last*.ckpt under {self.trainer.default_root_dir}; starting from scratch")
            return
        print(f"--ckpt_path last: resuming from {newest}")
        remove_stale_temps(newest.parent)  # a write the kill interrupted
        config["ckpt_path"] = str(newest)


def find_last_checkpoint(trainer) -> Path | None:
    """The newest ``last*.ckpt`` under the trainer's root folder and its checkpoint callbacks' folders."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    roots = {Path(trainer.default_root_dir)}
    roots |= {Path(cb.dirpath) for cb in trainer.callbacks if isinstance(cb, ModelCheckpoint) and cb.dirpath}
    found = [p for root in roots if root.is_dir() for p in root.rglob("last*.ckpt") if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime_ns) if found else None


def build_cli(args: list[str] | None = None, run: bool = True) -> MattingCLI:
    """Run (or, with ``run=False``, just build) the Lightning CLI; used by ``main`` and the demo."""
    import lightning as L

    from .module import MattingModule

    quiet_defaults()
    return MattingCLI(
        MattingModule,
        L.LightningDataModule,
        subclass_mode_data=True,
        args=args,
        run=run,
        save_config_kwargs={"overwrite": False},
        # Raise instead of printing the whole usage text, so main() can name just the bad key.
        parser_kwargs={"exit_on_error": False},
    )


# Tool name -> module with ``main(argv) -> int``; imported only when used.
TOOLS = {
    "evaluate": "matting.evaluate",
    "demo": "matting.demo",
    "make-data": "matting.data.make_data",
    "prepare-data": "matting.data.prepare",
    "predict": "matting.predict",
    "export": "matting.export",
    "gallery": "matting.gallery",
    "finetune": "matting.finetune",
    "adapt": "matting.soc",
}
# Lightning's own `predict` subcommand is replaced by the `predict` tool (photos in, mattes out).
LIGHTNING_COMMANDS = ("fit", "validate", "test")
USAGE = """usage: matting COMMAND [options]   (matting COMMAND --help for its options)

training (LightningCLI, configured by YAML: -c configs/default.yaml):
  fit, validate, test
tools:
  demo          the main job: train on synthetic data, evaluate against baselines, write a report
  evaluate      SAD / MSE / MAD / Grad / Conn of predicted alpha mattes under a benchmark protocol
  make-data     write a split of the embedded synthetic dataset to disk
  prepare-data  check a downloaded dataset (am2k, comp1k, ...) and write its manifests
  predict       alpha mattes, cutouts and composites for your photos, from a checkpoint
  export        a checkpoint to ONNX (dynamic size) or safetensors
  gallery       an HTML page comparing checkpoints side by side on the same images, with metrics
  finetune      fine-tune a checkpoint on a folder of your photos and their alpha mattes
  adapt         adapt a checkpoint to unlabeled photos (MODNet's self-supervised SOC)"""


def main(argv: list[str] | None = None) -> int:
    tune_malloc()
    quiet_defaults()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    if argv[0] not in TOOLS and argv[0] not in LIGHTNING_COMMANDS:
        print(f"matting: error: unknown command {argv[0]!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    try:
        if argv[0] in TOOLS:
            return importlib.import_module(TOOLS[argv[0]]).main(argv[1:]) or 0
        build_cli(argv)
    except (MattingInputError, argparse.ArgumentError) as exc:
        print(f"matting: error: {exc}", file=sys.stderr)
        return 2
    except CheckpointWriteError as exc:
        print(f"matting: error: {exc.strerror}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
