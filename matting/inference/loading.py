"""Loading a trained network safely, and running it on one photo of any size.

Checkpoints are files from strangers, so nothing here unpickles arbitrary objects:

- ``.ckpt`` / ``.pt`` / ``.pth``: read with ``torch.load(weights_only=True)``. A Lightning
  checkpoint written by ``matting fit`` passes as it is: LightningCLI stores the model's init
  arguments in ``hyper_parameters`` as plain dicts (``net: {class_path, init_args}``), and the
  weights under ``state_dict`` (``net.`` prefix).
- ``.safetensors``: weights with the network config in the file's metadata (key ``net_config``,
  JSON; ``matting export --safetensors`` writes it) or in a sidecar YAML next to it
  (``<stem>.yaml``, either ``net: {...}`` or LightningCLI's ``model: {net: {...}}``).

The network is rebuilt from its config with jsonargparse, as LightningCLI built it, but only
from classes under ``matting.`` (a config naming any other class is refused: instantiating it
could run arbitrary code). Anything else (a pickle holding Python objects, a truncated file, a
config without a network, weights that do not fit) raises ``MattingInputError`` naming the file
and the reason.

Inference at any size (:func:`predict_alpha`): the image is resized so that its long (or short)
side is ``base_size``, both sides rounded to multiples of 32 (MODNet's reference-size rule), the
network runs there, and alpha is upsampled bilinearly to the full resolution. A network with a
refiner (attribute ``refiner`` not None) is instead given the full-resolution image and the base
size, ``net(image, base_size=(h, w))``, and must return ``pred_alpha`` at full resolution.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from matting.errors import MattingInputError

SAFE_CLASS_PREFIXES = ("matting.",)
SAFETENSORS_SUFFIX = ".safetensors"
METADATA_KEY = "net_config"
BASE_MULTIPLE = 32

__all__ = [
    "base_shape",
    "build_net",
    "fold_batchnorm",
    "AlphaOnly",
    "FrozenAlphaNet",
    "prepare_for_inference",
    "load_net",
    "load_net_parts",
    "net_from_parts",
    "predict_alpha",
    "resize_image",
]


# ---------------------------------------------------------------------------- checkpoint loading


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


def _without_weight_files(config: Any) -> Any:
    """Copy of ``config`` with every ``weights_file`` set to None.

    Pretrained backbone files named at training time (often a path on the training machine) are
    not needed: the checkpoint's own weights replace them.
    """
    if isinstance(config, dict):
        return {k: (None if k == "weights_file" else _without_weight_files(v)) for k, v in config.items()}
    if isinstance(config, list):
        return [_without_weight_files(v) for v in config]
    return config


def build_net(config: dict, path: str | os.PathLike = "<config>") -> nn.Module:
    """Instantiate a network from its ``{class_path, init_args}`` config (classes under ``matting.`` only).

    Args:
        config: the ``net`` entry of a LightningCLI model config, e.g.
            ``{"class_path": "matting.models.MattingNet", "init_args": {"encoder": {...}, ...}}``.
            ``weights_file`` entries (pretrained backbones) are ignored: the weights come from
            the checkpoint.
        path: file the config came from, for error messages.

    Returns:
        The network (random weights), in eval mode.
    """
    from jsonargparse import ArgumentParser

    from matting.models import MattingNet

    path = Path(path)
    if not isinstance(config, dict) or "class_path" not in config:
        raise MattingInputError(f"{path}: the network config must be a mapping with class_path and init_args")
    _check_class_paths(config, path)
    config = _without_weight_files(config)
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--net", type=MattingNet)
    try:
        cfg = parser.parse_object({"net": config})
        instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes  # renamed in jsonargparse 4.49
        net = instantiate(cfg).net
    except MattingInputError as exc:
        raise MattingInputError(f"{path}: {exc}") from exc
    except Exception as exc:  # jsonargparse reports bad keys/values with many exception types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MattingInputError(f"{path}: cannot build the network from its config: {first}") from exc
    return net.eval()


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


def load_net(path: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a trained network from a checkpoint (see the module docstring for the formats).

    Returns:
        The network with its weights, in eval mode, on ``device``.
    """
    path = Path(path)
    config, state = load_net_parts(path)
    return net_from_parts(config, state, path).to(device)


