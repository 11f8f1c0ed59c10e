"""The ``matting`` command: it only dispatches.

``matting fit|validate|test`` go to LightningCLI (``matting.commands.train``); every other command
is one module under ``matting.commands`` with ``main(argv) -> int``, imported only when used.
Bad input (``MattingInputError``, a bad option) becomes one ``matting: error: ...`` line, exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from matting.io.errors import CheckpointWriteError, MattingInputError, StoppedBySignal
from matting.runtime.process import quiet_defaults, tune_malloc

# Tool name -> module with ``main(argv) -> int``; imported only when used.
TOOLS = {
    "evaluate": "matting.commands.evaluate",
    "demo": "matting.commands.demo",
    "make-data": "matting.commands.make_data",
    "prepare-data": "matting.commands.prepare_data",
    "predict": "matting.commands.predict",
    "export": "matting.commands.export",
    "gallery": "matting.commands.gallery",
    "finetune": "matting.commands.finetune",
    "adapt": "matting.commands.adapt",
}


# Lightning's own `predict` subcommand is replaced by the `predict` tool (photos in, mattes out).
LIGHTNING_COMMANDS = ("fit", "validate", "test")
# fit / validate / test: one module, given the subcommand with its options.
LIGHTNING_MODULE = "matting.commands.lightning"


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


def _one_line(exc: argparse.ArgumentError) -> str:
    """jsonargparse's nested ``Parser key "model.net":`` / ``Parser key "base_scale":`` chain as one line
    naming the dotted key and the class (``matting.io.errors.one_line``).

    Messages that list alternatives (``- Expected ...`` lines of a Union) keep their lines.
    """
    from matting.io.errors import one_line

    return one_line(str(exc))


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
        return importlib.import_module(LIGHTNING_MODULE).main(argv) or 0
    except (MattingInputError, argparse.ArgumentError) as exc:
        print(f"matting: error: {_one_line(exc) if isinstance(exc, argparse.ArgumentError) else exc}", file=sys.stderr)
        return 2
    except CheckpointWriteError as exc:
        print(f"matting: error: {exc.strerror}", file=sys.stderr)
        return 1
    except StoppedBySignal as exc:  # SIGTERM (a scheduler's notice): saved, and not a finished run
        print(f"matting {argv[0]}: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:  # Ctrl-C: one line and the shell's status for SIGINT, not a traceback
        print(f"matting {argv[0]}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
