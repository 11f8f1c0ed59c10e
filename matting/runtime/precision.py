"""bfloat16 training only where the CPU computes in bfloat16.

On a CPU without native bfloat16 (AVX2 only, no AVX512-BF16 / AMX) oneDNN emulates bf16
convolutions: a training step of the default network under ``bf16-mixed`` took 48 s against
4.4 s in float32 there (batch 8 at 256 px, one thread), and the depthwise networks of
``experiments/efficiency`` 12x longer. :func:`cpu_precision_override` lets ``matting demo`` train
its ``bf16-mixed`` budget in float32 on such a machine, and say so.
"""

from __future__ import annotations

import lightning as L

__all__ = ["cpu_has_native_bf16", "cpu_precision_override"]

BF16_PRECISIONS = ("bf16-mixed", "bf16-true")


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bfloat16 convolutions natively on this CPU (not emulated)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN: bf16 on the CPU is no faster
        return False


def cpu_precision_override(trainer: L.Trainer, overrides: list[str]) -> tuple[str, str] | None:
    """``("--trainer.precision=32-true", note)`` when ``trainer`` would train in bfloat16 on a CPU
    that emulates it, unless ``overrides`` (the user's own command-line options) set the precision;
    else None. ``note`` is one line for the console and the report."""
    from lightning.pytorch.accelerators import CPUAccelerator

    precision = str(trainer.precision)
    if precision not in BF16_PRECISIONS or not isinstance(trainer.accelerator, CPUAccelerator):
        return None
    if any(o.startswith("--trainer.precision") for o in overrides) or cpu_has_native_bf16():
        return None
    return ("--trainer.precision=32-true",
            f"this CPU has no native bfloat16, so training runs in float32 instead of the config's {precision} "
            f"(about 10x faster here); pass --trainer.precision={precision} to keep it")
