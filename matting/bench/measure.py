"""The one timing-and-memory helper of the benchmark tasks and the studies.

Every figure ``tools/benchmark.py`` and ``tools/study.py`` print is taken here:

- :func:`timed`: wall seconds of one call (on CUDA, the device's queue is drained before and after,
  or only the launch would be timed);
- :func:`repeat_ms` and :func:`interleaved_ms`: per-call milliseconds after untimed warm-up calls
  (the first few calls at a new shape are several times slower: allocations, kernel choice),
  one callable or several timed round by round so that a change in load hits them alike;
- :class:`PeakMemory`: the peak resident memory of this process above its level on entry, and the
  share of wall time other tasks waited for a CPU (a loaded machine makes times unreliable);
- :func:`measure`: all of the above for one callable, the record the inference tasks keep;
- :func:`inference_ms`: the studies' latency of a network's forward pass on one random image.
"""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["PeakMemory", "inference_ms", "interleaved_ms", "measure", "network_forward", "repeat_ms", "timed"]


def timed(call: Callable[[], object], sync: Callable[[], None] | None = None) -> tuple[float, object]:
    """``(seconds, result)`` of one ``call()``; ``sync`` (e.g. ``torch.cuda.synchronize``) runs before and after."""
    if sync:
        sync()
    start = time.perf_counter()
    result = call()
    if sync:
        sync()
    return time.perf_counter() - start, result


def repeat_ms(call: Callable[[], object], repeats: int, warmup: int = 1, sync: Callable[[], None] | None = None) -> list[float]:
    """Milliseconds of ``repeats`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        call()
    return [timed(call, sync)[0] * 1000 for _ in range(max(1, repeats))]


def interleaved_ms(calls: dict[str, Callable[[], object]], rounds: int, warmup: int = 1) -> dict[str, list[float]]:
    """Milliseconds of each named call, one call of each per round (after ``warmup`` rounds): a
    ratio of two of them is then taken under the same conditions."""
    for _ in range(warmup):
        for call in calls.values():
            call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(max(1, rounds)):
        for name, call in calls.items():
            times[name].append(timed(call)[0] * 1000)
    return times


def _status_kb(field: str) -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cpu_stall_us() -> int:
    """Microseconds some task waited for a CPU, machine-wide (Linux pressure stall information); 0 when unavailable."""
    try:
        return int(Path("/proc/pressure/cpu").read_text().splitlines()[0].rsplit("total=", 1)[1])
    except (OSError, IndexError, ValueError):
        return 0


class PeakMemory:
    """``with PeakMemory() as m: ...`` then ``m.peak_mb`` (peak resident MB above the level on entry)
    and ``m.stall`` (share of the block's wall time that some task waited for a CPU).

    The kernel's peak (VmHWM) is reset on entry where ``/proc/self/clear_refs`` allows it; where it
    does not, the lifetime peak (``ru_maxrss``) is read, which is only right when the block is the
    process's largest use of memory: the tasks run each measurement in a fresh process for that.
    """

    def __enter__(self) -> PeakMemory:
        self.base_kb = _status_kb("VmRSS")
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.reset = True
        except OSError:
            self.reset = False
        self.stall_start, self.wall_start = _cpu_stall_us(), time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        wall = max(time.perf_counter() - self.wall_start, 1e-9)
        self.stall = (_cpu_stall_us() - self.stall_start) / 1e6 / wall
        peak_kb = _status_kb("VmHWM") if self.reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.peak_mb = max(peak_kb - self.base_kb, 0) / 1024


def measure(call: Callable[[], object], repeats: int, warmup: int = 1, sync: Callable[[], None] | None = None) -> dict:
    """``{"ms" (median), "ms_min", "ms_all", "peak_mb", "stall", "result"}`` of ``call`` (the last result)."""
    with PeakMemory() as memory:
        for _ in range(warmup):
            call()
        times, result = [], None
        for _ in range(max(1, repeats)):
            seconds, result = timed(call, sync)
            times.append(seconds * 1000)
    return {"ms": float(statistics.median(times)), "ms_min": float(min(times)), "ms_all": times,
            "peak_mb": memory.peak_mb, "stall": memory.stall, "result": result}


def inference_ms(forward: Callable, size: int | tuple[int, int], runs: int, threads: int = 2, warmup: int = 3,
                 device="cpu") -> tuple[float, float]:
    """Median and minimum wall time in ms of ``forward(image)`` on one random (1, 3, size, size)
    (or (1, 3, H, W) for ``size`` (H, W)) image in [0, 1] on ``device``, batch 1, after ``warmup``
    untimed runs, with ``threads`` torch threads (restored afterwards). The synthetic stage times
    each arm right after training and ``tools/study.py retime`` again on a quiet machine, both
    through this, so the two figures are taken the same way; ``tools/gpu_check.py`` times CUDA."""
    import torch

    height, width = (size, size) if isinstance(size, int) else size
    device = torch.device(device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else None
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        image = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0)).to(device)
        with torch.no_grad():
            times = repeat_ms(lambda: forward(image), runs, warmup, sync)
    finally:
        torch.set_num_threads(previous)
    return float(statistics.median(times)), float(min(times))


def network_forward(module) -> Callable:
    """A batch-1 float32 forward of a :class:`matting.module.MattingModule` on the CPU: an image
    (1, 3, H, W) in [0, 1] -> ``pred_alpha`` (1, 1, H, W); a network that takes a trimap gets a
    flat one (0.5 everywhere)."""
    import torch

    module = module.cpu().float().eval()

    def forward(image: torch.Tensor) -> torch.Tensor:
        trimap = torch.full_like(image[:, :1], 0.5) if module.net.trimap_input else None
        return module(image, trimap)["pred_alpha"]

    return forward
