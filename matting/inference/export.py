"""Exporting a network for deployment: ONNX with dynamic height and width, checked against PyTorch; safetensors with its config.

Every network is exported as :func:`~matting.inference.predict.predict_alpha` runs it: the graph
takes the full-resolution photo, computes the base size from its height and width, and returns
the full-resolution alpha. A network without a refiner is wrapped in :class:`FullSizeAlpha`
(antialiased downsampling to the base size, the base pass, bilinear upsampling back); one with a
refiner in :class:`BaseSizedAlpha` (the network downsamples and refines itself).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from matting.inference.graph import CONTRACT_KEY, FULL_SIZE
from matting.inference.predict import base_shape, downsample_photo, traced_base_shape
from matting.io.checkpoints import METADATA_KEY
from matting.io.errors import MattingInputError
from matting.io.files import atomic_path, could_not_write

DEFAULT_OPSET = 17


DEFAULT_TOLERANCE = 1e-4

# predict_alpha's defaults, which a refiner network's graph bakes in unless told otherwise.
DEFAULT_BASE_SIZE, DEFAULT_BASE_SIDE = 512, "long"


class BaseSizedAlpha(nn.Module):
    """A network with a refiner as ``predict_alpha`` calls it: (N, 3, H, W) RGB in [0, 1] at full
    resolution -> alpha (N, 1, H, W) in [0, 1], the base pass at ``base_shape(H, W, base_size,
    base_side)``, computed in tensor ops from the traced sizes when traced."""

    def __init__(self, net: nn.Module, base_size: int = DEFAULT_BASE_SIZE, base_side: str = DEFAULT_BASE_SIDE):
        super().__init__()
        self.net, self.base_size, self.base_side = net, base_size, base_side

    def base_of(self, h, w) -> tuple:
        """The base pass's (h, w) for an (h, w) photo: from the traced sizes when traced."""
        shape = traced_base_shape if torch.jit.is_tracing() else base_shape
        return shape(h, w, self.base_size, self.base_side)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image, base_size=self.base_of(*image.shape[-2:]))["pred_alpha"]


class FullSizeAlpha(BaseSizedAlpha):
    """A network without a refiner as ``predict_alpha`` calls it: (N, 3, H, W) RGB in [0, 1] at full
    resolution -> alpha (N, 1, H, W) in [0, 1]. The photo is downsampled (antialiased bilinear) to
    ``base_shape(H, W, base_size, base_side)``, the network runs there, and alpha is upsampled back
    bilinearly: the resize rule travels inside the graph instead of in its metadata."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2:]
        small = downsample_photo(image, self.base_of(h, w))
        alpha = self.net(small)["pred_alpha"]
        return F.interpolate(alpha, size=(h, w), mode="bilinear", align_corners=False).clamp(0.0, 1.0)


def alpha_module(net: nn.Module, base_size: int = DEFAULT_BASE_SIZE, base_side: str = DEFAULT_BASE_SIDE) -> nn.Module:
    """What the ONNX graph of ``net`` computes, full-size image (N, 3, H, W) -> alpha (N, 1, H, W), in eval mode."""
    if net.refiner is None:
        return FullSizeAlpha(net, base_size, base_side).eval()
    return BaseSizedAlpha(net, base_size, base_side).eval()


def refined_trace_shape(base_size: int, base_side: str, stride: int) -> tuple[int, int]:
    """A full-resolution (H, W) for tracing a refiner network: H, W not multiples of 4 (the refiner
    pads), a base shape other than (H, W) and the cell grid (the refiner resizes; a size check that
    holds at the traced shape drops the resize from the graph), and, for strides above 32 (the
    base is a multiple of 32), a base that needs padding to the stride (so the pad stays in the graph)."""
    for h in range(base_size + base_size // 4 + 1, 4 * base_size):
        for w in range(h + base_size // 4, 2 * h + base_size):
            bh, bw = base_shape(h, w, base_size, base_side)
            padded = -(-h // 4) * 4, -(-w // 4) * 4
            if (h % 4 and w % 4 and (bh, bw) not in ((h, w), padded, (padded[0] // 4, padded[1] // 4))
                    and (stride <= 32 or bh % stride or bw % stride)):
                return h, w
    raise ValueError(f"no trace shape for base size {base_size} and stride {stride}")


def refined_verify_shapes(base_size: int) -> list[tuple[int, int]]:
    """Three full-resolution sizes: above the base size, a multiple of 4 and an odd one, and one below it
    (the photo is then enlarged to the base and alpha shrunk back)."""
    return [(3 * base_size // 2, 2 * base_size), (2 * base_size + 11, 5 * base_size // 4 - 3),
            (base_size // 2 + 3, base_size // 3 + 1)]


def _device(net: nn.Module) -> torch.device:
    return next(net.parameters()).device


def export_onnx(net: nn.Module, target: Path, opset: int = DEFAULT_OPSET, metadata: dict[str, str] | None = None,
                base_size: int = DEFAULT_BASE_SIZE, base_side: str = DEFAULT_BASE_SIDE) -> None:
    """Write ``net`` (returning a dict with ``pred_alpha``) as ONNX with dynamic N, H, W, atomically.

    The graph is :func:`alpha_module`: full-size photo in, full-size alpha out, the base pass at
    ``base_size`` on ``base_side``."""
    import onnx

    if opset < 17:
        raise MattingInputError(f"--opset must be at least 17, got {opset}")
    wrapper = alpha_module(net, base_size, base_side)
    stride = net.pad_multiple
    shape = refined_trace_shape(base_size, base_side, stride)
    # Traced where the network is (a network loaded on CUDA exports as it is); the graph holds no device.
    sample = torch.rand(1, 3, *shape, generator=torch.Generator().manual_seed(0)).to(_device(net))
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
        # What the graph computes, always recorded: AlphaGraph reads it (a caller cannot get it wrong).
        own = {CONTRACT_KEY: FULL_SIZE, "base_size": str(base_size), "base_side": base_side}
        for key, value in {**(metadata or {}), **own}.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(model, str(tmp))


@torch.inference_mode()
def verify_onnx(net: nn.Module, path: Path, shapes: list[tuple[int, int]], seed: int = 0, base_size: int = DEFAULT_BASE_SIZE,
                base_side: str = DEFAULT_BASE_SIDE) -> list[tuple[tuple[int, int], float]]:
    """Max |alpha_onnxruntime - alpha_pytorch| for a random image at each (H, W) in ``shapes``
    (PyTorch: :func:`alpha_module`, the eager network as the graph was exported from it)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    wrapper = alpha_module(net, base_size, base_side)
    device = _device(net)
    rng = np.random.default_rng(seed)
    results = []
    for h, w in shapes:
        image = rng.random((1, 3, h, w), dtype=np.float32)
        expected = wrapper(torch.from_numpy(image).to(device)).cpu().numpy()
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
