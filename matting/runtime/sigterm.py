"""SIGTERM during ``matting fit``: a checkpoint at the current step, then a non-zero exit.

SLURM and Kubernetes send SIGTERM some time before they kill a job. Lightning notes the signal,
finishes the training step it is in and leaves ``fit`` with ``SIGTERMException``, a ``SystemExit``
whose status is 0, after saving nothing: a requeue script would take the run for a finished one,
and the resumed run would repeat every step since the last periodic checkpoint.
:class:`SaveOnSigterm` writes ``last.ckpt`` at that step (beside the run's other checkpoints, where
``--ckpt_path last`` finds it), and the CLI turns the exception into :class:`StoppedBySignal`:
one line and exit status 143 (128 + SIGTERM).

Only the main process is covered: a SIGTERM sent to the whole process group also stops the
DataLoader's worker processes, and the run then fails on its next batch without a checkpoint
(set ``num_workers: 0``, or signal the main process only, e.g. ``scancel --batch``).
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from matting.io.errors import StoppedBySignal

__all__ = ["SaveOnSigterm", "StoppedBySignal", "stopped_message"]


class SaveOnSigterm(L.Callback):
    """On Lightning's ``SIGTERMException`` during ``fit``: save ``last.ckpt`` at the current step.

    ``saved`` is the path written (None until then) and ``step`` the step it holds.
    """

    def __init__(self):
        self.saved: Path | None = None
        self.step: int | None = None

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException) or trainer.state.fn != "fit" or trainer.sanity_checking:
            return
        checkpoints = [cb for cb in trainer.callbacks if isinstance(cb, ModelCheckpoint) and cb.dirpath]
        folder = Path(checkpoints[0].dirpath) if checkpoints else Path(trainer.log_dir or trainer.default_root_dir)
        name = (checkpoints[0].CHECKPOINT_NAME_LAST if checkpoints else "last") + ModelCheckpoint.FILE_EXTENSION
        path = folder / name
        trainer.save_checkpoint(path)  # every rank takes part; rank 0 writes
        self.saved, self.step = path, trainer.global_step


def stopped_message(callback: SaveOnSigterm | None) -> str:
    """The one line printed when SIGTERM stopped ``fit``."""
    if callback is None or callback.saved is None:
        return "stopped by SIGTERM before training began; nothing was saved"
    return (f"stopped by SIGTERM at step {callback.step}; saved {callback.saved}: resume with "
            "the same command and --ckpt_path last")
