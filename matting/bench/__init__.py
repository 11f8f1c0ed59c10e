"""Benchmarks: every figure of docs/speed.md and the studies' cost pages, one task each.

``python tools/benchmark.py TASK ...`` (or ``python -m matting.bench TASK ...``):

- ``infer``: inference speed and memory of a config or checkpoint per execution mode (docs/speed.md);
- ``startup``: start-up wall and per-image ms of ``matting predict`` from a checkpoint and from its graph (fp32,
  bf16, int8), against the MODNet-sized reference (docs/speed.md);
- ``frontier``: latency of a study's arms against its reference, interleaved, in predict's path;
- ``refiner``: ms per image and peak memory of the refiners at 512 px to 4K;
- ``train``: training throughput of a study's arms against its reference, in ``matting fit``'s loop;
- ``data``: training-data throughput next to the default model's consumption;
- ``synthetic``: milliseconds per sample of the procedural generator;
- ``metrics``: time of the matting metrics on full-HD pairs;
- ``commands``: wall time of ``matting predict`` and ``matting evaluate`` as processes, start-up included;
- ``flops``: parameters and FLOPs of the network a config builds.

Each task's module docstring says what it measures and how. Every time and peak memory is taken
by one helper, :mod:`matting.bench.measure` (the studies' latency too); tasks that must not share
a process (a fresh interpreter per arm or mode, so that memory is measured alone) re-run this
module as a child. The training task times steps from Lightning's own batch-end hook, not a call.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

TASKS = ("infer", "startup", "frontier", "refiner", "train", "data", "synthetic", "metrics", "commands", "flops")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in TASKS:
        listed = "\n".join(f"  {task:10s} {_summary(task)}" for task in TASKS)
        print(f"usage: python tools/benchmark.py TASK [options]   (TASK --help for its options)\n\ntasks:\n{listed}",
              file=sys.stderr if argv else sys.stdout)
        return 2 if argv and argv[0] not in ("-h", "--help") else 0
    return importlib.import_module(f"matting.bench.{argv[0]}").main(argv[1:])


def _summary(task: str) -> str:
    spec = importlib.util.find_spec(f"matting.bench.{task}")
    text = open(spec.origin).read()  # the docstring's first line, without importing the task
    return text.split('"""', 2)[1].strip().splitlines()[0]
