"""``matting export``: a trained network as an ONNX graph (and/or safetensors weights) to ship.

    matting export --ckpt CKPT --onnx OUT.onnx [--opset 17] [--no-verify] [--overwrite]
                   [--base-size 512] [--base-side long|short]
    matting export --ckpt CKPT --safetensors OUT.safetensors [--overwrite]

ONNX: one input ``image`` float32 (N, 3, H, W), RGB in [0, 1], the full-size photo, and one
output ``alpha`` float32 (N, 1, H, W) in [0, 1] at the same size; N, H and W are dynamic. The
graph is ``matting predict`` whole: it computes the base size from H and W (``--base-side``
scaled to ``--base-size``, multiples of 32; predict's defaults), downsamples the photo
(antialiased bilinear), runs the network (and its refiner, if it has one) and returns alpha at
full size. Nothing is left to the caller: ``matting predict --ckpt OUT.onnx``, ``gallery`` and
``evaluate`` run it with onnxruntime alone (:mod:`matting.inference.graph`), and the graph's
metadata holds the network config (``net_config``, JSON), the base size and these conventions.

It is written with PyTorch's TorchScript-based exporter (``torch.onnx.export(dynamo=False)``),
which traces the network once at a size that keeps height and width symbolic. (The dynamo
exporter needs the ``onnxscript`` package, which this project does not depend on; why ONNX and not
``torch.export`` with AOTInductor: docs/speed.md.) After writing, the file is checked:
onnxruntime runs it at three sizes other than the traced one (two above the base size, one
below) and its alpha must match PyTorch's within ``--tolerance`` (default 1e-4 max absolute
difference); a mismatch removes the file and exits non-zero.

safetensors: the network's weights, with its config in the file metadata, so
``matting predict --ckpt OUT.safetensors`` loads it with no pickle at all.

Every file is written to a temporary name in the target folder and renamed when complete.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from matting.inference.export import (
    DEFAULT_BASE_SIDE,
    DEFAULT_BASE_SIZE,
    DEFAULT_OPSET,
    DEFAULT_TOLERANCE,
    export_onnx,
    export_safetensors,
    refined_verify_shapes,
    verify_onnx,
)
from matting.inference.graph import CONTRACT_KEY, FULL_SIZE
from matting.inference.loading import net_from_parts
from matting.inference.predict import BASE_MULTIPLE
from matting.io.checkpoints import METADATA_KEY, load_net_parts
from matting.io.errors import MattingInputError, ToolArgumentParser
from matting.io.files import check_output


def build_parser() -> argparse.ArgumentParser:
    p = ToolArgumentParser(
        prog="matting export",
        description="Export a trained checkpoint to ONNX (dynamic height and width) and/or safetensors.",
    )
    p.add_argument("--ckpt", required=True, type=Path, help="checkpoint: .ckpt from `matting fit`, or .safetensors")
    p.add_argument("--onnx", type=Path, help="write an ONNX model here")
    p.add_argument("--safetensors", type=Path, help="write the weights and config as safetensors here")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (>= 17; default {DEFAULT_OPSET})")
    p.add_argument("--no-verify", action="store_true", help="skip the onnxruntime-vs-PyTorch check")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE, help="max |alpha difference| accepted by the check")
    p.add_argument("--base-size", type=int, default=DEFAULT_BASE_SIZE, help=f"base pass size on --base-side, as in "
                   f"`matting predict` (default {DEFAULT_BASE_SIZE})")
    p.add_argument("--base-side", choices=("long", "short"), default=DEFAULT_BASE_SIDE,
                   help=f"side scaled to --base-size (default {DEFAULT_BASE_SIDE})")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the tool. Returns 0 on success, 1 when the exported ONNX model fails the parity check."""
    args = build_parser().parse_args(argv)
    if args.onnx is None and args.safetensors is None:
        raise MattingInputError("nothing to do: pass --onnx OUT.onnx and/or --safetensors OUT.safetensors")
    if args.onnx is not None:
        check_output(args.onnx, label="--onnx", overwrite=args.overwrite, kind="file")
        if args.opset < 17:
            raise MattingInputError(f"--opset must be at least 17, got {args.opset}")
    if args.safetensors is not None:
        check_output(args.safetensors, label="--safetensors", overwrite=args.overwrite, kind="file")
    if args.base_size < BASE_MULTIPLE:
        raise MattingInputError(f"--base-size must be at least {BASE_MULTIPLE}, got {args.base_size}")
    config, state = load_net_parts(args.ckpt)
    net = net_from_parts(config, state, args.ckpt)
    refined = net.refiner is not None
    base_size, base_side = args.base_size, args.base_side
    if args.safetensors is not None:
        export_safetensors(net, config, args.safetensors)
        print(f"written: {args.safetensors}")
    if args.onnx is not None:
        how = "the refiner at full resolution" if refined else "alpha upsampled bilinearly to full size"
        metadata = {
            METADATA_KEY: json.dumps(config),
            CONTRACT_KEY: FULL_SIZE,
            "input": "image: float32 (N, 3, H, W) RGB in [0, 1] at full resolution; any H, W",
            "output": "alpha: float32 (N, 1, H, W) in [0, 1] at full resolution",
            "preprocess": f"none: the graph runs the base pass with the {base_side} side scaled to {base_size} "
                          f"(multiples of 32, antialiased bilinear downsampling), then {how}",
            "base_size": str(base_size),
            "base_side": base_side,
            "parameters": str(sum(p.numel() for p in net.parameters())),
        }
        export_onnx(net, args.onnx, args.opset, metadata, base_size=base_size, base_side=base_side)
        if not args.no_verify:
            results = verify_onnx(net, args.onnx, refined_verify_shapes(base_size), base_size=base_size, base_side=base_side)
            for (h, w), diff in results:
                print(f"check {h}x{w}: max |onnxruntime - pytorch| = {diff:.2e}")
            worst = max(diff for _, diff in results)
            if worst != worst or worst == float("inf"):  # NaN: a comparison of NaN outputs says nothing
                args.onnx.unlink(missing_ok=True)
                raise MattingInputError(f"{args.ckpt}: the exported network's output holds NaN or infinite values; "
                                        f"{args.onnx} removed")
            if not worst <= args.tolerance:
                args.onnx.unlink(missing_ok=True)
                print(f"matting export: error: ONNX output differs from PyTorch by {worst:.2e} > {args.tolerance:g}; "
                      f"{args.onnx} removed", file=sys.stderr)
                return 1
        print(f"written: {args.onnx}")
    return 0
