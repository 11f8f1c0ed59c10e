"""Reading checkpoints safely: one reader for every command, one fit check, one config diff.

Checkpoints are files from strangers, so nothing here unpickles arbitrary objects:

- ``.ckpt`` / ``.pt`` / ``.pth``: read with ``torch.load(weights_only=True)``. A Lightning
  checkpoint written by ``matting fit`` passes as it is: LightningCLI stores the model's init
  arguments in ``hyper_parameters`` as plain dicts (``net: {class_path, init_args}``), and the
  weights under ``state_dict`` (``net.`` prefix).
- ``.safetensors``: weights with the network config in the file's metadata (key ``net_config``,
  JSON; ``matting export --safetensors`` writes it) or in a sidecar YAML next to it
  (``<stem>.yaml``, either ``net: {...}`` or LightningCLI's ``model: {net: {...}}``).

A config naming any class outside ``matting.`` is refused (instantiating it could run arbitrary
code). Anything else (a pickle holding Python objects, a truncated file, a config without a
network) raises ``MattingInputError`` naming the file and the reason.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from matting.io.errors import MattingInputError

SAFE_CLASS_PREFIXES = ("matting.",)


SAFETENSORS_SUFFIX = ".safetensors"


METADATA_KEY = "net_config"


_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")


_WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors", ".npz", ".h5")


def _names_foreign_code(value: str) -> bool:
    """True for a dotted import path outside ``matting`` (jsonargparse resolves those for callable arguments)."""
    import importlib.util

    if not _DOTTED.match(value) or value.startswith(SAFE_CLASS_PREFIXES) or value.lower().endswith(_WEIGHT_SUFFIXES):
        return False
    try:
        return importlib.util.find_spec(value.split(".")[0]) is not None
    except (ImportError, ValueError):
        return False


def _check_class_paths(config: Any, path: Path, where: str = "net") -> None:
    """Refuse a config that would instantiate or call anything outside ``SAFE_CLASS_PREFIXES``."""
    if isinstance(config, str) and _names_foreign_code(config):
        raise MattingInputError(
            f"{path}: refusing {where}={config!r}: it names code outside {', '.join(SAFE_CLASS_PREFIXES)}, "
            "which is never imported from a checkpoint"
        )
    if isinstance(config, dict):
        class_path = config.get("class_path")
        if class_path is not None:
            if not isinstance(class_path, str) or not class_path.startswith(SAFE_CLASS_PREFIXES):
                raise MattingInputError(
                    f"{path}: refusing to build {where}.class_path={class_path!r}: only classes under "
                    f"{', '.join(SAFE_CLASS_PREFIXES)} are instantiated from a checkpoint"
                )
        for key, value in config.items():
            _check_class_paths(value, path, f"{where}.{key}" if key not in ("init_args", "dict_kwargs") else where)
    elif isinstance(config, (list, tuple)):
        for i, value in enumerate(config):
            _check_class_paths(value, path, f"{where}[{i}]")
    elif not (config is None or isinstance(config, (str, int, float, bool))):
        raise MattingInputError(f"{path}: {where} holds a {type(config).__name__}, expected plain config values")


def _torch_load(path: Path) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*pickle protocol.*")  # noise on non-checkpoint files
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "Weights only load failed" in text or "weights_only" in text:
            found = re.search(r"GLOBAL ([\w.]+)", text)
            what = f" ({found.group(1)})" if found else ""
            raise MattingInputError(
                f"{path}: not a safe checkpoint: it holds Python objects{what} that weights_only loading refuses; "
                "load only checkpoints written by `matting fit`, or weights converted with `matting export --safetensors`"
            ) from exc
        raise MattingInputError(f"{path}: not a PyTorch checkpoint ({text.splitlines()[0] if text else 'unpickling failed'})") from exc
    except Exception as exc:  # garbage makes the unpickler fail in many ways (IndexError, EOFError, ...)
        first = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else ""
        raise MattingInputError(
            f"{path}: not a readable PyTorch checkpoint: truncated or another format ({type(exc).__name__}: {first})"
        ) from exc


def _sidecar_config(path: Path) -> dict | None:
    import yaml

    for suffix in (".yaml", ".yml"):
        sidecar = path.with_suffix(suffix)
        if sidecar.is_file():
            try:
                data = yaml.safe_load(sidecar.read_text())
            except yaml.YAMLError as exc:
                raise MattingInputError(f"{sidecar}: not valid YAML ({str(exc).splitlines()[0]})") from exc
            if isinstance(data, dict) and isinstance(data.get("model"), dict) and "net" in data["model"]:
                return data["model"]["net"]
            if isinstance(data, dict) and "net" in data:
                return data["net"]
            if isinstance(data, dict) and "class_path" in data:
                return data
            raise MattingInputError(f"{sidecar}: no network config in it (expected a 'net' or 'model.net' key)")
    return None


def load_net_parts(path: str | os.PathLike) -> tuple[dict, dict[str, torch.Tensor]]:
    """Read a checkpoint's network config and network weights, without unpickling objects.

    Returns:
        (net_config, state_dict): the ``{class_path, init_args}`` dict and the network's weights
        (keys without the Lightning ``net.`` prefix).
    """
    path = Path(path)
    if not path.exists():
        raise MattingInputError(f"{path}: checkpoint not found")
    if not path.is_file():
        raise MattingInputError(f"{path}: checkpoint is not a file")
    if path.suffix.lower() == SAFETENSORS_SUFFIX:
        return _load_safetensors(path)
    contents = _torch_load(path)
    if not isinstance(contents, dict):
        raise MattingInputError(f"{path}: expected a checkpoint dict, found a {type(contents).__name__}")
    hparams = contents.get("hyper_parameters")
    config = hparams.get("net") if isinstance(hparams, dict) else None
    if config is None:
        config = contents.get(METADATA_KEY) or _sidecar_config(path)
    if not isinstance(config, dict):
        raise MattingInputError(
            f"{path}: no network config (hyper_parameters.net) in the checkpoint; train with `matting fit` "
            "(LightningCLI stores it), or put the config in a sidecar YAML next to the file"
        )
    state = contents.get("state_dict")
    if not isinstance(state, dict) or not state:
        raise MattingInputError(f"{path}: no state_dict in the checkpoint")
    if any(k.startswith("net.") for k in state):
        state = {k[len("net."):]: v for k, v in state.items() if k.startswith("net.")}
    return config, state


def _load_safetensors(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    try:
        from safetensors import SafetensorError, safe_open
    except ImportError as exc:  # pragma: no cover - safetensors ships with timm
        raise MattingInputError(f"{path}: reading .safetensors needs the safetensors package") from exc
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            state = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise MattingInputError(f"{path}: not a readable safetensors file ({str(exc).splitlines()[0] if str(exc) else exc})") from exc
    config = None
    if METADATA_KEY in metadata:
        try:
            config = json.loads(metadata[METADATA_KEY])
        except json.JSONDecodeError as exc:
            raise MattingInputError(f"{path}: metadata {METADATA_KEY!r} is not valid JSON ({exc})") from exc
    if config is None:
        config = _sidecar_config(path)
    if config is None:
        raise MattingInputError(
            f"{path}: no network config: expected metadata {METADATA_KEY!r} (written by `matting export "
            f"--safetensors`) or a sidecar {path.with_suffix('.yaml').name}"
        )
    return config, state


def read_checkpoint(path: Path) -> dict:
    """A checkpoint's contents, loaded without unpickling objects; tensors memory-mapped where the format allows.

    MattingInputError naming the file when it is not a readable checkpoint dict.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pickle-protocol noise on files that are no checkpoint
            contents = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        contents = _torch_load(path)  # legacy (non-zip) files cannot be memory-mapped; garbage raises a clean error
    if not isinstance(contents, dict):
        raise MattingInputError(f"{path}: expected a checkpoint dict, found a {type(contents).__name__}")
    return contents


def config_conflicts(stored, configured, where: str) -> list[str]:
    """Keys that a checkpoint's stored config sets to another value than the configured one.

    Keys absent from the stored config are no conflict (LightningCLI keeps the configured value),
    nor are ``weights_file`` entries (pretrained backbones that the checkpoint's weights replace).
    """
    if isinstance(stored, dict) and isinstance(configured, dict):
        if "class_path" in stored and stored.get("class_path") != configured.get("class_path"):
            return [f"{where}.class_path: checkpoint {stored.get('class_path')}, configured {configured.get('class_path')}"]
        return [c for key, value in stored.items() if key != "weights_file" and key in configured
                for c in config_conflicts(value, configured[key], f"{where}.{key}")]
    if isinstance(stored, (list, tuple)) and isinstance(configured, (list, tuple)):
        stored, configured = list(stored), list(configured)
    if stored != configured:
        return [f"{where}: checkpoint {stored!r}, configured {configured!r}"]
    return []
