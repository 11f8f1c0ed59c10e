"""``matting predict``: alpha mattes and cutouts of your own photos.

    matting predict --ckpt CKPT|GRAPH.onnx INPUT... --out DIR [--background COLOUR|IMAGE]
                    [--base-size 512] [--base-side long|short] [--bf16 | --fp16] [--device cuda]
                    [--overwrite | --skip-existing] [--no-cutout] [--no-progress]

INPUT is any mix of image files, folders (their images, not sub-folders) and glob patterns
(``'photos/**/*.jpg'``; quote them so the shell leaves them to us). For each image, named by its
file stem, it writes into DIR:

- ``alpha/<stem>.png``: the alpha matte, 8-bit gray, at the image's full resolution.
- ``cutout/<stem>.png``: RGBA, colours = the estimated foreground (:mod:`matting.foreground`, so
  no old-background colour halos around hair), A = the matte with levels below
  ``CUTOUT_CLEAR_BELOW`` (8 of 255, about 3%) set to 0, so the background is fully transparent.
- ``composite/<stem>.png`` (with ``--background``): the subject over a solid colour (``white``,
  ``'#00ff00'``, ``0,255,0``) or over an image (scaled to cover and centre-cropped).

Images are read with :mod:`matting.io.images` (EXIF orientation applied; gray, RGBA, 16-bit; any
size). The network runs on the image resized to ``--base-size`` on its long (or short) side,
rounded to multiples of 32, and alpha is upsampled to full resolution (see
:func:`matting.inference.predict_alpha`).

``--ckpt`` takes a checkpoint (``.ckpt``, ``.safetensors``) or, told apart by its ``.onnx``
suffix, a graph written by ``matting export``. A graph is the fast start: it runs with
onnxruntime alone (:class:`matting.inference.graph.AlphaGraph`; no torch, timm or jsonargparse to
import), about a second for one photo, and carries its base size (``--base-size`` may only
repeat it). A checkpoint rebuilds the network with PyTorch, channels_last with BatchNorm folded
(:func:`matting.inference.prepare_for_inference`; ``--eager`` runs it as trained, without
either), loaded without unpickling objects (:func:`matting.inference.load_net`). docs/speed.md
has the figures of both.

Every file is written atomically (temporary file, then rename), and an existing output is never
replaced without ``--overwrite``; ``--skip-existing`` skips images whose outputs all exist (to
resume an interrupted run). A problem with one input (unreadable, outputs already there) is
reported on stderr and the others are still processed; the exit status is then 1. Problems with
the command itself (checkpoint, output folder, background) exit with status 2 before any work.
Ctrl-C stops after the files already written (one line says how many; exit status 130). Output
folders this run created and left empty are removed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from matting.io.errors import MattingInputError, NonFiniteOutput, ToolArgumentParser, check_base_size, positive_int
from matting.io.files import check_output
from matting.io.images import (
    from_uint8,
    read_image,
    resize_image,
    to_uint8,
    write_png,
)
from matting.io.limits import add_reader_options, apply_reader_options
from matting.io.pairing import check_stems, collect_inputs

OUTPUT_KINDS = ("alpha", "cutout", "composite")


NAMED_COLOURS = {
    "white": (255, 255, 255),
    "black": (0, 0, 0),
    "gray": (128, 128, 128),
    "grey": (128, 128, 128),
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
}


def build_parser() -> argparse.ArgumentParser:
    p = ToolArgumentParser(
        prog="matting predict",
        description="Alpha mattes, RGBA cutouts and composites of photos, from a trained checkpoint.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Outputs: DIR/alpha/<stem>.png, DIR/cutout/<stem>.png, DIR/composite/<stem>.png (with --background).",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    p.add_argument("--ckpt", required=True, type=Path, help="checkpoint: .ckpt from `matting fit`, or .safetensors; or a graph "
                   "from `matting export` (.onnx: the fast start, onnxruntime only)")
    p.add_argument("--out", required=True, type=Path, help="output folder (created if missing)")
    p.add_argument("--background", help="also write a composite over this colour (white, '#00ff00', 0,255,0) or image file")
    p.add_argument("--base-size", type=int, help="size of the base pass on --base-side, 32 to 4096 (default 512; a graph's own)")
    p.add_argument("--base-side", choices=("long", "short"), help="side scaled to --base-size (default long; a graph's own)")
    precision = p.add_mutually_exclusive_group()
    precision.add_argument("--bf16", action="store_true", help="bfloat16 autocast: faster on CPUs with native bf16 and on GPUs, but alpha may "
                           "differ from float32 by up to ~0.2 at edges (docs/speed.md)")
    precision.add_argument("--fp16", action="store_true", help="float16 autocast, for GPUs (without --bf16 or --fp16 a GPU computes in IEEE "
                           "float32, not TF32, so alpha matches the CPU's; docs/gpu.md)")
    p.add_argument("--eager", action="store_true", help="checkpoints: run the network as trained (no BatchNorm folding, "
                   "no channels_last)")
    p.add_argument("--no-cutout", action="store_true", help="write only the alpha matte (and composite), no RGBA cutout")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    group.add_argument("--skip-existing", action="store_true", help="skip images whose outputs all exist")
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads, at least 1 (default: torch's or "
                   "onnxruntime's choice)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu; a graph runs on the CPU)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_reader_options(p)
    return p


def _check_out(out: Path, kinds: list[str]) -> None:
    """An existing --out is fine (each file is checked on its own); a file where a folder goes is not."""
    check_output(out, label="--out", overwrite=True, messages={"is_file": "{where}: exists and is not a folder"})
    for kind in kinds:
        check_output(out / kind, label=f"--out {out}:", overwrite=True)


def _make_out(out: Path, kinds: list[str]) -> list[Path]:
    """Create the output folders; returns the ones this run created, deepest first."""
    created = [p for p in (*(out / kind for kind in kinds), out, *out.parents) if not p.exists()]
    try:
        for kind in kinds:
            (out / kind).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _remove_if_empty(created)
        raise MattingInputError(f"--out {out}: cannot create the output folder ({exc})") from exc
    return created


def _remove_if_empty(folders: list[Path]) -> None:
    """Remove each of ``folders`` (deepest first) that is empty; folders with files stay."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty (or gone): keep it
            pass


