"""Reading and writing images, alpha mattes and trimaps.

Every reader returns a fixed dtype, shape and value range, whatever the file holds:

- ``read_image``: float32 (H, W, 3) RGB in [0, 1].
- ``read_alpha``: float32 (H, W) in [0, 1].
- ``read_trimap``: uint8 (H, W) with values in {0, 128, 255}.

Decoding rules shared by the readers:

- Formats: whatever OpenCV decodes (PNG, JPEG, TIFF, BMP, WebP). 8-bit files are divided
  by 255, 16-bit files by 65535, float TIFFs are taken as they are: values outside [0, 1]
  (a 0..255 float file), NaN and infinities are refused naming the file.
- EXIF orientation is applied (JPEG, and PNG/TIFF files that carry the tag), the same way
  for images, alphas and trimaps, so a tagged image stays aligned with its tagged matte.
- Palette ('P') PNGs are resolved to their colours, not their indices.
- Anything missing (a dangling symbolic link is named with its target), unreadable or of an
  unsupported kind raises ``MattingInputError`` naming the file.
- Before decoding (:mod:`matting.io.limits`): a file whose header gives more pixels than the
  limit (``--max-pixels``, ``MATTING_MAX_PIXELS``, default 200 MP) is refused, and a PNG whose
  chunks are truncated or damaged is refused without libpng printing its own error line.

Alpha mattes may be single-channel or gray stored in 3 or 4 channels (R = G = B). Channels
that differ raise, because there is no safe way to pick one; lossy files (JPEG, WebP) may
differ by up to ``LOSSY_CHANNEL_TOLERANCE`` levels from chroma rounding and are averaged.
A 4-channel file whose A channel is not fully opaque also raises: it is ambiguous whether
the matte is in the colour channels or in A. An 8/16-bit matte holding only 0 and 1 (a 0/1
mask) raises unless ``--alpha-scale`` says how to read it (:func:`matting.io.limits.check_alpha_levels`).

Trimaps are mapped to three levels by nearest level: values < 85 -> 0 (background),
values > 170 -> 255 (foreground), anything in [85, 170] -> 128 (unknown). This accepts the
127/128/129 conventions and JPEG noise. A trimap whose values all lie in {0, 1, 2} is
label-encoded, not a gray trimap, and raises rather than being read as all background.

``to_uint8`` is the one quantiser to 8 bit (round half to even of clip(x, 0, 1) * 255):
``write_png`` uses it, and ``quantize_8bit`` (the values the saved PNG holds, as the metrics
score a prediction) is ``from_uint8(to_uint8(x))``.

``resize_image`` is the one resize rule for images and mattes (area averaging when shrinking,
bilinear when enlarging, both selectable); ``shrink_long_side`` caps the long side with it
(both live in :mod:`matting.io.resize`).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from matting.io.errors import MattingInputError, WrongContent
from matting.io.files import atomic_write, could_not_write
from matting.io.limits import (
    ENV_MAX_PIXELS,
    ENV_OPENCV_CAP,
    PNG_SIGNATURE,
    Header,
    check_alpha_levels,
    check_png,
    read_header,
)
from matting.io.resize import long_side_size, resize_image, shrink_long_side

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
LOSSY_EXTENSIONS = (".jpg", ".jpeg", ".webp")
# How far outside [0, 1] a float file may stray (rounding of its writer) before it is refused.
FLOAT_TOLERANCE = 1e-3
# Largest channel spread (8-bit levels) accepted in a lossy gray file stored as colour.
LOSSY_CHANNEL_TOLERANCE = 3
# The 8-bit levels of a trimap (files, and the uint8 trimaps the data pipeline makes): 128 is
# unknown, as in the DIM / Composition-1k trimap files and their official evaluation.
TRIMAP_BACKGROUND, TRIMAP_UNKNOWN, TRIMAP_FOREGROUND = 0, 128, 255
# uint8 value -> trimap level (nearest of 0 / 128 / 255).
_TRIMAP_LUT = np.where(np.arange(256) < 85, TRIMAP_BACKGROUND,
                       np.where(np.arange(256) > 170, TRIMAP_FOREGROUND, TRIMAP_UNKNOWN)).astype(np.uint8)

__all__ = [
    "IMAGE_EXTENSIONS",
    "TRIMAP_BACKGROUND",
    "TRIMAP_FOREGROUND",
    "TRIMAP_UNKNOWN",
    "decode_file",
    "from_uint8",
    "is_dangling_link",
    "list_images",
    "long_side_size",
    "normalise_trimap",
    "quantize_8bit",
    "read_alpha",
    "read_image",
    "read_trimap",
    "resize_image",
    "shrink_long_side",
    "to_uint8",
    "write_png",
]


# ---------------------------------------------------------------------------- decoding


def _apply_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate/flip an (H, W[, C]) array as EXIF ``orientation`` prescribes (PIL semantics)."""
    transforms = {
        2: lambda x: x[:, ::-1],
        3: lambda x: x[::-1, ::-1],
        4: lambda x: x[::-1],
        5: lambda x: x.swapaxes(0, 1),
        6: lambda x: np.rot90(x, -1),
        7: lambda x: x[::-1, ::-1].swapaxes(0, 1),
        8: lambda x: np.rot90(x, 1),
    }
    if orientation not in transforms:
        return array
    return np.ascontiguousarray(transforms[orientation](array))


