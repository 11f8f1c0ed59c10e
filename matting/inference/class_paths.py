"""Which classes a config read from a checkpoint may name: the package's own building blocks.

A checkpoint's config is rebuilt with jsonargparse, which imports any dotted path it is given and
instantiates or calls it. A prefix test (``matting.``) is not enough: ``matting.io.images.os.system``
starts with it and is ``os.system``, re-exported by an import. The allow-list is derived from the
package, not kept by hand: a class path is allowed when it names a class of one of the package's
modules whose ``__module__`` is a package module too (a re-export, ``matting.models.MattingNet``,
counts; an imported ``os`` or ``subprocess`` never does) and which is a building block of a run: a
``torch.nn.Module`` (networks, heads, losses, the Lightning modules) or a Lightning data module.
torch's optimizers and learning-rate schedulers, which LightningCLI stores in ``hyper_parameters``,
are allowed too. Only the named module is imported (never a ``__main__``); anything else is refused
in one line naming the key and the class.

A network rebuilt from a checkpoint is built offline: a stored name with a source prefix
(``hf-hub:user/repo``, ``local-dir:/path``, a URL), which timm would resolve by asking the model hub
or reading a folder even without pretrained weights, is refused too (``check_class_paths``).
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

from matting.io.errors import MattingInputError

PACKAGE = "matting"
# The kinds of class a run is built from, by (module prefix, class name) of a base: compared by name
# so that checking a path imports no Lightning.
BUILDING_BLOCKS = (("torch.nn.modules.module", "Module"), ("lightning.pytorch.core.datamodule", "LightningDataModule"))
# torch's own classes that LightningCLI stores next to the network (optimizer, lr_scheduler).
TORCH_MODULES = ("torch.optim", "torch.optim.lr_scheduler")

_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")
_WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors", ".npz", ".h5")
# A name timm (or anything else) resolves outside the process: the model hub, a local folder, a URL.
_FETCHED = re.compile(r"^\s*(hf[-_]hub|local[-_]dir|https?|ftp|file)\s*:", re.IGNORECASE)


def _in(module: str, parts: tuple[str, ...]) -> bool:
    return any(module == part or module.startswith(f"{part}.") for part in parts)


@lru_cache(maxsize=256)
def is_allowed_class(path: str) -> bool:
    """True when ``path`` (``module.Class``) names a class a checkpoint's config may build.

    Only the module that ``path`` names is imported, and only when it is one of the package's own
    (or ``torch.optim``): ``matting.io.images.os.system`` is refused without importing anything.
    """
    module_name, _, attr = path.rpartition(".")
    in_torch = module_name in TORCH_MODULES
    if not (in_torch or _in(module_name, (PACKAGE,))) or attr.startswith("_") or "__main__" in module_name.split("."):
        return False
    try:
        if importlib.util.find_spec(module_name) is None:  # matting.models.os: an attribute, not a module
            return False
        value = getattr(importlib.import_module(module_name), attr, None)
    except ImportError:
        return False
    if not inspect.isclass(value):
        return False
    if in_torch:  # torch.optim.AdamW is defined in torch.optim.adamw
        import torch

        bases = (torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
        return value.__module__.startswith("torch.optim.") and issubclass(value, bases)
    # Defined in one of the package's modules (there, or re-exported by another one): never an import from outside.
    home = sys.modules.get(value.__module__)
    if not _in(value.__module__, (PACKAGE,)) or getattr(home, value.__name__, None) is not value:
        return False
    return any((base.__module__, base.__name__) in BUILDING_BLOCKS for base in inspect.getmro(value))


def _names_foreign_code(value: str) -> bool:
    """True for a string that is an importable dotted path but no allowed class (jsonargparse imports and calls those)."""
    if not _DOTTED.match(value) or is_allowed_class(value) or value.lower().endswith(_WEIGHT_SUFFIXES):
        return False
    try:
        return importlib.util.find_spec(value.split(".")[0]) is not None
    except (ImportError, ValueError):
        return False


def check_class_paths(config: Any, path: str | Path, where: str = "net") -> None:
    """Refuse a config (``{class_path, init_args}`` nested in dicts and lists) naming any class not allowed.

    Args:
        config: the config as stored, e.g. a checkpoint's ``hyper_parameters.net``.
        path: the file it came from, for the message.
        where: the config's key, for the message (``net.fusion.class_path``).

    Raises:
        MattingInputError: ``PATH: refusing to build KEY.class_path='CLASS': ...`` (or ``refusing KEY='...'``
        for a dotted string that names code, or a name fetched from the hub, a folder or a URL) naming
        the first key that is refused.
    """
    if isinstance(config, str) and _FETCHED.match(config):
        raise MattingInputError(
            f"{path}: refusing {where}={config!r}: a network rebuilt from a checkpoint is built offline, and this "
            "name would make timm contact the model hub or read a path; give the network in a config of your own (-c)"
        )
    if isinstance(config, str) and _names_foreign_code(config):
        raise MattingInputError(
            f"{path}: refusing {where}={config!r}: it names code that is not one of the package's classes, "
            "and a checkpoint's config never imports it"
        )
    if isinstance(config, dict):
        class_path = config.get("class_path")
        if class_path is not None and (not isinstance(class_path, str) or not is_allowed_class(class_path)):
            raise MattingInputError(
                f"{path}: refusing to build {where}.class_path={class_path!r}: not a class that the matting "
                "package defines (or a torch optimizer or scheduler), so it is never built from a checkpoint"
            )
        for key, value in config.items():
            check_class_paths(value, path, f"{where}.{key}" if key not in ("init_args", "dict_kwargs") else where)
    elif isinstance(config, (list, tuple)):
        for i, value in enumerate(config):
            check_class_paths(value, path, f"{where}[{i}]")
    elif not (config is None or isinstance(config, (str, int, float, bool))):
        raise MattingInputError(f"{path}: {where} holds a {type(config).__name__}, expected plain config values")
