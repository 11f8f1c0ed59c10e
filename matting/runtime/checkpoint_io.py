"""Checkpoint writes that a kill, a crash or a full disk cannot turn into a corrupt file.

Lightning's default writer stages the file in the system temp folder and moves it into place;
when that folder is on another file system (local /tmp, checkpoints on network storage) the move
is a copy into the final path, and a kill during the copy truncates ``last.ckpt``. Here the file
is written next to its destination, flushed to disk, and renamed over it in one step, so a reader
sees either the previous checkpoint or the new one, never a part.
"""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path
from typing import Any

import torch
from fsspec.implementations.local import LocalFileSystem
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.plugins.io import TorchCheckpointIO

from matting.io.errors import CheckpointWriteError
from matting.io.files import atomic_write

TEMP_SUFFIX = ".partial"


def _checkpoint_error(path: Path, exc: OSError) -> CheckpointWriteError:
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    # --trainer.default_root_dir moves the logger's folder, and with it the checkpoints (MattingCLI).
    hint = " (free some space, or write the run elsewhere with --trainer.default_root_dir)" if exc.errno == errno.ENOSPC else ""
    return CheckpointWriteError(exc.errno, f"could not write checkpoint {path}: {reason}{hint}; "
                                           "the previous checkpoint at that path is unchanged")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary sibling, fsync, then ``os.replace``.

    Raises :class:`CheckpointWriteError` naming ``path`` (no space left, no permission, ...);
    the temporary file is removed and whatever was at ``path`` stays as it was. The temporary
    file is named after this process, so :func:`remove_stale_temps` can tell a dead writer's.
    """
    path = Path(path)
    temp = path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")
    # write_all is looked up at call time: tests replace it to simulate a full disk.
    atomic_write(path, lambda f: write_all(f, data), fsync=True, temp=temp, error=_checkpoint_error)


def write_all(f, data: bytes) -> None:
    """``f.write(data)``; a separate function so tests can simulate a full disk or a kill mid-write."""
    f.write(data)


def remove_stale_temps(folder: Path) -> None:
    """Delete temporary files left by writers that were killed (their process no longer exists)."""
    for temp in folder.glob(f".*{TEMP_SUFFIX}"):
        pid = temp.name.rsplit(".", 2)[-2]
        if pid.isdigit() and not _process_alive(int(pid)):
            temp.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning CheckpointIO: local checkpoints are written atomically (remote URLs: Lightning's way)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__}.save_checkpoint takes no storage_options, got {storage_options!r}")
        if not isinstance(get_filesystem(path), LocalFileSystem):
            return super().save_checkpoint(checkpoint, path, storage_options)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        path = Path(path)
        if path.parent.is_dir():
            remove_stale_temps(path.parent)
        atomic_write_bytes(path, buffer.getbuffer())
