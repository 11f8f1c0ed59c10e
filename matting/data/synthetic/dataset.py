"""Procedural matting dataset: composites with true soft alpha, generated in code.

Each sample is a foreground subject layered over a procedural background::

    image = alpha * fg + (1 - alpha) * bg        (float32, computed exactly in that form)

The subject is one large object (sometimes two overlapping ones, or a head-and-shoulders
silhouette) covering roughly 15-60% of the frame, in focus and textured, with hair or fur
strands of partial coverage, optional holes, semi-transparent veil or glass parts
(alpha 0.2-0.8) and, on some samples, motion blur. Backgrounds are multi-octave noise,
gradients, stripes and clutter, usually defocus-blurred. About 30% of samples draw the
foreground and background colours from the same hue family with small luminance
differences, so that colour alone cannot separate subject from background.

Samples are pure functions of ``(seed, split, index)``: nothing depends on worker, order
or process, and the three splits use disjoint random streams.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from matting.data.synthetic import procedural as P
from matting.io.errors import MattingInputError

SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
HARD_FRACTION = 0.3  # share of samples whose fg and bg colours come from one hue family

_CV2_LIMITED_IN_PID: int | None = None


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


# --------------------------------------------------------------------------- subject


def _subject_shapes(rng: np.random.Generator, size: int) -> list[dict]:
    """Outlines of the subject's opaque parts.

    Returns a list of objects (front-most last), each a dict with ``polys`` (float (N, 2)
    outlines whose union is the opaque body), ``outline`` with its outward ``normals`` and
    ``closed`` flag (the curve strands grow from), ``hair`` (arc start and span as fractions
    of the outline, ``flow`` direction or None), ``cap`` (an opaque hair polygon or None),
    ``centre`` and ``radius`` (px).
    """
    S = float(size)
    kind = rng.choice(["single", "portrait", "pair"], p=[0.45, 0.3, 0.25])
    if kind == "portrait":
        cx = S * rng.uniform(0.35, 0.65)
        rh = S * rng.uniform(0.12, 0.19)
        cy = S * rng.uniform(0.28, 0.42)
        head = P.blob(rng, cx, cy, rh, 96, 0.06, 4, rng.uniform(0.78, 0.92), rng.uniform(-0.25, 0.25))
        tw, th = S * rng.uniform(0.28, 0.45), S * rng.uniform(0.35, 0.5)
        ty = cy + rh * rng.uniform(1.3, 1.8) + th
        torso = P.superellipse(cx + rng.uniform(-0.05, 0.05) * S, ty, tw, th, rng.uniform(2.2, 3.5),
                               rng.uniform(-0.1, 0.1))
        nw = rh * rng.uniform(0.35, 0.5)
        neck = np.array([[cx - nw, cy], [cx + nw, cy], [cx + nw, ty - th * 0.8], [cx - nw, ty - th * 0.8]])
        # Hair: an opaque cap over the crown (polar angle -pi/2 is the top of the head),
        # thickest at the top and tapering to nothing at the temples; strands grow from
        # its outer edge and fall down the sides.
        span = rng.uniform(0.35, 0.7)
        k = np.arange(int((0.75 - span / 2) * 96), int((0.75 + span / 2) * 96) + 1) % 96
        nrm = P.outward_normals(head)[k]
        taper = np.sin(np.linspace(0, np.pi, len(k))) ** 0.6
        outer = head[k] + nrm * (rh * rng.uniform(0.12, 0.35) * taper)[:, None]
        cap = np.concatenate([outer, (head[k] - nrm * 2.0 * S / 256)[::-1]])
        return [{"polys": [torso, neck, head], "outline": outer, "normals": nrm, "closed": False,
                 "hair": (0.0, 1.0, np.array([0.0, 1.0])), "cap": cap,
                 "centre": np.array([cx, ty - th * 0.5]), "radius": tw, "head": rh,
                 "parting": cx + rh * rng.uniform(-0.4, 0.4)}]

    def one(cx, cy, area):
        r = S * np.sqrt(area / np.pi)
        if rng.random() < 0.6:
            poly = P.blob(rng, cx, cy, r, 96, rng.uniform(0.05, 0.35), 6,
                          rng.uniform(0.7, 1.4), rng.uniform(0, np.pi))
        else:
            poly = P.superellipse(cx, cy, r * rng.uniform(0.8, 1.25), r * rng.uniform(0.8, 1.25),
                                  rng.uniform(2.0, 5.0), rng.uniform(0, np.pi))
        # Fur everywhere (an animal, a plush toy) or a tuft on one side.
        hair = (rng.random(), 1.0, None) if rng.random() < 0.5 else (rng.random(), rng.uniform(0.2, 0.5), None)
        return {"polys": [poly], "outline": poly, "normals": P.outward_normals(poly), "closed": True,
                "hair": hair, "cap": None, "centre": np.array([cx, cy]), "radius": r}

    cx, cy = S * rng.uniform(0.35, 0.65, 2)
    if kind == "single":
        return [one(cx, cy, rng.uniform(0.15, 0.45))]
    a = one(cx, cy, rng.uniform(0.12, 0.35))
    ang = rng.uniform(0, 2 * np.pi)
    d = a["radius"] * rng.uniform(0.6, 1.1)
    b = one(cx + d * np.cos(ang), cy + d * np.sin(ang), rng.uniform(0.05, 0.2))
    return [a, b] if rng.random() < 0.5 else [b, a]


def _strands(rng: np.random.Generator, size: int, obj: dict) -> np.ndarray:
    """Hair/fur coverage for one object: float32 (size, size) in [0,1]."""
    s = size / 256.0  # pixel constants below are tuned at 256 px
    poly, nrm, closed = obj["outline"], obj["normals"], obj["closed"]
    start, span, flow = obj["hair"]
    seg_len = np.linalg.norm(np.diff(poly, axis=0, append=poly[:1] if closed else poly[-1:]), axis=1)
    perim = float(seg_len.sum()) * span
    if "head" in obj:  # head hair: long, dense, combed by gravity
        n = int(perim * rng.uniform(2.5, 5.0))
        lengths = obj["head"] * rng.uniform(0.1, rng.uniform(0.6, 1.8), n)
        n_seg, curl, wave = 12, rng.uniform(0.01, 0.06), rng.uniform(0.0, 0.15)
        fw = rng.uniform(0.5, 0.9)
    elif flow is not None or rng.random() < 0.3:  # long, wind-blown tufts
        n = int(perim * rng.uniform(0.8, 2.0))
        lengths = obj["radius"] * rng.uniform(0.05, 0.3, n)
        n_seg, curl, wave = 10, rng.uniform(0.02, 0.12), rng.uniform(0.0, 0.15)
        if flow is None:
            flow = np.array([np.cos(a := rng.uniform(0, 2 * np.pi)), np.sin(a)])
        fw = rng.uniform(0.3, 0.8)
    else:  # fur: dense, short, curly
        n = int(perim * rng.uniform(1.0, 3.0))
        lengths = rng.uniform(2.0, rng.uniform(6.0, 16.0), n) * s
        n_seg, curl, wave, fw = 5, rng.uniform(0.05, 0.3), 0.0, 0.0
    if n == 0:
        return np.zeros((size, size), np.float32)
    roots, dirs = P.sample_on_outline(rng, poly, nrm, n, start, span, closed)
    if "head" in obj:
        # Combed hair lies along the scalp before it falls: start along the tangent that
        # points down the nearer side of the head, lifted slightly off it.
        tang = np.stack([-dirs[:, 1], dirs[:, 0]], axis=1)
        side = np.sign(roots[:, 0] - (obj["parting"] + rng.normal(0, 2.0, n) * s))
        tang *= np.where(np.sign(tang[:, 0]) == side, 1.0, -1.0)[:, None]
        dirs = tang + dirs * rng.uniform(0.2, 0.6, (n, 1))
    dirs = dirs + rng.normal(0, 0.3, dirs.shape)  # strands do not all leave perpendicular
    roots = roots - dirs * rng.uniform(0.5, 3.0, (n, 1)) * s  # emerge from inside the body
    paths = P.strand_paths(rng, roots, dirs, lengths, n_seg, curl, flow, fw, wave)
    if rng.random() < 0.5:  # a few long flyaways
        k = int(rng.integers(3, 15))
        fr, fd = P.sample_on_outline(rng, poly, nrm, k, start, span, closed)
        fl = obj["radius"] * rng.uniform(0.3, 1.0, k)
        fly = P.strand_paths(rng, fr, fd, fl, n_seg, 0.15, flow, fw * 0.5)
        paths = np.concatenate([paths, fly])
    m = len(paths)
    strengths = rng.uniform(0.3, 1.0, m)
    widths = rng.integers(1, 4, m) if rng.random() < 0.7 else rng.integers(1, 3, m)
    return P.draw_strands(size, paths, strengths, widths.astype(np.int32))


def _holes(rng: np.random.Generator, size: int, body: np.ndarray, obj: dict) -> np.ndarray:
    """Gaps that show the background through the object: uint8 (size, size) mask, 255 = hole."""
    s = size / 256.0
    mask = np.zeros((size, size), np.uint8)
    inside = np.flatnonzero(body[::4, ::4] == 255)
    if len(inside) == 0:
        return mask
    r = obj["radius"]
    for _ in range(int(rng.integers(1, 4))):
        j = inside[rng.integers(len(inside))]
        x, y = (j % ((size + 3) // 4)) * 4.0, (j // ((size + 3) // 4)) * 4.0
        kind = rng.integers(3)
        if kind == 0:  # ring: a handle, a hoop, a loop of rope
            ax = np.array([r * rng.uniform(0.12, 0.35), r * rng.uniform(0.12, 0.35)])
            cv2.ellipse(mask, tuple(int(v) for v in P.to_fixed(np.array([x, y]))),
                        tuple(int(v) for v in P.to_fixed(ax)), float(rng.uniform(0, 180)), 0, 360,
                        255, max(1, int(rng.uniform(2, 7) * s)), cv2.LINE_AA, P.SHIFT)
        elif kind == 1:  # a round or oval gap
            P.fill_polys(mask, [P.blob(rng, x, y, r * rng.uniform(0.06, 0.2), 48, 0.2,
                                       4, rng.uniform(0.5, 1.5), rng.uniform(0, np.pi))])
        else:  # letter-like stroke: cut-out lettering, gaps between fingers
            pts = np.array([x, y]) + np.cumsum(rng.normal(0, r * 0.15, (int(rng.integers(2, 5)), 2)), axis=0)
            cv2.polylines(mask, [P.to_fixed(pts)], False, 255, max(1, int(rng.uniform(2, 6) * s)),
                          cv2.LINE_AA, P.SHIFT)
    return mask


# --------------------------------------------------------------------------- sample


def _point_on_body_outline(rng: np.random.Generator, obj: dict) -> np.ndarray:
    """One random point on the outline of the object's largest part: float (1, 2)."""
    poly = obj["polys"][0]
    return poly[rng.integers(len(poly))][None]