def parse_colour(text: str) -> np.ndarray | None:
    """'white' / '#RRGGBB' / '#RGB' / 'R,G,B' (0..255) -> float32 (3,) in [0, 1]; None when not a colour."""
    value = text.strip().lower()
    rgb: tuple[int, ...] | None = None
    if value in NAMED_COLOURS:
        rgb = NAMED_COLOURS[value]
    elif value.startswith("#") and len(value) in (4, 7):
        digits = value[1:] if len(value) == 7 else "".join(c * 2 for c in value[1:])
        try:
            rgb = tuple(int(digits[i:i + 2], 16) for i in (0, 2, 4))
        except ValueError:
            return None
    elif value.count(",") == 2:
        try:
            rgb = tuple(int(v) for v in value.split(","))
        except ValueError:
            return None
        if not all(0 <= v <= 255 for v in rgb):
            return None
    return None if rgb is None else np.asarray(rgb, np.float32) / np.float32(255)


def load_background(text: str) -> np.ndarray:
    """A background: float32 (3,) colour or (H, W, 3) image; MattingInputError when it is neither."""
    if Path(text).is_file():
        return read_image(text)
    colour = parse_colour(text)
    if colour is None:
        raise MattingInputError(
            f"--background {text!r}: neither an image file nor a colour (white, black, gray, red, green, blue, "
            "'#RRGGBB' or R,G,B with 0..255)"
        )
    return colour


def fit_background(background: np.ndarray, height: int, width: int) -> np.ndarray:
    """Colour or image -> (H, W, 3): an image is scaled to cover (H, W) and centre-cropped."""
    if background.ndim == 1:
        return np.broadcast_to(background, (height, width, 3))
    bh, bw = background.shape[:2]
    scale = max(height / bh, width / bw)
    sh, sw = max(height, int(np.ceil(bh * scale))), max(width, int(np.ceil(bw * scale)))
    scaled = resize_image(background, sh, sw)
    top, left = (sh - height) // 2, (sw - width) // 2
    return scaled[top:top + height, left:left + width]


# A cutout's alpha below this many 8-bit levels is written as 0. A network's background seldom reaches
# exactly 0 (3-4 levels is common), and a cutout pasted anywhere would carry a faint copy of the old
# background. Only the cutout: alpha/ keeps every level, since it is what the metrics score.
CUTOUT_CLEAR_BELOW = 8


