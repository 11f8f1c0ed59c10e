"""One entry for the commands that run a network on photos: an exported graph or a checkpoint.

``matting predict``, ``gallery`` and ``evaluate`` take either in ``--ckpt``; the suffix decides
(:func:`matting.inference.graph.is_graph`). A graph runs with onnxruntime alone; a checkpoint
imports PyTorch (and timm, jsonargparse) only when one is given.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from matting.inference.graph import AlphaGraph, is_graph
from matting.io.errors import MattingInputError

__all__ = ["add_inference_options", "open_from_args", "open_network"]

DEFAULT_BASE_SIZE, DEFAULT_BASE_SIDE = 512, "long"


def add_inference_options(p) -> None:
    """The options of every command that runs a network on photos (``predict``, ``gallery``), once."""
    from matting.io.errors import positive_int

    p.add_argument("--base-size", type=int, help="size of the base pass on --base-side, 32 to 4096 (default 512; a graph's own)")
    p.add_argument("--base-side", choices=("long", "short"), help="side scaled to --base-size (default long; a graph's own)")
    precision = p.add_mutually_exclusive_group()
    precision.add_argument("--bf16", action="store_true", help="bfloat16 autocast: faster on CPUs with native bf16 and on GPUs, "
                           "but alpha may differ from float32 by up to ~0.2 at edges (docs/speed.md)")
    precision.add_argument("--fp16", action="store_true", help="float16 autocast, for GPUs (without --bf16 or --fp16 a GPU "
                           "computes in IEEE float32, not TF32, so alpha matches the CPU's; docs/gpu.md)")
    p.add_argument("--eager", action="store_true", help="checkpoints: run the network as trained (no BatchNorm folding, "
                   "no channels_last)")
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads, at least 1 (default: torch's or "
                   "onnxruntime's choice)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu; a graph runs on the CPU)")


def open_from_args(ckpt: str | os.PathLike, prog: str, args) -> Callable[[np.ndarray, object], np.ndarray]:
    """:func:`open_network` with the options of :func:`add_inference_options`, the base size checked."""
    from matting.io.errors import check_base_size

    if args.base_size is not None:
        check_base_size(args.base_size)
    return open_network(ckpt, prog, base_size=args.base_size, base_side=args.base_side, bf16=args.bf16, fp16=args.fp16,
                        eager=args.eager, threads=args.threads, device=args.device)


def open_network(ckpt: str | os.PathLike, prog: str, *, base_size: int | None = None, base_side: str | None = None,
                 bf16: bool = False, eager: bool = False, threads: int | None = None,
                 device: str = "cpu", fp16: bool = False) -> Callable[[np.ndarray, object], np.ndarray]:
    """``alpha_of(image, path, trimap=None)``: float32 (H, W) alpha in [0, 1] of an (H, W, 3) RGB image
    in [0, 1] (``trimap``: uint8 (H, W), for a network that takes one); ``alpha_of.parameters`` is the
    network's parameter count (0 for a graph exported without it), ``alpha_of.trimap_input`` whether
    it takes a trimap.

    Args:
        ckpt: a checkpoint (``.ckpt``, ``.safetensors``) or an exported graph (``.onnx``).
        prog: the command, for the line on stderr that says what is loaded (printed first, since a
            checkpoint takes seconds to import and build).
        base_size, base_side: the base pass (None: 512 on the long side; a graph's own, which an
            explicit value must equal).
        bf16, fp16, eager, device: checkpoints only (bfloat16 / float16 autocast; no BatchNorm
            folding or channels_last; the torch device).
        threads: CPU threads of torch or onnxruntime (None: their choice).
    """
    ckpt = Path(ckpt)
    graph = is_graph(ckpt)
    print(f"{prog}: loading {ckpt} ({'exported graph, onnxruntime' if graph else 'checkpoint, PyTorch'})",
          file=sys.stderr, flush=True)
    if graph:
        if bf16 or fp16 or str(device) != "cpu":
            raise MattingInputError(f"--ckpt {ckpt}: an exported graph runs in float32 on the CPU (no --bf16, --fp16, --device)")
        net = AlphaGraph(ckpt, threads=threads)
        for option, given, own in (("base-size", base_size, net.base_size), ("base-side", base_side, net.base_side)):
            if given not in (None, own):
                raise MattingInputError(f"--{option} {given}: {ckpt} was exported with {own}; export it again to change it")
        def alpha_of(image: np.ndarray, path=None, trimap=None) -> np.ndarray:
            if trimap is not None:
                raise MattingInputError(f"{ckpt}: an exported graph takes no trimap")
            return net(image)

        alpha_of.parameters, alpha_of.trimap_input = net.parameters, False
        return alpha_of
    return _checkpoint(ckpt, base_size or DEFAULT_BASE_SIZE, base_side or DEFAULT_BASE_SIDE, bf16, eager, threads, device,
                       fp16)


def _checkpoint(ckpt: Path, base_size: int, base_side: str, bf16: bool, eager: bool, threads: int | None, device: str,
                fp16: bool = False):
    import torch

    from matting.inference.frozen import prepare_for_inference
    from matting.inference.loading import load_net
    from matting.inference.predict import predict_alpha

    if threads:
        torch.set_num_threads(threads)
    torch.set_flush_denormal(True)  # denormal activations can make CPU convolutions many times slower
    try:
        where = torch.device(device)
    except RuntimeError as exc:
        raise MattingInputError(f"--device {device!r}: {exc}") from exc
    if where.type == "cuda" and not torch.cuda.is_available():
        raise MattingInputError(f"--device {device!r}: CUDA is not available on this machine")
    net = load_net(ckpt, device=where)
    if not eager:  # BatchNorm folded, channels_last: the same alpha up to float rounding, faster; no TorchScript
        net = prepare_for_inference(net, jit=False)

    def alpha_of(image: np.ndarray, path=None, trimap=None) -> np.ndarray:
        return predict_alpha(net, image, base_size=base_size, base_side=base_side, bf16=bf16, fp16=fp16,
                             source=f"{ckpt} (on {path})" if path is not None else str(ckpt), trimap=trimap)

    alpha_of.parameters = sum(p.numel() for p in net.parameters())
    alpha_of.trimap_input = bool(net.trimap_input)
    return alpha_of
