"""Surfaces and backgrounds for the generator without the texture cue (``texture_cue=False``).

In the first generator every subject was finely textured and in focus while three backgrounds in
four were defocused, so "sharp texture" alone told subject from background, and a network trained on
it segments fur, leaves and mesh anywhere in a real photo while missing the smooth parts of subjects.
Here texture is independent of the role: a subject or any of its parts is smooth (plastic, skin, a
pumpkin), finely textured (fur, knit, foliage) or patterned (print, stripes); a background is
smooth, medium or fine (grass, gravel, fabric), in focus more often than not, and carries clutter
that is as sharp and as textured as the subject. What is left to tell the subject is what a real
photo offers: one large, whole, front-most object with a closed outline (hair and holes included).

Every function draws from the ``numpy.random.Generator`` it is given, in a fixed order (the samples
depend on it, and the data fingerprint hashes this file).
"""

from __future__ import annotations

import cv2
import numpy as np

from matting.data.synthetic import procedural as P

__all__ = ["SURFACE_STYLES", "background", "clutter", "part_mask", "surface"]

SURFACE_STYLES = ("smooth", "fine", "pattern")
SURFACE_P = (0.4, 0.35, 0.25)
_FINE_CELLS = ((4, 8, 16, 32, 64), (8, 16, 32, 64, 128))
_FINE_WEIGHTS = (1.0, 0.6, 0.4, 0.3, 0.25)


def surface(rng: np.random.Generator, size: int, colours: np.ndarray, accent: np.ndarray) -> np.ndarray:
    """One surface over the whole frame: float32 (size, size, 3) in [0,1].

    colours: (K, 3) ramp of the surface; accent: (K2, 3) colours of its pattern (spots, stripes).
    ``smooth`` is a narrow stretch of the ramp over a field of 1-4 cells (one colour, gently
    varying); ``fine`` is 5 octaves of noise down to 2-4 px; ``pattern`` is fine noise with spots or
    stripes of an accent colour.
    """
    style = SURFACE_STYLES[int(rng.choice(3, p=SURFACE_P))]
    s = size / 256.0
    if style == "smooth":
        field = P.value_noise(rng, size, (1, 2, 4), (1.0, 0.5, 0.25))
        field = rng.uniform(0.0, 0.75) + field * np.float32(rng.uniform(0.1, 0.25))
        return P.ramp(P.index3(np.clip(field, 0.0, 1.0)), colours)
    cells = _FINE_CELLS[int(rng.integers(2))]
    tex = P.ramp(P.index3(P.value_noise(rng, size, cells, _FINE_WEIGHTS)), colours)
    if style == "pattern":
        if rng.random() < 0.5:  # spots or patches (animal coat, print)
            spots = P.value_noise(rng, size, (6, 12))
            w = np.clip((spots - rng.uniform(0.55, 0.7)) * 12.0, 0.0, 1.0)
        else:  # woven or striped fabric
            w = P.stripes(size, rng.uniform(0, np.pi), rng.uniform(4, 20) * s, rng.uniform(1, 3),
                          rng.uniform(0, 2 * np.pi)) * rng.uniform(0.3, 0.8)
        tex = P.lerp(tex, accent[int(rng.integers(len(accent)))], P.expand3(w))
    return tex


def part_mask(rng: np.random.Generator, size: int, obj: dict) -> np.ndarray:
    """Where a second part of an object lies (a sleeve, a belt, a face, a pot under a plant).

    Returns float32 (size, size) in [0,1]; only its overlap with the object's body is seen, so its
    edges inside the body are texture boundaries, not alpha edges. A portrait's second part is its
    head and neck (skin against clothes).
    """
    m = np.zeros((size, size), np.uint8)
    if "head" in obj:
        P.fill_polys(m, obj["polys"][1:])
        return m.astype(np.float32) * (1.0 / 255.0)
    c, r = obj["centre"], obj["radius"]
    kind = rng.integers(3)
    if kind == 0:  # one side of a line through the body
        ang = rng.uniform(0, 2 * np.pi)
        n = np.array([np.cos(ang), np.sin(ang)])
        t = np.array([-n[1], n[0]])
        p0 = c + n * r * rng.uniform(-0.5, 0.5)
        far = 4.0 * size
        P.fill_polys(m, [np.stack([p0 - t * far, p0 + t * far, p0 + t * far + n * far, p0 - t * far + n * far])])
    elif kind == 1:  # a band across it
        ang = rng.uniform(0, np.pi)
        n = np.array([np.cos(ang), np.sin(ang)])
        t = np.array([-n[1], n[0]])
        p0 = c + n * r * rng.uniform(-0.6, 0.6)
        half = n * r * rng.uniform(0.1, 0.3)
        far = 4.0 * size
        P.fill_polys(m, [np.stack([p0 - half - t * far, p0 - half + t * far, p0 + half + t * far, p0 + half - t * far])])
    else:  # a patch of its own (a face, a label, a pocket)
        q = c + rng.uniform(-0.5, 0.5, 2) * r
        P.fill_polys(m, [P.blob(rng, q[0], q[1], r * rng.uniform(0.25, 0.6), 64, 0.2, 4,
                                rng.uniform(0.6, 1.5), rng.uniform(0, np.pi))])
    return m.astype(np.float32) * (1.0 / 255.0)


