"""Where a ``TimmEncoder`` backbone's weights come from: timm's published weights or a local file.

Published weights (``pretrained: true``) are fetched the way ``timm.create_model(name,
pretrained=True)`` fetches them: from the Hugging Face hub, into huggingface_hub's cache
(``HF_HOME``, default ``~/.cache/huggingface``). A cached file is used without contacting the
hub. Without a cached file, ``HF_HUB_OFFLINE=1`` or no network is reported in one line within
seconds, instead of huggingface_hub's retries (about 46 s for two candidate files).

A local file (``weights_file``) is a ``.pth`` / ``.safetensors`` state dict in either layout timm
produces: the classifier's (``timm.create_model(name).state_dict()``, as published; classifier keys
are ignored) or the backbone's (``timm.create_model(name, features_only=True).state_dict()``).
Every backbone tensor must be found, by name and shape, or the file is refused.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from matting.io.checkpoints import read_checkpoint
from matting.io.errors import MattingInputError

__all__ = ["hub_offline", "hub_source", "load_backbone", "read_weights"]

WEIGHTS_HINT = "...encoder.init_args.weights_file=PATH (.pth or .safetensors)"
# timm's training checkpoints nest the weights; timm's own loader prefers the EMA copy, so do we.
NESTED_KEYS = ("state_dict_ema", "model_ema", "state_dict", "model")
_TRUE = {"1", "ON", "YES", "TRUE"}


def hub_offline() -> bool:
    """Whether huggingface_hub is in offline mode: ``HF_HUB_OFFLINE`` set now or when it was imported."""
    if any(os.environ.get(var, "").upper() in _TRUE for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")):
        return True
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    return bool(constants.HF_HUB_OFFLINE)


def _cannot_download(name: str, why: str) -> MattingInputError:
    return MattingInputError(f"encoder {name}: pretrained weights cannot be downloaded ({why}); download them "
                             f"elsewhere and pass {WEIGHTS_HINT}, or copy the Hugging Face cache (HF_HOME) here")


def hub_source(name: str) -> dict:
    """``pretrained_cfg_overlay`` for ``timm.create_model(name, pretrained=True)``.

    Returns ``{"file": path}`` when the published file is in the huggingface_hub cache, else ``{}``
    (timm downloads it) once one quick request has shown that the hub answers. Raises
    MattingInputError in one line when offline or when the hub cannot be reached. Names timm does
    not know, and weights published by URL only, are left to timm.
    """
    import timm

    cfg = timm.models.get_pretrained_cfg(name) if timm.is_model(name) else None
    if cfg is None or not cfg.hf_hub_id:
        return {}
    repo_id, _, revision = cfg.hf_hub_id.partition("@")
    filenames = [cfg.hf_hub_filename] if cfg.hf_hub_filename else ["model.safetensors", "pytorch_model.bin"]
    from huggingface_hub import get_hf_file_metadata, hf_hub_url, try_to_load_from_cache
    from huggingface_hub.errors import HfHubHTTPError

    if cfg.custom_load != "hf":  # a plain state dict: timm loads the cached file itself
        for filename in filenames:
            cached = try_to_load_from_cache(repo_id, filename, revision=revision or None)
            if isinstance(cached, str):
                return {"file": cached, "custom_load": False}
    if hub_offline():
        raise _cannot_download(f"{name} ({cfg.hf_hub_id})", "HF_HUB_OFFLINE is set and it is not in the cache")
    from huggingface_hub import constants

    try:
        # One request, no retries; huggingface_hub itself retries a failed connection five times per file.
        get_hf_file_metadata(hf_hub_url(repo_id, filenames[0], revision=revision or None),
                             timeout=constants.HF_HUB_ETAG_TIMEOUT)
    except HfHubHTTPError:
        pass  # the hub answered (e.g. 404 for a repository holding only the .bin): timm takes it from here
    except Exception as exc:  # connection refused, DNS, timeout: the network's own exception types
        raise _cannot_download(f"{name} ({cfg.hf_hub_id})", f"no network: {type(exc).__name__}: {exc}") from exc
    return {}


def read_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` or torch (``.pth``, ``.pt``, ``.bin``) state dict, read without unpickling objects.

    A dict nested under one of ``NESTED_KEYS`` is unwrapped and a ``module.`` prefix (DataParallel)
    removed, as timm's ``load_state_dict`` does. Raises MattingInputError naming the file.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise MattingInputError(f"weights_file {path}: file not found")
    name = f"weights_file {path}"
    try:
        content = dict(read_checkpoint(file, name=name))  # the package's one safe reader (weights_only, safetensors)
    except MattingInputError as exc:
        kind = "a safetensors file" if file.suffix == ".safetensors" else "a torch state dict (.pth)"
        raise MattingInputError(f"{name}: cannot be read as {kind} ({str(exc).removeprefix(name + ': ')})") from exc
    while isinstance(content, dict):
        nested = next((k for k in NESTED_KEYS if isinstance(content.get(k), dict)), None)
        if nested is None:
            break
        content = content[nested]
    tensors = ({k.removeprefix("module."): v for k, v in content.items() if isinstance(v, torch.Tensor)}
               if isinstance(content, dict) else {})
    if not tensors:
        raise MattingInputError(f"weights_file {path}: holds no state dict of tensors")
    return tensors


def _candidates(key: str):
    """Names a backbone tensor may carry in a file: its own, and its name in the other timm layout.

    ``features_only`` flattens sequential stages (``layer1.0.conv1`` -> ``layer1_0.conv1``) and
    some models wrap the network (``model.`` prefix); the classifier layout has neither.
    """
    yield key
    yield key.removeprefix("model.")
    yield "model." + key
    head = key.split(".", 1)[0]
    if "_" in head:
        yield key.replace("_", ".", 1)
    yield key.replace(".", "_", 1)


def _is_input_conv(have: torch.Tensor, want: torch.Tensor) -> bool:
    """An RGB stem convolution for a backbone with other input channels (RGB + trimap)."""
    return (have.ndim == want.ndim == 4 and have.shape[1] == 3 and want.shape[1] != 3
            and have.shape[0] == want.shape[0] and have.shape[2:] == want.shape[2:])


def load_backbone(backbone: nn.Module, state: dict[str, torch.Tensor], path: str | os.PathLike, name: str) -> int:
    """Copy ``state`` into ``backbone``, every tensor of which must be found; returns how many.

    The RGB stem of a 3-channel file is adapted to the backbone's input channels as timm does
    (``adapt_input_conv``). Raises MattingInputError naming the file and a few keys otherwise.
    """
    target = backbone.state_dict()
    chosen: dict[str, torch.Tensor] = {}
    missing, reshaped = [], []
    for key, want in target.items():
        source = next((c for c in _candidates(key) if c in state and state[c].shape == want.shape), None)
        if source is None:
            source = next((c for c in _candidates(key) if c in state), None)
            if source is None:
                missing.append(key)
                continue
            have = state[source]
            if not _is_input_conv(have, want):
                reshaped.append(f"{key} {tuple(have.shape)} for {tuple(want.shape)}")
                continue
            from timm.models import adapt_input_conv

            chosen[key] = adapt_input_conv(want.shape[1], have)
            continue
        chosen[key] = state[source]
    if missing or reshaped:
        found = []
        if missing:
            found.append(f"{len(missing)} of its {len(target)} backbone tensors are absent (e.g. {', '.join(missing[:3])})")
        if reshaped:
            found.append(f"{len(reshaped)} have another shape (e.g. {', '.join(reshaped[:2])})")
        raise MattingInputError(
            f"weights_file {path} does not fit encoder {name}: {'; '.join(found)}; the file has {len(state)} tensors "
            f"(e.g. {', '.join(list(state)[:3])}); give timm's weights of {name} (classifier or features_only "
            f"state dict); a whole matting checkpoint goes to --model.init_weights")
    backbone.load_state_dict(chosen, strict=True)
    return len(chosen)
