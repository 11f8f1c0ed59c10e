"""``matting export``: a trained network as an ONNX model (and/or safetensors weights) to ship.

    matting export --ckpt CKPT --onnx OUT.onnx [--opset 17] [--no-verify] [--overwrite]
    matting export --ckpt CKPT --safetensors OUT.safetensors [--overwrite]

ONNX: one input ``image`` float32 (N, 3, H, W), RGB in [0, 1], and one output ``alpha`` float32
(N, 1, H, W) in [0, 1]; N, H and W are dynamic (any size: the network pads to its stride
inside the graph). Run it on the image resized as ``matting predict`` does (long side 512,
multiples of 32) for the trained behaviour. The graph's metadata holds the network config
(``net_config``, JSON) and these conventions.

It is written with PyTorch's TorchScript-based exporter (``torch.onnx.export(dynamo=False)``),
which traces the network once at a size that needs padding in both directions and keeps
height and width symbolic. (The dynamo exporter needs the ``onnxscript`` package, which this
project does not depend on.) After writing, the file is checked: onnxruntime runs it at two
sizes other than the traced one and its alpha must match PyTorch's within ``--tolerance``
(default 1e-4 max absolute difference); a mismatch removes the file and exits non-zero.

safetensors: the network's weights, with its config in the file metadata, so
``matting predict --ckpt OUT.safetensors`` loads it with no pickle at all.

Every file is written to a temporary name in the target folder and renamed when complete.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from matting.errors import MattingInputError, ToolArgumentParser
from matting.inference import METADATA_KEY, AlphaOnly, load_net_parts, net_from_parts
from matting.run_folder import file_in_the_way

DEFAULT_OPSET = 17
DEFAULT_TOLERANCE = 1e-4


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
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    return p


def _temp_path(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    return Path(name)


def _finish(tmp: Path, target: Path) -> None:
    """Give the complete temporary file the usual permissions (mkstemp makes 0600) and move it into place."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, target)


def _check_target(target: Path, overwrite: bool, flag: str) -> None:
    if target.exists() and target.is_dir():
        raise MattingInputError(f"{flag} {target}: is a folder, expected a file name")
    if target.exists() and not overwrite:
        raise MattingInputError(f"{flag} {target}: exists already (pass --overwrite to replace it)")
    blocker = file_in_the_way(target.parent)  # any parent, not just the nearest: mkdir would fail after the work
    if blocker is not None:
        raise MattingInputError(f"{flag} {target}: {blocker} is not a folder")


def trace_shape(stride: int) -> tuple[int, int]:
    """A (H, W) that needs padding to ``stride`` in both directions, so the traced graph keeps the pad."""
    return 4 * stride - 7, 5 * stride - 13


def verify_shapes(stride: int) -> list[tuple[int, int]]:
    """Two sizes other than the traced one: a multiple of the stride and an odd one."""
    return [(3 * stride, 5 * stride), (6 * stride + 11, 4 * stride - 3)]


def export_onnx(net: nn.Module, target: Path, opset: int = DEFAULT_OPSET, metadata: dict[str, str] | None = None) -> None:
    """Write ``net`` (returning a dict with ``pred_alpha``) as ONNX with dynamic N, H, W, atomically."""
    import onnx

    if opset < 17:
        raise MattingInputError(f"--opset must be at least 17, got {opset}")
    wrapper = AlphaOnly(net).eval()
    stride = int(getattr(net, "stride", 32))
    sample = torch.rand(1, 3, *trace_shape(stride), generator=torch.Generator().manual_seed(0))
    tmp = _temp_path(target)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about Python ints/bools; checked by verify_onnx
            torch.onnx.export(
                wrapper,
                (sample,),
                str(tmp),
                dynamo=False,
                opset_version=opset,
                input_names=["image"],
                output_names=["alpha"],
                dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}, "alpha": {0: "batch", 2: "height", 3: "width"}},
                do_constant_folding=True,
            )
        model = onnx.load(str(tmp))
        onnx.checker.check_model(model)
        for key, value in (metadata or {}).items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(model, str(tmp))
        _finish(tmp, target)
    except OSError as exc:  # a full disk, no permission: one line naming the file, no partial file left
        tmp.unlink(missing_ok=True)
        raise MattingInputError(f"{target}: could not write it ({exc.strerror or exc})") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@torch.inference_mode()