def cutout_rgba(foreground: np.ndarray, alpha8: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 4): estimated foreground colours, A = the 8-bit matte with levels below
    ``CUTOUT_CLEAR_BELOW`` set to 0; colour 0 where A is 0."""
    alpha8 = np.where(alpha8 < CUTOUT_CLEAR_BELOW, 0, alpha8).astype(np.uint8)
    rgb = to_uint8(foreground)
    rgb[alpha8 == 0] = 0
    return np.dstack([rgb, alpha8])


def composite(foreground: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    """alpha * F + (1 - alpha) * B, float32 (H, W, 3) in [0, 1]."""
    a = alpha[..., None]
    out = foreground * a  # in place from here on: full-resolution temporaries are the memory peak
    out += (1.0 - a) * background
    return np.clip(out, 0.0, 1.0, out=out).astype(np.float32, copy=False)


def process_image(alpha_of, path: Path, out: Path, kinds: list[str], args, background) -> None:
    """Predict and write the outputs of one image (those in ``kinds``); ``alpha_of(image, path)`` gives
    the full-size alpha, float32 (H, W) in [0, 1], of an (H, W, 3) image."""
    from matting.foreground import estimate_foreground

    image = read_image(path)
    alpha = alpha_of(image, path)
    alpha8 = to_uint8(alpha)
    quantised = from_uint8(alpha8)
    foreground = None
    if "cutout" in kinds or "composite" in kinds:
        foreground = estimate_foreground(image, quantised)
    for kind in kinds:
        target = out / kind / f"{path.stem}.png"
        if kind == "alpha":
            data = alpha8
        elif kind == "cutout":
            data = cutout_rgba(foreground, alpha8)
        else:
            data = composite(foreground, quantised, fit_background(background, *alpha.shape))
        write_png(target, data, overwrite=args.overwrite)


def _targets(out: Path, kinds: list[str], path: Path) -> list[Path]:
    return [out / kind / f"{path.stem}.png" for kind in kinds]


def main(argv: list[str] | None = None) -> int:
    """Run the tool. Returns 0 when every image was written, 1 when some inputs failed."""
    args = build_parser().parse_args(argv)
    apply_reader_options(args)
    if args.base_size is not None:
        check_base_size(args.base_size)
    kinds = ["alpha"] + ([] if args.no_cutout else ["cutout"]) + (["composite"] if args.background else [])
    background = load_background(args.background) if args.background else None
    paths, problems = collect_inputs(args.inputs)
    if not paths:
        raise MattingInputError("no input images: " + "; ".join(problems))
    check_stems(paths)
    _check_out(args.out, kinds)

    from matting.inference.runner import open_network

    alpha_of = open_network(args.ckpt, "matting predict", base_size=args.base_size, base_side=args.base_side,
                            bf16=args.bf16, fp16=args.fp16, eager=args.eager, threads=args.threads, device=args.device)
    created = _make_out(args.out, kinds)
    try:
        return _predict_all(alpha_of, paths, problems, kinds, args, background)
    finally:
        _remove_if_empty(created)  # a run that wrote nothing leaves no empty folders behind


def _predict_all(alpha_of, paths: list[Path], problems: list[str], kinds: list[str], args, background) -> int:
    """Write the outputs of every image; 0 when all were written, 1 with problems, 130 on Ctrl-C."""
    from tqdm import tqdm

    for message in problems:
        print(f"matting predict: {message}", file=sys.stderr)
    written = skipped = 0
    start = time.perf_counter()
    bar = tqdm(paths, desc="predict", unit="img", disable=args.no_progress or None, file=sys.stderr)
    try:
        for path in bar:
            targets = _targets(args.out, kinds, path)
            todo = kinds
            if not args.overwrite:
                existing = [t for t in targets if t.exists()]
                if existing and args.skip_existing:
                    todo = [k for k, t in zip(kinds, targets) if not t.exists()]
                    if not todo:
                        skipped += 1
                        continue
                elif existing:
                    problems.append(f"{existing[0]}: exists already (pass --overwrite to replace, --skip-existing to keep)")
                    tqdm.write(f"matting predict: {problems[-1]}", file=sys.stderr)
                    continue
            try:
                process_image(alpha_of, path, args.out, todo, args, background)
                written += 1
            except NonFiniteOutput:  # the network's fault, not this image's: every image would fail
                raise
            except (MattingInputError, cv2.error, MemoryError) as exc:
                problems.append(str(exc) if isinstance(exc, MattingInputError) else f"{path}: {type(exc).__name__}: {exc}")
                tqdm.write(f"matting predict: {exc}", file=sys.stderr)
    except KeyboardInterrupt:  # every file is written atomically: what is there is whole
        bar.close()
        print(f"matting predict: interrupted: wrote {written} of {len(paths)} images to {args.out}; "
              "the rest can be added with --skip-existing", file=sys.stderr)
        return 130
    bar.close()
    seconds = time.perf_counter() - start
    summary = f"{written} image(s) written to {args.out} in {seconds:.1f} s"
    if skipped:
        summary += f", {skipped} skipped (outputs exist)"
    if problems:
        summary += f", {len(problems)} problem(s) (listed above)"
    print(summary)
    return 1 if problems else 0
