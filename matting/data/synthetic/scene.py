"""One procedural composite: palettes, background, the subject's layers and the final image.

:func:`generate_sample` is the whole generator; :mod:`matting.data.synthetic.dataset` wraps it
in a Dataset keyed by ``(seed, split, index)``.
"""

from __future__ import annotations

import cv2
import numpy as np

from matting.data.synthetic import procedural as P
from matting.data.synthetic import texture as T
from matting.data.synthetic.subject import (
    hole_mask,
    point_on_outline,
    strand_coverage,
    subject_shapes,
    zoom_subject,
)

__all__ = ["HARD_FRACTION", "HOLES", "TRAIN_MARKINGS", "generate_sample"]

HARD_FRACTION = 0.3  # share of samples whose fg and bg colours come from one hue family
HOLES = 0.45  # share of subject parts with holes the background shows through
# Share of training subject parts with opaque markings (SyntheticDataModule, make-data's train split):
# chosen on real photos (experiments/real_foregrounds); the generator alone draws none.
TRAIN_MARKINGS = 0.5


# --------------------------------------------------------------------------- palettes


def _palettes(rng: np.random.Generator, hard: bool) -> dict:
    """Colour sets for one sample, each float32 (K, 3) in [0,1].

    In ``hard`` mode every layer (subject, second object, hair, background, clutter)
    draws from one hue family with small saturation and value offsets, so the subject's
    colour histogram overlaps the background's and colour keying fails.
    """
    hf, sf, vf = rng.random(), rng.uniform(0.15, 0.85), rng.uniform(0.3, 0.85)
    if hard:
        # One shared family; each layer takes a random subset, the background slightly
        # brighter or darker overall.
        fam = P.colour_family(rng, hf, sf, vf, 6, dh=0.03, ds=0.1, dv=0.2)

        def pick(k: int, gain: float = 1.0) -> np.ndarray:
            return np.clip(fam[rng.choice(len(fam), k, replace=False)] * gain, 0, 1)

        gain = 1.0 + rng.uniform(-0.1, 0.1)
        return {"fg": pick(3), "fg2": pick(3), "hair": pick(2), "bg": pick(3, gain),
                "clutter": np.concatenate([pick(4, gain), pick(2)])}
    hb, sb, vb = rng.random(), rng.uniform(0.05, 0.85), rng.uniform(0.15, 0.95)
    fg = P.colour_family(rng, hf, sf, vf, 3, dv=0.2)
    fg2 = P.colour_family(rng, hf + rng.uniform(-0.3, 0.3), sf, vf + rng.uniform(-0.2, 0.2), 3)
    if rng.random() < 0.5:  # fur of the same animal
        hair = P.colour_family(rng, hf, sf, vf, 2, dv=0.15)
    else:  # a distinct hair colour: dark, brown, blond or grey
        hair = P.colour_family(rng, rng.uniform(0.03, 0.13), rng.uniform(0.0, 0.7),
                               rng.uniform(0.08, 0.95), 2, dv=0.12)
    bg = P.colour_family(rng, hb, sb, vb, 3, dv=0.25)
    # Clutter: mostly the background's own family, plus a couple of free accents.
    clutter = np.concatenate([
        P.colour_family(rng, hb, sb, vb, 4, dh=0.08, dv=0.35),
        P.colour_family(rng, rng.random(), rng.uniform(0.2, 0.9), rng.uniform(0.2, 0.9), 2, dh=0.5)])
    return {"fg": fg, "fg2": fg2, "hair": hair, "bg": bg, "clutter": clutter}


# --------------------------------------------------------------------------- background


