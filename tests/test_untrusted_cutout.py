"""Cutouts are fully transparent where the matte is nearly 0; the matte itself keeps every level."""

from __future__ import annotations

import numpy as np

from matting.inference.cutout import CUTOUT_CLEAR_BELOW, cutout_rgba


def test_a_cutouts_faintest_alpha_is_cleared_and_its_colour_with_it():
    levels = np.array([[0, 3, 4, 7, 8, 200, 255]], np.uint8)  # 3-4/255: a network's typical background
    foreground = np.full((1, 7, 3), 0.5, np.float32)
    rgba = cutout_rgba(foreground, levels)
    assert CUTOUT_CLEAR_BELOW == 8  # the README states it
    assert rgba[0, :, 3].tolist() == [0, 0, 0, 0, 8, 200, 255]
    assert rgba[0, :4, :3].max() == 0 and (rgba[0, 4:, :3] == 128).all()
    assert levels.tolist() == [[0, 3, 4, 7, 8, 200, 255]]  # the matte handed in is not changed
