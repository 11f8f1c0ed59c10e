"""Reading and writing of images, alpha mattes and trimaps (matting.io.images)."""

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from matting.io.errors import MattingInputError
from matting.io.images import (
    list_images,
    normalise_trimap,
    read_alpha,
    read_image,
    read_trimap,
    to_uint8,
    write_png,
)

GRAY = np.array([[0, 20, 40], [153, 200, 255]], dtype=np.uint8)


def _save_exif_jpeg(path: Path, rgb: np.ndarray, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(rgb).save(path, exif=exif.tobytes(), quality=100, subsampling=0)


# ---------------------------------------------------------------------------- read_image


def test_read_image_gray_png_becomes_rgb(tmp_path):
    Image.fromarray(GRAY, "L").save(tmp_path / "g.png")
    image = read_image(tmp_path / "g.png")
    assert image.dtype == np.float32 and image.shape == (2, 3, 3)
    np.testing.assert_array_equal(image[..., 0], GRAY.astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(image[..., 0], image[..., 2])


def test_read_image_rgb_order_and_rgba_alpha_dropped(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0] = 255  # red
    rgba[..., 3] = 10  # nearly transparent: must not darken the colour
    Image.fromarray(rgba, "RGBA").save(tmp_path / "red.png")
    image = read_image(tmp_path / "red.png")
    assert image.shape == (2, 2, 3)
    np.testing.assert_array_equal(image[0, 0], [1.0, 0.0, 0.0])


def test_read_image_16bit(tmp_path):
    bgr = np.zeros((2, 2, 3), np.uint16)
    bgr[..., 2] = 65535  # red in OpenCV's BGR order
    bgr[..., 1] = 32768
    cv2.imwrite(str(tmp_path / "c16.png"), bgr)
    image = read_image(tmp_path / "c16.png")
    np.testing.assert_allclose(image[0, 0], [1.0, 32768 / 65535, 0.0], rtol=1e-6)


def test_read_image_palette_png(tmp_path):
    palette_image = Image.new("P", (2, 1))
    palette_image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    palette_image.putdata([0, 1])
    palette_image.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_image(tmp_path / "p.png")[0], [[1, 0, 0], [0, 0, 1]])


@pytest.mark.parametrize("orientation, shape, marker", [(1, (2, 3), (0, 0)), (6, (3, 2), (0, 1)), (8, (3, 2), (2, 0)), (3, (2, 3), (1, 2))])
def test_read_image_honours_exif_orientation(tmp_path, orientation, shape, marker):
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[0, 0] = 255  # white marker in the top-left corner of the stored pixels
    _save_exif_jpeg(tmp_path / "o.jpg", rgb, orientation)
    image = read_image(tmp_path / "o.jpg")
    assert image.shape[:2] == shape
    assert np.unravel_index(np.argmax(image[..., 0]), shape) == marker


def test_read_image_errors_name_the_file(tmp_path):
    with pytest.raises(MattingInputError, match="missing.png"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(MattingInputError, match="bad.png"):
        read_image(tmp_path / "bad.png")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(MattingInputError, match="empty.jpg"):
        read_image(tmp_path / "empty.jpg")


# ---------------------------------------------------------------------------- read_alpha


def test_read_alpha_single_and_three_channel_gray(tmp_path):
    Image.fromarray(GRAY, "L").save(tmp_path / "l.png")
    Image.fromarray(np.dstack([GRAY] * 3), "RGB").save(tmp_path / "rgb.png")
    expected = GRAY.astype(np.float32) / np.float32(255)
    for name in ("l.png", "rgb.png"):
        alpha = read_alpha(tmp_path / name)
        assert alpha.dtype == np.float32 and alpha.shape == (2, 3)
        np.testing.assert_array_equal(alpha, expected)


def test_read_alpha_16bit(tmp_path):
    values = np.array([[0, 1, 32768, 65535]], np.uint16)
    cv2.imwrite(str(tmp_path / "a16.png"), values)
    cv2.imwrite(str(tmp_path / "a16x3.png"), np.dstack([values] * 3))
    for name in ("a16.png", "a16x3.png"):
        np.testing.assert_allclose(read_alpha(tmp_path / name), [[0, 1 / 65535, 32768 / 65535, 1]], rtol=1e-6)


def test_read_alpha_palette_resolved_to_gray_values(tmp_path):
    # Palette index 0 -> gray 200, index 1 -> gray 10: the values, not the indices, are the matte.
    palette_image = Image.new("P", (2, 1))
    palette_image.putpalette([200, 200, 200, 10, 10, 10] + [0] * 762)
    palette_image.putdata([0, 1])
    palette_image.save(tmp_path / "p.png")
    np.testing.assert_allclose(read_alpha(tmp_path / "p.png"), [[200 / 255, 10 / 255]], rtol=1e-6)


def test_read_alpha_rejects_colour_and_ambiguous_rgba(tmp_path):
    rgb = np.dstack([GRAY, GRAY, 255 - GRAY])
    Image.fromarray(rgb, "RGB").save(tmp_path / "colour.png")
    with pytest.raises(MattingInputError, match="colour.png.*channels differ"):
        read_alpha(tmp_path / "colour.png")
    rgba = np.dstack([GRAY] * 3 + [np.full_like(GRAY, 100)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "cutout.png")
    with pytest.raises(MattingInputError, match="cutout.png.*A channel"):
        read_alpha(tmp_path / "cutout.png")
    opaque = np.dstack([GRAY] * 3 + [np.full_like(GRAY, 255)])
    Image.fromarray(opaque, "RGBA").save(tmp_path / "opaque.png")
    np.testing.assert_array_equal(read_alpha(tmp_path / "opaque.png"), GRAY / np.float32(255))


def test_read_alpha_lossy_gray_tolerance(tmp_path):
    # Chroma rounding in a colour-coded lossy file may split R, G, B by a few levels: averaged.
    # The check keys on the extension; OpenCV decodes by content, so a PNG stands in for it.
    rgb = np.dstack([GRAY, GRAY, GRAY]).astype(np.int16)
    rgb[..., 0] += 2
    cv2.imwrite(str(tmp_path / "x.png"), np.clip(rgb, 0, 255).astype(np.uint8))
    (tmp_path / "x.png").rename(tmp_path / "soft.jpg")
    expected = np.rint(np.clip(rgb, 0, 255).mean(axis=2)) / 255
    np.testing.assert_allclose(read_alpha(tmp_path / "soft.jpg"), expected, rtol=1e-6)
    rgb[..., 0] += 5
    cv2.imwrite(str(tmp_path / "y.png"), np.clip(rgb, 0, 255).astype(np.uint8))
    (tmp_path / "y.png").rename(tmp_path / "colour.jpg")
    with pytest.raises(MattingInputError, match="colour.jpg"):
        read_alpha(tmp_path / "colour.jpg")


def test_read_alpha_missing_file(tmp_path):
    with pytest.raises(MattingInputError, match="nope.png"):
        read_alpha(tmp_path / "nope.png")


# ---------------------------------------------------------------------------- read_trimap


def test_read_trimap_palette_png(tmp_path):
    palette_image = Image.new("P", (3, 1))
    palette_image.putpalette([0, 0, 0, 128, 128, 128, 255, 255, 255] + [0] * 759)
    palette_image.putdata([2, 1, 0])
    palette_image.save(tmp_path / "t.png")
    trimap = read_trimap(tmp_path / "t.png")
    assert trimap.dtype == np.uint8
    np.testing.assert_array_equal(trimap, [[255, 128, 0]])


def test_read_trimap_nearest_level_mapping(tmp_path):
    values = np.array([[0, 84, 85, 127, 129, 170, 171, 255]], np.uint8)
    Image.fromarray(values, "L").save(tmp_path / "t.png")
    np.testing.assert_array_equal(read_trimap(tmp_path / "t.png"), [[0, 0, 128, 128, 128, 128, 255, 255]])


def test_read_trimap_16bit_and_label_encoded(tmp_path):
    cv2.imwrite(str(tmp_path / "t16.png"), np.array([[0, 32896, 65535]], np.uint16))
    np.testing.assert_array_equal(read_trimap(tmp_path / "t16.png"), [[0, 128, 255]])
    Image.fromarray(np.array([[0, 1, 2]], np.uint8), "L").save(tmp_path / "labels.png")
    with pytest.raises(MattingInputError, match="labels.png.*label-encoded"):
        read_trimap(tmp_path / "labels.png")


def test_normalise_trimap_float_scales():
    np.testing.assert_array_equal(normalise_trimap(np.array([[0.0, 0.5, 1.0]])), [[0, 128, 255]])
    np.testing.assert_array_equal(normalise_trimap(np.array([[0.0, 128.0, 255.0]], np.float32)), [[0, 128, 255]])


# ---------------------------------------------------------------------------- write_png


def test_write_png_round_trip_and_rounding(tmp_path):
    alpha = np.array([[0.0, 0.5, 1.0, 0.2]], np.float32)
    path = write_png(tmp_path / "sub" / "a.png", alpha)
    np.testing.assert_array_equal(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), [[0, 128, 255, 51]])
    np.testing.assert_array_equal(read_alpha(path) * 255, np.rint(alpha * 255))
    np.testing.assert_array_equal(to_uint8(alpha), [[0, 128, 255, 51]])
    assert [p.name for p in path.parent.iterdir()] == ["a.png"]  # no temporary file left


def test_write_png_rgb_and_rgba_order(tmp_path):
    rgb = np.zeros((1, 2, 3), np.uint8)
    rgb[0, 0, 0] = 255
    write_png(tmp_path / "rgb.png", rgb)
    np.testing.assert_array_equal(read_image(tmp_path / "rgb.png")[0, 0], [1, 0, 0])
    rgba = np.zeros((1, 1, 4), np.float32)
    rgba[..., 2] = 1.0
    rgba[..., 3] = 0.5
    write_png(tmp_path / "rgba.png", rgba)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "rgba.png")), [[[0, 0, 255, 128]]])