def _over(acc_p, acc_a, a: np.ndarray, col: np.ndarray):
    """Porter-Duff 'over': layer (alpha (H,W), colour (H,W,3)) on premultiplied (acc_p, acc_a)."""
    a = a.astype(np.float32, copy=False)
    if acc_a is None:
        return cv2.multiply(P.expand3(a), col), a.copy()
    return P.lerp(acc_p, col, P.expand3(a)), acc_a + a * (1.0 - acc_a)


def generate_sample(rng: np.random.Generator, size: int) -> dict:
    """Generate one composite.

    Returns a dict of float32 numpy arrays in [0,1]: ``fg`` (H,W,3), ``bg`` (H,W,3),
    ``alpha`` (H,W) and ``image`` (H,W,3) with H = W = ``size`` and
    ``image = alpha[..., None] * fg + (1 - alpha[..., None]) * bg`` evaluated in float32.
    ``fg`` is defined over the whole frame (the subject's texture extended beyond it).
    """
    S = int(size)
    s = S / 256.0
    hard = rng.random() < HARD_FRACTION
    pal = _palettes(rng, hard)
    bg = _background(rng, S, pal)

    # Textures: one shared noise field, one colour ramp per layer; the fine octaves keep
    # the in-focus subject crisper than the usually defocused background.
    noise = P.value_noise(rng, S, (4, 8, 16, 32, 64), (1.0, 0.6, 0.4, 0.3, 0.25))
    q = P.index3(noise)
    tex = P.ramp(q, pal["fg"])
    u = rng.random()
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
    tex = np.clip(cv2.multiply(tex, light), 0.0, 1.0)

    objs = _subject_shapes(rng, S)
    acc_p = acc_a = veil = None
    if rng.random() < 0.3:  # tulle, a glass vase, smoke: alpha 0.2-0.8 reaching beyond the body
        o = objs[-1]
        c = _point_on_body_outline(rng, o)[0]
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
        else:  # the object behind has colours of its own
            col = np.clip(cv2.multiply(P.ramp(q, pal["fg2"]), light), 0.0, 1.0)
        if rng.random() < 0.45:
            a *= 1.0 - _holes(rng, S, m, o).astype(np.float32) * (1.0 / 255.0)
        if rng.random() < 0.25:  # a window of glass or thin fabric inside the body
            c = o["centre"] + (_point_on_body_outline(rng, o)[0] - o["centre"]) * rng.uniform(0.2, 0.6)
            g = np.zeros((S, S), np.uint8)
            P.fill_polys(g, [P.superellipse(c[0], c[1], o["radius"] * rng.uniform(0.15, 0.35),
                                            o["radius"] * rng.uniform(0.15, 0.35), rng.uniform(2, 5),
                                            rng.uniform(0, np.pi), 48)])
            gf = g.astype(np.float32) * (1.0 / 255.0)
            a *= 1.0 - (1.0 - rng.uniform(0.2, 0.8)) * gf
            tint = P.hsv(rng.random(), rng.uniform(0, 0.3), rng.uniform(0.6, 1.0))
            col = P.lerp(col, tint, P.expand3(0.6 * gf))
        acc_p, acc_a = _over(acc_p, acc_a, a, col)
        if o["cap"] is not None or rng.random() < 0.8:
            hair_a = _strands(rng, S, o)
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