def net_from_parts(config: dict, state: dict[str, torch.Tensor], path: str | os.PathLike = "<config>") -> nn.Module:
    """Build the network from ``config`` and load ``state`` (strict); eval mode, on the CPU."""
    path = Path(path)
    net = build_net(config, path)
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        lines = [line.strip() for line in str(exc).splitlines() if "size mismatch" in line][:3]
        raise MattingInputError(f"{path}: weights do not fit the network config: {'; '.join(lines) or exc}") from exc
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        raise MattingInputError(f"{path}: weights do not fit the network config: {'; '.join(parts)}")
    return net.eval()


# ---------------------------------------------------------------------------- inference


def _fold_pairs(net: nn.Module) -> int:
    """Fold each BatchNorm2d into the Conv2d registered just before it in the same parent (in place)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    folded = 0
    for parent in list(net.modules()):
        previous: tuple[str, nn.Module] | None = None
        for name, child in list(parent.named_children()):
            if (
                previous is not None
                and isinstance(child, nn.BatchNorm2d)
                and child.running_mean is not None
                and previous[1].out_channels == child.num_features
            ):
                if type(child) is nn.BatchNorm2d:
                    replacement: nn.Module = nn.Identity()
                elif isinstance(getattr(child, "act", None), nn.Module) and isinstance(getattr(child, "drop", None), nn.Module):
                    replacement = nn.Sequential(child.drop, child.act)  # timm's BatchNormAct2d: norm, then drop, then act
                else:
                    previous = None
                    continue
                setattr(parent, previous[0], fuse_conv_bn_eval(previous[1], child))
                setattr(parent, name, replacement)
                folded += 1
            previous = (name, child) if type(child) is nn.Conv2d else None
    return folded


@torch.no_grad()  # not inference_mode: the folded weights must stay usable outside it (tracing)
def fold_batchnorm(net: nn.Module, tolerance: float = 1e-4) -> nn.Module:
    """An eval-mode copy of ``net`` with BatchNorm folded into the preceding convolutions.

    Saves one memory pass per normalised convolution at inference (about a tenth of the CPU time
    of the default network). Pairs are found by registration order, so the copy is checked
    against ``net`` on a random image; when any output differs by more than ``tolerance`` (a
    convolution whose raw output is also used elsewhere), ``net`` itself is returned unchanged.
    """
    import copy

    net = net.eval()
    fused = copy.deepcopy(net).eval()
    if _fold_pairs(fused) == 0:
        return net
    device = next(net.parameters()).device
    stride = int(getattr(net, "stride", BASE_MULTIPLE))
    probe = torch.rand(1, 3, 2 * stride + 5, 3 * stride - 7, generator=torch.Generator().manual_seed(0)).to(device)
    expected, got = net(probe), fused(probe)
    for key, value in expected.items():
        if key not in got or (value.float() - got[key].float()).abs().max().item() > tolerance:
            return net
    return fused


class AlphaOnly(nn.Module):
    """Wraps a matting network so that it returns ``pred_alpha`` only: (N, 3, H, W) -> (N, 1, H, W)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)["pred_alpha"]


class FrozenAlphaNet(nn.Module):
    """``pred_alpha`` of a network through TorchScript graphs traced and frozen once per input shape.

    Freezing folds BatchNorm into the convolutions, prunes what ``pred_alpha`` does not need (the
    detail head's own full-resolution output) and prepacks convolution weights: about 1.3x faster
    than eager channels_last on a 2-core CPU (docs/speed.md), with the same alpha up to float
    rounding (~1e-5). Each new input
    shape costs one trace (about half a second for the default network); the ``cache_size`` most
    recent graphs are kept. Every new graph is checked against the eager network on its first
    input, and a shape whose graph fails or differs by more than ``tolerance`` runs eagerly.
    Under autocast the eager network runs (frozen graphs keep their traced precision).
    Tracing records one path through the code, which is right for networks whose control flow
    depends on shapes only (MattingNet); one that branches on pixel values must run eagerly.

    Returns the same dict as the network, with ``pred_alpha`` only.
    """

    def __init__(self, net: nn.Module, cache_size: int = 4, tolerance: float = 1e-4):
        super().__init__()
        self.net = net.eval()
        self.cache_size = cache_size
        self.tolerance = tolerance
        self._graphs: dict[tuple, Any] = {}

    def _build(self, image: torch.Tensor):
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about shape-dependent Python values: fine for one shape
            sample = image.clone()
            try:
                frozen = torch.jit.freeze(torch.jit.trace(AlphaOnly(self.net).eval(), sample, check_trace=False))
                difference = (frozen(sample) - self.net(sample)["pred_alpha"]).abs().max().item()
            except Exception:  # a network TorchScript cannot trace: run it eagerly
                return None
        return frozen if difference <= self.tolerance else None

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        if torch.is_autocast_enabled(image.device.type):
            return self.net(image)
        key = (tuple(image.shape), image.dtype, str(image.device), image.is_contiguous(memory_format=torch.channels_last))
        if key not in self._graphs:
            if len(self._graphs) >= self.cache_size:
                self._graphs.pop(next(iter(self._graphs)))
            self._graphs[key] = self._build(image)
        graph = self._graphs[key]
        if graph is None:
            return self.net(image)
        with torch.inference_mode(False), torch.no_grad():  # TorchScript graphs refuse inference-mode tensors
            return {"pred_alpha": graph(image.clone() if image.is_inference() else image)}


