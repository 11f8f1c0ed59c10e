"""The ``matting`` command.

``matting fit|validate|test|predict -c configs/...`` is LightningCLI (every option is a YAML key;
``--print_config`` shows the resolved config). ``matting evaluate``, ``matting demo`` and
``matting make-data`` are the project's tools.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from lightning.pytorch.cli import LightningCLI

from .errors import MattingInputError
from .runtime import quiet_defaults, tune_malloc


class MattingCLI(LightningCLI):
    """LightningCLI for :class:`matting.module.MattingModule` with any LightningDataModule."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.set_defaults({"trainer.enable_model_summary": False})


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
  export        a checkpoint to ONNX (dynamic size) or safetensors"""


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
    return 0


if __name__ == "__main__":
    sys.exit(main())
