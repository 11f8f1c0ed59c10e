"""Per-sample training augmentation for matting, in numpy / OpenCV (runs in DataLoader workers).

:class:`Augment` holds one recipe; its defaults are the on-the-fly compositing of DIM, GCA and
MatteFormer, and the realism steps of RSSN (GFM) and PaddleSeg are switched on by probability:

==========================  =================================================================
step                         what it does
==========================  =================================================================
two-foreground merge         ``p_merge``: a second foreground is layered behind the first
random resize                ``p_resize``: the foreground is resized to ``resize_side`` square, or
                             with ``resize_side: [lo, hi]`` its long side to a log-uniform draw in
                             that range, aspect kept (close-ups to small subjects)
random affine                rotation ``degrees``, scale ``scale``, shear ``shear``, flip ``p_flip``
random interpolation         colour layers use nearest / bilinear / bicubic / Lanczos at random;
                             the alpha always uses bilinear (area when shrinking), never nearest
trimap                       ``trimap``: ``dim`` / ``gfm`` / ``modnet`` / ``band`` (trimap.py)
crop                         ``crop_size`` square centred on a random unknown pixel; a random crop
                             when there are fewer than ``min_unknown`` unknown pixels, and with
                             probability ``p_random_crop`` (the frame cuts the subject anywhere);
                             images smaller than the crop are first upscaled (short side = crop),
                             or with ``pad_small`` placed at random on an empty canvas of the crop
                             (the subject stays small)
HSV jitter                   ``p_hsv``: hue +- ``hue_degrees``, saturation and value shifted
                             towards the middle, on the foreground only
background blur              ``p_bg_blur``: box blur of the background, kernel from
                             ``bg_blur_kernels`` (px of a 1000 px photo, scaled to the crop) (RSSN)
denoise                      ``p_denoise``: non-local-means denoising of fg and bg (RSSN uses BM3D)
joint noise                  ``p_noise``: one Gaussian noise field (sigma ``noise_sigma`` / 255)
                             added to fg, bg and image alike, so the composite equation holds
JPEG                         ``p_jpeg``: re-compression at a quality in ``jpeg_quality``
sharpen                      ``p_sharpen``: unsharp mask, radius 3-9 px, amount 0.1-0.5
blur                         ``p_blur``: Gaussian blur, odd kernel 3-9 px
==========================  =================================================================

JPEG, sharpening and blur change only the image (as PaddleSeg does), so after them
``image = alpha * fg + (1 - alpha) * bg`` holds only approximately.

Every function takes its randomness from a ``numpy.random.Generator`` passed in; the datasets
make one per sample (see ``matte_dataset.py``).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from matting.data.trimap import TRIMAP_KINDS, make_trimap
from matting.io.errors import MattingInputError
from matting.io.images import TRIMAP_UNKNOWN, resize_image, to_uint8

__all__ = [
    "INTERPOLATIONS",
    "Augment",
    "affine_matrix",
    "crop_box",
    "gaussian_blur",
    "hsv_jitter",
    "hsv_shift",
    "jpeg_recompress",
    "joint_noise",
    "sharpen",
    "warp_alpha",
    "warp_colour",
]

INTERPOLATIONS = (cv2.INTER_NEAREST, cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_LANCZOS4)


# ---------------------------------------------------------------------------- geometry


def affine_matrix(rng: np.random.Generator, height: int, width: int, degrees: float, scale: tuple[float, float],
                  shear: float, p_flip: float) -> tuple[np.ndarray, int, int]:
    """A random 2x3 affine (rotation, scale, shear, horizontal flip) about the image centre.

    Returns the matrix and the output (height, width): the bounding box of the transformed
    image, so that nothing of the foreground is cut off.
    """
    angle = math.radians(rng.uniform(-degrees, degrees))
    s = rng.uniform(*scale)
    sh = math.radians(rng.uniform(-shear, shear))
    flip = -1.0 if rng.random() < p_flip else 1.0
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    shearing = np.array([[1.0, math.tan(sh)], [0.0, 1.0]])
    linear = s * rotation @ shearing @ np.diag([flip, 1.0])
    corners = np.array([[0, 0], [width, 0], [0, height], [width, height]], dtype=np.float64) - [width / 2, height / 2]
    moved = corners @ linear.T
    out_w = max(1, int(math.ceil(moved[:, 0].max() - moved[:, 0].min())))
    out_h = max(1, int(math.ceil(moved[:, 1].max() - moved[:, 1].min())))
    offset = np.array([out_w / 2, out_h / 2]) - linear @ np.array([width / 2, height / 2])
    return np.hstack([linear, offset[:, None]]).astype(np.float64), out_h, out_w


def warp_colour(image: np.ndarray, matrix: np.ndarray, height: int, width: int, interpolation: int) -> np.ndarray:
    """Warp a colour layer (H, W, 3) float32; outside pixels replicate the border (invisible under alpha 0)."""
    out = cv2.warpAffine(image, matrix, (width, height), flags=interpolation, borderMode=cv2.BORDER_REPLICATE)
    return np.clip(out, 0.0, 1.0) if interpolation in (cv2.INTER_CUBIC, cv2.INTER_LANCZOS4) else out


def warp_alpha(alpha: np.ndarray, matrix: np.ndarray, height: int, width: int) -> np.ndarray:
    """Warp an alpha matte bilinearly (soft edges stay soft); outside pixels are 0."""
    return cv2.warpAffine(alpha, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0.0)


def crop_box(trimap: np.ndarray, crop: int, rng: np.random.Generator, min_unknown: int = 10) -> tuple[int, int, bool]:
    """Top-left (y, x) of a ``crop`` square centred on a random unknown pixel, clamped to the image.

    The unknown pixels are looked up on a 1/4-scale trimap (cheap on large images). With fewer
    than ``min_unknown`` of them, the crop is uniform at random. Returns (y, x, centred).
    """
    h, w = trimap.shape
    small = trimap[::4, ::4]
    ys, xs = np.nonzero(small == TRIMAP_UNKNOWN)
    centred = len(ys) >= min_unknown
    if centred:
        k = int(rng.integers(len(ys)))
        cy = int(ys[k]) * 4 + int(rng.integers(0, 4))
        cx = int(xs[k]) * 4 + int(rng.integers(0, 4))
        y0 = min(max(0, cy - crop // 2), h - crop)
        x0 = min(max(0, cx - crop // 2), w - crop)
    else:
        y0 = int(rng.integers(0, h - crop + 1))
        x0 = int(rng.integers(0, w - crop + 1))
    return y0, x0, centred


# ---------------------------------------------------------------------------- colour and degradation


def hsv_shift(layer: np.ndarray, hue: float, saturation: float, value: float) -> np.ndarray:
    """Turn the hue by ``hue`` degrees and add ``saturation`` / ``value``, reflecting at 0 and 1."""
    hsv = cv2.cvtColor(np.clip(layer, 0, 1).astype(np.float32), cv2.COLOR_RGB2HSV)  # H in [0, 360)
    hsv[..., 0] = np.mod(hsv[..., 0] + hue, 360.0)
    for channel, delta in ((1, saturation), (2, value)):
        values = np.abs(hsv[..., channel] + delta)  # reflect below 0
        hsv[..., channel] = np.where(values > 1, 2 - values, values)  # reflect above 1
    return np.clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), 0.0, 1.0)


def hsv_jitter(fg: np.ndarray, alpha: np.ndarray, rng: np.random.Generator, hue_degrees: float = 40.0,
               also: tuple[np.ndarray, ...] = ()) -> list[np.ndarray]:
    """Random hue rotation and saturation / value shifts (GCA's RandomJitter recipe).

    Hue turns by U(-hue_degrees, hue_degrees). Saturation and value, each with mean m over the
    visible foreground (alpha > 0), move by U(-(1.1 - m)/10, (1.1 - m)/10): pale or dark
    foregrounds move more towards the middle. The same shift is applied to ``fg`` and to every
    layer in ``also``. Returns the shifted layers, ``fg`` first.
    """
    hsv = cv2.cvtColor(np.clip(fg, 0, 1).astype(np.float32), cv2.COLOR_RGB2HSV)
    visible = alpha > 0
    shifts = []
    for channel in (1, 2):
        values = hsv[..., channel]
        mean = float(values[visible].mean()) if visible.any() else float(values.mean())
        spread = (1.1 - mean) / 10
        shifts.append(rng.uniform(-spread, spread))
    hue = rng.uniform(-hue_degrees, hue_degrees)
    return [hsv_shift(layer, hue, *shifts) for layer in (fg, *also)]


def box_blur(image: np.ndarray, kernel: int) -> np.ndarray:
    kernel = max(1, int(kernel))
    return cv2.blur(image, (kernel, kernel)) if kernel > 1 else image


def denoise(image: np.ndarray, strength: float = 5.0) -> np.ndarray:
    """Non-local-means denoising of a float RGB image (a fast stand-in for RSSN's BM3D)."""
    as_u8 = to_uint8(image)
    out = cv2.fastNlMeansDenoisingColored(as_u8, None, strength, strength, 5, 11)
    return out.astype(np.float32) * np.float32(1 / 255)


def joint_noise(rng: np.random.Generator, sigma: float, *layers: np.ndarray) -> list[np.ndarray]:
    """Add one Gaussian noise field (std ``sigma`` in [0, 1] units) to every layer, clipped."""
    noise = rng.normal(0.0, sigma, size=layers[0].shape).astype(np.float32)
    return [np.clip(layer + noise, 0.0, 1.0) for layer in layers]


def jpeg_recompress(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode as JPEG at ``quality`` and decode again."""
    as_u8 = to_uint8(image)
    ok, data = cv2.imencode(".jpg", as_u8[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise MattingInputError("JPEG re-compression failed")
    return cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32) * np.float32(1 / 255)


def sharpen(image: np.ndarray, radius: int, amount: float) -> np.ndarray:
    """Unsharp mask: ``image + amount * (image - gaussian_blur(image, radius))``, clipped."""
    blurred = cv2.GaussianBlur(image, (radius | 1, radius | 1), 0)
    return np.clip(image + amount * (image - blurred), 0.0, 1.0)


def gaussian_blur(image: np.ndarray, kernel: int) -> np.ndarray:
    return cv2.GaussianBlur(image, (kernel | 1, kernel | 1), 0)


# ---------------------------------------------------------------------------- the recipe


class Augment:
    """One training augmentation recipe (see the module docstring for each step).

    Defaults: DIM / GCA / MatteFormer on-the-fly compositing with DIM trimaps; the RSSN and
    PaddleSeg realism steps are off (probability 0). ``configs/data/*.yaml`` turn them on per
    dataset, e.g. the GFM recipe for AM-2k: ``trimap: gfm``, ``p_bg_blur: 0.5``,
    ``p_denoise: 0.5``, ``p_noise: 0.5``.

    Args:
        p_merge: probability of layering a second foreground behind the first (composited training only).
        p_resize: probability of resizing the foreground first.
        resize_side: an int: resize to that square; a pair [lo, hi]: the long side to a log-uniform
            draw in [lo, hi], aspect kept.
        p_affine: probability of the random affine.
        degrees, scale, shear: affine ranges (degrees, factor range, degrees).
        p_flip: probability of a horizontal flip (applied with the affine or alone).
        random_interpolation: colour layers warp with a random one of nearest / bilinear / bicubic /
            Lanczos (the alpha is always bilinear); False: bilinear everywhere.
        trimap: ``dim``, ``gfm``, ``modnet`` or ``band``; drives the crop and is returned with the sample
            (with ``model.band: pipeline`` its unknown region is the loss's transition band).
        min_unknown: fewer unknown pixels than this (at 1/4 scale) -> random crop instead of a centred one.
        p_random_crop: probability of a uniform random crop even when the unknown region is large.
        pad_small: a subject smaller than the crop is placed at a random spot of an empty (alpha 0)
            canvas of the crop's size instead of being upscaled.
        p_hsv, hue_degrees: HSV jitter of the foreground.
        p_bg_blur, bg_blur_kernels: RSSN background defocus (box kernel in px of a 1000 px photo).
        p_denoise: RSSN denoising of foreground and background.
        p_noise, noise_sigma: RSSN joint Gaussian noise (sigma in 8-bit levels).
        p_jpeg, jpeg_quality: JPEG re-compression and its quality range (inclusive).
        p_sharpen, p_blur: unsharp mask and Gaussian blur of the image.
    """

    def __init__(
        self,
        p_merge: float = 0.5,
        p_resize: float = 0.25,
        resize_side: int | tuple[int, int] = 640,
        p_affine: float = 1.0,
        degrees: float = 30.0,
        scale: tuple[float, float] = (0.8, 1.25),
        shear: float = 10.0,
        p_flip: float = 0.5,
        random_interpolation: bool = True,
        trimap: str = "dim",
        min_unknown: int = 10,
        p_random_crop: float = 0.0,
        pad_small: bool = False,
        p_hsv: float = 1.0,
        hue_degrees: float = 40.0,
        p_bg_blur: float = 0.0,
        bg_blur_kernels: tuple[int, ...] = (20, 30, 40, 50, 60),
        p_denoise: float = 0.0,
        p_noise: float = 0.0,
        noise_sigma: float = 10.0,
        p_jpeg: float = 0.0,
        jpeg_quality: tuple[int, int] = (70, 94),
        p_sharpen: float = 0.0,
        p_blur: float = 0.0,
    ):
        if trimap not in TRIMAP_KINDS:
            raise MattingInputError(f"unknown trimap kind '{trimap}'; choose one of {', '.join(TRIMAP_KINDS)}")
        if isinstance(resize_side, (list, tuple)):
            if len(resize_side) != 2 or not 0 < resize_side[0] <= resize_side[1]:
                raise MattingInputError(f"resize_side {list(resize_side)}: give one side or a range [lo, hi] with 0 < lo <= hi")
            resize_side = (int(resize_side[0]), int(resize_side[1]))
        elif int(resize_side) <= 0:
            raise MattingInputError(f"resize_side {resize_side}: must be positive")
        self.p_merge, self.p_resize, self.resize_side = p_merge, p_resize, resize_side
        self.p_random_crop, self.pad_small = p_random_crop, pad_small
        self.p_affine, self.degrees, self.scale, self.shear, self.p_flip = p_affine, degrees, tuple(scale), shear, p_flip
        self.random_interpolation, self.trimap, self.min_unknown = random_interpolation, trimap, min_unknown
        self.p_hsv, self.hue_degrees = p_hsv, hue_degrees
        self.p_bg_blur, self.bg_blur_kernels = p_bg_blur, tuple(bg_blur_kernels)
        self.p_denoise, self.p_noise, self.noise_sigma = p_denoise, p_noise, noise_sigma
        self.p_jpeg, self.jpeg_quality = p_jpeg, tuple(jpeg_quality)
        self.p_sharpen, self.p_blur = p_sharpen, p_blur

    # -- geometry --------------------------------------------------------------------------

    def geometry(self, rng: np.random.Generator, alpha: np.ndarray, colours: dict[str, np.ndarray]
                 ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Random resize, affine and flip of an alpha and its colour layers (same geometry for all)."""
        interpolation = int(rng.choice(INTERPOLATIONS)) if self.random_interpolation else cv2.INTER_LINEAR
        if rng.random() < self.p_resize:
            height, width = self.resized_shape(rng, *alpha.shape)
            alpha = resize_image(alpha, height, width)
            colours = {k: resize_image(v, height, width, enlarge=interpolation, clip=True) for k, v in colours.items()}
        h, w = alpha.shape
        if rng.random() < self.p_affine:
            matrix, out_h, out_w = affine_matrix(rng, h, w, self.degrees, self.scale, self.shear, self.p_flip)
            alpha = warp_alpha(alpha, matrix, out_h, out_w)
            colours = {k: warp_colour(v, matrix, out_h, out_w, interpolation) for k, v in colours.items()}
        elif rng.random() < self.p_flip:
            alpha = np.ascontiguousarray(alpha[:, ::-1])
            colours = {k: np.ascontiguousarray(v[:, ::-1]) for k, v in colours.items()}
        return alpha, colours

    def resized_shape(self, rng: np.random.Generator, height: int, width: int) -> tuple[int, int]:
        """(height, width) of the random resize: ``resize_side`` square, or the long side drawn in its range."""
        if not isinstance(self.resize_side, tuple):
            return self.resize_side, self.resize_side
        lo, hi = self.resize_side
        long_side = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        factor = long_side / max(height, width)
        return max(1, round(height * factor)), max(1, round(width * factor))

    def crop(self, rng: np.random.Generator, crop: int, alpha: np.ndarray, colours: dict[str, np.ndarray]
             ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Trimap of the whole (transformed) alpha, then a ``crop`` square centred on its unknown region.

        Returns (alpha, trimap, colours), each ``crop`` x ``crop``.
        """
        h, w = alpha.shape
        if self.pad_small and min(h, w) < crop:  # the subject stays small: an empty canvas around it
            ph, pw = max(crop, h), max(crop, w)
            y, x = int(rng.integers(0, ph - h + 1)), int(rng.integers(0, pw - w + 1))
            pad = ((y, ph - h - y), (x, pw - w - x))
            alpha = np.pad(alpha, pad)  # alpha 0: background
            colours = {k: np.pad(v, (*pad, (0, 0)), mode="edge") for k, v in colours.items()}  # unseen under alpha 0
            h, w = alpha.shape
        if min(h, w) < crop:  # upscale so that the short side equals the crop
            factor = crop / min(h, w)
            nh, nw = max(crop, math.ceil(h * factor)), max(crop, math.ceil(w * factor))
            alpha = resize_image(alpha, nh, nw)
            colours = {k: resize_image(v, nh, nw, clip=True) for k, v in colours.items()}
        trimap = make_trimap(self.trimap, alpha, rng)
        if self.p_random_crop and rng.random() < self.p_random_crop:
            h, w = alpha.shape
            y0, x0 = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
        else:
            y0, x0, _ = crop_box(trimap, crop, rng, self.min_unknown)
        window = (slice(y0, y0 + crop), slice(x0, x0 + crop))
        return (np.ascontiguousarray(alpha[window]), np.ascontiguousarray(trimap[window]),
                {k: np.ascontiguousarray(v[window]) for k, v in colours.items()})

    # -- colour ----------------------------------------------------------------------------

    def jitter(self, rng: np.random.Generator, alpha: np.ndarray, *layers: np.ndarray) -> list[np.ndarray]:
        """HSV jitter with ``p_hsv``: one shift, measured on the first layer, applied to all."""
        if rng.random() >= self.p_hsv:
            return list(layers)
        return hsv_jitter(layers[0], alpha, rng, self.hue_degrees, also=layers[1:])

    def realism(self, rng: np.random.Generator, fg: np.ndarray, bg: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        """RSSN background blur and denoising; returns (fg, bg, add_noise)."""
        if rng.random() < self.p_bg_blur and self.bg_blur_kernels:
            # RSSN's kernels are in pixels of a ~1000 px photo; scale them to the crop.
            kernel = int(rng.choice(self.bg_blur_kernels))
            bg = box_blur(bg, round(kernel * bg.shape[0] / 1000))
        if rng.random() < self.p_denoise:
            fg, bg = denoise(fg), denoise(bg)
        return fg, bg, rng.random() < self.p_noise

    def degrade(self, rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
        """JPEG re-compression, sharpening and blur of the image."""
        if rng.random() < self.p_jpeg:
            image = jpeg_recompress(image, int(rng.integers(self.jpeg_quality[0], self.jpeg_quality[1] + 1)))
        if rng.random() < self.p_sharpen:
            image = sharpen(image, int(rng.choice((3, 5, 7, 9))), float(rng.uniform(0.1, 0.5)))
        if rng.random() < self.p_blur:
            image = gaussian_blur(image, int(rng.choice((3, 5, 7, 9))))
        return image