def prepare_for_inference(net: nn.Module, jit: bool = True, channels_last: bool = True) -> nn.Module:
    """The fastest exact form of ``net`` for :func:`predict_alpha` on CPU.

    BatchNorm folded (:func:`fold_batchnorm`), channels_last weights, and (``jit``) TorchScript
    graphs frozen per shape (:class:`FrozenAlphaNet`); a network with a refiner stays eager.
    """
    net = fold_batchnorm(net.eval())
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    if jit and getattr(net, "refiner", None) is None:
        net = FrozenAlphaNet(net)
    return net


def base_shape(height: int, width: int, base_size: int = 512, side: str = "long", multiple: int = BASE_MULTIPLE) -> tuple[int, int]:
    """(h, w) of the base pass: the ``side`` ("long" or "short") scaled to ``base_size``, both rounded to ``multiple``."""
    if side not in ("long", "short"):
        raise MattingInputError(f"base side must be 'long' or 'short', got {side!r}")
    if base_size < multiple:
        raise MattingInputError(f"base size must be at least {multiple}, got {base_size}")
    ref = max(height, width) if side == "long" else min(height, width)
    scale = base_size / ref
    return (max(multiple, int(round(height * scale / multiple)) * multiple),
            max(multiple, int(round(width * scale / multiple)) * multiple))


def resize_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize (H, W[, C]) float32: area averaging when shrinking, bilinear when enlarging."""
    if image.shape[:2] == (height, width):
        return image
    shrink = height * width < image.shape[0] * image.shape[1]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _to_tensor(image: np.ndarray, device: torch.device, channels_last: bool) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32))[None].to(device)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@torch.inference_mode()
def predict_alpha(
    net: nn.Module,
    image: np.ndarray,
    base_size: int = 512,
    base_side: str = "long",
    bf16: bool = False,
    channels_last: bool = True,
) -> np.ndarray:
    """Alpha matte of one image at its full resolution.

    Args:
        net: a network returning a dict with ``pred_alpha`` (B, 1, h, w) in [0, 1], in eval mode.
        image: float (H, W, 3) RGB in [0, 1], any size.
        base_size: length of the ``base_side`` in the base pass (rounded to a multiple of 32).
        base_side: "long" or "short".
        bf16: run under bfloat16 autocast: faster on CPUs with native bf16 support, but alpha may
            differ from float32 by up to ~0.2 at edges (measured on a trained checkpoint, docs/speed.md).
        channels_last: feed the network NHWC tensors (same numbers, faster convolutions on CPU).

    Returns:
        float32 (H, W) in [0, 1].
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 3 or image.shape[2] != 3:
        raise MattingInputError(f"predict_alpha expects an (H, W, 3) image, got shape {image.shape}")
    height, width = image.shape[:2]
    bh, bw = base_shape(height, width, base_size, base_side)
    device = next(net.parameters()).device
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
    with autocast:
        if getattr(net, "refiner", None) is not None:
            out = net(_to_tensor(image, device, channels_last), base_size=(bh, bw))
        else:
            out = net(_to_tensor(resize_image(image, bh, bw), device, channels_last))
    alpha = out["pred_alpha"][0, 0].float().cpu().numpy()
    if alpha.shape != (height, width):
        alpha = cv2.resize(alpha, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(alpha, 0.0, 1.0).astype(np.float32, copy=False)
