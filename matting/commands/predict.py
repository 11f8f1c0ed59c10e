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

from matting.inference.cutout import load_background, photo_outputs
from matting.inference.runner import add_inference_options, open_from_args
from matting.io.errors import MattingInputError, NonFiniteOutput, ToolArgumentParser
from matting.io.files import check_output
from matting.io.images import list_images, read_image, read_trimap, write_png
from matting.io.limits import add_reader_options, apply_reader_options
from matting.io.pairing import check_stems, collect_inputs



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
    p.add_argument("--trimap", type=Path, help="folder of trimaps named as the photos, for a network that takes one "
                   "(trimap_input: the trimap-based upper bound)")
    add_inference_options(p)
    p.add_argument("--no-cutout", action="store_true", help="write only the alpha matte (and composite), no RGBA cutout")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    group.add_argument("--skip-existing", action="store_true", help="skip images whose outputs all exist")
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


def process_image(alpha_of, path: Path, out: Path, kinds: list[str], args, background, trimaps=None) -> None:
    """Predict and write the outputs of one image (those in ``kinds``); ``alpha_of(image, path, trimap)``
    gives the full-size alpha, float32 (H, W) in [0, 1], of an (H, W, 3) image; ``trimaps``: stem -> file."""
    image = read_image(path)
    trimap = None
    if trimaps is not None:
        if path.stem not in trimaps:
            raise MattingInputError(f"{path}: no trimap named {path.stem}.* in --trimap {args.trimap}")
        trimap = read_trimap(trimaps[path.stem])
    for kind, data in photo_outputs(image, alpha_of(image, path, trimap), kinds, background).items():
        write_png(out / kind / f"{path.stem}.png", data, overwrite=args.overwrite)


def _targets(out: Path, kinds: list[str], path: Path) -> list[Path]:
    return [out / kind / f"{path.stem}.png" for kind in kinds]


def main(argv: list[str] | None = None) -> int:
    """Run the tool. Returns 0 when every image was written, 1 when some inputs failed."""
    args = build_parser().parse_args(argv)
    apply_reader_options(args)
    kinds = ["alpha"] + ([] if args.no_cutout else ["cutout"]) + (["composite"] if args.background else [])
    background = load_background(args.background) if args.background else None
    paths, problems = collect_inputs(args.inputs)
    if not paths:
        raise MattingInputError("no input images: " + "; ".join(problems))
    check_stems(paths)
    _check_out(args.out, kinds)

    alpha_of = open_from_args(args.ckpt, "matting predict", args)
    trimaps = _trimap_files(args, alpha_of.trimap_input)
    created = _make_out(args.out, kinds)
    try:
        return _predict_all(alpha_of, paths, problems, kinds, args, background, trimaps)
    finally:
        _remove_if_empty(created)  # a run that wrote nothing leaves no empty folders behind


def _trimap_files(args, takes_trimap: bool) -> dict[str, Path] | None:
    """stem -> trimap file of ``--trimap``, checked against what the network takes (None without one)."""
    if takes_trimap and args.trimap is None:
        raise MattingInputError(f"--ckpt {args.ckpt}: this network takes a trimap with each photo (trimap_input); "
                                "give their folder with --trimap DIR")
    if args.trimap is None:
        return None
    if not takes_trimap:
        raise MattingInputError(f"--trimap {args.trimap}: the network of {args.ckpt} takes no trimap")
    if not args.trimap.is_dir():
        raise MattingInputError(f"--trimap {args.trimap}: not a folder")
    return list_images(args.trimap)


def _predict_all(alpha_of, paths: list[Path], problems: list[str], kinds: list[str], args, background, trimaps=None) -> int:
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
                process_image(alpha_of, path, args.out, todo, args, background, trimaps)
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
