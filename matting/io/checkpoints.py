"""Reading checkpoints safely: one reader for every command, one fit check, one config diff.

``read_checkpoint(path)`` is the reader (``reading_once()`` shares one read between the places a
command needs the file); ``check_state_fits`` / ``state_fit`` compare a file's weights with a
network; ``config_diff`` compares a stored network config with a configured one.

Checkpoints are files from strangers, so nothing here unpickles arbitrary objects:

- ``.ckpt`` / ``.pt`` / ``.pth``: read with ``torch.load(weights_only=True)``. A Lightning
  checkpoint written by ``matting fit`` passes as it is: LightningCLI stores the model's init
  arguments in ``hyper_parameters`` as plain dicts (``net: {class_path, init_args}``), and the
  weights under ``state_dict`` (``net.`` prefix).
- ``.safetensors``: weights with the network config in the file's metadata (key ``net_config``,
  JSON; ``matting export --safetensors`` writes it) or in a sidecar YAML next to it
  (``<stem>.yaml``, either ``net: {...}`` or LightningCLI's ``model: {net: {...}}``).

Which classes a stored config may name is checked where configs are built
(``matting.inference.class_paths``: the package's own classes only). Anything else (a pickle
holding Python objects, a truncated file, a text file, a config without a network) raises
``MattingInputError`` naming the file and the reason.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from matting.io.errors import MattingInputError, yaml_error

SAFETENSORS_SUFFIX = ".safetensors"


METADATA_KEY = "net_config"


# ---------------------------------------------------------------------------- the reader


# Set by ``reading_once``: resolved path -> (file signature, contents) of the files read in the block.
_READ_ONCE: ContextVar[dict | None] = ContextVar("matting_checkpoints_read", default=None)


@contextmanager
def reading_once() -> Iterator[None]:
    """Within the block, ``read_checkpoint`` reads each file once and hands later callers the same contents.

    One command often needs a checkpoint in several places (its config, the fit of its weights,
    ``model.init_weights``); blocks may nest, the outermost one owns the shared contents.
    """
    if _READ_ONCE.get() is not None:
        yield
        return
    token = _READ_ONCE.set({})
    try:
        yield
    finally:
        _READ_ONCE.reset(token)


class Checkpoint(Mapping):
    """A checkpoint file's contents, read without unpickling objects: a read-only mapping of its top-level keys.

    The accessors raise ``MattingInputError`` naming the file when the part asked for is absent.
    ``.safetensors`` files appear as ``{"state_dict": tensors}`` (plus ``net_config`` from their metadata).
    """

    def __init__(self, path: Path, contents: dict, name: str):
        self.path, self.name, self._contents = path, name, contents

    def __getitem__(self, key: str) -> Any:
        return self._contents[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._contents)

    def __len__(self) -> int:
        return len(self._contents)

    def hyper_parameters(self) -> dict:
        """The module's init arguments as LightningCLI stored them (``{}`` when the file has none)."""
        hparams = self._contents.get("hyper_parameters")
        return hparams if isinstance(hparams, dict) else {}

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Every tensor of the saved module, keys as saved (``net.`` prefix for a ``matting fit`` checkpoint)."""
        state = self._contents.get("state_dict")
        if not isinstance(state, dict) or not state:
            raise MattingInputError(f"{self.name}: no state_dict in the checkpoint; not one written by `matting fit` "
                                    "or `matting export --safetensors`")
        return dict(state)

    def net_state(self) -> dict[str, torch.Tensor]:
        """The network's weights, keys without the Lightning ``net.`` prefix."""
        state = self.state_dict()
        if any(k.startswith("net.") for k in state):
            state = {k[len("net."):]: v for k, v in state.items() if k.startswith("net.")}
        return state

    def net_config(self) -> dict:
        """The network's ``{class_path, init_args}``: ``hyper_parameters.net``, else metadata, else a sidecar YAML."""
        config = self.hyper_parameters().get("net") or self._contents.get(METADATA_KEY) or _sidecar_config(self.path)
        if isinstance(config, dict):
            return config
        if self.path.suffix.lower() == SAFETENSORS_SUFFIX:
            raise MattingInputError(
                f"{self.name}: no network config: expected metadata {METADATA_KEY!r} (written by `matting export "
                f"--safetensors`) or a sidecar {self.path.with_suffix('.yaml').name}"
            )
        raise MattingInputError(
            f"{self.name}: no network config (hyper_parameters.net) in the checkpoint; train with `matting fit` "
            "(LightningCLI stores it), or put the config in a sidecar YAML next to the file"
        )


