"""Per-image matting metrics: SAD, MSE, MAD, Grad and Conn, with the official MATLAB definitions.

Inputs are alpha mattes as arrays (H, W) in [0, 1]; ``mask`` is an (H, W) bool map of the pixels
counted, ``None`` the whole image. Every per-pixel quantity is computed in float32, as the
official Composition-1k MATLAB code does with ``single``; sums are accumulated in float64
(MATLAB's summation order for ``single`` is unspecified, and the float64 sum is the exact sum of
the float32 terms to within rounding). The scale of each returned value is tabulated in
:mod:`matting.metrics`.

Grad follows compute_gradient_loss.m and gaussgradient.m: each map is min-max normalised over
the whole image (``mat2gray``; a constant map has zero gradient either way), then filtered with
the 9x9 derivative-of-Gaussian kernel (sigma 1.4, epsilon 1e-2 -> half-size 4), L2-normalised,
with replicated borders. The kernel is separable (a Gaussian times its derivative), so it is
applied as two 1-D passes in float64 (MATLAB filters the double output of ``mat2gray``); the
amplitudes are then rounded to float32 before the squared difference. Filtering correlates
rather than convolves: that flips the sign of the derivative only, not the amplitude.

Conn follows compute_connectivity_error.m: thresholds 0, step, ..., 1 (11 levels for 0.1) as
float32, so an 8-bit alpha of 153 passes the 0.6 threshold as it does in MATLAB (in float64,
6 * 0.1 > 153 / 255 and it would not). At each level the largest 4-connected component of
``pred >= t & gt >= t`` (background excluded) is found; a pixel's level l is the threshold
before the first level at which it leaves that component (1 if it never does);
``d = alpha - l`` and ``phi = 1 - d * [d >= 0.15]``. Equal-size largest components: MATLAB's
``bwconncomp`` numbers components in column-major order of their first pixel and ``max`` keeps
the first, so the tie goes to the component met first in a column-major scan. (OpenCV numbers
labels in row-major order of their first pixel, so its label order cannot be used as is.)
When no pixel reaches a level in both maps there is no component: the largest-component map
is empty and every pixel still unassigned takes the previous threshold, as an emptiness check
around MATLAB's ``omega(cc.PixelIdxList{max_id}) = 1`` would give (docs/metrics.md).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from matting.io.errors import MattingInputError

GRAD_SIGMA = 1.4
GRAD_EPSILON = 1e-2
CONN_STEP = 0.1
CONN_PHI_THRESHOLD = np.float32(0.15)
# Tolerance for inputs that should lie in [0, 1] (float rounding of a sigmoid, float16 casts).
RANGE_TOLERANCE = 1e-3

__all__ = ["conn", "grad", "mad", "mse", "sad"]


# ---------------------------------------------------------------------------- input checks


def _as_alpha(array, name: str) -> np.ndarray:
    """Return ``array`` as a float32 (H, W) map, checking it is finite and in [0, 1]."""
    array = np.asarray(array, dtype=np.float32)
    if array.ndim != 2:
        raise MattingInputError(f"{name}: expected an (H, W) alpha map, got shape {array.shape}")
    if array.size:
        low, high = float(array.min()), float(array.max())
        if not (low >= -RANGE_TOLERANCE and high <= 1 + RANGE_TOLERANCE):  # also catches NaN
            raise MattingInputError(
                f"{name}: values must be finite and in [0, 1], got min {low:g}, max {high:g}"
            )
    return array


def _prepare(pred_alpha, gt_alpha, mask):
    """Validate a (pred, gt, mask) triple; returns float32 maps and a bool mask or None."""
    pred = _as_alpha(pred_alpha, "pred_alpha")
    gt = _as_alpha(gt_alpha, "gt_alpha")
    if pred.shape != gt.shape:
        raise MattingInputError(f"pred_alpha has shape {pred.shape} but gt_alpha has {gt.shape}")
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != pred.shape:
            raise MattingInputError(f"mask has shape {mask.shape} but the alpha maps have {pred.shape}")
    return pred, gt, mask


def _masked_sum(values: np.ndarray, mask: np.ndarray | None) -> float:
    """float64 sum of ``values`` over ``mask`` (all pixels when None)."""
    if mask is None:
        return float(values.sum(dtype=np.float64))
    return float(values[mask].sum(dtype=np.float64))


def _count(mask: np.ndarray | None, shape) -> int:
    return int(np.prod(shape)) if mask is None else int(np.count_nonzero(mask))


# ---------------------------------------------------------------------------- SAD, MSE, MAD
# Public functions validate their inputs; the underscored kernels trust them (compute_metrics
# validates once per image).


def _sad(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None) -> float:
    return _masked_sum(np.abs(pred - gt), mask) / 1000.0


def _mse(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None) -> float:
    count = _count(mask, pred.shape)
    diff = pred - gt
    return _masked_sum(diff * diff, mask) / count if count else 0.0


def _mad(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None) -> float:
    count = _count(mask, pred.shape)
    return _masked_sum(np.abs(pred - gt), mask) / count if count else 0.0


def sad(pred_alpha, gt_alpha, mask=None) -> float:
    """Sum of absolute differences over ``mask``, divided by 1000.

    Args:
        pred_alpha, gt_alpha: (H, W) float in [0, 1].
        mask: (H, W) bool, pixels counted; None = whole image.
    """
    return _sad(*_prepare(pred_alpha, gt_alpha, mask))


def mse(pred_alpha, gt_alpha, mask=None) -> float:
    """Mean squared difference over ``mask`` (raw, alpha in [0, 1]); 0 for an empty mask."""
    return _mse(*_prepare(pred_alpha, gt_alpha, mask))


def mad(pred_alpha, gt_alpha, mask=None) -> float:
    """Mean absolute difference over ``mask`` (raw, alpha in [0, 1]); 0 for an empty mask."""
    return _mad(*_prepare(pred_alpha, gt_alpha, mask))


# ---------------------------------------------------------------------------- Grad


def _gradient_kernels(sigma: float = GRAD_SIGMA, epsilon: float = GRAD_EPSILON):
    """1-D factors of gaussgradient.m's kernel hx(i, j) = G(i) dG(j), L2-normalised.

    Returns (smooth, derivative), float64 vectors of length 2 * half + 1 (9 for sigma 1.4).
    ||hx||_F = ||G|| ||dG||, so normalising each factor normalises the 2-D kernel.
    """
    half = math.ceil(sigma * math.sqrt(-2.0 * math.log(math.sqrt(2.0 * math.pi) * sigma * epsilon)))
    x = np.arange(-half, half + 1, dtype=np.float64)
    gauss = np.exp(-(x**2) / (2.0 * sigma**2)) / (sigma * math.sqrt(2.0 * math.pi))
    dgauss = -x * gauss / sigma**2
    return gauss / np.linalg.norm(gauss), dgauss / np.linalg.norm(dgauss)


_SMOOTH, _DERIVATIVE = _gradient_kernels()
_GRAD_HALF = len(_SMOOTH) // 2


def _gradient_amplitude(image: np.ndarray) -> np.ndarray:
    """sqrt(gx^2 + gy^2) of a float64 (H, W) map with replicated borders, rounded to float32."""
    gx = cv2.sepFilter2D(image, cv2.CV_64F, _DERIVATIVE, _SMOOTH, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.sepFilter2D(image, cv2.CV_64F, _SMOOTH, _DERIVATIVE, borderType=cv2.BORDER_REPLICATE)
    return cv2.magnitude(gx, gy).astype(np.float32)


def _mat2gray(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """MATLAB ``mat2gray`` with the whole image's range [low, high], in float64."""
    image = image.astype(np.float64)
    if high > low and (low, high) != (0.0, 1.0):
        image = (image - low) / (high - low)
    return image