def test_write_png_refuses_overwrite_and_bad_values(tmp_path):
    write_png(tmp_path / "a.png", np.zeros((2, 2), np.float32))
    with pytest.raises(MattingInputError, match="a.png.*exists"):
        write_png(tmp_path / "a.png", np.ones((2, 2), np.float32))
    write_png(tmp_path / "a.png", np.ones((2, 2), np.float32), overwrite=True)
    assert read_alpha(tmp_path / "a.png").min() == 1.0
    with pytest.raises(MattingInputError, match="outside"):
        write_png(tmp_path / "b.png", np.full((2, 2), 255.0))
    with pytest.raises(MattingInputError, match="NaN"):
        write_png(tmp_path / "c.png", np.array([[np.nan, 0.5]]))
    assert not (tmp_path / "b.png").exists() and not (tmp_path / "c.png").exists()


# ---------------------------------------------------------------------------- list_images


def test_list_images(tmp_path):
    for name in ("b.png", "a.JPG", "c.tiff", "notes.txt", ".hidden.png"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "folder.png").mkdir()
    found = list_images(tmp_path)
    assert list(found) == ["a", "b", "c"]
    assert found["a"] == tmp_path / "a.JPG"


def test_list_images_duplicate_stems_and_missing_dir(tmp_path):
    (tmp_path / "x.png").write_bytes(b"x")
    (tmp_path / "x.jpg").write_bytes(b"x")
    with pytest.raises(MattingInputError, match=r"x\.jpg.*x\.png|x\.png.*x\.jpg"):
        list_images(tmp_path)
    with pytest.raises(MattingInputError, match="nowhere"):
        list_images(tmp_path / "nowhere")


