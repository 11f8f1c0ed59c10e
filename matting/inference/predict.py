"""Running a trained network on one photo of any size.

The image is resized so that its long (or short) side is ``base_size``, both sides rounded to
multiples of 32 (MODNet's reference-size rule), with PyTorch's antialiased bilinear filter (the
one a refiner network and an exported graph use too, so all three agree), the network runs
there, and alpha is upsampled bilinearly to the full resolution. A network with a refiner (attribute ``refiner`` not None) is
instead given the full-resolution image and the base size, ``net(image, base_size=(h, w))``, and
must return ``pred_alpha`` at full resolution.
"""

from __future__ import annotations

from contextlib import contextmanager

import cv2
import numpy as np
import torch
from torch import nn

import torch.nn.functional as F

from matting.io.errors import MattingInputError, NonFiniteOutput
from matting.io.images import resize_image
from matting.models.resample import resize_antialiased

BASE_MULTIPLE = 32


def base_shape(height: int, width: int, base_size: int = 512, side: str = "long", multiple: int = BASE_MULTIPLE) -> tuple[int, int]:
    """(h, w) of the base pass: the ``side`` ("long" or "short") scaled to ``base_size``, both rounded to ``multiple``."""
    if side not in ("long", "short"):
        raise MattingInputError(f"base side must be 'long' or 'short', got {side!r}")
    if base_size < multiple:
        raise MattingInputError(f"base size must be at least {multiple}, got {base_size}")
    ref = max(height, width) if side == "long" else min(height, width)
    scale = base_size / ref
    return (max(multiple, round(height * scale / multiple) * multiple),
            max(multiple, round(width * scale / multiple) * multiple))


def traced_base_shape(height: torch.Tensor, width: torch.Tensor, base_size: int = 512, side: str = "long",
                      multiple: int = BASE_MULTIPLE) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`base_shape` in tensor ops of 0-dim int64 sizes (a traced graph's), the same numbers: the
    same float64 steps, and rounding half to even as Python's ``round`` (ONNX Round does too)."""
    if side not in ("long", "short"):
        raise MattingInputError(f"base side must be 'long' or 'short', got {side!r}")
    if base_size < multiple:
        raise MattingInputError(f"base size must be at least {multiple}, got {base_size}")
    h, w = height.double(), width.double()
    ref = torch.maximum(h, w) if side == "long" else torch.minimum(h, w)
    scale = torch.full_like(ref, float(base_size)) / ref  # a division: ``base_size / ref`` would be ref.reciprocal() * base_size
    return (torch.clamp(torch.round(h * scale / multiple).long() * multiple, min=multiple),
            torch.clamp(torch.round(w * scale / multiple).long() * multiple, min=multiple))


def downsample_photo(image: torch.Tensor, size) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, h, w), antialiased bilinear; in an ONNX export the same filter in gathers
    (opset 17 has no antialiased resize); ``size`` may hold 0-dim tensors (a traced graph's)."""
    if torch.onnx.is_in_onnx_export():
        return resize_antialiased(image, size)
    return F.interpolate(image, size=tuple(int(v) for v in size), mode="bilinear", align_corners=False, antialias=True)


def _to_tensor(image: np.ndarray, device: torch.device, channels_last: bool) -> torch.Tensor:
    """(H, W, 3) float32 -> (1, 3, H, W); an (H, W, 3) array already is channels-last, so that layout costs no copy."""
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None].to(device)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()


def _trimap_tensor(trimap: np.ndarray | None, net: nn.Module, size: tuple[int, int], source: str,
                   device: torch.device) -> torch.Tensor:
    """uint8 (H, W) trimap -> (1, 1, H, W) float in {0, 0.5, 1}; the network must take one, and the photo one."""
    if not net.trimap_input:
        raise MattingInputError(f"{source}: this network takes no trimap (it was not trained with trimap_input)")
    if trimap is None:
        raise MattingInputError(f"{source}: this network takes a trimap with each photo (trimap_input, the "
                                "trimap-based upper bound): give one (matting predict --trimap DIR)")
    if tuple(trimap.shape) != tuple(size):
        raise MattingInputError(f"{source}: the trimap is {trimap.shape[1]}x{trimap.shape[0]}, the photo {size[1]}x{size[0]}")
    return torch.from_numpy(np.asarray(trimap, np.float32) / 255.0)[None, None].to(device)


@contextmanager
def ieee_float32(device: torch.device):
    """cuDNN convolutions in IEEE float32 while inside, not in TF32 (PyTorch's default for them on
    Ampere and newer GPUs: a 10-bit mantissa, alpha ~1e-3 away from the CPU's); other devices as they are."""
    if device.type != "cuda":
        yield
        return
    previous = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = previous


def autocast_for(device: torch.device, bf16: bool = False, fp16: bool = False):
    """The precision context of :func:`predict_alpha`: bfloat16 or float16 autocast, else IEEE float32."""
    if bf16 and fp16:
        raise MattingInputError("choose bf16 or fp16, not both")
    if bf16 or fp16:
        return torch.autocast(device.type, dtype=torch.bfloat16 if bf16 else torch.float16)
    return ieee_float32(device)


@torch.inference_mode()
def predict_alpha(
    net: nn.Module,
    image: np.ndarray,
    base_size: int = 512,
    base_side: str = "long",
    bf16: bool = False,
    channels_last: bool = True,
    fp16: bool = False,
    source: str = "the network",
    trimap: np.ndarray | None = None,
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
        fp16: run under float16 autocast (GPUs); without bf16 or fp16, a CUDA device computes in
            IEEE float32, as the CPU does (:func:`ieee_float32`).
        source: the checkpoint the network came from, for the message of ``NonFiniteOutput``.
        trimap: uint8 (H, W) in {0, 128, 255} (:func:`matting.io.images.read_trimap`), required by
            a network that takes one (``trimap_input``, the trimap-based upper bound) and refused by
            any other; shrunk to the base pass by nearest neighbour, as in training.

    Returns:
        float32 (H, W) in [0, 1]. An output holding NaN or infinite values raises ``NonFiniteOutput``:
        clipped, it would be written as a plausible-looking all-zero matte.
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 3 or image.shape[2] != 3:
        raise MattingInputError(f"predict_alpha expects an (H, W, 3) image, got shape {image.shape}")
    height, width = image.shape[:2]
    bh, bw = base_shape(height, width, base_size, base_side)
    device = next(net.parameters()).device
    extra = {"trimap": _trimap_tensor(trimap, net, (height, width), source, device)} if net.trimap_input or trimap is not None else {}
    with autocast_for(device, bf16, fp16):
        if net.refiner is not None:
            out = net(_to_tensor(image, device, channels_last), base_size=(bh, bw), **extra)
        else:
            if extra:
                extra["trimap"] = F.interpolate(extra["trimap"], size=(bh, bw), mode="nearest")
            out = net(downsample_photo(_to_tensor(image, device, channels_last), (bh, bw)), **extra)
    alpha = out["pred_alpha"][0, 0].float().cpu().numpy()
    if not np.isfinite(alpha).all():
        raise NonFiniteOutput(f"{source}: the network's alpha matte holds NaN or infinite values (weights that are "
                              "not finite, or a diverged training run); nothing is written from it")
    # Bilinear both ways: the base pass may be a little larger than the photo (sides rounded to 32).
    alpha = resize_image(alpha, height, width, shrink=cv2.INTER_LINEAR)
    return np.clip(alpha, 0.0, 1.0).astype(np.float32, copy=False)