def read_checkpoint(path: str | os.PathLike, name: str | None = None) -> Checkpoint:
    """The one way a checkpoint is read: ``.ckpt``/``.pt``/``.pth`` with ``weights_only`` (tensors memory-mapped
    where the format allows), ``.safetensors`` with its metadata.

    Args:
        path: the file.
        name: how error messages name it (default: the path), e.g. ``"--ckpt_path run/last.ckpt"``.

    MattingInputError naming the file when it is missing, unsafe or not a readable checkpoint dict.
    """
    path = Path(path)
    name = name or str(path)
    if not path.exists():
        raise MattingInputError(f"{name}: checkpoint not found")
    if not path.is_file():
        raise MattingInputError(f"{name}: checkpoint is not a file")
    shared = _READ_ONCE.get()
    stat = path.stat()
    key, signature = path.resolve(), (stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if shared is not None and key in shared and shared[key][0] == signature:
        return Checkpoint(path, shared[key][1], name)
    contents = _read_safetensors(path, name) if path.suffix.lower() == SAFETENSORS_SUFFIX else _read_torch(path, name)
    if shared is not None:
        shared[key] = (signature, contents)
    return Checkpoint(path, contents, name)


def load_net_parts(path: str | os.PathLike) -> tuple[dict, dict[str, torch.Tensor]]:
    """``(net_config, net_state)`` of ``read_checkpoint(path)``: what rebuilding the trained network takes."""
    checkpoint = read_checkpoint(path)
    return checkpoint.net_config(), checkpoint.net_state()


def _read_torch(path: Path, name: str) -> dict:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pickle-protocol noise on files that are no checkpoint
            contents = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        contents = _torch_load(path, name)  # legacy (non-zip) files cannot be memory-mapped; garbage raises a clean error
    if not isinstance(contents, dict):
        raise MattingInputError(f"{name}: expected a checkpoint dict, found a {type(contents).__name__}")
    return contents


def _torch_load(path: Path, name: str) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*pickle protocol.*")  # noise on non-checkpoint files
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # garbage makes the unpickler fail in many ways (UnpicklingError, IndexError, EOFError, ...)
        kind = _file_kind(path)
        if kind != "pickle":
            raise MattingInputError(f"{name}: not a PyTorch checkpoint ({kind})") from exc
        text = str(exc)
        found = re.search(r"GLOBAL ([\w.]+)", text)
        if isinstance(exc, pickle.UnpicklingError) and (found or "Unsupported global" in text):
            what = f" ({found.group(1)})" if found else ""
            raise MattingInputError(
                f"{name}: not a safe checkpoint: it holds Python objects{what} that weights_only loading refuses; "
                "load only checkpoints written by `matting fit`, or weights converted with `matting export --safetensors`"
            ) from exc
        first = _first_words(text)
        raise MattingInputError(
            f"{name}: not a readable PyTorch checkpoint: truncated or damaged ({type(exc).__name__}{': ' + first if first else ''})"
        ) from exc


def _first_words(text: str, limit: int = 120) -> str:
    """The first line of an exception's text; a long one is cut after its first sentence or at a word boundary."""
    line = text.strip().splitlines()[0].strip() if text.strip() else ""
    if len(line) <= limit:
        return line
    sentence = line.find(". ", 0, limit)
    if sentence > 0:
        return line[:sentence + 1]
    return line[:limit].rsplit(" ", 1)[0] + " ..."


def _file_kind(path: Path) -> str:
    """``"pickle"`` for what ``torch.save`` writes (a zip archive, a pickle stream), else what the file looks like.

    A header-less pickle is recognised by parsing its first stream with ``pickletools`` (nothing is
    loaded), so a protocol-0 pickle, which is ASCII, still counts as one.
    """
    import pickletools

    with open(path, "rb") as f:
        head = f.read(4096)
        if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
            return "pickle"  # a zip archive, or a pickle's protocol header (a damaged one is still a pickle)
        f.seek(0)
        try:
            pickletools.dis(f, out=_Discard())
            return "pickle"
        except Exception:  # not a pickle stream: bytes pickletools cannot parse
            pass
    if path.suffix.lower() == ".onnx" or head[:1] == b"\x08" and head[2:3] == b"\x12":  # ONNX ModelProto's first fields
        return "an ONNX graph, run by onnxruntime: give the .ckpt of `matting fit` or a `matting export --safetensors` file"
    if not head.strip():
        return "an empty file"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # a multi-byte character cut at the end of the sample is still text
            return "neither a zip archive nor a pickle"
    return "a text file?" if b"\0" not in head else "neither a zip archive nor a pickle"


class _Discard:
    """A file that drops what is written (``pickletools.dis`` prints every opcode)."""

    def write(self, text: str) -> int:
        return len(text)


def _read_safetensors(path: Path, name: str) -> dict:
    try:
        from safetensors import SafetensorError, safe_open
    except ImportError as exc:  # pragma: no cover - safetensors ships with timm
        raise MattingInputError(f"{name}: reading .safetensors needs the safetensors package") from exc
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            contents: dict[str, Any] = {"state_dict": {key: handle.get_tensor(key) for key in handle.keys()}}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise MattingInputError(f"{name}: not a readable safetensors file ({str(exc).splitlines()[0] if str(exc) else exc})") from exc
    if METADATA_KEY in metadata:
        try:
            contents[METADATA_KEY] = json.loads(metadata[METADATA_KEY])
        except json.JSONDecodeError as exc:
            raise MattingInputError(f"{name}: metadata {METADATA_KEY!r} is not valid JSON ({exc})") from exc
    return contents


def _sidecar_config(path: Path) -> dict | None:
    import yaml

    for suffix in (".yaml", ".yml"):
        sidecar = path.with_suffix(suffix)
        if sidecar.is_file():
            try:
                data = yaml.safe_load(sidecar.read_text())
            except yaml.YAMLError as exc:
                raise yaml_error(sidecar, exc) from exc
            if isinstance(data, dict) and isinstance(data.get("model"), dict) and "net" in data["model"]:
                return data["model"]["net"]
            if isinstance(data, dict) and "net" in data:
                return data["net"]
            if isinstance(data, dict) and "class_path" in data:
                return data
            raise MattingInputError(f"{sidecar}: no network config in it (expected a 'net' or 'model.net' key)")
    return None


# ---------------------------------------------------------------------------- the fit check


@dataclass(frozen=True)
class StateFit:
    """How a file's state dict fits a network's: key lists, each sorted.

    ``fitting``: same key, same shape; ``missing``: the network's, absent from the file; ``unexpected``:
    the file's, absent from the network; ``reshaped``: in both, of another shape (``shapes``: key ->
    (shape in the file, shape in the network)).
    """

    fitting: list[str]
    missing: list[str]
    unexpected: list[str]
    reshaped: list[str]
    shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...]]]

    @property
    def exact(self) -> bool:
        return not (self.missing or self.unexpected or self.reshaped)

    def describe(self) -> str:
        """``"2 missing / 1 unexpected keys / 1 of another shape, e.g. missing a, ..."``."""
        counts = f"{len(self.missing)} missing / {len(self.unexpected)} unexpected keys"
        if self.reshaped:
            counts += f" / {len(self.reshaped)} of another shape"
        examples = [f"missing {k}" for k in self.missing[:2]] + [f"unexpected {k}" for k in self.unexpected[:2]]
        examples += [f"{k} is {self.shapes[k][0]} in the file, {self.shapes[k][1]} here" for k in self.reshaped[:2]]
        return f"{counts}, e.g. {', '.join(examples)}" if examples else counts


