"""Inference time of a network's forward pass, as the study tools and the GPU check report it.

``tools/study.py run`` times each arm right after training it and ``tools/study.py retime``
times it again later on a quiet machine; both measure through :func:`inference_ms`, so the two
figures are taken the same way (batch 1, float32, channels as the module holds them, median
after warm-up). ``tools/gpu_check.py`` times CUDA the same way, waiting for the device's queue.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def inference_ms(forward: Callable[[torch.Tensor], object], size: int | tuple[int, int], runs: int, threads: int = 2,
                 warmup: int = 3, device: torch.device | str = "cpu") -> tuple[float, float]:
    """Median and minimum wall time in ms of ``forward(image)`` on one random (1, 3, size, size)
    (or (1, 3, H, W) for ``size`` (H, W)) image in [0, 1] on ``device``, after ``warmup`` untimed
    runs (the first few runs at a new size are several times slower), with ``threads`` torch
    threads (restored afterwards). On CUDA each run is timed to the end of its kernels."""
    height, width = (size, size) if isinstance(size, int) else size
    device = torch.device(device)
    # CUDA launches return before the kernels finish: wait for them, or only the launch is timed.
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        image = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0)).to(device)
        with torch.no_grad():
            for _ in range(warmup):  # allocations, oneDNN / cuDNN kernel selection
                forward(image)
            times = []
            for _ in range(max(1, runs)):
                sync()
                t0 = time.perf_counter()
                forward(image)
                sync()
                times.append((time.perf_counter() - t0) * 1000)
    finally:
        torch.set_num_threads(previous)
    return float(statistics.median(times)), float(min(times))


def network_forward(module) -> Callable[[torch.Tensor], torch.Tensor]:
    """A batch-1 float32 forward of a :class:`matting.module.MattingModule` on the CPU.

    The returned function maps an image (1, 3, H, W) in [0, 1] to ``pred_alpha`` (1, 1, H, W);
    a network that takes a trimap gets a flat one (0.5 everywhere).
    """
    module = module.cpu().float().eval()

    def forward(image: torch.Tensor) -> torch.Tensor:
        trimap = torch.full_like(image[:, :1], 0.5) if module.net.trimap_input else None
        return module(image, trimap)["pred_alpha"]

    return forward
