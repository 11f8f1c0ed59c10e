"""Faults and probes injected into training subprocesses by the tests (importable as ``tests.fault_probe``)."""

from __future__ import annotations

import os
import signal

import lightning as L

from matting.runtime import checkpoint_io


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


class RecordSamples(L.Callback):
    """Writes ``<folder>/rank<r>.json``: the names of the samples each rank trained and validated on."""

    def __init__(self, folder: str):
        self.folder = folder
        self.seen: dict[str, list] = {"train": [], "val": []}

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self.seen["train"].append([trainer.current_epoch, list(batch["name"])])

    def on_validation_batch_start(self, trainer, module, batch, batch_idx, dataloader_idx=0) -> None:
        if not trainer.sanity_checking:
            self.seen["val"].append([trainer.current_epoch, list(batch["name"])])

    def on_fit_end(self, trainer, module) -> None:
        import json
        from pathlib import Path

        Path(self.folder).mkdir(parents=True, exist_ok=True)
        Path(self.folder, f"rank{trainer.global_rank}.json").write_text(json.dumps(self.seen))


class TermAtStep(L.Callback):
    """Sends SIGTERM to its own process once, at the end of training step ``step`` (a scheduler's notice)."""

    def __init__(self, step: int):
        self.step = step
        self.sent = False

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step >= self.step and not self.sent:
            self.sent = True
            os.kill(os.getpid(), signal.SIGTERM)


class RecordPlacement(L.Callback):
    """Writes ``folder/rank<N>.json`` at the first training batch: the process group's backend and size,
    whether BatchNorm became SyncBatchNorm, and the devices of the model and of the batch."""

    def __init__(self, folder: str):
        self.folder = folder

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        import json
        from pathlib import Path

        import torch

        if batch_idx:
            return
        dist = torch.distributed
        record = {"backend": dist.get_backend() if dist.is_available() and dist.is_initialized() else None,
                  "world_size": trainer.world_size,
                  "sync_batchnorm": any(isinstance(m, torch.nn.SyncBatchNorm) for m in pl_module.modules()),
                  "model_device": str(next(pl_module.parameters()).device),
                  "batch_devices": sorted({str(v.device) for v in batch.values() if isinstance(v, torch.Tensor)})}
        Path(self.folder).mkdir(parents=True, exist_ok=True)
        (Path(self.folder) / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))