def _bounding_window(mask: np.ndarray, margin: int):
    """(outer, inner) slices: the mask's bounding box grown by ``margin`` (clipped to the image),
    and the box itself relative to that window. None when the mask is empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    top, bottom = max(r0 - margin, 0), min(r1 + margin, mask.shape[0])
    left, right = max(c0 - margin, 0), min(c1 + margin, mask.shape[1])
    outer = (slice(top, bottom), slice(left, right))
    inner = (slice(r0 - top, r1 - top), slice(c0 - left, c1 - left))
    return outer, inner


def _grad(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None) -> float:
    # mat2gray normalises by the whole image's range, taken before any cropping.
    ranges = [(float(a.min()), float(a.max())) for a in (pred, gt)]
    inner = (slice(None), slice(None))
    if mask is not None:
        # The kernel reaches 4 px, so only the mask's bounding box grown by 4 px is filtered.
        # Inside the box every tap lies in that window or beyond a true image border (where
        # the window's replicated border equals the image's), so the result is unchanged.
        window = _bounding_window(mask, _GRAD_HALF)
        if window is None:
            return 0.0
        outer, inner = window
        pred, gt, mask = pred[outer], gt[outer], mask[outer][inner]
    amp_pred = _gradient_amplitude(_mat2gray(pred, *ranges[0]))[inner]
    amp_gt = _gradient_amplitude(_mat2gray(gt, *ranges[1]))[inner]
    error = amp_pred - amp_gt
    return _masked_sum(error * error, mask) / 1000.0


def grad(pred_alpha, gt_alpha, mask=None) -> float:
    """Gradient error (compute_gradient_loss.m) over ``mask``, divided by 1000.

    Args:
        pred_alpha, gt_alpha: (H, W) float in [0, 1].
        mask: (H, W) bool, pixels counted; None = whole image.
    """
    return _grad(*_prepare(pred_alpha, gt_alpha, mask))


# ---------------------------------------------------------------------------- Conn


def _conn_thresholds(step: float) -> np.ndarray:
    """MATLAB's ``0:step:1`` as float32 (the levels are compared with ``single`` alphas)."""
    if not 0 < step <= 1:
        raise MattingInputError(f"conn step must be in (0, 1], got {step}")
    count = int(math.floor(1.0 / step + 1e-9))
    return (np.arange(count + 1, dtype=np.float64) * step).astype(np.float32)


