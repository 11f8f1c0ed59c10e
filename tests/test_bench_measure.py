"""The one timing-and-memory helper of the benchmark tasks (matting/bench/measure.py)."""

from __future__ import annotations

import time

import numpy as np

from matting.bench.measure import PeakMemory, interleaved_ms, measure, repeat_ms, timed


def test_timed_waits_for_the_sync_and_returns_the_result():
    calls = []
    seconds, result = timed(lambda: calls.append("call") or 7, sync=lambda: calls.append("sync"))
    assert result == 7 and calls == ["sync", "call", "sync"] and seconds >= 0
    seconds, _ = timed(lambda: time.sleep(0.02))
    assert seconds >= 0.02  # the call is inside the timed span (no upper bound: a loaded machine may stretch it)


def test_warm_up_calls_are_not_timed_and_rounds_interleave():
    calls = []
    times = repeat_ms(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(calls) == 5 and len(times) == 3
    order = []
    got = interleaved_ms({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, rounds=2, warmup=1)
    assert order == ["a", "b"] * 3 and [len(v) for v in got.values()] == [2, 2]


def test_peak_memory_sees_an_allocation_inside_the_block_only():
    held = np.ones(64 << 20, np.uint8)  # before the block: not counted
    with PeakMemory() as memory:
        block = np.ones(96 << 20, np.uint8)  # 96 MB touched
        del block
    assert memory.peak_mb >= 80 and 0 <= memory.stall
    if memory.reset:  # the kernel's peak was reset on entry; a lifetime peak may include earlier blocks
        assert memory.peak_mb <= 200
    del held


def test_measure_keeps_every_time_and_the_last_result():
    counter = iter(range(10))
    record = measure(lambda: next(counter), repeats=4, warmup=1)
    assert record["result"] == 4 and len(record["ms_all"]) == 4
    assert record["ms_min"] <= record["ms"] and record["peak_mb"] >= 0
