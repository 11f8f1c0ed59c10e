"""Foreground colour estimation (multi-level, Germer et al. 2020) on synthetic composites with known F and B."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from matting.foreground import estimate_foreground


def _scene(height: int = 96, width: int = 128, seed: int = 0):
    """Smoothly varying F and B of different hues, and an alpha with a solid body and thin soft strands."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) / max(height, width)
    fg = np.stack([0.85 + 0.1 * np.sin(6 * xx), 0.35 + 0.15 * np.cos(5 * yy), 0.2 + 0.1 * xx], -1).astype(np.float32)
    bg = np.stack([0.1 + 0.05 * yy, 0.75 + 0.15 * np.sin(4 * xx + 2 * yy), 0.25 + 0.3 * yy], -1).astype(np.float32)
    alpha = np.zeros((height, width), np.float32)
    cx, cy, r = width // 2, height // 2, min(height, width) // 4
    cv2.circle(alpha, (cx, cy), r, 1.0, -1)
    for _ in range(60):  # hair: thin strands of partial opacity around the body
        angle = rng.uniform(0, 2 * np.pi)
        x0, y0 = cx + r * np.cos(angle), cy + r * np.sin(angle)
        length = rng.uniform(8, 25)
        x1, y1 = x0 + length * np.cos(angle), y0 + length * np.sin(angle)
        cv2.line(alpha, (int(x0), int(y0)), (int(x1), int(y1)), float(rng.uniform(0.3, 1.0)), 1, cv2.LINE_AA)
    alpha = np.clip(cv2.GaussianBlur(alpha, (0, 0), 0.8), 0, 1)
    image = alpha[..., None] * fg + (1 - alpha[..., None]) * bg
    return image.astype(np.float32), alpha, fg, bg


def test_recovers_known_foreground_better_than_raw_colours():
    image, alpha, fg, _ = _scene()
    estimate = estimate_foreground(image, alpha)
    soft = (alpha > 0.05) & (alpha < 0.95)
    assert soft.sum() > 200  # the scene really has a transition band
    error = np.abs(estimate - fg)[soft].mean()
    raw_error = np.abs(image - fg)[soft].mean()  # the naive cutout: F = I
    assert error < 0.25 * raw_error, (error, raw_error)
    assert error < 0.06
    # Where alpha is 1, F is the image itself.
    solid = alpha > 0.999
    assert np.abs(estimate - image)[solid].max() < 0.02


def test_background_and_recomposition():
    image, alpha, _, bg = _scene(64, 80, seed=1)
    fg_est, bg_est = estimate_foreground(image, alpha, return_background=True)
    assert fg_est.shape == bg_est.shape == image.shape
    assert fg_est.dtype == bg_est.dtype == np.float32
    assert 0.0 <= fg_est.min() and fg_est.max() <= 1.0
    recomposed = alpha[..., None] * fg_est + (1 - alpha[..., None]) * bg_est
    assert np.abs(recomposed - image).max() < 0.02  # the data term holds
    clear = alpha < 0.001
    assert np.abs(bg_est - bg)[clear].mean() < 0.01


def test_constant_layers_are_recovered_exactly_enough():
    h, w = 40, 52
    alpha = np.tile(np.linspace(0, 1, w, dtype=np.float32), (h, 1))  # a soft ramp across the image
    fg, bg = np.array([0.9, 0.2, 0.1], np.float32), np.array([0.1, 0.3, 0.9], np.float32)
    image = alpha[..., None] * fg + (1 - alpha[..., None]) * bg
    estimate = estimate_foreground(image, alpha)
    band = (alpha > 0.1) & (alpha < 0.9)
    assert np.abs(estimate - fg)[band].max() < 0.02


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_degenerate_alpha_and_tiny_images(value):
    rng = np.random.default_rng(0)
    image = rng.random((7, 5, 3), dtype=np.float32)
    out = estimate_foreground(image, np.full((7, 5), value, np.float32))
    assert out.shape == (7, 5, 3) and np.isfinite(out).all()
    if value == 1.0:
        assert np.abs(out - image).max() < 1e-3
    single = estimate_foreground(image[:1, :1], np.ones((1, 1), np.float32))
    assert single.shape == (1, 1, 3)


def test_tiles_give_the_same_result_as_the_whole_image():
    image, alpha, _, _ = _scene(53, 71, seed=2)
    whole = estimate_foreground(image, alpha, tile=4096)
    tiled = estimate_foreground(image, alpha, tile=16)  # odd tile offsets, levels above 16 x 16 tiled
    assert np.abs(whole - tiled).max() < 1e-6


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="expected image"):
        estimate_foreground(np.zeros((4, 4, 3), np.float32), np.zeros((4, 5), np.float32))
