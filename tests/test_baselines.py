import numpy as np

from matting.baselines import (
    ColorThresholdRemover,
    ConstantAlpha,
    best_constant,
    tune_threshold,
)


def _scene():
    """Flat blue background, a red square subject in the middle."""
    image = np.zeros((64, 64, 3), np.uint8)
    image[:] = (20, 40, 200)
    image[16:48, 24:40] = (200, 30, 30)
    alpha = np.zeros((64, 64), np.float32)
    alpha[16:48, 24:40] = 1
    return image, alpha


def test_samples_come_from_the_border_strips():
    image = np.zeros((64, 128, 3), np.uint8)
    image[:, :16] = image[:, 112:] = (20, 40, 200)  # only the 1/8 strips carry the colour
    colours = ColorThresholdRemover(n_samples=16).sample_colours(image)
    assert colours.shape == (16, 3)
    assert np.allclose(colours, (20, 40, 200))


def test_flat_background_is_removed_exactly():
    image, alpha = _scene()
    pred = ColorThresholdRemover(threshold=10).predict(image)
    assert pred.dtype == np.float32
    assert np.array_equal(pred, alpha)


def test_threshold_too_wide_swallows_the_subject_and_tuning_avoids_it():
    image, alpha = _scene()
    assert ColorThresholdRemover(threshold=250).predict(image).sum() == 0
    sad = lambda p, g: float(np.abs(p - g).sum())
    remover, curve = tune_threshold([image], [alpha], score=sad, thresholds=[5, 50, 250])
    assert remover.threshold in (5, 50)
    assert dict(curve)[250] == alpha.sum()


def test_best_constant_picks_the_majority():
    mostly_bg = [np.zeros((8, 8), np.float32)]
    mostly_fg = [np.ones((8, 8), np.float32)]
    sad = lambda p, g: float(np.abs(p - g).sum())
    assert best_constant(mostly_bg, sad).value == 0.0
    assert best_constant(mostly_fg, sad).value == 1.0
    assert ConstantAlpha(1.0).predict(np.zeros((3, 5, 3))).shape == (3, 5)