def _background(rng: np.random.Generator, size: int, pal: dict) -> np.ndarray:
    """Procedural background, float32 (size, size, 3) in [0,1]."""
    s = size / 256.0
    cells = (2, 4, 8) if rng.random() < 0.5 else (3, 6, 12, 24, 48)
    bg = P.ramp(P.index3(P.value_noise(rng, size, cells)), pal["bg"])
    if rng.random() < 0.6:  # uneven lighting across the scene
        g = P.linear_gradient(size, rng.uniform(0, 2 * np.pi))
        bg = cv2.multiply(bg, P.expand3(rng.uniform(0.6, 0.9) + rng.uniform(0.2, 0.5) * g))
    if rng.random() < 0.25:  # wallpaper, blinds, fences
        st = P.stripes(size, rng.uniform(0, np.pi), rng.uniform(6, 40) * s, rng.uniform(1, 4),
                       rng.uniform(0, 2 * np.pi))
        col = pal["clutter"][rng.integers(len(pal["clutter"]))]
        bg = P.lerp(bg, col, P.expand3(st * rng.uniform(0.3, 0.8)))
    # Clutter is drawn on 8 bits: OpenCV anti-aliases only 8-bit images.
    img = cv2.convertScaleAbs(bg, alpha=255.0)

    if rng.random() < 0.3:  # a horizon: floor or table edge splitting the scene
        y0, y1 = rng.uniform(0.4, 0.9, 2) * size
        col = pal["clutter"][rng.integers(len(pal["clutter"]))]
        poly = np.array([[-1, y0], [size + 1, y1], [size + 1, size + 1], [-1, size + 1]])
        cv2.fillPoly(img, [P.to_fixed(poly)], (col * 255).tolist(), cv2.LINE_AA, P.SHIFT)

    n_clutter = int(rng.integers(3, 26))
    cols = pal["clutter"][rng.integers(len(pal["clutter"]), size=n_clutter)]
    for col in cols:
        c = tuple(float(v) for v in col * 255)
        x, y = rng.uniform(-0.1, 1.1, 2) * size
        r = rng.uniform(0.03, 0.2) * size
        kind = rng.integers(5)
        if kind == 0:
            cv2.fillPoly(img, [P.to_fixed(P.blob(rng, x, y, r, 48, 0.35))], c, cv2.LINE_AA, P.SHIFT)
        elif kind == 1:
            poly = P.superellipse(x, y, r, r * rng.uniform(0.3, 1.5), rng.uniform(2, 8),
                                  rng.uniform(0, np.pi), 48)
            cv2.fillPoly(img, [P.to_fixed(poly)], c, cv2.LINE_AA, P.SHIFT)
        elif kind == 2:
            ctr = tuple(int(v) for v in P.to_fixed(np.array([x, y])))
            cv2.circle(img, ctr, int(r * 16), c, -1, cv2.LINE_AA, P.SHIFT)
        elif kind == 3:  # branches, cables, edges of furniture
            pts = np.array([x, y]) + np.cumsum(rng.normal(0, r, (4, 2)), axis=0)
            cv2.polylines(img, [P.to_fixed(pts)], False, c, int(rng.integers(1, max(2, int(6 * s)))),
                          cv2.LINE_AA, P.SHIFT)
        else:
            poly = P.superellipse(x, y, r * 0.8, r * 0.8, rng.uniform(1.0, 1.6), rng.uniform(0, np.pi), 5)
            cv2.fillPoly(img, [P.to_fixed(poly)], c, cv2.LINE_AA, P.SHIFT)

    u = rng.random()
    if u < 0.65:  # depth of field: the subject is in focus, the scene behind is not
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(1.0, 5.0) * s)
    elif u < 0.75:
        k = int(rng.integers(3, 9) * s) | 1
        img = cv2.blur(img, (k, k))
    return img.astype(np.float32) * (1.0 / 255.0)


# --------------------------------------------------------------------------- sample


def _over(acc_p, acc_a, a: np.ndarray, col: np.ndarray):
    """Porter-Duff 'over': layer (alpha (H,W), colour (H,W,3)) on premultiplied (acc_p, acc_a)."""
    a = a.astype(np.float32, copy=False)
    if acc_a is None:
        return cv2.multiply(P.expand3(a), col), a.copy()
    return P.lerp(acc_p, col, P.expand3(a)), acc_a + a * (1.0 - acc_a)


