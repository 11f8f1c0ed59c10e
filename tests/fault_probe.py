"""Faults injected into a training subprocess by the resume tests (importable as ``tests.fault_probe``)."""

from __future__ import annotations

import os
import signal

import lightning as L

from matting import checkpoint_io


class KillAtStep(L.Callback):
    """SIGKILLs its own process at the end of training step ``step``: no cleanup, no last save."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class KillMidWrite(L.Callback):
    """From step ``step`` on, the next checkpoint write SIGKILLs the process halfway through the bytes."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, *args) -> None:
        if trainer.global_step >= self.step:
            def half_then_die(f, data):
                f.write(bytes(data[: len(data) // 2]))
                f.flush()
                os.kill(os.getpid(), signal.SIGKILL)

            checkpoint_io.write_all = half_then_die
