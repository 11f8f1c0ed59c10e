"""Compositing, the Composition-1k reconstruction, trimap generators and the augmentation steps."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from PIL import Image

from matting.data.augment import (
    Augment,
    affine_matrix,
    crop_box,
    hsv_jitter,
    joint_noise,
    jpeg_recompress,
    sharpen,
    warp_alpha,
)
from matting.data.composite import (
    comp1k_background,
    comp1k_composite,
    comp1k_from_files,
    composite,
    merge_foregrounds,
    random_background_crop,
    read_background,
)
from matting.data.trimap import (
    band_trimap,
    dim_trimap,
    gfm_trimap,
    make_trimap,
    modnet_trimap,
)
from matting.io.errors import MattingInputError


def _soft_alpha(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    """A disc with a soft rim plus thin soft strands: many strictly fractional pixels."""
    rng = np.random.default_rng(seed)
    alpha = np.zeros((h, w), np.float32)
    cv2.circle(alpha, (w // 2, h // 2), min(h, w) // 4, 1.0, -1)
    for _ in range(40):
        angle = rng.uniform(0, 2 * np.pi)
        x0, y0 = w / 2 + h / 4 * np.cos(angle), h / 2 + h / 4 * np.sin(angle)
        cv2.line(alpha, (int(x0), int(y0)), (int(x0 + 20 * np.cos(angle)), int(y0 + 20 * np.sin(angle))),
                 float(rng.uniform(0.2, 0.8)), 1, cv2.LINE_AA)
    return np.clip(cv2.GaussianBlur(alpha, (0, 0), 1.0), 0, 1)


def _fractional(alpha: np.ndarray) -> int:
    return int(((alpha > 0.5 / 255) & (alpha < 1 - 0.5 / 255)).sum())


# ---------------------------------------------------------------------------- Composition-1k


def test_comp1k_composite_truncates_like_the_official_script():
    # Hand-computed: a = 100 -> 100/255 * 200 + 155/255 * 10 = 78.431 + 6.078 = 84.51 -> 84 (rounding would give 85)
    #                a = 254 -> 254/255 * 30 + 1/255 * 250 = 29.882 + 0.980 = 30.86 -> 30
    #                a = 1   -> 1/255 * 255 + 254/255 * 0 = 1.0 -> 1;  a = 0 -> B;  a = 255 -> F
    fg = np.array([[[200, 0, 0], [30, 0, 0], [255, 0, 0], [9, 0, 0], [77, 0, 0]]], np.uint8)
    bg = np.array([[[10, 0, 0], [250, 0, 0], [0, 0, 0], [123, 0, 0], [5, 0, 0]]], np.uint8)
    alpha = np.array([[100, 254, 1, 0, 255]], np.uint8)
    out = comp1k_composite(fg, alpha, bg)
    assert out[0, :, 0].tolist() == [84, 30, 1, 123, 77]
    assert out.dtype == np.uint8


def test_comp1k_background_upscales_bicubic_only_when_smaller():
    small = Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8))
    out = comp1k_background(small, width=50, height=45)  # ratio = max(50/40, 45/30) = 1.5 -> 60 x 45
    expected = small.resize((math.ceil(40 * 1.5), math.ceil(30 * 1.5)), Image.BICUBIC).crop((0, 0, 50, 45))
    assert out.size == (50, 45)
    assert np.array_equal(np.asarray(out), np.asarray(expected))
    large = Image.fromarray(np.random.default_rng(1).integers(0, 256, (80, 90, 3), dtype=np.uint8))
    assert np.array_equal(np.asarray(comp1k_background(large, 50, 45)), np.asarray(large)[:45, :50])  # top-left crop
    gray = Image.fromarray(np.full((60, 60), 77, np.uint8))  # 'L' backgrounds become RGB
    assert np.asarray(comp1k_background(gray, 10, 10)).shape == (10, 10, 3)


def test_comp1k_from_files_matches_a_per_pixel_reference(tmp_path):
    rng = np.random.default_rng(3)
    fg = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, (20, 24), dtype=np.uint8)
    bg = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    Image.fromarray(fg).save(tmp_path / "fg.png")
    Image.fromarray(np.dstack([alpha] * 3)).save(tmp_path / "alpha.png")  # RGB alpha, as shipped
    Image.fromarray(bg).save(tmp_path / "bg.jpg", quality=95)
    image, alpha_out, _, bg_fit = comp1k_from_files(tmp_path / "fg.png", tmp_path / "alpha.png", tmp_path / "bg.jpg")
    assert np.array_equal(alpha_out, alpha)
    bg_pil = Image.open(tmp_path / "bg.jpg").convert("RGB")
    ratio = max(24 / 11, 20 / 9)
    reference_bg = np.asarray(bg_pil.resize((math.ceil(11 * ratio), math.ceil(9 * ratio)), Image.BICUBIC).crop((0, 0, 24, 20)))
    assert np.array_equal(bg_fit, reference_bg)
    for y, x, c in [(0, 0, 0), (5, 7, 1), (19, 23, 2), (11, 3, 0)]:  # the official loop, pixel by pixel
        a = alpha[y, x] / 255
        expected = int(fg[y, x, c]) if a >= 1 else int(a * fg[y, x, c] + (1 - a) * reference_bg[y, x, c])
        assert image[y, x, c] == expected


# ---------------------------------------------------------------------------- compositing


def test_composite_and_two_foreground_merge_are_layerings():
    rng = np.random.default_rng(0)
    f1, f2, b = (rng.random((8, 9, 3), dtype=np.float32) for _ in range(3))
    a1, a2 = rng.random((8, 9), dtype=np.float32), rng.random((8, 9), dtype=np.float32)
    fg, alpha = merge_foregrounds(f1, a1, f2, a2)
    behind = composite(f2, a2, b)  # F2 over B, then F1 over that
    assert np.allclose(composite(fg, alpha, b), composite(f1, a1, behind), atol=1e-5)
    assert np.allclose(alpha, 1 - (1 - a1) * (1 - a2))


def test_background_crop_keeps_aspect_and_reduced_decoding(tmp_path):
    rng = np.random.default_rng(0)
    big = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    path = tmp_path / "bg.jpg"
    cv2.imwrite(str(path), big)
    reduced = read_background(path, 64, 64, size=(640, 480))
    assert reduced.shape == (120, 160, 3)  # decoded at 1/4 in the DCT domain, still >= 1.5 x 64
    assert read_background(path).shape == (480, 640, 3)
    out = random_background_crop(reduced, 40, 50, rng)
    assert out.shape == (40, 50, 3) and 0 <= out.min() and out.max() <= 1


# ---------------------------------------------------------------------------- trimaps


@pytest.mark.parametrize("kind", ["dim", "gfm", "modnet", "band"])
def test_trimaps_mark_every_soft_pixel_unknown_and_agree_with_alpha(kind):
    alpha = _soft_alpha(192, 256)
    trimap = make_trimap(kind, alpha, np.random.default_rng(1))
    assert set(np.unique(trimap)) == {0, 128, 255}
    soft = (alpha > 0.5 / 255) & (alpha < 0.9)
    assert (trimap[soft] == 128).all()
    assert (alpha[trimap == 255] > 0.89).all() and (alpha[trimap == 0] <= 0.5 / 255).all()


def test_trimap_widths_follow_each_recipe():
    alpha = np.zeros((256, 256), np.float32)
    alpha[64:192, 64:192] = 1.0  # a hard square: the unknown band comes from the kernels alone
    width = lambda t: int((t[t.shape[0] // 2] == 128).sum())  # unknown pixels on the middle row
    assert width(gfm_trimap(alpha, kernel=25)) == 2 * 24  # 12 px eroded + 12 px dilated on each of two edges
    dims = {width(dim_trimap(alpha, np.random.default_rng(s))) for s in range(20)}
    assert len(dims) > 5 and max(dims) <= 2 * 29  # random kernels up to 29 px (at 640 px; smaller here)
    small, large = modnet_trimap(alpha, np.random.default_rng(0)), modnet_trimap(cv2.resize(alpha, (1024, 1024)), np.random.default_rng(0))
    assert width(large) > 3 * width(small)  # size-relative: long side // 256 * randint(10, 20)
    assert width(band_trimap(alpha, 25)) == 0  # no soft pixels: nothing to dilate


# ---------------------------------------------------------------------------- geometry keeps alpha soft


def test_affine_keeps_soft_alpha_soft_whatever_the_colour_interpolation():
    alpha = _soft_alpha()
    before = _fractional(alpha)
    augment = Augment(p_resize=0.0, p_affine=1.0, degrees=30, scale=(1.0, 1.0), shear=10, random_interpolation=True)
    fg = np.random.default_rng(0).random((*alpha.shape, 3), dtype=np.float32)
    for seed in range(12):  # random interpolations include nearest for the colours
        out, colours = augment.geometry(np.random.default_rng(seed), alpha, {"fg": fg})
        assert colours["fg"].shape[:2] == out.shape
        assert _fractional(out) > 0.9 * before, (seed, _fractional(out), before)
        assert len(np.unique(out)) > 200
    hard = (alpha > 0.5).astype(np.float32)  # a hard edge gains fractional pixels: interpolated, not nearest
    matrix, h, w = affine_matrix(np.random.default_rng(0), *hard.shape, degrees=30, scale=(1, 1), shear=0, p_flip=0)
    assert _fractional(hard) == 0 and _fractional(warp_alpha(hard, matrix, h, w)) > 50
    nearest = cv2.warpAffine(hard, matrix, (w, h), flags=cv2.INTER_NEAREST)  # what a default mask key does
    assert _fractional(nearest) == 0


def test_affine_output_contains_the_whole_foreground():
    alpha = np.zeros((60, 200), np.float32)
    alpha[20:40, 10:190] = 1.0
    matrix, h, w = affine_matrix(np.random.default_rng(0), 60, 200, degrees=30, scale=(1.2, 1.25), shear=10, p_flip=1.0)
    out = warp_alpha(alpha, matrix, h, w)
    assert abs(out.sum() / alpha.sum() - abs(np.linalg.det(matrix[:, :2]))) < 0.02  # nothing cut off


def test_crop_is_centred_on_the_unknown_region_with_fallbacks():
    alpha = np.zeros((400, 400), np.float32)
    alpha[300:360, 300:360] = 0.5  # the only soft region, far from the centre
    trimap = make_trimap("band", alpha)
    for seed in range(10):
        y, x, centred = crop_box(trimap, 64, np.random.default_rng(seed))
        assert centred and (trimap[y:y + 64, x:x + 64] == 128).any()
    solid = np.full((100, 100), 255, np.uint8)  # no unknown pixel: random crop inside the image
    y, x, centred = crop_box(solid, 64, np.random.default_rng(0))
    assert not centred and 0 <= y <= 36 and 0 <= x <= 36
    augment = Augment()
    small = _soft_alpha(30, 40)  # smaller than the crop: upscaled first, alpha stays soft
    out, trimap, colours = augment.crop(np.random.default_rng(0), 64, small, {"fg": np.ones((30, 40, 3), np.float32)})
    assert out.shape == trimap.shape == (64, 64) and colours["fg"].shape == (64, 64, 3)
    assert _fractional(out) > 0


def test_scale_range_keeps_aspect_and_small_subjects_stay_small():
    augment = Augment(p_resize=1.0, resize_side=(20, 200), p_affine=0.0, p_flip=0.0, pad_small=True)
    sides = []
    for seed in range(40):
        h, w = augment.resized_shape(np.random.default_rng(seed), 300, 400)
        assert 20 <= max(h, w) <= 200 and abs(h / w - 0.75) < 0.06
        sides.append(max(h, w))
    assert min(sides) < 45 and max(sides) > 130  # log-uniform: both ends are drawn
    small = _soft_alpha(30, 40)
    out, trimap, colours = augment.crop(np.random.default_rng(1), 64, small, {"fg": np.ones((30, 40, 3), np.float32)})
    assert out.shape == (64, 64) and colours["fg"].shape == (64, 64, 3)
    assert out.sum() == pytest.approx(small.sum(), rel=1e-6)  # placed whole, not upscaled
    with pytest.raises(MattingInputError, match="resize_side"):
        Augment(resize_side=(50, 10))


def test_random_crops_cut_the_subject_anywhere():
    alpha = np.zeros((400, 400), np.float32)
    alpha[300:360, 300:360] = 0.5  # the soft region a centred crop always holds
    colours = {"fg": np.ones((400, 400, 3), np.float32)}
    held = [(Augment(p_random_crop=1.0).crop(np.random.default_rng(s), 64, alpha, colours)[0] > 0).any() for s in range(20)]
    assert not all(held)
    centred = [(Augment().crop(np.random.default_rng(s), 64, alpha, colours)[0] > 0).any() for s in range(20)]
    assert all(centred)


# ---------------------------------------------------------------------------- colour and degradations


def test_hsv_jitter_changes_colours_within_range_and_keeps_layers_consistent():
    rng = np.random.default_rng(0)
    fg = rng.random((16, 16, 3), dtype=np.float32) * 0.8 + 0.1
    alpha = np.ones((16, 16), np.float32)
    out, same = hsv_jitter(fg, alpha, np.random.default_rng(1), 40.0, also=(fg.copy(),))
    assert out.shape == fg.shape and 0 <= out.min() and out.max() <= 1
    assert np.abs(out - fg).mean() > 0.01
    assert np.array_equal(out, same)  # one draw for every layer


def test_joint_noise_keeps_the_composite_equation():
    rng = np.random.default_rng(0)
    fg, bg = np.full((32, 32, 3), 0.5, np.float32), np.full((32, 32, 3), 0.4, np.float32)
    alpha = rng.random((32, 32), dtype=np.float32)
    noisy_fg, noisy_bg = joint_noise(np.random.default_rng(1), 10 / 255, fg, bg)
    image = composite(fg, alpha, bg)
    noisy_image = joint_noise(np.random.default_rng(1), 10 / 255, image)[0]
    assert np.allclose(composite(noisy_fg, alpha, noisy_bg), noisy_image, atol=1e-5)
    assert 0.02 < np.abs(noisy_fg - fg).mean() < 0.05


def test_jpeg_and_sharpen_change_the_image_modestly():
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.random((64, 64, 3), dtype=np.float32), (0, 0), 2)
    low, high = jpeg_recompress(image, 20), jpeg_recompress(image, 95)
    assert np.abs(low - image).mean() > np.abs(high - image).mean() > 0
    sharp = sharpen(image, 5, 0.5)
    assert sharp.std() > image.std() and 0 <= sharp.min() and sharp.max() <= 1
