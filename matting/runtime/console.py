"""What ``matting fit`` says on the console: where a finished run is, and no warnings that contradict
the exact resume (``docs/scaling.md``, "Surviving preemption and crashes")."""

from __future__ import annotations

import warnings
from pathlib import Path


def fit_summary(trainer) -> str:
    """Where a finished fit left its results: the run folder and the best and last checkpoints."""
    callback = trainer.checkpoint_callback
    best = getattr(callback, "best_model_path", "") if callback else ""
    last = getattr(callback, "last_model_path", "") if callback else ""
    # The logger's own folder: Trainer.log_dir broadcasts from rank 0, which hangs or fails once
    # the other ranks of a DDP run have finished.
    logger = trainer.loggers[0] if trainer.loggers else None
    folder = (getattr(logger, "log_dir", None) if logger is not None else None) or trainer.default_root_dir
    lines = [f"run folder: {Path(folder)}"]
    lines.append(f"  best checkpoint: {best or '(none: no validation ran, or checkpointing is off)'}")
    if last:
        lines.append(f"  last checkpoint: {last}")
    return "\n".join(lines)


def quiet_resume(datamodule) -> None:
    """Silence Lightning's resume warnings that do not hold for this package's runs.

    - "dataloader is not resumable ... unreliable results": a :class:`matting.data.base.MattingDataModule`
      stores its loader's position in every checkpoint and resumes mid-epoch exactly (the warning
      stays for data modules that do not).
    - "The dirpath has changed": a resumed run writes into a new logger version folder, so the
      ranking of the best checkpoints starts afresh there; that is documented and said in one line
      when resuming, instead of Lightning's paragraph.
    """
    from matting.data.base import MattingDataModule

    if isinstance(datamodule, MattingDataModule):
        warnings.filterwarnings("ignore", message=".*dataloader is not resumable.*")
    warnings.filterwarnings("ignore", message=".*The dirpath has changed from.*")