def state_fit(own_state: Mapping[str, Any], file_state: Mapping[str, Any]) -> StateFit:
    """Compare a network's ``state_dict()`` with the one read from a file (only shapes are looked at)."""
    def shape(value: Any) -> tuple[int, ...] | None:
        return tuple(value.shape) if hasattr(value, "shape") else None

    shared = [k for k in own_state if k in file_state]
    shapes = {k: (shape(file_state[k]), shape(own_state[k])) for k in shared if shape(file_state[k]) != shape(own_state[k])}
    return StateFit(
        fitting=sorted(k for k in shared if k not in shapes),
        missing=sorted(k for k in own_state if k not in file_state),
        unexpected=sorted(k for k in file_state if k not in own_state),
        reshaped=sorted(shapes),
        shapes=shapes,
    )


def check_state_fits(own_state: Mapping[str, Any], file_state: Mapping[str, Any], name: str, *, partial: bool = False,
                     problem: str = "does not fit this network", hint: str = "") -> StateFit:
    """``state_fit``, raising ``MattingInputError`` naming the file and a few keys when it does not fit.

    Args:
        own_state, file_state: the network's state dict and the file's.
        name: the file, as the message names it.
        partial: accept any file with at least one fitting tensor (initialising a network that has
            gained or changed parts); otherwise every key and shape must match.
        problem: the message's words for the mismatch, after the name.
        hint: what the user can do, appended to the message.
    """
    fit = state_fit(own_state, file_state)
    tail = f"; {hint}" if hint else ""
    if partial and not fit.fitting:
        raise MattingInputError(f"{name}: none of its {len(file_state)} network tensors fits this network "
                                f"(e.g. {', '.join(sorted(file_state)[:3])}){tail}")
    if not partial and not fit.exact:
        raise MattingInputError(f"{name}: {problem}: {fit.describe()}{tail}")
    return fit