def test_write_png_uses_normal_file_permissions(tmp_path):
    import os

    umask = os.umask(0o022)
    os.umask(umask)
    path = write_png(tmp_path / "a.png", np.zeros((2, 2), np.float32))
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


# ---------------------------------------------------------------------------- limits: pixels, 0/1 alphas, links, damaged PNGs


def _png_claiming(path: Path, width: int, height: int) -> Path:
    """A PNG whose header says ``width`` x ``height`` RGB but whose image data is a few bytes."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)))
    return path


@pytest.fixture
def default_limits(monkeypatch):
    """The default pixel limit and alpha scale for the test, whatever a command set before."""
    from matting.io.limits import ENV_ALPHA_SCALE, ENV_MAX_PIXELS

    monkeypatch.delenv(ENV_MAX_PIXELS, raising=False)
    monkeypatch.delenv(ENV_ALPHA_SCALE, raising=False)


def test_every_reader_refuses_an_image_over_the_pixel_limit(tmp_path, monkeypatch, default_limits):
    from matting.data.composite import read_background
    from matting.data.manifest import image_size
    from matting.io.limits import set_max_pixels

    path = tmp_path / "photo.png"
    Image.fromarray(np.full((6, 8), 200, np.uint8), "L").save(path)
    set_max_pixels(47)
    expected = "photo.png: 8x6 pixels (4.8e-05 MP) is over the limit of 4.7e-05 MP; pass --max-pixels 48"
    for reader in (read_image, read_alpha, read_trimap, image_size, read_background):
        with pytest.raises(MattingInputError, match=re.escape(expected)):
            reader(path)
    set_max_pixels(48)
    assert read_image(path).shape == (6, 8, 3) and image_size(path) == (8, 6)
    set_max_pixels(0)  # no limit
    assert read_alpha(path).shape == (6, 8)
    set_max_pixels(None)
    assert read_trimap(path).shape == (6, 8)


def test_pixel_limit_is_checked_from_the_header_before_decoding(tmp_path, monkeypatch, default_limits):
    path = _png_claiming(tmp_path / "bomb.png", 20000, 20000)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded before the pixel limit was checked")

    monkeypatch.setattr(cv2, "imdecode", no_decoding)
    with pytest.raises(MattingInputError) as info:
        read_image(path)
    assert str(info.value) == (f"{path}: 20000x20000 pixels (400 MP) is over the limit of 200 MP; "
                               "pass --max-pixels 400000000 (or set MATTING_MAX_PIXELS=400000000) to read it")


@pytest.mark.slow
def test_the_limit_setting_reaches_spawned_worker_processes(default_limits):
    import multiprocessing

    from matting.io.limits import (
        alpha_scale,
        max_pixels,
        set_alpha_scale,
        set_max_pixels,
    )

    set_max_pixels(1234)
    set_alpha_scale("1")
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        assert pool.apply(max_pixels) == 1234
        assert pool.apply(alpha_scale) == "1"


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_alpha_stored_as_0_and_1_is_refused_or_scaled(tmp_path, dtype, default_limits):
    from matting.io.limits import set_alpha_scale

    mask = np.zeros((4, 5), dtype)
    mask[1:3, 1:4] = 1
    path = tmp_path / "mask.png"
    cv2.imwrite(str(path), mask)
    with pytest.raises(MattingInputError, match=r"mask\.png: alpha matte holds only the values 0 and 1.*--alpha-scale 1"):
        read_alpha(path)
    np.testing.assert_array_equal(read_alpha(path, scale="1"), mask.astype(np.float32))
    assert read_alpha(path, scale="255").max() == np.float32(1) / np.float32(np.iinfo(dtype).max)
    set_alpha_scale("1")  # the setting the commands' --alpha-scale puts in force
    np.testing.assert_array_equal(read_alpha(path), mask.astype(np.float32))
    full = tmp_path / "full.png"
    cv2.imwrite(str(full), mask * np.iinfo(dtype).max)
    np.testing.assert_array_equal(read_alpha(full), mask.astype(np.float32))  # full range: read as it is


def test_empty_and_binary_0_255_alphas_are_still_accepted(tmp_path, default_limits):
    empty, binary = tmp_path / "empty.png", tmp_path / "binary.png"
    cv2.imwrite(str(empty), np.zeros((3, 3), np.uint8))
    cv2.imwrite(str(binary), np.array([[0, 255, 0]], np.uint8))
    assert read_alpha(empty).max() == 0
    np.testing.assert_array_equal(read_alpha(binary), [[0, 1, 0]])


def test_dangling_link_is_listed_and_reported_with_its_target(tmp_path, default_limits):
    from matting.io.pairing import collect_inputs

    Image.fromarray(GRAY, "L").save(tmp_path / "real.png")
    link = tmp_path / "gone.png"
    link.symlink_to(tmp_path / "moved" / "gone.png")
    assert list_images(tmp_path) == {"gone": link, "real": tmp_path / "real.png"}
    expected = f"{link}: dangling symbolic link to {tmp_path / 'moved' / 'gone.png'}"
    with pytest.raises(MattingInputError, match=re.escape(expected)):
        read_alpha(link)
    for item in (tmp_path, link, tmp_path / "*.png"):
        paths, problems = collect_inputs([str(item)])
        assert [p.name for p in paths] == ([] if item == link else ["real.png"])
        assert len(problems) == 1 and problems[0].startswith(expected), problems


@pytest.mark.parametrize("cut", [1, 12, 13, 200, 2000])
def test_truncated_png_gives_one_message_and_nothing_from_libpng(tmp_path, capfd, cut, default_limits):
    rng = np.random.default_rng(0)
    full = tmp_path / "full.png"
    cv2.imwrite(str(full), rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    data = full.read_bytes()
    path = tmp_path / "cut.png"
    path.write_bytes(data[:-cut])
    capfd.readouterr()
    for reader in (read_image, read_alpha, read_trimap):
        with pytest.raises(MattingInputError, match=r"cut\.png: not a readable image \(damaged or truncated PNG"):
            reader(path)
    assert capfd.readouterr().err == ""
