"""Hostile and odd image files: the pixel limit holds for every file the readers accept."""

import os
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from matting.io.errors import MattingInputError
from matting.io.images import read_alpha, read_image, read_trimap


def _chunk(kind: bytes, data: bytes, crc: int | None = None) -> bytes:
    crc = zlib.crc32(kind + data) if crc is None else crc
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _png(path: Path, width: int, height: int, idat: bytes, bad_ancillary: bool = True) -> Path:
    """An RGB PNG of ``width`` x ``height`` whose first ancillary chunk fails its CRC check."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    text = _chunk(b"tEXt", b"Comment\0hello", crc=0 if bad_ancillary else None)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + text + _chunk(b"IDAT", idat)
                     + _chunk(b"IEND", b""))
    return path


def test_a_damaged_ancillary_chunk_does_not_bypass_the_pixel_limit(tmp_path, monkeypatch, capfd):
    path = _png(tmp_path / "bomb.png", 25000, 25000, zlib.compress(b"\0" * 64))

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded before the pixel limit was checked")

    monkeypatch.setattr(cv2, "imdecode", no_decoding)
    for reader in (read_image, read_alpha, read_trimap):
        with pytest.raises(MattingInputError, match=re.escape(f"{path}: 25000x25000 pixels (625 MP) is over the limit")):
            reader(path)
    assert capfd.readouterr().err == ""


def test_a_damaged_ancillary_chunk_is_skipped_without_libpng_warnings(tmp_path, capfd):
    rows = b"".join(b"\0" + bytes([10, 20, 30]) * 4 for _ in range(3))
    path = _png(tmp_path / "small.png", 4, 3, zlib.compress(rows))
    capfd.readouterr()
    image = read_image(path)
    assert image.shape == (3, 4, 3) and np.allclose(image[0, 0] * 255, [10, 20, 30])
    assert capfd.readouterr().err == ""


def test_a_file_whose_size_is_unknown_before_decoding_is_refused(tmp_path):
    path = tmp_path / "photo.pfm"  # OpenCV decodes it, Pillow does not know it: no size before decoding
    assert cv2.imwrite(str(path), np.zeros((4, 5, 3), np.float32))
    renamed = path.rename(tmp_path / "photo.png")
    for reader in (read_image, read_alpha):
        with pytest.raises(MattingInputError, match=re.escape(f"{renamed}: not a readable image (unknown format "
                                                              "or damaged header: its size cannot be checked")):
            reader(renamed)


def test_float_rgb_tiff_size_is_read_from_its_own_header(tmp_path):
    from matting.io.limits import read_header, set_max_pixels

    path = tmp_path / "float.tif"
    assert cv2.imwrite(str(path), np.full((6, 7, 3), 0.5, np.float32))  # Pillow cannot open it
    header = read_header(path)
    assert (header.width, header.height) == (7, 6)
    assert read_image(path).shape == (6, 7, 3)
    set_max_pixels(41)
    with pytest.raises(MattingInputError, match=r"float\.tif: 7x6 pixels .* over the limit"):
        read_image(path)


@pytest.mark.slow  # spawns processes
def test_opencv_pixel_cap_is_set_before_cv2_loads():
    env = {k: v for k, v in os.environ.items() if k not in ("OPENCV_IO_MAX_IMAGE_PIXELS", "MATTING_MAX_PIXELS")}
    code = "import matting, os, matting.io.limits as l; print(os.environ['OPENCV_IO_MAX_IMAGE_PIXELS'], l.DEFAULT_MAX_PIXELS)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["200000000", "200000000"]
    env["MATTING_MAX_PIXELS"] = "300000000"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split()[0] == "300000000"


@pytest.mark.slow  # spawns a process
def test_opencv_cap_refusal_is_one_line_naming_the_file(tmp_path):
    code = ("import matting, sys\nfrom matting.io.images import read_image\nfrom matting.io.errors import MattingInputError\n"
            "try:\n    read_image(sys.argv[1])\nexcept MattingInputError as e:\n    print(e)\n")
    path = tmp_path / "big.png"
    cv2.imwrite(str(path), np.zeros((100, 100), np.uint8))
    env = dict(os.environ, OPENCV_IO_MAX_IMAGE_PIXELS="5000")
    out = subprocess.run([sys.executable, "-c", code, str(path)], env=env, capture_output=True, text=True)
    assert out.stdout.startswith(f"{path}: over OpenCV's pixel cap of 0.005 MP"), out
    assert out.stderr == ""
