"""How DataLoader worker processes start.

``fork`` copies a process that already runs OpenMP / OpenCV thread pools; a second ``fit`` in one
process that forks fresh workers has hung that way. ``spawn`` starts each worker as a fresh
interpreter (a few seconds per worker, once per loader with persistent workers), works on every
platform, and its workers exit when the training process dies, even by SIGKILL: it is the default.
``forkserver`` is not offered: its workers are children of the server process, which outlives a
killed trainer, so they would never notice and run on. ``fork`` starts fastest.
"""

from __future__ import annotations

import multiprocessing

from matting.io.errors import MattingInputError

START_METHODS = ("spawn", "fork")


def worker_context(num_workers: int, start_method: str | None):
    """The ``multiprocessing_context`` for a DataLoader (None in-process or for the platform default)."""
    if start_method is not None and start_method not in START_METHODS:
        raise MattingInputError(f"worker_start_method must be one of {', '.join(START_METHODS)} or null, "
                                f"got '{start_method}'")
    if num_workers == 0 or start_method is None:
        return None
    if start_method not in multiprocessing.get_all_start_methods():
        return None  # fork on Windows: the platform default
    return multiprocessing.get_context(start_method)
