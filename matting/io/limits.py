"""What the image readers accept before and after decoding: the pixel limit, the scale of
integer alpha mattes, and the file checks made before any pixel is decoded.

Two settings, one per process. They live in environment variables so that the processes that
read images for a command (DataLoader workers, evaluation workers, ``prepare-data`` jobs), forked
or spawned, inherit them without being handed them:

- ``MATTING_MAX_PIXELS``: the largest width x height read (default ``DEFAULT_MAX_PIXELS``, 200
  megapixels; 0 means no limit). A file is measured from its header, before it is decoded: a
  1 MB PNG can claim 20000 x 20000 pixels, and decoding it with its float copies takes tens of GB.
- ``MATTING_ALPHA_SCALE``: how an 8- or 16-bit alpha matte whose only values are 0 and 1 is read
  (``check_alpha_levels``). Such a file is a 0/1 mask saved without scaling; read as it is, it
  scores as an almost empty matte. ``auto`` (default) refuses it, ``1`` reads it as 0 / fully
  opaque (a file holding larger values is full range already and is read as it is), ``255``
  reads every file as it is.

The commands that read images set them from ``--max-pixels`` and ``--alpha-scale``
(``add_reader_options``, ``apply_reader_options``); ``matting fit`` and library code use the
environment variables or ``set_max_pixels`` / ``set_alpha_scale``.

Before decoding, ``read_header`` takes a file's size, format and EXIF orientation from its header
(PNG and TIFF sizes read here, other formats' by Pillow, which reads only the header; a file
whose size is unknown is refused), and ``check_png`` walks a PNG's chunks in memory: a truncated
or damaged PNG is refused with one message instead of reaching libpng, which prints its own
error line on stderr.

OpenCV's own cap, ``OPENCV_IO_MAX_IMAGE_PIXELS``, is a second guard. OpenCV reads it once, when
``cv2`` is loaded, so ``opencv_cap`` sets it when the package is imported (``matting/__init__``)
from ``MATTING_MAX_PIXELS`` (or the default); a higher ``--max-pixels`` given later raises it for
worker processes, and a decode it refuses in this process is reported naming both settings.
"""

from __future__ import annotations

import argparse
import os
import stat
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from matting.io.errors import MattingInputError

ENV_MAX_PIXELS = "MATTING_MAX_PIXELS"
ENV_ALPHA_SCALE = "MATTING_ALPHA_SCALE"
ENV_OPENCV_CAP = "OPENCV_IO_MAX_IMAGE_PIXELS"
DEFAULT_MAX_PIXELS = 200_000_000
ALPHA_SCALES = ("auto", "1", "255")
_EXIF_ORIENTATION = 0x0112
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

__all__ = [
    "ALPHA_SCALES",
    "DEFAULT_MAX_PIXELS",
    "ENV_ALPHA_SCALE",
    "ENV_MAX_PIXELS",
    "ENV_OPENCV_CAP",
    "PNG_SIGNATURE",
    "Header",
    "add_reader_options",
    "alpha_scale",
    "apply_reader_options",
    "check_alpha_levels",
    "check_pixels",
    "check_png",
    "max_pixels",
    "missing_file",
    "opencv_cap",
    "read_header",
    "set_alpha_scale",
    "set_max_pixels",
]


# ---------------------------------------------------------------------------- settings


def set_max_pixels(limit: int | None) -> None:
    """Set the pixel limit of this process and of the worker processes it starts from now on.

    Args:
        limit: width x height; 0 for no limit; None for the default (``DEFAULT_MAX_PIXELS``).
    """
    if limit is None:
        os.environ.pop(ENV_MAX_PIXELS, None)
        return
    if int(limit) < 0:
        raise MattingInputError(f"--max-pixels must be 0 (no limit) or more, got {limit}")
    os.environ[ENV_MAX_PIXELS] = str(int(limit))
    cap = opencv_cap(int(limit))
    if cap is not None and cap > int(os.environ.get(ENV_OPENCV_CAP, "0") or 0):
        os.environ[ENV_OPENCV_CAP] = str(cap)  # worker processes load cv2 after this


