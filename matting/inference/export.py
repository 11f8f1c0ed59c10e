"""Exporting a network for deployment: ONNX with dynamic height and width, checked against PyTorch; safetensors with its config."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from matting.inference.frozen import AlphaOnly
from matting.io.checkpoints import METADATA_KEY
from matting.io.errors import MattingInputError
from matting.io.files import atomic_path, could_not_write

DEFAULT_OPSET = 17


DEFAULT_TOLERANCE = 1e-4


def trace_shape(stride: int) -> tuple[int, int]:
    """A (H, W) that needs padding to ``stride`` in both directions, so the traced graph keeps the pad."""
    return 4 * stride - 7, 5 * stride - 13


def verify_shapes(stride: int) -> list[tuple[int, int]]:
    """Two sizes other than the traced one: a multiple of the stride and an odd one."""
    return [(3 * stride, 5 * stride), (6 * stride + 11, 4 * stride - 3)]


def export_onnx(net: nn.Module, target: Path, opset: int = DEFAULT_OPSET, metadata: dict[str, str] | None = None) -> None:
    """Write ``net`` (returning a dict with ``pred_alpha``) as ONNX with dynamic N, H, W, atomically."""
    import onnx

    if opset < 17:
        raise MattingInputError(f"--opset must be at least 17, got {opset}")
    wrapper = AlphaOnly(net).eval()
    stride = int(getattr(net, "stride", 32))
    sample = torch.rand(1, 3, *trace_shape(stride), generator=torch.Generator().manual_seed(0))
    # A full disk, no permission: one line naming the file, and no partial file left.
    with atomic_path(target, error=could_not_write) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about Python ints/bools; checked by verify_onnx
            torch.onnx.export(
                wrapper,
                (sample,),
                str(tmp),
                dynamo=False,
                opset_version=opset,
                input_names=["image"],
                output_names=["alpha"],
                dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}, "alpha": {0: "batch", 2: "height", 3: "width"}},
                do_constant_folding=True,
            )
        model = onnx.load(str(tmp))
        onnx.checker.check_model(model)
        for key, value in (metadata or {}).items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(model, str(tmp))


@torch.inference_mode()
def verify_onnx(net: nn.Module, path: Path, shapes: list[tuple[int, int]], seed: int = 0) -> list[tuple[tuple[int, int], float]]:
    """Max |alpha_onnxruntime - alpha_pytorch| for a random image at each (H, W) in ``shapes``."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    wrapper = AlphaOnly(net).eval()
    rng = np.random.default_rng(seed)
    results = []
    for h, w in shapes:
        image = rng.random((1, 3, h, w), dtype=np.float32)
        expected = wrapper(torch.from_numpy(image)).numpy()
        (got,) = session.run(["alpha"], {"image": image})
        if got.shape != expected.shape:
            raise RuntimeError(f"{path}: onnxruntime returned shape {got.shape} for input {image.shape}, PyTorch {expected.shape}")
        results.append(((h, w), float(np.abs(got - expected).max())))
    return results


def export_safetensors(net: nn.Module, config: dict, target: Path) -> None:
    """Write the network's weights with its config (metadata ``net_config``), atomically."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    # A full disk, no permission: one line naming the file, and no partial file left.
    try:
        with atomic_path(target, error=could_not_write) as tmp:
            save_file(state, str(tmp), metadata={METADATA_KEY: json.dumps(config), "format": "pt"})
    except SafetensorError as exc:  # how safetensors reports some OS errors
        raise MattingInputError(f"{target}: could not write it ({exc})") from exc