# ---------------------------------------------------------------------------- the config diff


# Where a backbone's starting weights came from, and the value that asks for none.
WEIGHT_SOURCES = {"weights_file": None, "pretrained": False}


def without_weight_files(config: Any) -> Any:
    """Copy of ``config`` with every ``weights_file`` set to None and ``pretrained`` to False.

    Pretrained backbone files named at training time (often a path on the training machine), or
    weights downloaded from a hub, are not needed once a checkpoint's own weights replace them.
    """
    if isinstance(config, dict):
        return {k: (WEIGHT_SOURCES[k] if k in WEIGHT_SOURCES else without_weight_files(v)) for k, v in config.items()}
    if isinstance(config, (list, tuple)):
        return [without_weight_files(v) for v in config]
    return config


def plain_config(config: Any) -> Any:
    """A config without None values and weight sources (``weights_file``, ``pretrained``), tuples as lists: what two configs are compared on."""
    if isinstance(config, dict):
        return {k: plain_config(v) for k, v in without_weight_files(config).items() if v is not None and k not in WEIGHT_SOURCES}
    if isinstance(config, (list, tuple)):
        return [plain_config(v) for v in config]
    return config


def config_diff(stored: Any, configured: Any, where: str = "model.net", *, shared_keys_only: bool = False) -> list[str]:
    """Dotted keys where a checkpoint's stored config and the configured one differ, with both values.

    A different class is reported by its class_path only. ``weights_file`` / ``pretrained`` entries never count
    (the checkpoint's weights replace pretrained backbones), nor does None against an absent key.

    Args:
        shared_keys_only: compare only keys that both configs have (LightningCLI keeps the
            configured value of a key the checkpoint lacks, and a key the code no longer has
            belongs to an older checkpoint); otherwise every key of either side.
    """
    if isinstance(stored, dict) and isinstance(configured, dict):
        if "class_path" in stored and stored.get("class_path") != configured.get("class_path"):
            return [f"{where}.class_path: checkpoint {stored.get('class_path')}, configured {configured.get('class_path')}"]
        keys = [k for k in stored if k in configured] if shared_keys_only else sorted(set(stored) | set(configured), key=str)
        return [d for key in keys if key not in WEIGHT_SOURCES
                for d in config_diff(stored.get(key), configured.get(key), f"{where}.{key}", shared_keys_only=shared_keys_only)]
    if plain_config(stored) != plain_config(configured):
        return [f"{where}: checkpoint {json.dumps(stored, default=str)}, configured {json.dumps(configured, default=str)}"]
    return []
