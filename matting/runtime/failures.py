"""Training failures the user can fix, as one line instead of Lightning's 30 to 60 lines of traceback.

- ``MisconfigurationException``: Lightning refusing a setting (``--trainer.max_steps=-5``); its
  message names the setting and the value.
- ``FloatingPointError``: the non-finite loss :class:`matting.module.MattingModule` stops on, almost
  always a learning rate too high for the run (``--model.optimizer.init_args.lr=1e12``).
- A sub-config named by an option (``--model.net=net.yaml``) that is not safe YAML: jsonargparse
  reports it as "not accessible or invalid"; :func:`check_option_files` names the tag.
"""

from __future__ import annotations

from pathlib import Path

from matting.io.errors import MattingInputError, yaml_error

# Options whose value is a file that is not a YAML config.
_NOT_CONFIGS = ("--ckpt_path", "--model.init_weights", "--model.init_args.init_weights")
_CONFIG_SUFFIXES = (".yaml", ".yml", ".json")


def as_input_error(exc: BaseException, trainer=None) -> MattingInputError | None:
    """The one-line error for a failure the user can fix, or None for any other exception."""
    if type(exc).__name__ == "MisconfigurationException":  # lightning.fabric's and lightning.pytorch's
        return MattingInputError(f"Lightning refused the configuration: {str(exc).strip().splitlines()[0]}")
    if isinstance(exc, FloatingPointError):
        return MattingInputError(f"training diverged: {exc}{_learning_rate(trainer)}; lower the learning rate "
                                 "(--model.optimizer.init_args.lr, finetune's --lr) or check the data and the "
                                 "starting weights")
    return None


def _learning_rate(trainer) -> str:
    """``, learning rate 1e+12`` (the first parameter group's, when it failed), or ``""``."""
    try:
        return f", learning rate {trainer.optimizers[0].param_groups[0]['lr']:g}"
    except (AttributeError, IndexError, KeyError, TypeError):
        return ""


def check_option_files(options) -> None:
    """Refuse a YAML sub-config named by an option (``--model.net=FILE``) that does not parse, naming
    the option, the file and the line (an unsafe tag by its name): jsonargparse says "not accessible".

    ``options``: ``(key, value)`` pairs of a command line; ``-c`` files are checked where they are read.
    """
    import yaml

    for key, value in options:
        path = Path(value) if value else None
        if (not key.startswith("--") or key in ("--config", *_NOT_CONFIGS) or path is None
                or path.suffix.lower() not in _CONFIG_SUFFIXES or not path.is_file()):
            continue
        try:
            yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise yaml_error(f"{key}={value}", exc) from exc
        except (OSError, ValueError):
            continue  # unreadable: jsonargparse reports it
