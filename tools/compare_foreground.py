"""Compare the project's foreground estimation with pymatting's ``estimate_foreground_ml`` on real photos.

    python tools/compare_foreground.py [--data ../shared/data/alphamatting] [--limit N] [--scale S]
                                       [--warm] [--out FILE.md]

Both implement the multi-level method of Germer et al. (2020) with the same parameters
(regularization 1e-5, 10 small / 2 big iterations, small size 32). For each image/alpha pair of
the folder (``image/``, ``alpha/``) it reports, over the pixels with alpha > 0:

- the largest and the mean absolute difference of the two foregrounds (0..1 units; x 255 for
  8-bit levels), and the share of pixels that differ by more than 2 levels;
- the time of each implementation per image;
- with ``--backgrounds``: each photo taken as a true foreground, composited over a known
  background with its alpha, and both estimates compared with that truth (alpha-weighted
  mean absolute error), which says which one is closer when they differ.

Each implementation runs in its own fresh process, so start-up is counted: Python imports plus,
for pymatting, numba's compilation of its kernels on first import. The compilation is forced by
an empty ``NUMBA_CACHE_DIR`` (as on a machine that never ran pymatting); ``--warm`` reuses the
normal numba cache instead. Needs ``pip install pymatting``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "alphamatting"
PARAMS = {"regularization": 1e-5, "n_small_iterations": 10, "n_big_iterations": 2, "small_size": 32}

# Run in a child process: load the pairs, time start-up and every call, save the foregrounds.
CHILD = textwrap.dedent("""
    import json, sys, time
    started = time.perf_counter()
    import numpy as np
    which, pairs_file, out_file, scale = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    if which == "pymatting":
        from pymatting import estimate_foreground_ml as run
    else:
        from matting.foreground import estimate_foreground as run
    startup = time.perf_counter() - started
    import cv2

    from matting.io.images import read_alpha, read_image, resize_image
    params = json.loads(sys.argv[5])
    times, results = [], {}
    for name, image_path, alpha_path, bg_path in json.load(open(pairs_file)):
        image, alpha = read_image(image_path), read_alpha(alpha_path)
        if scale != 1:
            height, width = round(alpha.shape[0] * scale), round(alpha.shape[1] * scale)
            image = resize_image(image, height, width, enlarge=cv2.INTER_AREA)
            alpha = resize_image(alpha, height, width, enlarge=cv2.INTER_AREA)
        if bg_path:  # synthetic check: the photo is the true foreground, composited over a known background
            bg = resize_image(read_image(bg_path), *alpha.shape[:2], enlarge=cv2.INTER_AREA)
            image = (alpha[..., None] * image + (1 - alpha[..., None]) * bg).astype(np.float32)
        if which == "pymatting":
            image, alpha = image.astype(np.float64), alpha.astype(np.float64)
        t = time.perf_counter()
        fg = run(image, alpha, **params)
        times.append(time.perf_counter() - t)
        results[name] = np.asarray(fg, dtype=np.float32)
    np.savez(out_file, **results)
    print(json.dumps({"startup": startup, "times": times, "total": time.perf_counter() - started}))