def generate_sample(rng: np.random.Generator, size: int, texture_cue: bool = False, hair: float = 0.8,
                    zoom: float = 1.0, holes: float = HOLES, markings: float = 0.0) -> dict:
    """Generate one composite.

    ``texture_cue``: the first generator, kept sample for sample (same draws, same bytes): subjects
    always finely textured and in focus, backgrounds mostly defocused, so texture alone told them
    apart. The default draws subject parts and backgrounds from the same textures and focus
    (:mod:`matting.data.synthetic.texture`) and frames larger subjects.

    ``hair``: probability in [0, 1] that a subject part without a hair cap grows hair or fur
    strands (parts with a cap always do). It replaces the threshold of the same draw, so any value
    leaves every other draw, and at 0.8 every byte, as it was.

    ``zoom``: the largest factor by which half the samples enlarge their subject about its centre
    (log-uniform in [1, zoom]), as close-ups frame it: it fills the frame or leaves it. 1.0 draws
    nothing, so every byte stays as it was.

    ``holes``: probability in [0, 1] that a subject part has holes the background shows through
    (0.45). Like ``hair`` it replaces the threshold of the same draw.

    ``markings``: probability in [0, 1] that a subject part carries opaque markings (prints, eyes,
    buttons, patches) drawn as the background's clutter is, in its colours, so that colour and
    shape alone do not say background. 0.0 draws nothing, so every byte stays as it was; the first
    generator (``texture_cue``) never draws them.

    Returns a dict of float32 numpy arrays in [0,1]: ``fg`` (H,W,3), ``bg`` (H,W,3),
    ``alpha`` (H,W) and ``image`` (H,W,3) with H = W = ``size`` and
    ``image = alpha[..., None] * fg + (1 - alpha[..., None]) * bg`` evaluated in float32.
    ``fg`` is defined over the whole frame (the subject's texture extended beyond it).
    """
    S = int(size)
    s = S / 256.0
    hard = rng.random() < HARD_FRACTION
    pal = _palettes(rng, hard)
    bg = _background(rng, S, pal) if texture_cue else T.background(rng, S, pal)

    # Textures: one shared noise field, one colour ramp per layer; the fine octaves keep
    # the in-focus subject crisper than the usually defocused background (texture_cue), or
    # serve only hair, fur and veils (the surfaces come from texture.surface).
    noise = P.value_noise(rng, S, (4, 8, 16, 32, 64), (1.0, 0.6, 0.4, 0.3, 0.25))
    q = P.index3(noise)
    tex = P.ramp(q, pal["fg"])
    u = rng.random() if texture_cue else 1.0
    if u < 0.25:  # spots or patches (animal coat, print)
        spots = P.value_noise(rng, S, (6, 12))
        w = np.clip((spots - rng.uniform(0.55, 0.7)) * 12.0, 0.0, 1.0)
        tex = P.lerp(tex, pal["fg2"][0], P.expand3(w))
    elif u < 0.45:  # woven or striped fabric
        st = P.stripes(S, rng.uniform(0, np.pi), rng.uniform(4, 20) * s, rng.uniform(1, 3),
                       rng.uniform(0, 2 * np.pi))
        tex = P.lerp(tex, pal["fg2"][1], P.expand3(st * rng.uniform(0.3, 0.7)))
    shade = P.linear_gradient(S, rng.uniform(0, 2 * np.pi))  # key light from one side
    light = P.expand3(rng.uniform(0.65, 0.85) + rng.uniform(0.2, 0.45) * shade)
    if not texture_cue:
        tex = T.surface(rng, S, pal["fg"], pal["fg2"])
    tex = np.clip(cv2.multiply(tex, light), 0.0, 1.0)

    objs = subject_shapes(rng, S, large=not texture_cue)
    if zoom > 1.0 and rng.random() < 0.5:
        centre = np.mean([o["centre"] for o in objs], axis=0)
        objs = zoom_subject(objs, float(np.exp(rng.uniform(0.0, np.log(zoom)))), centre)
    acc_p = acc_a = veil = None
    if rng.random() < 0.3:  # tulle, a glass vase, smoke: alpha 0.2-0.8 reaching beyond the body
        o = objs[-1]
        c = point_on_outline(rng, o)[0]
        m = np.zeros((S, S), np.uint8)
        P.fill_polys(m, [P.blob(rng, c[0], c[1], o["radius"] * rng.uniform(0.3, 0.7), 64, 0.25,
                                5, rng.uniform(0.6, 1.6), rng.uniform(0, np.pi))])
        va = m.astype(np.float32) * (rng.uniform(0.2, 0.8) / 255.0) * (0.8 + 0.2 * noise)
        vcol = P.hsv(rng.random(), rng.uniform(0, 0.5), rng.uniform(0.5, 1.0))
        veil = (va, cv2.multiply(P.expand3(0.85 + 0.15 * noise), P.scalar(vcol)))
        if rng.random() < 0.5:  # behind the subject rather than over it
            acc_p, acc_a = _over(acc_p, acc_a, *veil)
            veil = None

    for i, o in enumerate(objs):
        m = np.zeros((S, S), np.uint8)
        P.fill_polys(m, o["polys"])
        a = m.astype(np.float32) * (1.0 / 255.0)
        if i == len(objs) - 1:
            col = tex
        elif texture_cue:  # the object behind has colours of its own
            col = np.clip(cv2.multiply(P.ramp(q, pal["fg2"]), light), 0.0, 1.0)
        else:
            col = np.clip(cv2.multiply(T.surface(rng, S, pal["fg2"], pal["fg"]), light), 0.0, 1.0)
        if not texture_cue and ("head" in o or rng.random() < 0.5):  # a second part, its own surface
            other = pal["fg2"] if rng.random() < 0.5 else P.colour_family(rng, rng.random(), rng.uniform(0.1, 0.8),
                                                                         rng.uniform(0.3, 0.9), 3, dv=0.2)
            part = T.surface(rng, S, other, pal["clutter"])
            col = P.lerp(col, np.clip(cv2.multiply(part, light), 0.0, 1.0), P.expand3(T.part_mask(rng, S, o)))
        if not texture_cue and markings > 0.0 and rng.random() < markings:  # drawn over the frame: those on the body show
            col = T.clutter(rng, col, pal, int(rng.integers(6, 20)), (0.02, 0.1))
        if rng.random() < holes:
            a *= 1.0 - hole_mask(rng, S, m, o).astype(np.float32) * (1.0 / 255.0)
        if rng.random() < 0.25:  # a window of glass or thin fabric inside the body
            c = o["centre"] + (point_on_outline(rng, o)[0] - o["centre"]) * rng.uniform(0.2, 0.6)
            g = np.zeros((S, S), np.uint8)
            P.fill_polys(g, [P.superellipse(c[0], c[1], o["radius"] * rng.uniform(0.15, 0.35),
                                            o["radius"] * rng.uniform(0.15, 0.35), rng.uniform(2, 5),
                                            rng.uniform(0, np.pi), 48)])
            gf = g.astype(np.float32) * (1.0 / 255.0)
            a *= 1.0 - (1.0 - rng.uniform(0.2, 0.8)) * gf
            tint = P.hsv(rng.random(), rng.uniform(0, 0.3), rng.uniform(0.6, 1.0))
            col = P.lerp(col, tint, P.expand3(0.6 * gf))
        acc_p, acc_a = _over(acc_p, acc_a, a, col)
        if o["cap"] is not None or rng.random() < hair:
            hair_a = strand_coverage(rng, S, o)
            if o["cap"] is not None:
                cap = np.zeros((S, S), np.uint8)
                P.fill_polys(cap, [o["cap"]])
                hair_a = np.maximum(hair_a, cap.astype(np.float32) * (1.0 / 255.0))
            hcol = np.clip(cv2.multiply(P.ramp(q, pal["hair"]), light), 0.0, 1.0)
            acc_p, acc_a = _over(acc_p, acc_a, hair_a, hcol)
    if veil is not None:
        acc_p, acc_a = _over(acc_p, acc_a, *veil)

    if rng.random() < 0.15:  # moving subject: alpha and colour smear together
        stack = cv2.merge([*cv2.split(acc_p), acc_a])
        stack = P.motion_blur(stack, max(3, int(rng.uniform(4, 14) * s)), rng.uniform(0, np.pi))
        acc_p, acc_a = stack[..., :3], np.ascontiguousarray(stack[..., 3])

    alpha = np.clip(acc_a, 0.0, 1.0)
    alpha[alpha < 1e-4] = 0.0  # convolution round-off, not coverage
    # Un-premultiply; where the subject is absent this falls back to its extended texture.
    eps = 1e-4
    fg = cv2.divide(cv2.addWeighted(np.ascontiguousarray(acc_p), 1.0, tex, eps, 0.0), P.expand3(alpha + eps))
    fg = np.clip(fg, 0.0, 1.0).astype(np.float32)
    bg = bg.astype(np.float32)
    alpha = alpha.astype(np.float32)
    a3 = alpha[..., None]
    image = a3 * fg + (1.0 - a3) * bg
    return {"fg": fg, "bg": bg, "alpha": alpha, "image": image}
