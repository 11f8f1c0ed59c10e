"""Whether a finished ``trainer.fit`` was cut short by its time limit (``trainer.max_time``).

``trainer.max_time`` is meant as a safety net (``configs/demo.yaml``: 1200 steps, at most 25
minutes); on a busy machine Lightning's :class:`~lightning.pytorch.callbacks.Timer` stops the run
first, quietly, and leaves an undertrained model. :func:`time_limit_message` says so in one line,
for ``matting demo`` (report and console) and ``matting fit`` (console).
"""

from __future__ import annotations

from datetime import timedelta

import lightning as L
from lightning.pytorch.callbacks import Timer

__all__ = ["time_limit_message"]


def _duration_text(seconds: float) -> str:
    """Seconds as Lightning's ``max_time`` format DD:HH:MM:SS (``600`` -> ``00:00:10:00``)."""
    whole = timedelta(seconds=round(seconds))
    hours, rest = divmod(whole.seconds, 3600)
    return f"{whole.days:02d}:{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


def _finished_epochs(trainer: L.Trainer) -> int:
    """Epochs trained to their last batch; ``current_epoch`` also counts one the run stopped inside."""
    batches = trainer.fit_loop.epoch_loop.batch_progress
    inside = trainer.current_epoch > 0 and batches.total.completed > 0 and not batches.is_last_batch
    return trainer.current_epoch - 1 if inside else trainer.current_epoch


def time_limit_message(trainer: L.Trainer) -> str | None:
    """After ``trainer.fit``: one line saying the time limit stopped training before its budget, or None.

    The run was cut short when a Timer (the one ``max_time`` adds, or one in the callbacks) has
    no time left and the budget was not reached: ``global_step < max_steps`` when ``max_steps``
    is set, else fewer than ``max_epochs`` epochs finished. A run that finished ``max_epochs``
    or ``max_steps`` (and ran out of time only in its last validation) is not cut short, nor is a
    run with neither limit: it trains until the time is up, which is then its budget.

    Returns:
        e.g. ``"stopped by the time limit (00:00:10:00) at step 55 of 400: undertrained; rerun on an
        idle machine or raise trainer.max_time"`` (``"at epoch 3 of 20"`` for an epoch budget), or None.
    """
    timers = [cb for cb in trainer.callbacks if isinstance(cb, Timer) and cb.time_remaining() is not None]
    spent = [timer for timer in timers if timer.time_remaining() <= 0]
    if not spent:
        return None
    max_steps, max_epochs = trainer.max_steps, trainer.max_epochs
    finished = _finished_epochs(trainer)
    if max_epochs is not None and max_epochs > 0 and finished >= max_epochs:
        return None  # the epoch budget ended the run, even when max_steps was larger
    if max_steps is not None and max_steps > 0:
        if trainer.global_step >= max_steps:
            return None
        where = f"step {trainer.global_step} of {max_steps}"
    elif max_epochs is not None and max_epochs > 0:
        where = f"epoch {finished + 1} of {max_epochs}"  # the epoch it stopped in (or after)
    else:
        return None
    limit = spent[0].time_remaining() + spent[0].time_elapsed()
    return (f"stopped by the time limit ({_duration_text(limit)}) at {where}: undertrained; "
            "this machine is slower than the budget assumed (busy, or a slower CPU); raise trainer.max_time")