""")


def _run(which: str, pairs: list, scale: float, warm: bool, workdir: Path) -> tuple[dict, dict]:
    pairs_file, out_file = workdir / "pairs.json", workdir / f"{which}.npz"
    pairs_file.write_text(json.dumps(pairs))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    if not warm:
        env["NUMBA_CACHE_DIR"] = str(workdir / f"numba_cache_{which}")
    result = subprocess.run([sys.executable, "-c", CHILD, which, str(pairs_file), str(out_file), str(scale), json.dumps(PARAMS)],
                            env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{which} failed:\n{result.stderr[-3000:]}")
    timing = json.loads(result.stdout.strip().splitlines()[-1])
    with np.load(out_file) as data:
        return timing, {k: data[k] for k in data.files}


def compare(data: Path, limit: int | None = None, scale: float = 1.0, warm: bool = False,
            backgrounds: Path | None = None) -> dict:
    import cv2

    from matting.io.images import list_images, read_alpha, read_image, resize_image

    images, alphas = list_images(data / "image"), list_images(data / "alpha")
    names = sorted(set(images) & set(alphas))[:limit]
    pairs = [(n, str(images[n]), str(alphas[n]), "") for n in names]
    bgs = sorted(list_images(backgrounds).values()) if backgrounds and backgrounds.is_dir() else []
    synthetic = [(f"{n}~", str(images[n]), str(alphas[n]), str(bgs[i % len(bgs)])) for i, n in enumerate(names)] if bgs else []
    with tempfile.TemporaryDirectory() as tmp:
        timing_pm, fg_pm = _run("pymatting", pairs + synthetic, scale, warm, Path(tmp))
        timing_ours, fg_ours = _run("ours", pairs + synthetic, scale, warm, Path(tmp))
    rows, truth_rows = [], []
    for i, name in enumerate(names):
        alpha = read_alpha(alphas[name])
        shape = fg_ours[name].shape[:2]
        if scale != 1:
            alpha = resize_image(alpha, *shape, enlarge=cv2.INTER_AREA)
        visible = alpha > 0
        diff = np.abs(fg_ours[name] - fg_pm[name]).max(axis=2)[visible]
        rows.append({"name": name, "size": f"{alpha.shape[1]}x{alpha.shape[0]}", "max": float(diff.max()),
                     "mean": float(diff.mean()), "p99": float(np.percentile(diff, 99)),
                     "over_2_levels": float((diff > 2 / 255).mean()), "alpha_half_max": float(
                         np.abs(fg_ours[name] - fg_pm[name]).max(axis=2)[alpha >= 0.5].max()),
                     "pymatting_s": timing_pm["times"][i], "ours_s": timing_ours["times"][i]})
        if synthetic:  # error against the true foreground, alpha-weighted (what a recomposite shows)
            true_fg = read_image(images[name])
            if scale != 1:
                true_fg = resize_image(true_fg, *shape, enlarge=cv2.INTER_AREA)
            weight = alpha[visible]
            err = lambda fg: float((np.abs(fg - true_fg).mean(axis=2)[visible] * weight).sum() / weight.sum())
            truth_rows.append({"name": name, "ours": err(fg_ours[f"{name}~"]), "pymatting": err(fg_pm[f"{name}~"])})
    return {"rows": rows, "truth": truth_rows, "pymatting": timing_pm, "ours": timing_ours, "scale": scale, "warm": warm,
            "images": len(pairs + synthetic)}


def report(result: dict) -> str:
    rows, pm, ours = result["rows"], result["pymatting"], result["ours"]
    lines = ["Difference of the two foregrounds on the real photos (largest channel difference per pixel, "
             "8-bit levels, over alpha > 0):", "",
             "| image | size | mean | 99th pct | max | max where alpha >= 0.5 | pixels > 2 levels | pymatting s | ours s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['size']} | {r['mean'] * 255:.3f} | {r['p99'] * 255:.2f} | {r['max'] * 255:.1f} | "
                     f"{r['alpha_half_max'] * 255:.1f} | {r['over_2_levels'] * 100:.2f}% | "
                     f"{r['pymatting_s']:.3f} | {r['ours_s']:.3f} |")
    steady_pm = float(np.median(pm["times"][1:] or pm["times"]))
    steady_ours = float(np.median(ours["times"][1:] or ours["times"]))
    cache = "warm numba cache" if result["warm"] else "numba compiling on first import (empty cache)"
    lines += [
        "",
        f"Worst image: mean {max(r['mean'] for r in rows) * 255:.3f} levels, 99th percentile "
        f"{max(r['p99'] for r in rows) * 255:.2f} levels, max {max(r['max'] for r in rows) * 255:.1f} levels.",
    ]
    if result["truth"]:
        truth = result["truth"]
        lines += [
            "",
            "Error against the true foreground when each photo is composited over a known background "
            "(alpha-weighted mean absolute error, levels): "
            f"ours {np.mean([t['ours'] for t in truth]) * 255:.3f}, pymatting {np.mean([t['pymatting'] for t in truth]) * 255:.3f} "
            f"(worst image: ours {max(t['ours'] for t in truth) * 255:.3f}, pymatting {max(t['pymatting'] for t in truth) * 255:.3f}).",
        ]
    lines += [
        "",
        f"pymatting: start-up {pm['startup']:.1f} s ({cache}), median {steady_pm:.3f} s per image, "
        f"whole run {pm['total']:.1f} s.",
        f"ours: start-up {ours['startup']:.1f} s, median {steady_ours:.3f} s per image, whole run {ours['total']:.1f} s.",
        f"Whole run, start-up counted ({result['images']} estimations): ours is {pm['total'] / ours['total']:.1f}x faster.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with image/ and alpha/")
    parser.add_argument("--limit", type=int, help="first N images only")
    parser.add_argument("--scale", type=float, default=1.0, help="resize the images by this factor first")
    parser.add_argument("--backgrounds", type=Path, default=DEFAULT_DATA.parent / "backgrounds",
                        help="backgrounds for the check against a known foreground (none: skip it)")
    parser.add_argument("--warm", action="store_true", help="reuse numba's cache (do not count its compilation)")
    parser.add_argument("--out", type=Path, help="also write the report (markdown) here")
    args = parser.parse_args(argv)
    if not (args.data / "image").is_dir():
        print(f"no images at {args.data}/image", file=sys.stderr)
        return 2
    try:
        import pymatting  # noqa: F401
    except ImportError:
        print("this comparison needs pymatting: pip install pymatting", file=sys.stderr)
        return 2
    started = time.perf_counter()
    text = report(compare(args.data, args.limit, args.scale, args.warm, args.backgrounds))
    print(text)
    print(f"(comparison took {time.perf_counter() - started:.0f} s)")
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
