"""LightningCLI for the matting module: checks on ``--ckpt_path``, output folders and saved configs.

``matting fit|validate|test -c configs/...`` is this CLI (every option is a YAML key;
``--print_config`` shows the resolved config).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

from matting.io.checkpoints import (
    check_state_fits,
    config_diff,
    read_checkpoint,
    reading_once,
)
from matting.io.errors import MattingInputError, one_line, yaml_error
from matting.io.files import check_output
from matting.runtime.checkpoint_io import remove_stale_temps
from matting.runtime.process import quiet_defaults

# ckpt_path values that name no file: Lightning resolves them itself (``last`` we resolve in before_fit).
SPECIAL_CKPT_PATHS = ("last", "best", "hpc")


class MattingSaveConfigCallback(SaveConfigCallback):
    """Lightning's config saver, refusing to replace an earlier run's config.yaml with one clean line.

    Lightning raises a RuntimeError (a traceback) when the log folder already holds a config.yaml:
    a second run into the same folder with ``--trainer.logger=false`` or a fixed logger version.
    """

    def setup(self, trainer, pl_module, stage: str) -> None:
        if not self.already_saved and self.save_to_log_dir and not self.overwrite:
            path = Path(trainer.log_dir) / self.config_filename
            exists = trainer.strategy.broadcast(path.is_file() if trainer.is_global_zero else False)
            if exists:
                raise MattingInputError(
                    f"{path} exists already: an earlier run wrote into {path.parent}; choose another "
                    "--trainer.default_root_dir (or logger version) so that its results are kept"
                )
        super().setup(trainer, pl_module, stage)


class MattingCLI(LightningCLI):
    """LightningCLI for :class:`matting.module.MattingModule` (or a LightningModule named by class path) with any LightningDataModule."""

    def __init__(self, *args, **kwargs) -> None:
        # The --ckpt_path checks and model.init_weights share one read of each checkpoint.
        with reading_once():
            super().__init__(*args, **kwargs)

    def add_arguments_to_parser(self, parser) -> None:
        from matting.runtime.run_record import RunRecord

        parser.set_defaults({"trainer.enable_model_summary": False})
        if self.subclass_mode_model:  # model init arguments without a class path are MattingModule's (configs/default.yaml)
            parser.set_defaults({"model": {"class_path": "matting.module.MattingModule"}})
        # Always present, configured under its own key: --run_record.grid_samples 8, --run_record.enabled false.
        parser.add_lightning_class_args(RunRecord, "run_record")
        _ints_stay_ints(parser)

    def parse_arguments(self, parser, args) -> None:
        """Parse, then check ``--ckpt_path`` before LightningCLI reads it.

        LightningCLI then loads the file itself (a traceback for a missing or garbage file) and
        replaces the configured network with the one in the checkpoint's hyper_parameters, so a
        conflicting ``-c configs/model/gfm.yaml`` would be silently ignored: both are refused here.
        """
        super().parse_arguments(parser, args)
        self._loggers_follow_root_dir(args)
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if not ckpt_path or str(ckpt_path) in SPECIAL_CKPT_PATHS or str(ckpt_path).startswith("registry"):
            return
        path = Path(ckpt_path)
        stored = read_checkpoint(path, f"--ckpt_path {path}").hyper_parameters().get("net")
        parsed = self.config[subcommand]  # model.init_args.net when the model is configured by class path
        configured = parsed.get("model.net") if parsed.get("model.net") is not None else parsed.get("model.init_args.net")
        if isinstance(stored, dict) and configured is not None:
            configured = configured.as_dict() if hasattr(configured, "as_dict") else configured
            conflicts = config_diff(stored, configured, "model.net", shared_keys_only=True)
            if conflicts:
                raise MattingInputError(
                    f"{path} does not fit this network: it was trained with another model.net, which LightningCLI would "
                    f"silently use instead of the configured one ({'; '.join(conflicts[:4])}"
                    + (f"; {len(conflicts) - 4} more" if len(conflicts) > 4 else "")
                    + "). Pass the config the checkpoint was trained with, or start the configured network from its "
                    "weights with --model.init_weights"
                )

    def _loggers_follow_root_dir(self, args) -> None:
        """``--trainer.default_root_dir X`` on the command line moves the whole run to X.

        Lightning puts logs, checkpoints (a ModelCheckpoint without dirpath), config.yaml and run.json
        in the logger's folder, which ``configs/default.yaml`` sets to its default_root_dir; a logger
        whose save_dir is the default_root_dir of the config files follows the new one (LightningCLI's
        argument links cannot reach into the list of loggers). A ``--trainer.logger`` option wins.
        """
        argv = [] if isinstance(args, dict) else [str(a) for a in (sys.argv[1:] if args is None else args)]
        options = list(command_line_options(argv))
        given = [value for key, value in options if key == "--trainer.default_root_dir"]
        if not given or any(key.startswith("--trainer.logger") for key, _ in options):
            return
        config = self.config[self.config.subcommand] if self.config.get("subcommand") else self.config
        root, file_root = config.get("trainer.default_root_dir"), None
        for data in config_files(argv):
            trainer = data.get("trainer")
            if isinstance(trainer, dict) and trainer.get("default_root_dir") is not None:
                file_root = str(trainer["default_root_dir"])
        if root is None or str(root) != given[-1] or file_root is None:
            return
        loggers = config.get("trainer.logger")
        for logger in loggers if isinstance(loggers, list) else [loggers]:
            init_args = logger.get("init_args") if hasattr(logger, "get") else None
            if init_args is not None and str(init_args.get("save_dir")) == file_root:
                init_args["save_dir"] = str(root)

    def _parse_ckpt_path(self) -> None:
        """LightningCLI's merge of a ``--ckpt_path`` file's stored model config into the parsed one.

        A stored config that does not parse (a key the code no longer has, a hand-edited file) is
        the checkpoint's problem: the error names the file, not the command line's options. What the
        checkpoint names is never opened or fetched (``stored_hyper_parameters``).
        """
        subcommand = self.config.get("subcommand")
        path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if not path or not Path(path).is_file():
            return
        hparams = stored_hyper_parameters(Path(path))
        if not hparams:
            return
        if "_class_path" in hparams:
            hparams = {"class_path": hparams.pop("_class_path"), "dict_kwargs": hparams}
        try:
            self.config = self.parser.parse_object({subcommand: {"model": hparams}}, self.config)
        except argparse.ArgumentError as exc:
            raise MattingInputError(
                f"--ckpt_path {path}: the model config stored in this checkpoint (hyper_parameters) does not parse, "
                f"so LightningCLI cannot use it: {one_line(str(exc))}"
            ) from exc

    def before_instantiate_classes(self) -> None:
        """Batch sizes and worker counts LightningCLI accepts but the DataLoader refuses mid-run with a traceback."""
        config = self.config[self.config.subcommand] if self.config.get("subcommand") else self.config
        for key, least in (("data.init_args.batch_size", 1), ("data.init_args.num_workers", 0)):
            value = config.get(key)
            if isinstance(value, int) and value < least:
                raise MattingInputError(f"{key} must be at least {least}, got {value}")

    def instantiate_trainer(self, **kwargs):
        """The trainer, writing checkpoints atomically unless the config chose its own CheckpointIO."""
        from lightning.pytorch.plugins.io import TorchCheckpointIO

        from matting.runtime.checkpoint_io import AtomicCheckpointIO

        from matting.runtime.sigterm import SaveOnSigterm

        trainer = super().instantiate_trainer(**kwargs)
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        self._sigterm = SaveOnSigterm()
        trainer.callbacks.append(self._sigterm)
        return trainer

    def _run_subcommand(self, subcommand: str) -> None:
        """The subcommand; SIGTERM becomes ``StoppedBySignal`` (Lightning exits with status 0)."""
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        from matting.runtime.sigterm import StoppedBySignal, stopped_message

        from matting.runtime.failures import as_input_error

        try:
            super()._run_subcommand(subcommand)
        except SIGTERMException as exc:
            raise StoppedBySignal(stopped_message(getattr(self, "_sigterm", None))) from exc
        except Exception as exc:  # a diverged loss, a setting Lightning refuses mid-run: one line
            error = as_input_error(exc, self.trainer)
            if error is None:
                raise
            raise error from exc


    def before_fit(self) -> None:
        """``--ckpt_path last`` means the newest ``last*.ckpt`` anywhere under the run folder.

        Lightning looks only in the checkpoint folder of the new logger version, which a
        restarted run has just created empty, and would silently train from scratch.
        """
        from matting.runtime.console import quiet_resume

        self._check_output_folders()
        quiet_resume(self.datamodule)
        config = self.config_init[self.subcommand]
        if config.get("ckpt_path") == "last":
            newest = find_last_checkpoint(self.trainer)
            if newest is None:
                print(f"--ckpt_path last: no last*.ckpt under {self.trainer.default_root_dir}; starting from scratch")
            else:
                print(f"--ckpt_path last: resuming from {newest} (weights, optimizer and batch position exactly; the "
                      "ranking of best checkpoints starts afresh in this run's checkpoint folder)")
                remove_stale_temps(newest.parent)  # a write the kill interrupted
                config["ckpt_path"] = str(newest)
        self._check_checkpoint_fits()

    def after_fit(self) -> None:
        """Say when ``trainer.max_time`` stopped training before its step or epoch budget: Lightning
        logs only "Time limit reached", and the checkpoints look like those of a finished run."""
        from matting.runtime.console import fit_summary
        from matting.runtime.time_limit import time_limit_message

        message = time_limit_message(self.trainer)
        if self.trainer.is_global_zero:
            print(f"warning: {message}\n" * bool(message) + fit_summary(self.trainer), flush=True)

    def before_validate(self) -> None:
        self._check_output_folders()
        self._check_checkpoint_fits()

    def before_test(self) -> None:
        self._check_output_folders()
        self._check_checkpoint_fits()

    def _check_output_folders(self) -> None:
        """A file where the run's folders go is an error before any work, naming it (and it stays untouched)."""
        from lightning.pytorch.callbacks import ModelCheckpoint

        trainer = self.trainer
        folders = [("--trainer.default_root_dir", trainer.default_root_dir)]
        for logger in trainer.loggers:
            folder = getattr(logger, "root_dir", None) or getattr(logger, "save_dir", None)
            folders.append((f"the {type(logger).__name__} folder", folder))
        folders += [("the checkpoint folder", cb.dirpath) for cb in trainer.callbacks if isinstance(cb, ModelCheckpoint)]
        for label, folder in folders:
            if not folder or "://" in str(folder):
                continue
            check_output(folder, label=label, overwrite=True)  # writing into an existing folder is Lightning's way

    def _check_checkpoint_fits(self) -> None:
        """Refuse a ``--ckpt_path`` whose weights do not fit the model, naming it and a few keys.

        Lightning would fail while restoring with a RuntimeError listing every key of both sides.
        """
        path = self.config_init[self.subcommand].get("ckpt_path")
        if not path or str(path) in SPECIAL_CKPT_PATHS or not Path(path).is_file():
            return
        if not getattr(self.model, "strict_loading", True):
            return
        name = f"--ckpt_path {path}"
        check_state_fits(self.model.state_dict(), read_checkpoint(Path(path), name).state_dict(), name)