# cv2.calcHist counts in float32, exact up to 2**24 pixels.
_HIST_EXACT_PIXELS = 1 << 24


def _components(binary: np.ndarray) -> tuple[int, np.ndarray]:
    """4-connected components of a uint8 (H, W) 0/1 map: (count incl. background, labels).

    Labels are uint16 when they fit (cheaper to count), int32 otherwise.
    """
    try:
        return cv2.connectedComponents(binary, connectivity=4, ltype=cv2.CV_16U)
    except cv2.error:  # more than 65534 components
        return cv2.connectedComponents(binary, connectivity=4, ltype=cv2.CV_32S)


def _largest_component(labels: np.ndarray, count: int) -> int:
    """Label of the largest non-background component (0 if none), with MATLAB's tie rule.

    Args:
        labels: (H, W) uint16 or int32 labels from cv2.connectedComponents, 0 = background.
        count: number of labels including the background.
    """
    if count <= 1:
        return 0
    if count == 2:
        return 1
    if labels.dtype == np.uint16 and labels.size < _HIST_EXACT_PIXELS:
        sizes = cv2.calcHist([labels], [0], None, [count], [0, count]).ravel()
    else:
        sizes = np.bincount(labels.ravel(), minlength=count)
    sizes[0] = 0
    winners = np.flatnonzero(sizes == sizes.max())
    if winners.size == 1:
        return int(winners[0])
    # Tie: the winner is the component whose first pixel comes first in column-major order.
    column_major = labels.T.ravel()
    return int(column_major[np.argmax(np.isin(column_major, winners))])


def _connectivity_levels(both: np.ndarray, index: np.ndarray | None, thresholds: np.ndarray) -> np.ndarray:
    """Per-pixel level l of compute_connectivity_error.m, at the selected pixels.

    Args:
        both: float32 (H, W), min(pred, gt): a pixel passes threshold t in both maps iff both >= t.
        index: flat indices of the pixels wanted, or None for all (row-major order).
        thresholds: float32 levels, thresholds[0] = 0.

    Returns:
        float32 (N,): the threshold before the first level at which the pixel is not in the
        largest component, or 1 if it stays in it at every level.
    """
    values = both.ravel() if index is None else both.ravel()[index]
    level = np.ones(values.shape, dtype=np.float32)
    alive = np.ones(values.shape, dtype=bool)  # in the largest component at every level so far
    for i in range(1, len(thresholds)):
        candidates = alive & (values >= thresholds[i])
        # Pixels below the threshold cannot be in any component: no labelling needed for them.
        level[alive & ~candidates] = thresholds[i - 1]
        if not candidates.any():
            break  # every selected pixel has its level; later thresholds change nothing
        binary = (both >= thresholds[i]).view(np.uint8)
        count, labels = _components(binary)
        best = _largest_component(labels, count)
        if index is None:
            in_largest = labels.ravel() == best
        else:
            in_largest = np.zeros_like(candidates)
            in_largest[candidates] = labels.ravel()[index[candidates]] == best
        alive = candidates & in_largest
        level[candidates & ~in_largest] = thresholds[i - 1]
    return level


def _conn(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None, step: float = CONN_STEP) -> float:
    index = None if mask is None else np.flatnonzero(mask)
    level = _connectivity_levels(np.minimum(pred, gt), index, _conn_thresholds(step))

    def phi(alpha: np.ndarray) -> np.ndarray:
        d = (alpha.ravel() if index is None else alpha.ravel()[index]) - level
        return np.float32(1) - d * (d >= CONN_PHI_THRESHOLD).astype(np.float32)

    return float(np.abs(phi(pred) - phi(gt)).sum(dtype=np.float64)) / 1000.0


def conn(pred_alpha, gt_alpha, mask=None, step: float = CONN_STEP) -> float:
    """Connectivity error (compute_connectivity_error.m) over ``mask``, divided by 1000.

    Components are always found on the whole image; ``mask`` only selects the pixels summed.

    Args:
        pred_alpha, gt_alpha: (H, W) float in [0, 1].
        mask: (H, W) bool, pixels counted; None = whole image.
        step: threshold step (levels 0, step, ..., 1).
    """
    return _conn(*_prepare(pred_alpha, gt_alpha, mask), step=step)
