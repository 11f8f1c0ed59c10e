"""Compositing: a foreground layer over a background, as the matting datasets build their images.

Colour convention: RGB, float32 in [0, 1], straight (not premultiplied) foreground colours, so
that ``image = alpha * fg + (1 - alpha) * bg`` holds per pixel and channel.

The Composition-1k test set is rebuilt exactly as the official DIM composition script builds it
(:func:`comp1k_composite`): the background is upscaled with Pillow's bicubic filter to
``ceil(bw * r), ceil(bh * r)`` with ``r = max(w / bw, h / bh)`` only when ``r > 1``, cropped at
the top-left corner to the foreground's size, and every pixel is
``int(a / 255 * F + (1 - a / 255) * B)`` in double precision: truncated, not rounded. The
original script reads files with Pillow without applying EXIF orientation; so does this one.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np

from matting.io.errors import MattingInputError
from matting.io.images import decode_file, resize_image
from matting.io.limits import check_alpha_levels, read_header

__all__ = [
    "comp1k_background",
    "comp1k_composite",
    "comp1k_from_files",
    "composite",
    "merge_foregrounds",
    "random_background_crop",
    "read_background",
]


def composite(fg: np.ndarray, alpha: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """``alpha * fg + (1 - alpha) * bg``: fg float (H, W, 3), alpha float (H, W), bg float (H, W, 3)
    or (3,) -> float32 (H, W, 3) in [0, 1] (training composites and ``matting predict``'s alike)."""
    a = np.asarray(alpha, dtype=np.float32)[..., None]
    out = np.multiply(fg, a, dtype=np.float32)  # in place from here on: full-resolution temporaries are the memory peak
    out += (1.0 - a) * bg
    return np.clip(out, 0.0, 1.0, out=out)


def merge_foregrounds(fg1: np.ndarray, alpha1: np.ndarray, fg2: np.ndarray, alpha2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stack foreground 1 in front of foreground 2 (same size): the DIM "two-foreground" augmentation.

    ``alpha = 1 - (1 - a1)(1 - a2)`` and ``fg = (a1 F1 + (1 - a1) a2 F2) / alpha``, so that
    ``alpha * fg + (1 - alpha) * B`` equals layering F1 over F2 over any background B. Where both
    alphas are 0 the colour is F1's (it is invisible).
    """
    a1, a2 = alpha1.astype(np.float32), alpha2.astype(np.float32)
    alpha = 1.0 - (1.0 - a1) * (1.0 - a2)
    premult = a1[..., None] * fg1 + ((1.0 - a1) * a2)[..., None] * fg2
    safe = np.maximum(alpha, 1e-6)[..., None]
    fg = np.where(alpha[..., None] > 1e-6, premult / safe, fg1)
    return np.clip(fg, 0.0, 1.0).astype(np.float32), alpha.astype(np.float32)


# ---------------------------------------------------------------------------- training backgrounds


def read_background(path: str | os.PathLike, need_w: int = 0, need_h: int = 0, size: tuple[int, int] | None = None) -> np.ndarray:
    """Read a background as float32 RGB (H, W, 3) in [0, 1], gray files replicated.

    When the file's (width, height) ``size`` is known (from the manifest) and it is at least three
    times larger than needed, a JPEG is decoded at 1/2, 1/4 or 1/8 scale in the DCT domain
    (``cv2.IMREAD_REDUCED_COLOR_*``), several times faster than a full decode and resize. The
    reduced image stays at least 1.5 times ``need_w`` x ``need_h``. EXIF orientation is applied.
    The file is checked before decoding as every reader checks it (:func:`matting.io.images.decode_file`).
    """
    path = Path(path)
    flag = cv2.IMREAD_COLOR
    if size is not None and need_w > 0 and need_h > 0 and path.suffix.lower() in (".jpg", ".jpeg"):
        for factor, reduced in ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2)):
            if size[0] / factor >= 1.5 * need_w and size[1] / factor >= 1.5 * need_h:
                flag = reduced
                break
    array, _ = decode_file(path, flag)  # OpenCV applies EXIF orientation with IMREAD_COLOR
    rgb = cv2.cvtColor(array, cv2.COLOR_BGR2RGB)
    return rgb.astype(np.float32) * np.float32(1 / 255)


def random_background_crop(bg: np.ndarray, height: int, width: int, rng: np.random.Generator,
                           min_area: float = 0.5) -> np.ndarray:
    """A random region of ``bg`` with the target aspect ratio, covering ``min_area``..1 of the largest
    such region, resized to (height, width): area filter when shrinking, bicubic when enlarging."""
    bh, bw = bg.shape[:2]
    aspect = width / height
    full_h = min(bh, bw / aspect)
    scale = math.sqrt(rng.uniform(min_area, 1.0))
    ch = max(1, min(bh, int(round(full_h * scale))))
    cw = max(1, min(bw, int(round(ch * aspect))))
    y0 = int(rng.integers(0, bh - ch + 1))
    x0 = int(rng.integers(0, bw - cw + 1))
    region = bg[y0:y0 + ch, x0:x0 + cw]
    return np.clip(resize_image(region, height, width, enlarge=cv2.INTER_CUBIC), 0.0, 1.0)


# ---------------------------------------------------------------------------- Composition-1k test set


def comp1k_background(bg, width: int, height: int):
    """The official background for a ``width`` x ``height`` foreground: a Pillow image in, RGB Pillow image out."""
    from PIL import Image

    if bg.mode != "RGB":
        bg = bg.convert("RGB")
    bw, bh = bg.size
    ratio = max(width / bw, height / bh)
    if ratio > 1:
        bg = bg.resize((math.ceil(bw * ratio), math.ceil(bh * ratio)), Image.BICUBIC)
    return bg.crop((0, 0, width, height))


def comp1k_composite(fg: np.ndarray, alpha: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """Official per-pixel composite of uint8 arrays (same H, W): ``int(a/255 * F + (1 - a/255) * B)``.

    Args:
        fg: uint8 (H, W, 3); alpha: uint8 (H, W); bg: uint8 (H, W, 3), already fitted.

    Returns:
        uint8 (H, W, 3), truncated towards zero in float64 as Python's ``int()`` does.
    """
    if fg.shape[:2] != alpha.shape or bg.shape != fg.shape:
        raise MattingInputError(f"comp1k_composite: shapes differ (fg {fg.shape}, alpha {alpha.shape}, bg {bg.shape})")
    a = alpha.astype(np.float64)[..., None] / 255
    out = a * fg.astype(np.float64) + (1 - a) * bg.astype(np.float64)
    return np.floor(out).astype(np.uint8)


def _pil_open(path: Path):
    from PIL import Image

    read_header(path)  # missing file, dangling link, over the pixel limit: before any decoding
    try:
        image = Image.open(path)
        image.load()
        return image
    except Exception as exc:
        raise MattingInputError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from exc


def comp1k_from_files(fg_path: Path, alpha_path: Path, bg_path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rebuild one official test composite from its files.

    Returns:
        (image, alpha, fg, bg): uint8 (H, W, 3), uint8 (H, W), uint8 (H, W, 3), uint8 (H, W, 3).
        The alpha is the first channel of the file, as the official script reads it.
    """
    fg_image, alpha_image, bg_image = _pil_open(fg_path), _pil_open(alpha_path), _pil_open(bg_path)
    if fg_image.mode not in ("RGB", "RGBA"):
        fg_image = fg_image.convert("RGB")
    fg = np.asarray(fg_image)[..., :3]
    alpha = np.asarray(alpha_image)
    if alpha.ndim == 3:
        alpha = alpha[..., 0]
    if alpha.dtype != np.uint8:
        raise MattingInputError(f"{alpha_path}: Composition-1k alphas are 8-bit, this one is {alpha.dtype}")
    alpha = check_alpha_levels(alpha, alpha_path)
    if alpha.shape != fg.shape[:2]:
        raise MattingInputError(
            f"size mismatch: foreground {fg_path} is {fg.shape[1]}x{fg.shape[0]}, "
            f"alpha {alpha_path} is {alpha.shape[1]}x{alpha.shape[0]}"
        )
    height, width = alpha.shape
    bg = np.asarray(comp1k_background(bg_image, width, height))
    return comp1k_composite(fg, alpha, bg), alpha, fg, bg
