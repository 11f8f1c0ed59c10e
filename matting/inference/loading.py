"""Rebuilding a trained network from its config and weights (the package's own classes only).

The network is rebuilt from its config with jsonargparse, as LightningCLI built it. Weights that do
not fit the config raise ``MattingInputError`` naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from matting.inference.class_paths import check_class_paths
from matting.io.checkpoints import (
    check_state_fits,
    load_net_parts,
    without_weight_files,
)
from matting.io.errors import MattingInputError, one_line
from matting.models.contract import MattingNetwork, require_contract

__all__ = ["build_net", "load_net", "net_from_parts"]


def build_net(config: dict, path: str | os.PathLike = "<config>") -> MattingNetwork:
    """Instantiate a network from its ``{class_path, init_args}`` config (the package's own classes only).

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

    path = Path(path)
    if not isinstance(config, dict) or "class_path" not in config:
        raise MattingInputError(f"{path}: the network config must be a mapping with class_path and init_args")
    config = without_weight_files(config)  # the checkpoint's weights replace them: never read or fetched
    check_class_paths(config, path)
    parser = ArgumentParser(exit_on_error=False)
    # The family's base class, so every network the package trains (MattingNet, the segmentation
    # baselines) loads for prediction, not MattingNet alone.
    parser.add_argument("--net", type=MattingNetwork)
    try:
        cfg = parser.parse_object({"net": config})
        instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes  # renamed in jsonargparse 4.49
        net = instantiate(cfg).net
    except MattingInputError as exc:
        raise MattingInputError(f"{path}: {exc}") from exc
    except Exception as exc:  # jsonargparse reports bad keys/values with many exception types
        reason = one_line(str(exc)) if str(exc).strip() else type(exc).__name__
        raise MattingInputError(f"{path}: cannot build the network from the config stored in this file: {reason}") from exc
    return net.eval()


def load_net(path: str | os.PathLike, device: str | torch.device = "cpu") -> MattingNetwork:
    """Rebuild a trained network from a checkpoint (see the module docstring for the formats).

    Returns:
        The network with its weights, in eval mode, on ``device``.
    """
    path = Path(path)
    config, state = load_net_parts(path)
    return net_from_parts(config, state, path).to(device)


def net_from_parts(config: dict, state: dict[str, torch.Tensor], path: str | os.PathLike = "<config>") -> MattingNetwork:
    """Build the network from ``config`` and load ``state`` (strict); eval mode, on the CPU.

    Weights holding NaN or infinite values are refused, naming the first such tensor."""
    path = Path(path)
    bad = next((k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    if bad is not None:  # its every output would be NaN, written as an all-zero matte
        raise MattingInputError(f"{path}: weight {bad} holds NaN or infinite values; this checkpoint cannot "
                                "predict (a diverged training run?)")
    net = require_contract(build_net(config, path), str(path))
    check_state_fits(net.state_dict(), state, str(path), problem="weights do not fit the network config")
    net.load_state_dict(state)
    return net.eval()