def verify_onnx(net: nn.Module, path: Path, shapes: list[tuple[int, int]], seed: int = 0) -> list[tuple[tuple[int, int], float]]:
    """Max |alpha_onnxruntime - alpha_pytorch| for a random image at each (H, W) in ``shapes``."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    wrapper = AlphaOnly(net).eval()
    rng = np.random.default_rng(seed)
    results = []
    for h, w in shapes:
        image = rng.random((1, 3, h, w), dtype=np.float32)
        expected = wrapper(torch.from_numpy(image)).numpy()
        (got,) = session.run(["alpha"], {"image": image})
        if got.shape != expected.shape:
            raise RuntimeError(f"{path}: onnxruntime returned shape {got.shape} for input {image.shape}, PyTorch {expected.shape}")
        results.append(((h, w), float(np.abs(got - expected).max())))
    return results


def export_safetensors(net: nn.Module, config: dict, target: Path) -> None:
    """Write the network's weights with its config (metadata ``net_config``), atomically."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    tmp = _temp_path(target)
    try:
        save_file(state, str(tmp), metadata={METADATA_KEY: json.dumps(config), "format": "pt"})
        _finish(tmp, target)
    except (OSError, SafetensorError) as exc:  # a full disk, no permission: one line naming the file, no partial file
        tmp.unlink(missing_ok=True)
        raise MattingInputError(f"{target}: could not write it ({getattr(exc, 'strerror', None) or exc})") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    """Run the tool. Returns 0 on success, 1 when the exported ONNX model fails the parity check."""
    args = build_parser().parse_args(argv)
    if args.onnx is None and args.safetensors is None:
        raise MattingInputError("nothing to do: pass --onnx OUT.onnx and/or --safetensors OUT.safetensors")
    if args.onnx is not None:
        _check_target(args.onnx, args.overwrite, "--onnx")
        if args.opset < 17:
            raise MattingInputError(f"--opset must be at least 17, got {args.opset}")
    if args.safetensors is not None:
        _check_target(args.safetensors, args.overwrite, "--safetensors")
    config, state = load_net_parts(args.ckpt)
    net = net_from_parts(config, state, args.ckpt)
    if getattr(net, "refiner", None) is not None:
        raise MattingInputError(f"{args.ckpt}: ONNX export of networks with a refiner is not supported yet")
    if args.safetensors is not None:
        export_safetensors(net, config, args.safetensors)
        print(f"written: {args.safetensors}")
    if args.onnx is not None:
        metadata = {
            METADATA_KEY: json.dumps(config),
            "input": "image: float32 (N, 3, H, W) RGB in [0, 1]; any H, W",
            "output": "alpha: float32 (N, 1, H, W) in [0, 1]",
            "preprocess": "resize so the long side is 512, both sides multiples of 32; upsample alpha to full size",
        }
        export_onnx(net, args.onnx, args.opset, metadata)
        if not args.no_verify:
            stride = int(getattr(net, "stride", 32))
            results = verify_onnx(net, args.onnx, verify_shapes(stride))
            for (h, w), diff in results:
                print(f"check {h}x{w}: max |onnxruntime - pytorch| = {diff:.2e}")
            worst = max(diff for _, diff in results)
            if not worst <= args.tolerance:
                args.onnx.unlink(missing_ok=True)
                print(f"matting export: error: ONNX output differs from PyTorch by {worst:.2e} > {args.tolerance:g}; "
                      f"{args.onnx} removed", file=sys.stderr)
                return 1
        print(f"written: {args.onnx}")
    return 0


if __name__ == "__main__":
    # `python -m matting.export` takes the same path as `matting export`, errors included.
    from matting.cli import main as cli_main

    sys.exit(cli_main(["export", *sys.argv[1:]]))
