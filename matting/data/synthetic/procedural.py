"""Drawing primitives for the procedural matting dataset.

Everything here is a pure function of its arguments and of the ``np.random.Generator``
passed in, vectorised with numpy and OpenCV so that a whole 256x256 sample costs a few
milliseconds. Coordinates are ``(x, y)`` in pixels of the output image; polygons are
float arrays of shape (N, 2) and are converted to OpenCV's fixed-point format (``SHIFT``
fractional bits) only when drawn, so that edges land at sub-pixel positions and
anti-aliasing produces true partial coverage.
"""

from __future__ import annotations

import colorsys

import cv2
import numpy as np

SHIFT = 4  # fractional bits for cv2 drawing calls: 1/16 px vertex precision
_ONE = 1 << SHIFT


def to_fixed(pts: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Float (..., 2) pixel coordinates -> int32 fixed point with ``SHIFT`` fractional bits."""
    return np.rint(pts * (scale * _ONE)).astype(np.int32)


# --------------------------------------------------------------------------- colour


def hsv(h: float, s: float, v: float) -> np.ndarray:
    """One RGB colour, float32 (3,) in [0,1], from hue (wraps), saturation and value."""
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, float(np.clip(s, 0, 1)), float(np.clip(v, 0, 1)))
    return np.array([r, g, b], dtype=np.float32)


def colour_family(rng: np.random.Generator, h: float, s: float, v: float, n: int,
                  dh: float = 0.04, ds: float = 0.15, dv: float = 0.25) -> np.ndarray:
    """``n`` colours jittered around one HSV centre: float32 (n, 3) in [0,1]."""
    return np.stack([
        hsv(h + rng.uniform(-dh, dh), s + rng.uniform(-ds, ds), v + rng.uniform(-dv, dv))
        for _ in range(n)
    ])


def index3(t: np.ndarray) -> np.ndarray:
    """Quantise a float32 (H, W) field in [0,1] to a uint8 (H, W, 3) lookup index."""
    q = cv2.convertScaleAbs(t, alpha=255.0)
    return cv2.merge([q, q, q])


def ramp(idx: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Map a field through a piecewise-linear colour ramp.

    idx: uint8 (H, W, 3) from ``index3``; colours: (K, 3) in [0,1], K >= 2, evenly spaced
    along the field. Returns float32 (H, W, 3) in [0,1]. A 256-entry table applied with
    cv2.LUT costs far less than interpolating per pixel.
    """
    x = np.linspace(0.0, 1.0, 256)
    xp = np.linspace(0.0, 1.0, len(colours))
    lut = np.stack([np.interp(x, xp, colours[:, c]) for c in range(3)], axis=1)
    return cv2.LUT(idx, lut.astype(np.float32).reshape(1, 256, 3))


def expand3(a: np.ndarray) -> np.ndarray:
    """(H, W) -> float32 (H, W, 3) copy, so per-pixel weights can go through cv2 arithmetic.

    The cast matters: numpy scalars from the generator are float64 and promote fields.
    """
    a = a.astype(np.float32, copy=False)
    return cv2.merge([a, a, a])


def scalar(c: np.ndarray) -> tuple[float, float, float, float]:
    """An RGB colour as the 4-tuple OpenCV treats as a per-channel constant."""
    return (float(c[0]), float(c[1]), float(c[2]), 0.0)


def lerp(x: np.ndarray, y: np.ndarray, w3: np.ndarray) -> np.ndarray:
    """``x + w3 * (y - x)`` for float32 (H, W, 3) images; ``y`` may be a colour (3,)."""
    if isinstance(y, np.ndarray) and y.ndim == 1:
        return cv2.subtract(x, cv2.multiply(w3, cv2.subtract(x, scalar(y))))
    return cv2.add(x, cv2.multiply(w3, cv2.subtract(y, x)))


# --------------------------------------------------------------------------- fields


def value_noise(rng: np.random.Generator, size: int, cells: tuple[int, ...],
                weights: tuple[float, ...] | None = None) -> np.ndarray:
    """Multi-octave value noise, float32 (size, size) normalised to [0,1].

    Each octave is a (c+1)x(c+1) grid of uniform values upsampled bicubically to ~8 px
    per cell, then bilinearly to full size: OpenCV's bicubic resize is slow for huge
    magnification factors, and at 8 px per cell the bilinear step adds no visible creases.
    """
    if weights is None:
        weights = tuple(0.55 ** i for i in range(len(cells)))
    acc = np.zeros((size, size), np.float32)
    for c, w in zip(cells, weights):
        g = rng.random((c + 1, c + 1), dtype=np.float32)
        mid = min(size, 8 * (c + 1))
        if mid < size:
            g = cv2.resize(g, (mid, mid), interpolation=cv2.INTER_CUBIC)
            g = cv2.resize(g, (size, size), interpolation=cv2.INTER_LINEAR)
        else:
            g = cv2.resize(g, (size, size), interpolation=cv2.INTER_CUBIC)
        acc += w * g
    lo, hi = float(acc.min()), float(acc.max())
    return (acc - lo) * (1.0 / max(hi - lo, 1e-6))


def linear_gradient(size: int, angle: float) -> np.ndarray:
    """Float32 (size, size) ramp in [0,1] along direction ``angle`` (radians)."""
    u = np.linspace(-0.5, 0.5, size, dtype=np.float32)
    g = np.float32(np.cos(angle)) * u[None, :] + np.float32(np.sin(angle)) * u[:, None]
    lo, hi = float(g.min()), float(g.max())
    return (g - lo) * np.float32(1.0 / max(hi - lo, 1e-6))


def stripes(size: int, angle: float, period: float, sharpness: float, phase: float) -> np.ndarray:
    """Float32 (size, size) periodic stripes in [0,1]; ``sharpness`` > 1 squares them off."""
    u = np.arange(size, dtype=np.float32) * np.float32(2 * np.pi / period)
    d = np.float32(np.cos(angle)) * u[None, :] + (np.float32(np.sin(angle)) * u + np.float32(phase))[:, None]
    s = np.sin(d)
    s *= np.float32(0.5 * sharpness)
    s += np.float32(0.5)
    return np.clip(s, 0.0, 1.0, out=s)


# --------------------------------------------------------------------------- shapes


def blob(rng: np.random.Generator, cx: float, cy: float, r: float, n_pts: int = 96,
         bumpiness: float = 0.18, max_harmonic: int = 6, aspect: float = 1.0,
         rot: float = 0.0) -> np.ndarray:
    """Smooth closed random curve around (cx, cy): float (n_pts, 2), mean radius ~ r.

    The radius is a sum of low harmonics of the polar angle, so the outline is organic
    (a body, a cushion, a plant) but never self-intersecting while bumpiness < ~0.5.
    """
    th = np.linspace(0, 2 * np.pi, n_pts, endpoint=False)
    rad = np.ones_like(th)
    for k in range(2, max_harmonic + 1):
        rad += rng.uniform(0, bumpiness) / (k ** 0.7) * np.cos(k * th + rng.uniform(0, 2 * np.pi))
    x = rad * np.cos(th) * r * aspect
    y = rad * np.sin(th) * r
    c, s = np.cos(rot), np.sin(rot)
    return np.stack([cx + c * x - s * y, cy + s * x + c * y], axis=1)


def superellipse(cx: float, cy: float, a: float, b: float, n: float, rot: float,
                 n_pts: int = 96) -> np.ndarray:
    """Rounded rectangle / ellipse family ``|x/a|^n + |y/b|^n = 1``, float (n_pts, 2)."""
    th = np.linspace(0, 2 * np.pi, n_pts, endpoint=False)
    ct, st = np.cos(th), np.sin(th)
    x = a * np.sign(ct) * np.abs(ct) ** (2.0 / n)
    y = b * np.sign(st) * np.abs(st) ** (2.0 / n)
    c, s = np.cos(rot), np.sin(rot)
    return np.stack([cx + c * x - s * y, cy + s * x + c * y], axis=1)


def fill_polys(mask: np.ndarray, polys: list[np.ndarray], value: int = 255) -> None:
    """Anti-aliased fill of float polygons into a uint8 (H, W) mask, in place (union).

    One call per polygon: a single multi-polygon fillPoly uses the even-odd rule, which
    would punch holes where the polygons overlap.
    """
    for p in polys:
        cv2.fillPoly(mask, [to_fixed(p)], int(value), cv2.LINE_AA, SHIFT)


def outward_normals(poly: np.ndarray) -> np.ndarray:
    """Unit outward normals at the vertices of a closed polygon: float (N, 2)."""
    t = np.roll(poly, -1, axis=0) - np.roll(poly, 1, axis=0)
    n = np.stack([t[:, 1], -t[:, 0]], axis=1)
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-9
    # Orientation of the vertex order decides the sign; the shoelace area tells which.
    area = np.sum(poly[:, 0] * np.roll(poly[:, 1], -1) - np.roll(poly[:, 0], -1) * poly[:, 1])
    return n if area > 0 else -n


def sample_on_outline(rng: np.random.Generator, poly: np.ndarray, normals: np.ndarray, n: int,
                      start: float, span: float, closed: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random points (and normals) on the arc [start, start+span) of an outline.

    start, span are fractions of the outline's length in vertices (a closed outline wraps
    around; an open one is a polyline from its first to its last vertex). Returns float
    (n, 2) points and unit normals interpolated between neighbouring vertices.
    """
    m = len(poly)
    if closed:
        pos = (start + span * rng.random(n)) * m
        i0 = np.floor(pos).astype(np.int64) % m
        i1 = (i0 + 1) % m
        f = (pos - np.floor(pos))[:, None]
    else:
        pos = (start + span * rng.random(n)) * (m - 1)
        i0 = np.clip(np.floor(pos).astype(np.int64), 0, m - 2)
        i1 = i0 + 1
        f = np.clip(pos - i0, 0.0, 1.0)[:, None]
    pts = poly[i0] * (1 - f) + poly[i1] * f
    nrm = normals[i0] * (1 - f) + normals[i1] * f
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True) + 1e-9
    return pts, nrm


# --------------------------------------------------------------------------- strands


def strand_paths(rng: np.random.Generator, roots: np.ndarray, dirs: np.ndarray,
                 lengths: np.ndarray, n_seg: int, curl: float, flow: np.ndarray | None = None,
                 flow_weight: float = 0.0, wave: float = 0.0) -> np.ndarray:
    """Random-walk curves growing from ``roots`` along ``dirs``: float (n, n_seg+1, 2).

    The heading performs a Gaussian random walk (``curl`` radians per segment, the
    waviness of fur) plus an optional sinusoidal ``wave`` (combed hair), and is pulled
    progressively towards ``flow`` (gravity or wind) so long hair falls instead of
    sticking straight out of the outline.
    """
    n = len(roots)
    heading = np.arctan2(dirs[:, 1], dirs[:, 0])[:, None]
    steps = np.arange(n_seg)[None, :]
    turn = np.cumsum(rng.normal(0.0, curl, (n, n_seg)), axis=1)
    if wave:
        turn = turn + wave * np.sin(steps * rng.uniform(0.4, 0.9) + rng.uniform(0, 2 * np.pi, (n, 1)))
    ang = heading + turn
    v = np.stack([np.cos(ang), np.sin(ang)], axis=-1)
    if flow is not None and flow_weight > 0:
        w = (flow_weight * (steps + 1) / n_seg)[..., None]
        v = v * (1 - w) + flow[None, None, :] * w
        v /= np.linalg.norm(v, axis=-1, keepdims=True) + 1e-9
    seg = v * (lengths / n_seg)[:, None, None]
    return np.concatenate([roots[:, None, :], roots[:, None, :] + np.cumsum(seg, axis=1)], axis=1)


def draw_strands(size: int, paths: np.ndarray, strengths: np.ndarray, widths: np.ndarray,
                 ss: int = 4) -> np.ndarray:
    """Render thin curves with partial coverage: float32 (size, size) in [0,1].

    The curves are rasterised at ``ss``x supersampling and area-averaged down, so a strand
    narrower than a pixel covers only a fraction of it, as real hair does. ``widths`` are
    in supersampled pixels (1 -> 1/ss px wide); ``strengths`` (per strand, in [0,1]) scale
    the coverage (quantised to eight levels).
    """
    canvas = np.zeros((size * ss, size * ss), np.uint8)
    levels = np.clip(np.rint(strengths * 255), 1, 255).astype(np.int32)
    fixed = to_fixed(paths, ss)
    # One cv2 call per (strength bucket, width) keeps the Python overhead small; buckets
    # go weakest first so that where strands cross the stronger one wins.
    keys = (levels // 32) * 16 + widths
    order = np.argsort(keys, kind="stable")
    cuts = np.flatnonzero(np.diff(keys[order])) + 1
    for grp in np.split(order, cuts):
        cv2.polylines(canvas, fixed[grp], False, int(np.mean(levels[grp]) + 0.5), int(widths[grp[0]]),
                      cv2.LINE_8, SHIFT)
    small = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)
    return small.astype(np.float32) * (1.0 / 255.0)


# --------------------------------------------------------------------------- blur


def motion_kernel(length: int, angle: float) -> np.ndarray:
    """Normalised linear motion-blur kernel, float32 (k, k) with k = odd ``length``."""
    k = length | 1
    img = np.zeros((k * 4, k * 4), np.uint8)  # drawn at 4x for a smooth, centred line
    c = (k * 4 - 1) / 2.0
    d = np.array([np.cos(angle), np.sin(angle)]) * (k * 4 - 4) / 2.0
    p0, p1 = to_fixed(np.array([c, c]) - d), to_fixed(np.array([c, c]) + d)
    cv2.line(img, tuple(int(v) for v in p0), tuple(int(v) for v in p1), 255, 4, cv2.LINE_AA, SHIFT)
    ker = cv2.resize(img, (k, k), interpolation=cv2.INTER_AREA).astype(np.float32)
    return ker / max(float(ker.sum()), 1e-6)


def motion_blur(img: np.ndarray, length: int, angle: float) -> np.ndarray:
    """Blur a float32 (H, W, C) image along direction ``angle`` over ~``length`` px.

    Long blurs run as repeated passes of a kernel of at most 11 taps: above 11x11,
    cv2.filter2D switches to a DFT path some 30x slower, and two or three chained line
    kernels are indistinguishable from one long one (a slightly softer trapezoid profile).
    """
    passes = max(1, -(-(length - 1) // 10))
    ker = motion_kernel(max(3, (length - 1) // passes + 1), angle)
    for _ in range(passes):
        img = cv2.filter2D(img, -1, ker, borderType=cv2.BORDER_REFLECT)
    return img