def _clutter_mask(rng: np.random.Generator, size: int, r_range: tuple[float, float]) -> np.ndarray:
    """One clutter shape (blob, box, disc, branch or polygon): uint8 (size, size) mask, 255 inside."""
    s = size / 256.0
    m = np.zeros((size, size), np.uint8)
    x, y = rng.uniform(-0.1, 1.1, 2) * size
    r = rng.uniform(*r_range) * size
    kind = rng.integers(5)
    if kind == 0:
        P.fill_polys(m, [P.blob(rng, x, y, r, 48, 0.35)])
    elif kind == 1:
        P.fill_polys(m, [P.superellipse(x, y, r, r * rng.uniform(0.3, 1.5), rng.uniform(2, 8), rng.uniform(0, np.pi), 48)])
    elif kind == 2:
        ctr = tuple(int(v) for v in P.to_fixed(np.array([x, y])))
        cv2.circle(m, ctr, int(r * (1 << P.SHIFT)), 255, -1, cv2.LINE_AA, P.SHIFT)
    elif kind == 3:  # branches, cables, edges of furniture
        pts = np.array([x, y]) + np.cumsum(rng.normal(0, r, (4, 2)), axis=0)
        cv2.polylines(m, [P.to_fixed(pts)], False, 255, int(rng.integers(1, max(2, int(6 * s)))), cv2.LINE_AA, P.SHIFT)
    else:
        P.fill_polys(m, [P.superellipse(x, y, r * 0.8, r * 0.8, rng.uniform(1.0, 1.6), rng.uniform(0, np.pi), 5)])
    return m


def clutter(rng: np.random.Generator, img: np.ndarray, pal: dict, n: int, r_range: tuple[float, float]) -> np.ndarray:
    """Draw ``n`` clutter shapes over float32 (S, S, 3) ``img``, half of them textured; returns the image."""
    size = img.shape[0]
    field = P.index3(P.value_noise(rng, size, _FINE_CELLS[int(rng.integers(2))], _FINE_WEIGHTS))
    for _ in range(n):
        w = P.expand3(_clutter_mask(rng, size, r_range).astype(np.float32) * (1.0 / 255.0))
        base = pal["clutter"][rng.integers(len(pal["clutter"]), size=3)]
        if rng.random() < 0.5:  # a textured object: its own stretch of the shared fine field
            cols = np.clip(base * rng.uniform(0.7, 1.3, (3, 1)), 0, 1).astype(np.float32)
            img = P.lerp(img, P.ramp(field, cols), w)
        else:
            img = P.lerp(img, base[0], w)
    return img


def background(rng: np.random.Generator, size: int, pal: dict) -> np.ndarray:
    """A background whose sharpness and texture say nothing about the subject: float32 (size, size, 3) in [0,1].

    Smooth (walls, sky), medium or fine (grass, gravel, fabric) noise in the background colours,
    uneven light, sometimes stripes and a horizon, clutter shapes (half textured); in focus for 60%
    of samples, and a defocused one gets 1-3 sharp textured shapes in front of the blur half the time.
    """
    s = size / 256.0
    kind = int(rng.choice(3, p=(0.3, 0.35, 0.35)))
    cells = ((2, 4), (3, 6, 12, 24), _FINE_CELLS[1])[kind]
    weights = ((1.0, 0.5), (1.0, 0.55, 0.3, 0.17), _FINE_WEIGHTS)[kind]
    bg = P.ramp(P.index3(P.value_noise(rng, size, cells, weights)), pal["bg"])
    if rng.random() < 0.6:  # uneven lighting across the scene
        g = P.linear_gradient(size, rng.uniform(0, 2 * np.pi))
        bg = cv2.multiply(bg, P.expand3(rng.uniform(0.6, 0.9) + rng.uniform(0.2, 0.5) * g))
    if rng.random() < 0.3:  # wallpaper, blinds, fences
        st = P.stripes(size, rng.uniform(0, np.pi), rng.uniform(6, 40) * s, rng.uniform(1, 4), rng.uniform(0, 2 * np.pi))
        bg = P.lerp(bg, pal["clutter"][rng.integers(len(pal["clutter"]))], P.expand3(st * rng.uniform(0.3, 0.8)))
    if rng.random() < 0.3:  # a horizon: floor or table edge splitting the scene
        y0, y1 = rng.uniform(0.4, 0.9, 2) * size
        m = np.zeros((size, size), np.uint8)
        P.fill_polys(m, [np.array([[-1, y0], [size + 1, y1], [size + 1, size + 1], [-1, size + 1]])])
        bg = P.lerp(bg, pal["clutter"][rng.integers(len(pal["clutter"]))], P.expand3(m.astype(np.float32) * (1 / 255.0)))
    bg = clutter(rng, bg, pal, int(rng.integers(2, 16)), (0.03, 0.2))
    u = rng.random()
    blurred = u < 0.4
    if u < 0.3:  # depth of field
        bg = cv2.GaussianBlur(bg, (0, 0), rng.uniform(1.0, 5.0) * s)
    elif blurred:
        k = int(rng.integers(3, 9) * s) | 1
        bg = cv2.blur(bg, (k, k))
    if blurred and rng.random() < 0.5:  # things in focus in front of a defocused scene
        bg = clutter(rng, bg, pal, int(rng.integers(1, 4)), (0.05, 0.25))
    return np.clip(bg, 0.0, 1.0).astype(np.float32)