# --------------------------------------------------------------------------- dataset


class SyntheticMattingDataset(Dataset):
    """On-the-fly procedural matting samples.

    Item ``i`` is a dict of torch float32 tensors in [0,1] - ``image`` (3,H,W), ``alpha``
    (1,H,W), ``fg`` (3,H,W), ``bg`` (3,H,W) - and ``name`` (str, e.g. ``"test_00012"``).
    It depends only on (seed, split, i), never on worker, order or process.

    The first item fetched in a process pins OpenCV to one thread in that process: the
    generator makes many small cv2 calls, for which thread hand-off costs more than it
    saves (about 9 ms instead of 14 ms per 256 px sample on two cores), and data-loader
    workers each spawning a cv2 thread pool would oversubscribe the CPU.
    """

    def __init__(self, split: str = "train", length: int = 1000, size: int = 256, seed: int = 0):
        if split not in SPLIT_IDS:
            raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLIT_IDS)}")
        if length < 0:
            raise ValueError(f"length must be >= 0, got {length}")
        if size < 16:
            raise ValueError(f"size must be >= 16, got {size}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.split, self.length, self.size, self.seed = split, int(length), int(size), int(seed)

    def __len__(self) -> int:
        return self.length

    def _index(self, i: int) -> int:
        i = int(i)
        if i < 0:
            i += self.length
        if not 0 <= i < self.length:
            raise IndexError(f"index {i} out of range for {self.split} split of length {self.length}")
        return i

    def name(self, i: int) -> str:
        return f"{self.split}_{self._index(i):05d}"

    def arrays(self, i: int) -> dict:
        """Sample ``i`` as numpy float32 (H,W,C) / (H,W) arrays, as from ``generate_sample``."""
        i = self._index(i)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, SPLIT_IDS[self.split], i]))
        return generate_sample(rng, self.size)

    def __getitem__(self, i: int) -> dict:
        global _CV2_LIMITED_IN_PID
        if _CV2_LIMITED_IN_PID != os.getpid():
            cv2.setNumThreads(1)
            _CV2_LIMITED_IN_PID = os.getpid()
        d = self.arrays(i)
        out = {k: torch.from_numpy(np.ascontiguousarray(d[k].transpose(2, 0, 1)))
               for k in ("image", "fg", "bg")}
        out["alpha"] = torch.from_numpy(d["alpha"][None].copy())
        out["name"] = self.name(i)
        return out


