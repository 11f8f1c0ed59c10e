"""The subject of a procedural sample: outlines of its opaque parts, hair or fur strands, holes.

Every function draws from the ``numpy.random.Generator`` it is given, in a fixed order: the
samples of :mod:`matting.data.synthetic.dataset` depend on that order, so a change here changes
the data (and its fingerprint, which hashes these files).
"""

from __future__ import annotations

import cv2
import numpy as np

from matting.data.synthetic import procedural as P

__all__ = ["hole_mask", "point_on_outline", "strand_coverage", "subject_shapes", "zoom_subject"]


def subject_shapes(rng: np.random.Generator, size: int, large: bool = False) -> list[dict]:
    """Outlines of the subject's opaque parts.

    ``large``: 40% of single and paired subjects are framed as photos of objects often are, filling
    30-60% of the frame and cut by its bottom edge (the first generator: False, no such draw).

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
    big = large and rng.random() < 0.4
    if big:  # standing on (and cut by) the bottom edge of the frame
        area = rng.uniform(0.3, 0.6) if kind == "single" else rng.uniform(0.25, 0.45)
        cy = S - S * np.sqrt(area / np.pi) * rng.uniform(0.3, 0.9)
    if kind == "single":
        return [one(cx, cy, area if big else rng.uniform(0.15, 0.45))]
    a = one(cx, cy, area if big else rng.uniform(0.12, 0.35))
    ang = rng.uniform(0, 2 * np.pi)
    d = a["radius"] * rng.uniform(0.6, 1.1)
    b = one(cx + d * np.cos(ang), cy + d * np.sin(ang), rng.uniform(0.05, 0.2))
    return [a, b] if rng.random() < 0.5 else [b, a]


def zoom_subject(objs: list[dict], factor: float, anchor: np.ndarray) -> list[dict]:
    """The subject of :func:`subject_shapes` enlarged ``factor`` times about ``anchor`` (x, y in px),
    as a closer camera frames it: outlines, hair cap, centres, radii and the parting move; normals
    and hair spans (directions and fractions of the outline) do not. Returns new dicts."""
    def scale(points):
        return None if points is None else anchor + (points - anchor) * factor

    zoomed = []
    for o in objs:
        z = {**o, "polys": [scale(p) for p in o["polys"]], "outline": scale(o["outline"]), "cap": scale(o["cap"]),
             "centre": scale(o["centre"]), "radius": o["radius"] * factor}
        if "head" in o:
            z["head"] = o["head"] * factor
            z["parting"] = anchor[0] + (o["parting"] - anchor[0]) * factor
        zoomed.append(z)
    return zoomed


def strand_coverage(rng: np.random.Generator, size: int, obj: dict) -> np.ndarray:
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


def hole_mask(rng: np.random.Generator, size: int, body: np.ndarray, obj: dict) -> np.ndarray:
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


def point_on_outline(rng: np.random.Generator, obj: dict) -> np.ndarray:
    """One random point on the outline of the object's largest part: float (1, 2)."""
    poly = obj["polys"][0]
    return poly[rng.integers(len(poly))][None]

