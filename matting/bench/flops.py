"""Parameters and inference FLOPs of the network a config builds.

    python tools/benchmark.py flops -c configs/default.yaml [-c MORE.yaml ...] [--model.net.KEY=VALUE ...]
                                [--size 512] [--train] [--json]

Builds ``model.net`` exactly as ``matting fit`` composes it from the same ``-c`` files and
``--key=value`` options (LightningCLI, in the order given; random weights), puts it in eval mode
(the inference pass: heads skip the predictions only training reads) and runs one
``(1, 3, size, size)`` image under :class:`torch.utils.flop_counter.FlopCounterMode`.

Counted: ``aten.convolution`` (2 FLOP per multiply-add, per-group input channels, bias ignored)
and ``aten.mm`` / ``aten.addmm`` / ``aten.bmm`` (2 FLOP per multiply-add, bias ignored), nothing
else (no normalisation, activation, interpolation or elementwise ops). The same counter on
MODNet's released code (``net(x, True)``, 512x512) gives 6,487,075 parameters and 30.93 GFLOP.
Parameters: every parameter of ``model.net`` (buffers excluded).

``--train`` counts the forward pass of training mode instead (every head's prediction, as the
losses read them) and reports a training step as 3x that forward: the backward computes the
gradients of each layer's input and of its weight, each as many multiply-adds as the forward.
(FlopCounterMode's own ``aten.convolution_backward`` formula counts the weight gradient of a
grouped convolution as if it were dense, dozens of times too many for MobileNet's depthwise
layers, so it is not used.)
"""

from __future__ import annotations

import argparse
import json

__all__ = ["COUNTED_OPS", "TRAIN_STEP_FACTOR", "build_net", "count", "main"]

COUNTED_OPS = ("convolution", "mm", "addmm", "bmm")
TRAIN_STEP_FACTOR = 3  # forward + gradient of the inputs + gradient of the weights


def build_net(cli_args: list[str]):
    """``model.net`` as ``matting fit`` composes it from ``cli_args`` (``-c`` files, ``--key=value``), in eval mode."""
    from matting.runtime.lightning_cli import configured_net

    return configured_net(cli_args)


def count(net, size: int = 512, train: bool = False) -> dict:
    """``{"params": int, "flops": int, "by_part": {child name: flops}}`` of ``net``'s forward on one
    (1, 3, size, size) image in eval mode (``train``: in training mode, then back to eval), counting
    the ops of ``COUNTED_OPS`` only (see the module docstring)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counted = {getattr(torch.ops.aten, name) for name in COUNTED_OPS}
    image = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    net.train(train)
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            net(image)
    finally:
        net.eval()
    per_module = counter.get_flop_counts()
    root = type(net).__name__

    def flops(module_name: str) -> int:
        return sum(v for op, v in per_module.get(module_name, {}).items() if op in counted)

    by_part = {name: flops(f"{root}.{name}") for name, _ in net.named_children()}
    return {"params": sum(p.numel() for p in net.parameters()), "flops": flops("Global"),
            "by_part": {k: v for k, v in by_part.items() if v}}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python tools/benchmark.py flops", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", action="append", required=True, help="LightningCLI config file (repeatable, in order)")
    p.add_argument("--size", type=int, default=512, help="side of the square input image (default 512)")
    p.add_argument("--train", action="store_true", help="count the training-mode forward (every output) and a training step (3x)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args, rest = p.parse_known_args(argv)
    args.cli_args = [a for c in args.config for a in ("-c", c)] + rest
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = count(build_net(args.cli_args), args.size, train=args.train)
    if args.json:
        print(json.dumps({"configs": args.cli_args, "size": args.size, "train": args.train, **result}))
        return 0
    print(" ".join(args.cli_args))
    print(f"  params {result['params']:,}")
    mode = "training-mode forward" if args.train else "eval forward"
    print(f"  GFLOP at {args.size}x{args.size}, {mode}: {result['flops'] / 1e9:.2f}")
    for name, value in result["by_part"].items():
        print(f"    {name}: {value / 1e9:.2f}")
    if args.train:
        print(f"  GFLOP per training sample ({TRAIN_STEP_FACTOR}x the forward): {TRAIN_STEP_FACTOR * result['flops'] / 1e9:.2f}")
    return 0