def _to_u8(x) -> np.ndarray:
    """Tensor (C,H,W)/(H,W) or array in [0,1] -> uint8 (H,W[,C]) in OpenCV channel order."""
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.ndim == 3 and a.shape[0] in (1, 3):
        a = a.transpose(1, 2, 0)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    u = np.clip(np.rint(np.asarray(a, np.float32) * 255.0), 0, 255).astype(np.uint8)
    return u[..., ::-1].copy() if u.ndim == 3 else u  # RGB -> BGR for cv2


def write_split(dataset, out_dir, overwrite: bool = False) -> Path:
    """Write every item of ``dataset`` to ``out_dir/{image,alpha,fg,bg}/<name>.png``.

    8-bit PNGs; alpha is single-channel, the others RGB. The split is written into a
    temporary sibling directory and renamed into place at the end, so a crash never leaves
    a half-written split behind. Raises ``MattingInputError`` if ``out_dir`` exists and is
    not empty (or is a file), unless ``overwrite`` is set. Returns ``out_dir`` as a Path.
    """
    out = Path(out_dir)
    if out.exists():
        if not out.is_dir():
            raise MattingInputError(f"output path exists and is not a directory: {out}")
        if any(out.iterdir()) and not overwrite:
            raise MattingInputError(f"output directory is not empty: {out} (pass overwrite=True to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        for sub in ("image", "alpha", "fg", "bg"):
            (tmp / sub).mkdir(parents=True)
        for i in range(len(dataset)):
            item = dataset[i]
            name = item["name"]
            for key in ("image", "alpha", "fg", "bg"):
                path = tmp / key / f"{name}.png"
                if not cv2.imwrite(str(path), _to_u8(item[key])):
                    raise MattingInputError(f"could not write {path}")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    # Swap into place; an existing (empty or overwritten) directory is moved aside first
    # and put back if the final rename fails.
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        out.rename(old)
    try:
        tmp.rename(out)
    except BaseException:
        if old is not None:
            old.rename(out)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out