def decode_file(path: str | os.PathLike, flag: int = cv2.IMREAD_UNCHANGED) -> tuple[np.ndarray, Header | None]:
    """Check a file and decode it with OpenCV's ``flag``: (array as OpenCV returns it, header or None).

    Before decoding, the pixel limit is checked from the header and a PNG's chunks are walked
    (:mod:`matting.io.limits`); OpenCV's own warnings are silenced, since the failure is
    reported in one MattingInputError naming the file.
    """
    path = Path(path)
    header = read_header(path)
    try:
        buffer = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise MattingInputError(f"{path}: cannot read file ({exc})") from exc
    if buffer[:8].tobytes() == PNG_SIGNATURE:
        buffer = check_png(path, buffer)
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        array = cv2.imdecode(buffer, flag) if buffer.size else None
    except cv2.error as exc:
        if "CV_IO_MAX_IMAGE_PIXELS" not in str(exc):
            raise MattingInputError(f"{path}: not a readable image (OpenCV: {str(exc).strip().splitlines()[-1]})") from exc
        cap = os.environ.get(ENV_OPENCV_CAP, str(1 << 30))
        raise MattingInputError(
            f"{path}: over OpenCV's pixel cap of {int(cap) / 1e6:.3g} MP, fixed when this process started; "
            f"set {ENV_MAX_PIXELS} (or {ENV_OPENCV_CAP}) in the environment before the command to read it"
        ) from exc
    finally:
        cv2.utils.logging.setLogLevel(level)
    if array is None:
        raise MattingInputError(f"{path}: not a readable image (empty, truncated or unknown format)")
    return array, header