def _ints_stay_ints(parser) -> None:
    """Trainer options typed ``int | float`` try int first, so ``limit_val_batches: 1`` means one batch.

    Lightning reads an int as a number of batches and a float as a fraction (1.0: all of them).
    ``typing`` caches unions without regard to order, so the Trainer's ``Optional[Union[int, float]]``
    may come back as ``Union[float, int, None]``, and jsonargparse would turn 1 into 1.0.
    """
    from functools import reduce
    from operator import or_
    from typing import Union, get_args, get_origin

    for action in parser._actions:
        hint = getattr(action, "_typehint", None)
        args = get_args(hint) if get_origin(hint) is Union else ()
        if action.dest.startswith("trainer.") and int in args and float in args and args.index(float) < args.index(int):
            action._typehint = reduce(or_, (int, *(a for a in args if a is not int)))  # a new, uncached union


def find_last_checkpoint(trainer) -> Path | None:
    """The newest ``last*.ckpt`` under the trainer's root folder and its checkpoint callbacks' folders."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    roots = {Path(trainer.default_root_dir)}
    roots |= {Path(cb.dirpath) for cb in trainer.callbacks if isinstance(cb, ModelCheckpoint) and cb.dirpath}
    found = [p for root in roots if root.is_dir() for p in root.rglob("last*.ckpt") if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime_ns) if found else None


def build_cli(args: list[str] | None = None, run: bool = True) -> MattingCLI:
    """Run (or, with ``run=False``, just build) the Lightning CLI; used by ``main`` and the demo.

    The model is :class:`matting.module.MattingModule`, configured by its init arguments under
    ``model``; a config that names ``model.class_path`` (``configs/adapt.yaml``: SOCModule)
    configures any LightningModule by class path instead.
    """
    from matting.runtime.failures import as_input_error, check_option_files

    quiet_defaults()
    given = sys.argv[1:] if args is None else args
    by_class_path = configured_model_class(given) is not None
    check_option_files(command_line_options(given))
    import lightning as L

    from matting.module import MattingModule

    try:
        return MattingCLI(
            L.LightningModule if by_class_path else MattingModule, L.LightningDataModule,
            subclass_mode_model=by_class_path, subclass_mode_data=True, args=args, run=run,
            save_config_callback=MattingSaveConfigCallback, save_config_kwargs={"overwrite": False},
            # Raise instead of printing the whole usage text, so main() can name just the bad key.
            parser_kwargs={"exit_on_error": False},
        )
    except Exception as exc:  # Lightning refusing a setting (--trainer.max_steps=-5) while building the trainer
        error = as_input_error(exc)
        if error is None:
            raise
        raise error from exc


def configured_net(args: list[str]):
    """``model.net`` exactly as ``matting fit`` composes it from ``args`` (``-c`` files, ``--key=value``),
    with seed 0 for its random weights, in eval mode; nothing is trained or logged."""
    import torch

    torch.manual_seed(0)
    cli = build_cli([*args, "--trainer.logger=false", "--run_record.enabled=false"], run=False)
    return cli.model.net.eval()


def configured_model_class(args: list[str]) -> str | None:
    """The ``model.class_path`` the ``-c`` files and ``--model...`` arguments name (the last one wins), or None.

    Read before LightningCLI parses, because the class path decides how ``model`` is parsed. A file
    that is not valid YAML is an error naming it and the line (LightningCLI names neither); files
    that cannot be read are left to LightningCLI to report.
    """
    found = None
    for key, value in command_line_options(args):
        if key in ("-c", "--config"):
            model = next(config_files([key, value]), {}).get("model")
            if isinstance(model, dict) and model.get("class_path"):
                found = str(model["class_path"])
        elif key == "--model.class_path" and value:
            found = value
    return found


def config_files(args: list[str]):
    """The contents (mappings) of the readable ``-c`` files of a command line, in order.

    A file that is not valid YAML raises ``MattingInputError`` naming it and the line; files that
    cannot be read, or hold no mapping, are skipped (LightningCLI reports them).
    """
    for key, value in command_line_options(args):
        if key in ("-c", "--config"):
            try:
                data = yaml.safe_load(Path(value).read_text())
            except yaml.YAMLError as exc:
                raise yaml_error(value, exc) from exc
            except (OSError, ValueError):
                continue
            if isinstance(data, dict):
                yield data


def command_line_options(args: list[str]):
    """``(option, value)`` for each ``--key=value`` / ``--key value`` / ``-c FILE`` of a command line, in order."""
    for i, arg in enumerate(args):
        if not arg.startswith("-"):
            continue
        key, has_value, value = arg.partition("=")
        if not has_value:
            value = args[i + 1] if i + 1 < len(args) else ""
        yield key, value


def stored_hyper_parameters(path: Path) -> dict:
    """A ``--ckpt_path`` file's stored model config, as LightningCLI merges it, without what would make
    the run open a file or contact the network because the checkpoint said so.

    ``init_weights`` (the file that started the stored run) and backbone weight sources are dropped:
    the checkpoint's own weights replace them. Class paths and hub names are checked
    (:func:`matting.inference.class_paths.check_class_paths`).
    """
    from matting.inference.class_paths import check_class_paths
    from matting.io.checkpoints import without_weight_files

    name = f"--ckpt_path {path}"
    hparams = dict(read_checkpoint(path, name).hyper_parameters())
    hparams.pop("_instantiator", None)
    hparams.pop("init_weights", None)
    hparams = without_weight_files(hparams)
    check_class_paths(hparams, name, where="model")
    return hparams