def opencv_cap(limit: int) -> int | None:
    """OpenCV's pixel cap for a pixel ``limit``: never below the default limit, so that a lower
    ``--max-pixels`` is reported by ``check_pixels``; None (OpenCV's 2**30) for no limit."""
    return max(int(limit), DEFAULT_MAX_PIXELS) if int(limit) else None


def max_pixels() -> int:
    """The pixel limit in force (0 = none)."""
    text = os.environ.get(ENV_MAX_PIXELS, "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise MattingInputError(f"{ENV_MAX_PIXELS}={text!r}: expected a whole number of pixels (0 for no limit)")
    return value


def set_alpha_scale(scale: str | int | None) -> None:
    """Set how 0/1 alpha files are read (``ALPHA_SCALES``; None for the default, ``auto``)."""
    if scale is None:
        os.environ.pop(ENV_ALPHA_SCALE, None)
        return
    if str(scale) not in ALPHA_SCALES:
        raise MattingInputError(f"--alpha-scale must be one of {', '.join(ALPHA_SCALES)}, got {scale!r}")
    os.environ[ENV_ALPHA_SCALE] = str(scale)


def alpha_scale() -> str:
    """The alpha scale in force: ``auto``, ``1`` or ``255``."""
    text = os.environ.get(ENV_ALPHA_SCALE, "").strip() or "auto"
    if text not in ALPHA_SCALES:
        raise MattingInputError(f"{ENV_ALPHA_SCALE}={text!r}: expected one of {', '.join(ALPHA_SCALES)}")
    return text


def _pixel_count(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number of pixels (0 for no limit), got {text!r}")
    return value


def add_reader_options(parser: argparse.ArgumentParser, mattes: bool = False) -> None:
    """Add ``--max-pixels`` (and, for commands that read alpha mattes, ``--alpha-scale``)."""
    parser.add_argument("--max-pixels", type=_pixel_count, default=None, metavar="N",
                        help=f"refuse images of more than N pixels (width x height) before decoding them "
                             f"(default {DEFAULT_MAX_PIXELS}; 0 for no limit)")
    if mattes:
        parser.add_argument("--alpha-scale", choices=ALPHA_SCALES, default=None,
                            help="8/16-bit mattes holding only 0 and 1: refuse them (auto, the default), "
                                 "read 1 as opaque (1), or read every file as it is (255)")


def apply_reader_options(args: argparse.Namespace) -> None:
    """Put the parsed ``--max-pixels`` / ``--alpha-scale`` in force (defaults when not given)."""
    set_max_pixels(getattr(args, "max_pixels", None))
    set_alpha_scale(getattr(args, "alpha_scale", None))


# ---------------------------------------------------------------------------- before decoding


def missing_file(path: Path) -> MattingInputError:
    """The error for a path that is not a readable file: a dangling link is named with its target, and
    what exists but is no regular file (a folder, a FIFO, a device) is named as what it is, never opened."""
    path = Path(path)
    target = "?"
    if path.is_symlink():
        try:
            target = os.readlink(path)
        except OSError:
            pass
    try:
        mode = path.stat().st_mode
    except OSError:  # missing, or a link to nothing
        if path.is_symlink():
            return MattingInputError(f"{path}: dangling symbolic link to {target} (the target does not exist)")
        return MattingInputError(f"{path}: file not found")
    kind = next((name for test, name in _SPECIAL_KINDS if test(mode)), "not a regular file")
    link = f"a symbolic link to {target}, which is " if path.is_symlink() else ""
    return MattingInputError(f"{path}: {link}{kind}, not an image file")


_SPECIAL_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
                  (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
# Formats whose files may hold several images (animations, pages); OpenCV decodes the first without a word.
_MULTI_FRAME_FORMATS = ("GIF", "TIFF", "PNG", "WEBP")


def check_single_frame(path: Path, header_format: str) -> None:
    """Refuse an animation or multi-page file: reading its first frame silently would score or cut out
    one image of many. Called after the pixel check, since counting frames walks the file."""
    if header_format not in _MULTI_FRAME_FORMATS:
        return
    from PIL import Image

    try:
        with Image.open(path) as im:
            frames = int(getattr(im, "n_frames", 1) or 1)
    except Exception:  # Pillow does not open it (a float TIFF): OpenCV reads it as one image
        return
    if frames > 1:
        raise MattingInputError(f"{path}: holds {frames} frames (an animation or a multi-page file), and only single "
                                "images are read; save the frame you mean as a file of its own")


def check_pixels(path: Path, width: int, height: int) -> None:
    """Raise when ``width`` x ``height`` is over the pixel limit, naming the file and the option."""
    limit = max_pixels()
    pixels = width * height
    if limit and pixels > limit:
        raise MattingInputError(
            f"{path}: {width}x{height} pixels ({pixels / 1e6:.3g} MP) is over the limit of {limit / 1e6:.3g} MP; "
            f"pass --max-pixels {pixels} (or set {ENV_MAX_PIXELS}={pixels}) to read it"
        )


@dataclass(frozen=True)
class Header:
    """What a file's header says: Pillow's format name, the stored size and the EXIF orientation (1..8)."""

    format: str
    width: int
    height: int
    orientation: int = 1


def _png_size(path: Path, head: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR, which libpng requires to be the first chunk."""
    if len(head) < 24 or head[12:16] != b"IHDR":
        raise MattingInputError(f"{path}: not a readable image (damaged PNG: no IHDR chunk after the signature)")
    return struct.unpack(">II", head[16:24])


def _tiff_size(path: Path, handle) -> tuple[int, int] | None:
    """Width and height of a TIFF's first page (what OpenCV decodes), from IFD0; None when absent.

    Pillow does not open some TIFFs that OpenCV decodes (3-channel float), so the size is read here.
    """
    head = handle.read(16)
    order = {b"II": "<", b"MM": ">"}.get(head[:2])
    if order is None or len(head) < 8:
        return None
    version = struct.unpack(order + "H", head[2:4])[0]
    big = version == 43  # BigTIFF: 8-byte offsets and counts
    if version not in (42, 43) or (big and len(head) < 16):
        return None
    offset = struct.unpack(order + ("Q" if big else "I"), head[8:16] if big else head[4:8])[0]
    handle.seek(offset)
    count_size, entry_size = (8, 20) if big else (2, 12)
    raw = handle.read(count_size)
    if len(raw) < count_size:
        return None
    entries = struct.unpack(order + ("Q" if big else "H"), raw)[0]
    table = handle.read(entry_size * min(entries, 4096))
    size = {}
    for start in range(0, len(table) - entry_size + 1, entry_size):
        tag, kind = struct.unpack(order + "HH", table[start:start + 4])
        value = table[start + (12 if big else 8):start + entry_size]
        if tag in (256, 257) and kind in (3, 4, 16):  # ImageWidth / ImageLength: SHORT, LONG or LONG8
            code = {3: "H", 4: "I", 16: "Q"}[kind]
            size[tag] = struct.unpack(order + code, value[:struct.calcsize(code)])[0]
    return (size[256], size[257]) if 256 in size and 257 in size else None


def read_header(path: str | os.PathLike) -> Header:
    """Size, format and orientation of an image file from its header, the pixel limit checked.

    The size of PNGs (IHDR) and TIFFs (IFD0) is read here, that of other formats by Pillow (which
    reads only the header). A file whose size cannot be read before decoding is refused: OpenCV
    would decode it whatever its size.

    Returns:
        The header. Raises MattingInputError naming the file when it is missing, its size is
        unknown, or it is over the limit.
    """
    path = Path(path)
    if not path.is_file():
        raise missing_file(path)
    from PIL import Image

    # This package's limit replaces Pillow's decompression-bomb check, which would refuse files
    # between its own 179 MP and ours with another message (and ignore --max-pixels).
    Image.MAX_IMAGE_PIXELS = None
    try:
        with open(path, "rb") as handle:
            head = handle.read(24)
            handle.seek(0)
            own = _png_size(path, head) if head[:8] == PNG_SIGNATURE else _tiff_size(path, handle)
    except OSError as exc:
        raise MattingInputError(f"{path}: cannot read file ({exc})") from exc
    except struct.error:
        own = None
    header_format, orientation, size = "", 1, None
    try:
        with Image.open(path) as im:
            header_format, size = im.format or "", im.size
            if im.format != "PNG" or "exif" in im.info:  # else PIL would decode the PNG looking for eXIf
                try:
                    orientation = int(im.getexif().get(_EXIF_ORIENTATION, 1) or 1)
                except Exception:  # a damaged EXIF block: no tag
                    orientation = 1
    except (FileNotFoundError, PermissionError) as exc:
        raise MattingInputError(f"{path}: cannot read file ({exc})") from exc
    except Exception:  # PIL raises many types for unknown formats and damaged headers
        pass
    if own is not None:
        size, header_format = own, header_format or ("PNG" if head[:8] == PNG_SIGNATURE else "TIFF")
    if size is None:
        raise MattingInputError(
            f"{path}: not a readable image (unknown format or damaged header: its size cannot be "
            "checked against the pixel limit before decoding)"
        )
    width, height = size
    check_pixels(path, width, height)
    check_single_frame(path, header_format)
    return Header(header_format, width, height, orientation if orientation in range(1, 9) else 1)


def check_png(path: Path, data: np.ndarray | bytes) -> np.ndarray | bytes:
    """Walk the chunks of a PNG held in memory; raise on a truncated or damaged file.

    Every critical chunk must be complete with a matching CRC, up to IEND. Cheap next to decoding
    (a CRC pass over the bytes), and it keeps libpng from printing its own error line.

    Returns:
        ``data``, or a copy without the ancillary chunks that fail their CRC check: libpng
        would skip them anyway, printing a warning on stderr for each.
    """
    view = memoryview(data).cast("B")
    size = len(view)
    problem = None
    damaged: list[tuple[int, int]] = []
    if bytes(view[:8]) != PNG_SIGNATURE:
        problem = "no PNG signature"
    offset = 8
    while problem is None:
        if offset + 8 > size:
            problem = f"the file ends after {size} bytes, before its IEND chunk"
            break
        length, kind = struct.unpack(">I4s", view[offset:offset + 8])
        end = offset + 12 + length
        if end > size:
            problem = f"the file ends after {size} bytes, inside a {kind.decode('latin-1')!r} chunk"
            break
        stored = struct.unpack(">I", view[end - 4:end])[0]
        if zlib.crc32(view[offset + 4:end - 4]) != stored:
            if kind[0] & 0x20:  # ancillary (lower-case first letter): dropped, as libpng would skip it
                damaged.append((offset, end))
            else:
                problem = f"{kind.decode('latin-1')!r} chunk at byte {offset} fails its CRC check"
                break
        if kind == b"IEND":
            if not damaged:
                return data
            keep, start = [], 0
            for begin, stop in damaged:
                keep.append(bytes(view[start:begin]))
                start = stop
            keep.append(bytes(view[start:]))
            return np.frombuffer(b"".join(keep), dtype=np.uint8)
        offset = end
    raise MattingInputError(f"{path}: not a readable image (damaged or truncated PNG: {problem})")


# ---------------------------------------------------------------------------- after decoding


def check_alpha_levels(array: np.ndarray, path: Path, scale: str | None = None) -> np.ndarray:
    """Refuse or rescale an integer alpha whose only values are 0 and 1 (``MATTING_ALPHA_SCALE``).

    Args:
        array: (H, W) uint8 / uint16 as stored (float arrays are returned unchanged).
        path: the file, for the message.
        scale: ``auto`` / ``1`` / ``255``; None for the setting in force.

    Returns:
        ``array``, or with ``scale`` 1 and a 0/1 file, 0 and the dtype's maximum.
    """
    if array.dtype not in (np.uint8, np.uint16) or array.size == 0:
        return array
    scale = alpha_scale() if scale is None else str(scale)
    if scale == "255" or int(array.max()) != 1:  # all zero (an empty matte) or full range
        return array
    full = np.iinfo(array.dtype).max
    if scale == "1":
        return array * array.dtype.type(full)
    raise MattingInputError(
        f"{path}: alpha matte holds only the values 0 and 1 (a 0/1 mask, not 0..{full}); pass --alpha-scale 1 "
        f"(or set {ENV_ALPHA_SCALE}=1) to read 1 as opaque, or --alpha-scale 255 to read it as it is"
    )