def _decode(path: str | os.PathLike) -> np.ndarray:
    """Decode a file to its raw array: (H, W) gray or (H, W, 3|4) BGR(A), uint8/uint16/float32.

    Checked first as ``decode_file`` checks. Palettes are expanded to colours and EXIF
    orientation is applied.
    """
    path = Path(path)
    array, header = decode_file(path)
    if array.dtype not in (np.uint8, np.uint16, np.float32):
        raise MattingInputError(f"{path}: unsupported pixel type {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise MattingInputError(f"{path}: unsupported image shape {array.shape}")
    return _apply_orientation(array, header.orientation if header is not None else 1)


def _to_unit_float(array: np.ndarray, path: Path | None = None) -> np.ndarray:
    """uint8 / uint16 / float32 array -> float32 in [0, 1] (float32 division, as MATLAB's single).

    A float file must hold finite values in [0, 1] (within ``FLOAT_TOLERANCE``, then clipped): a
    0..255 float TIFF clipped to [0, 1] would read as almost white, and NaN as 0 or 1.
    """
    if array.dtype == np.uint8:
        return array.astype(np.float32) / np.float32(255)
    if array.dtype == np.uint16:
        return array.astype(np.float32) / np.float32(65535)
    array = array.astype(np.float32)
    if array.size and not np.isfinite(array).all():
        raise MattingInputError(f"{path}: float image holds NaN or infinite values")
    low, high = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
    if low < -FLOAT_TOLERANCE or high > 1 + FLOAT_TOLERANCE:
        hint = " (it looks like 0..255: divide it by 255)" if high <= 255 and low >= 0 else ""
        raise MattingInputError(f"{path}: float image with values from {low:g} to {high:g}, outside [0, 1]{hint}; "
                                "save it scaled to [0, 1], or as an 8- or 16-bit file")
    return np.clip(array, 0.0, 1.0)


def _gray(array: np.ndarray, path: Path) -> np.ndarray:
    """Collapse a gray image stored in 1, 3 or 4 channels to (H, W); raise when it is not gray."""
    if array.ndim == 2:
        return array
    if array.shape[2] == 4:
        alpha_channel = array[:, :, 3]
        opaque = np.iinfo(array.dtype).max if array.dtype != np.float32 else 1.0
        if alpha_channel.min() < opaque:
            raise MattingInputError(
                f"{path}: 4-channel file with a non-opaque A channel; it is ambiguous whether the "
                "matte is in the colour channels or in A (save it as a single-channel PNG)"
            )
        array = array[:, :, :3]
    first = array[:, :, 0]
    if np.array_equal(first, array[:, :, 1]) and np.array_equal(first, array[:, :, 2]):
        return np.ascontiguousarray(first)
    channels = array.astype(np.float32)
    spread = float((channels.max(axis=2) - channels.min(axis=2)).max())
    levels = {np.dtype(np.uint8): 1.0, np.dtype(np.uint16): 257.0, np.dtype(np.float32): 1 / 255}
    tolerance = LOSSY_CHANNEL_TOLERANCE * levels[array.dtype]
    if path.suffix.lower() in LOSSY_EXTENSIONS and spread <= tolerance:
        mean = channels.mean(axis=2)
        return np.rint(mean).astype(array.dtype) if array.dtype != np.float32 else mean
    raise MattingInputError(
        f"{path}: {array.shape[2]}-channel file whose channels differ (up to {spread:g} levels); "
        "an alpha matte or trimap must be gray (R = G = B) or single-channel"
    )


# ---------------------------------------------------------------------------- readers


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an RGB image.

    Returns:
        float32 (H, W, 3) RGB in [0, 1]. Gray files are replicated to 3 channels; an alpha
        channel is dropped (nothing is composited).
    """
    path = Path(path)
    array = _decode(path)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    rgb = np.ascontiguousarray(array[:, :, 2::-1])  # BGR(A) -> RGB
    return _to_unit_float(rgb, path)


def read_alpha(path: str | os.PathLike, scale: str | None = None) -> np.ndarray:
    """Read an alpha matte.

    Args:
        scale: how a file holding only 0 and 1 is read (``matting.io.limits.check_alpha_levels``:
            ``auto`` refuses it, ``1`` reads 1 as opaque, ``255`` as it is); None for the setting in force.

    Returns:
        float32 (H, W) in [0, 1]; 8-bit files / 255, 16-bit files / 65535.
    """
    path = Path(path)
    return _to_unit_float(check_alpha_levels(_gray(_decode(path), path), path, scale), path)


def normalise_trimap(trimap: np.ndarray, name: str = "trimap") -> np.ndarray:
    """Map a gray trimap to uint8 {0, 128, 255} by nearest level.

    Args:
        trimap: (H, W) uint8 / uint16 (0..65535) / float. Floats whose maximum is <= 1 are taken
            as [0, 1] maps, larger floats as 0..255.
        name: file or tensor name used in error messages.

    Returns:
        uint8 (H, W): < 85 -> 0, > 170 -> 255, otherwise 128.
    """
    trimap = np.asarray(trimap)
    if trimap.ndim != 2:
        raise MattingInputError(f"{name}: trimap must be 2-D (H, W), got shape {trimap.shape}")
    if trimap.dtype == np.bool_ or not (
        np.issubdtype(trimap.dtype, np.integer) or np.issubdtype(trimap.dtype, np.floating)
    ):
        raise MattingInputError(f"{name}: unsupported trimap dtype {trimap.dtype}")
    if trimap.size == 0:
        return np.zeros(trimap.shape, np.uint8)
    if np.issubdtype(trimap.dtype, np.integer):
        high = int(trimap.max())
        if 0 < high <= 2 and int(trimap.min()) >= 0:
            raise WrongContent(
                f"{name}: trimap values {np.unique(trimap).tolist()} look label-encoded (0/1/2), not gray levels 0/128/255; "
                "convert it, e.g. numpy.array([0, 128, 255], numpy.uint8)[labels] if 1 is unknown and 2 foreground"
            )
    if trimap.dtype == np.uint8:
        return cv2.LUT(trimap, _TRIMAP_LUT)
    values = trimap.astype(np.float32)
    if trimap.dtype == np.uint16:
        values /= np.float32(257)
    elif np.issubdtype(trimap.dtype, np.floating):
        if not np.isfinite(values).all():
            raise MattingInputError(f"{name}: trimap contains NaN or infinite values")
        if values.max() <= 1.0:
            values *= np.float32(255)
    out = np.full(values.shape, TRIMAP_UNKNOWN, dtype=np.uint8)
    out[values < 85] = TRIMAP_BACKGROUND
    out[values > 170] = TRIMAP_FOREGROUND
    return out


def read_trimap(path: str | os.PathLike) -> np.ndarray:
    """Read a trimap (gray, 3-channel gray or palette PNG).

    Returns:
        uint8 (H, W) with values in {0, 128, 255}; see the module docstring for the mapping.
    """
    path = Path(path)
    return normalise_trimap(_gray(_decode(path), path), name=str(path))


# ---------------------------------------------------------------------------- quantising and writing


def to_uint8(array: np.ndarray) -> np.ndarray:
    """Quantise a float array in [0, 1] to uint8: rint(clip(x, 0, 1) * 255) in float32.

    The one 8-bit rounding of the package: PNGs, thumbnails, grids and the metrics' view of a
    saved prediction all go through it.
    """
    scaled = np.clip(np.asarray(array, dtype=np.float32), 0.0, 1.0) * np.float32(255)
    return np.rint(scaled).astype(np.uint8)


def from_uint8(levels: np.ndarray) -> np.ndarray:
    """uint8 levels -> float32 in [0, 1] (levels / 255 in float32), as ``read_alpha`` returns an 8-bit file."""
    return _to_unit_float(np.asarray(levels, dtype=np.uint8))


def quantize_8bit(array: np.ndarray) -> np.ndarray:
    """float in [0, 1] -> float32 holding the values its 8-bit PNG holds: rint(clip(x) * 255) / 255."""
    return from_uint8(to_uint8(array))


def write_png(path: str | os.PathLike, array: np.ndarray, overwrite: bool = False) -> Path:
    """Write an 8-bit PNG atomically (temporary file in the same folder, then ``os.replace``).

    Args:
        path: destination; missing parent folders are created.
        array: (H, W), (H, W, 3) RGB or (H, W, 4) RGBA; float in [0, 1] (quantised with
            ``to_uint8``), uint8, or bool (-> 0/255).
        overwrite: replace an existing file; without it an existing file raises.

    Returns:
        The written path.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise MattingInputError(f"{path}: exists already (pass overwrite=True to replace it)")
    array = np.asarray(array)
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise MattingInputError(f"{path}: cannot write an array of shape {array.shape} as PNG")
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    elif np.issubdtype(array.dtype, np.floating):
        if array.size and not (np.nanmin(array) >= -1e-3 and np.nanmax(array) <= 1 + 1e-3):
            raise MattingInputError(
                f"{path}: float array outside [0, 1] (min {np.nanmin(array):g}, max {np.nanmax(array):g})"
            )
        if not np.isfinite(array).all():
            raise MattingInputError(f"{path}: array contains NaN or infinite values")
        array = to_uint8(array)
    elif array.dtype != np.uint8:
        raise MattingInputError(f"{path}: cannot write dtype {array.dtype} as an 8-bit PNG")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR if array.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
    ok, encoded = cv2.imencode(".png", array)
    if not ok:
        raise MattingInputError(f"{path}: PNG encoding failed")
    # A full disk, no permission: a clean error naming the file, and no partial file.
    return atomic_write(path, encoded.tobytes(), error=could_not_write)


# ---------------------------------------------------------------------------- listing


def list_images(directory: str | os.PathLike) -> dict[str, Path]:
    """Map file stem -> path for the images directly inside ``directory``.

    Extensions (any case): .png .jpg .jpeg .tif .tiff .bmp .webp. Hidden files (leading '.',
    such as macOS '._x.png' or unfinished temporary files) are ignored; sub-folders are not
    searched. Two files with the same stem (``a.png``, ``a.jpg``) raise, naming both. A dangling
    symbolic link is listed, so that whoever reads it reports it (``is_dangling_link``) as it
    reports an unreadable file.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise MattingInputError(f"{directory}: folder not found")
    found: dict[str, Path] = {}
    for entry in sorted(directory.iterdir()):
        if entry.name.startswith(".") or entry.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        if not entry.is_file() and not is_dangling_link(entry):
            continue
        if entry.stem in found:
            raise MattingInputError(
                f"{directory}: two files share the stem '{entry.stem}': {found[entry.stem].name} and {entry.name}"
            )
        found[entry.stem] = entry
    return found


def is_dangling_link(path: Path) -> bool:
    """A symbolic link whose target does not exist (or that loops)."""
    return path.is_symlink() and not path.exists()
