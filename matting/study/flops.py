"""Parameters and inference FLOPs of a network (the counter behind ``tools/count_flops.py`` and the frontier).

Counted: ``aten.convolution`` (2 FLOP per multiply-add, per-group input channels, bias ignored)
and ``aten.mm`` / ``aten.addmm`` / ``aten.bmm`` (2 FLOP per multiply-add, bias ignored), nothing
else (no normalisation, activation, interpolation or elementwise ops). A training step counts as
3x the training-mode forward: the backward computes the gradients of each layer's input and of
its weight, each as many multiply-adds as the forward. (FlopCounterMode's own
``aten.convolution_backward`` formula counts the weight gradient of a grouped convolution as if it
were dense, dozens of times too many for MobileNet's depthwise layers, so it is not used.)
"""

from __future__ import annotations

__all__ = ["COUNTED_OPS", "TRAIN_STEP_FACTOR", "build_net", "count"]

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
