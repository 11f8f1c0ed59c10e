"""Special files, folders with image names, other formats and multi-frame files: reported, never skipped
or read in part without a word, and never opened when they are not regular files (a FIFO would block)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from matting.io.errors import MattingInputError
from matting.io.images import read_alpha, read_image, read_trimap
from matting.io.pairing import collect_inputs

from .test_bad_input import run

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.filterwarnings("ignore")]


def _odd_folder(root: Path) -> Path:
    """``root/in``: one photo, and a FIFO, a link to /dev/zero, a folder named x.png, a GIF and an AVIF."""
    folder = root / "in"
    folder.mkdir()
    Image.fromarray(np.full((40, 48, 3), 120, np.uint8)).save(folder / "photo.png")
    os.mkfifo(folder / "fifo.png")
    (folder / "zero.png").symlink_to("/dev/zero")
    (folder / "x.png").mkdir()
    (folder / "anim.gif").write_bytes(b"GIF89a")
    (folder / "photo2.avif").write_bytes(b"\0\0\0\x1cftypavif")
    return folder


def _expected(folder: Path) -> list[str]:
    types = ".png .jpg .jpeg .tif .tiff .bmp .webp"
    return [f"{folder / 'anim.gif'}: skipped: .gif files are not read from a folder (only {types}); convert it to PNG",
            f"{folder / 'fifo.png'}: a named pipe (FIFO), not an image file; skipped",
            f"{folder / 'photo2.avif'}: skipped: .avif files are not read from a folder (only {types}); convert it to PNG",
            f"{folder / 'x.png'}: a folder, not an image file; skipped",
            f"{folder / 'zero.png'}: a symbolic link to /dev/zero, which is a character device, not an image file; skipped"]


def test_odd_entries_of_an_input_folder_are_reported(tmp_path):
    folder = _odd_folder(tmp_path)
    paths, problems = collect_inputs([str(folder)])
    assert [p.name for p in paths] == ["photo.png"]
    assert problems == _expected(folder)
    paths, problems = collect_inputs([str(folder / "*.png")])  # a pattern reports them too
    assert [p.name for p in paths] == ["photo.png"] and len(problems) == 3


@pytest.mark.parametrize("name, kind", [("fifo.png", "a named pipe (FIFO)"), ("x.png", "a folder"),
                                        ("zero.png", "a symbolic link to /dev/zero, which is a character device")])
def test_a_special_file_named_directly_is_named_as_what_it_is(name, kind, tmp_path):
    path = _odd_folder(tmp_path) / name
    for reader in (read_image, read_alpha, read_trimap):
        with pytest.raises(MattingInputError, match=re.escape(f"{path}: {kind}, not an image file")):
            reader(path)
    if name != "x.png":  # a folder named on the command line is read as a folder of images
        assert collect_inputs([str(path)])[1] == [f"{path}: {kind}, not an image file"]


@pytest.mark.parametrize("suffix", [".gif", ".tif"])
def test_a_multi_frame_file_is_refused_naming_its_frames(suffix, tmp_path):
    frames = [Image.fromarray(np.full((8, 8), v, np.uint8)).convert("RGB") for v in (10, 200, 90)]
    path = tmp_path / f"anim{suffix}"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    for reader in (read_image, read_alpha, read_trimap):
        with pytest.raises(MattingInputError, match=re.escape(f"{path}: holds 3 frames (an animation or a multi-page "
                                                              "file), and only single images are read")):
            reader(path)
    frames[0].save(tmp_path / f"one{suffix}")
    assert read_image(tmp_path / f"one{suffix}").shape == (8, 8, 3)  # a single frame reads as before


@pytest.mark.slow  # runs the command
def test_predict_reports_the_skipped_entries_and_exits_1(tiny_ckpt, tmp_path, capsys):
    folder = _odd_folder(tmp_path)
    code, err = run(capsys, "predict", "--ckpt", tiny_ckpt, folder, "--out", tmp_path / "out", "--base-size", "32",
                    "--no-progress", "--no-cutout")
    assert code == 1, err
    lines = [line.removeprefix("matting predict: ") for line in err.splitlines()]
    assert lines[0] == f"loading {tiny_ckpt} (checkpoint, PyTorch)"  # said first, before the slow start
    assert lines[1:] == _expected(folder)
    assert (tmp_path / "out" / "alpha" / "photo.png").is_file()
