"""Writing outputs so that nothing is left half-written and nothing a user made is lost.

Three pieces, each the only one of its kind in the package:

- :func:`atomic_write` / :func:`atomic_path`: a file appears complete or not at all. It is written
  as a hidden temporary sibling, optionally flushed to disk, and renamed over the target; on any
  failure the temporary file is removed and the previous file stays as it was. The result gets the
  permissions of any new file (``0o666 & ~umask``), not the 0600 of a bare ``mkstemp``.
- :func:`staged_folder` (or :func:`open_staging` then :func:`publish`): a folder of outputs is
  built in a sibling staging folder and swapped into place at the end. An old folder there is moved
  aside first, put back if the swap fails, and deleted only after it succeeded. A named staging
  folder (``<out>.partial``) records the process building it, so a second run aimed at the same
  output is refused instead of emptying the first one's folder under it.
- :func:`check_output`: "may I write here", asked before any work: a file where a folder should
  be (or above it), an existing target without ``--overwrite``, and a non-empty folder without the
  tool's marker file, refused even with ``--overwrite`` so a mistyped path never deletes user data.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from matting.io.errors import MattingInputError

# ---------------------------------------------------------------------------- the atomic writer


def current_umask() -> int:
    """The process umask, read without changing it where the system allows (Linux), else by setting it back."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # os.umask can only be read by setting it; other threads may see 0o022 meanwhile
    os.umask(mask)
    return mask


def could_not_write(path: Path, exc: OSError) -> MattingInputError:
    """The one-line error for a file that could not be written (full disk, no permission, ...)."""
    return MattingInputError(f"{path}: could not write it ({exc.strerror or exc})")


def _fsync_path(path: Path) -> None:
    """Flush a file or a folder entry to disk; a file system without folder fsync is skipped."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        if path.is_dir():
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not path.is_dir():
            raise
    finally:
        os.close(fd)


@contextmanager
def atomic_path(
    target: str | os.PathLike,
    *,
    fsync: bool = False,
    temp: str | os.PathLike | None = None,
    error: Callable[[Path, OSError], BaseException] | None = None,
) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; when the block ends normally, it becomes ``target``.

    For writers that need a path (ONNX, safetensors, ``open``). Missing parent folders are created.

    Args:
        target: the final file.
        fsync: flush the file and its folder to disk before and after the rename (checkpoints,
            run records: a power cut must not leave an empty file in their place).
        temp: the temporary path to use (the caller creates the file); default a fresh hidden
            ``.<name>.<random>.tmp`` in the target's folder.
        error: turns an ``OSError`` (of the block or of the rename) into the exception raised;
            default: the ``OSError`` itself.

    On any exception the temporary file is removed and ``target`` is left as it was.
    """
    target = Path(target)
    tmp: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if temp is None:
            fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            os.close(fd)
            tmp = Path(name)
        else:
            tmp = Path(temp)
        yield tmp
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; an output gets the usual permissions
        if fsync:
            _fsync_path(tmp)
        os.replace(tmp, target)
    except OSError as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        if error is None:
            raise
        raise error(target, exc) from exc
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise
    if fsync:
        _fsync_path(target.parent)


def atomic_write(
    target: str | os.PathLike,
    data: bytes | bytearray | memoryview | str | Callable[[BinaryIO], None],
    *,
    fsync: bool = False,
    temp: str | os.PathLike | None = None,
    error: Callable[[Path, OSError], BaseException] | None = None,
) -> Path:
    """Write ``data`` (bytes, text as UTF-8, or a function writing into the open binary file) to ``target`` atomically.

    Options as :func:`atomic_path`. Returns ``target`` as a Path.
    """
    with atomic_path(target, fsync=fsync, temp=temp, error=error) as tmp:
        # Opened through ``os`` (as mkstemp does): a test replaces os.fdopen to simulate a full disk.
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666), "wb") as handle:
            if callable(data):
                data(handle)
            else:
                handle.write(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(target)


def write_keeping_tail(target: str | os.PathLike, text: str, marker: str, *, gap: str = "", new_tail: str = "") -> Path:
    """Write ``text`` to ``target`` atomically, followed by ``gap`` and whatever the existing file holds
    from ``marker`` on (text written by people or other tools), or by ``new_tail`` when it holds no marker."""
    target = Path(target)
    old = target.read_text() if target.is_file() else ""
    tail = gap + old[old.index(marker):] if marker in old else new_tail
    return atomic_write(target, text + tail)


# ---------------------------------------------------------------------------- the staged output folder


def empty_folder(folder: str | os.PathLike) -> Path:
    """Make ``folder`` an empty folder: whatever is there is deleted (the caller has checked it is its own)."""
    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)  # 0o777 & ~umask, like any folder the user makes
    return folder


def open_staging(
    target: str | os.PathLike,
    *,
    staging: str | os.PathLike | None = None,
    marker: str | None = None,
    marker_text: str = "",
    label: str = "",
) -> Path:
    """Create the empty staging folder for ``target`` and return it.

    Args:
        target: the folder the outputs are for.
        staging: the staging folder; a leftover of an interrupted run there is removed. Default a
            fresh hidden ``.<name>.staging-<random>`` next to ``target``.
        marker: a file written into the staging folder first (it ends up in ``target``), so that a
            later ``--overwrite`` can tell the folder is the tool's own.
        marker_text: the marker file's text.
        label: the option that named ``target`` (``--out``), for the error message.

    Raises MattingInputError when the folder cannot be created.
    """
    target = Path(target)
    where = f"{label} {target}" if label else str(target)
    named = staging is not None
    staging = Path(staging) if named else target.with_name(f".{target.name}.staging-{uuid.uuid4().hex[:8]}")
    owner = live_owner(staging) if named else None
    if owner is not None:  # emptying it would mix two runs' outputs (a fresh random name cannot collide)
        raise MattingInputError(f"{where}: {staging} is in use by process {owner}, another run writing there; "
                                "wait for it or stop it first")
    try:
        empty_folder(staging)
        if named:
            (staging / OWNER_FILE).write_text(f"{os.getpid()}\n")
        if marker is not None:
            (staging / marker).write_text(marker_text)
    except OSError as exc:
        raise MattingInputError(f"{where}: cannot create {staging} ({exc.strerror or exc})") from exc
    return staging


OWNER_FILE = "owner.pid"  # in a named staging folder: the process id building it; removed by publish


def live_owner(staging: str | os.PathLike) -> int | None:
    """The process id recorded in ``staging`` when it is another process that still runs, else None."""
    try:
        pid = int((Path(staging) / OWNER_FILE).read_text())
    except (OSError, ValueError):
        return None
    if pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, another user's
        return pid
    return pid


def publish(staging: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Swap the complete ``staging`` folder into place as ``target``.

    An existing ``target`` is moved aside first, put back if the swap fails, and deleted only after
    the swap. Returns ``target`` as a Path.
    """
    staging, target = Path(staging), Path(target)
    (staging / OWNER_FILE).unlink(missing_ok=True)
    if not target.exists():
        os.replace(staging, target)
        return target
    old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    os.replace(target, old)
    try:
        os.replace(staging, target)
    except BaseException:
        os.replace(old, target)  # the previous outputs are back where they were
        raise
    shutil.rmtree(old, ignore_errors=True)
    return target


@contextmanager
def staged_folder(
    target: str | os.PathLike,
    *,
    staging: str | os.PathLike | None = None,
    marker: str | None = None,
    marker_text: str = "",
    label: str = "",
) -> Iterator[Path]:
    """Yield an empty staging folder (:func:`open_staging`); publish it as ``target`` when the block ends normally.

    On any exception (of the block or of the swap) the staging folder is deleted and ``target``
    stays as it was. Check ``target`` first (:func:`check_output`): this replaces whatever folder
    is there.
    """
    folder = open_staging(target, staging=staging, marker=marker, marker_text=marker_text, label=label)
    try:
        yield folder
        publish(folder, target)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


# ---------------------------------------------------------------------------- "may I write here"

# The messages of check_output; fields: {where} ("--out runs/x"), {path}, {blocker}, {marker}, {owner},
# {label} and {or_another} (", or choose another --out" when the path came from an option).
REFUSALS = {
    "is_file": "{where} is a file, not a folder",
    "in_a_file": "{where}: {blocker} is a file, not a folder",
    "is_folder": "{where}: is a folder, expected a file name",
    "exists": "{where} exists already; pass --overwrite to replace it{or_another}",
    "not_ours": "{where} is not empty and holds no {marker}, so it is not {owner}; refusing to delete it even with --overwrite",
}


def file_in_the_way(folder: str | os.PathLike) -> Path | None:
    """``folder`` itself, or its nearest existing parent, when that is a file (so the folder cannot be made); else None."""
    for candidate in (Path(folder), *Path(folder).parents):
        if candidate.exists():
            return None if candidate.is_dir() else candidate
    return None


def check_output(
    path: str | os.PathLike,
    *,
    label: str = "",
    overwrite: bool = False,
    kind: str = "folder",
    empty_ok: bool = False,
    marker: str | None = None,
    owner: str = "a run of this command",
    messages: Mapping[str, str] | None = None,
) -> None:
    """Raise MattingInputError when ``path`` may not become the output; call it before any work.

    Refused: a file at ``path`` (a folder for ``kind="file"``) or at one of its parents; an
    existing ``path`` without ``overwrite`` (an empty folder passes with ``empty_ok``); with
    ``marker``, a non-empty folder that does not hold that file, even with ``overwrite``.

    Args:
        path: the output folder, or file with ``kind="file"``.
        label: the option that named it (``--out``), put in front of the path in the messages.
        overwrite: an existing output may be replaced (or, without ``marker``, written into).
        kind: ``"folder"`` or ``"file"``.
        empty_ok: an existing empty folder counts as free.
        marker: the file that marks a folder as the tool's own.
        owner: what a folder with ``marker`` is, for the message.
        messages: replacements for entries of :data:`REFUSALS`.
    """
    path = Path(path)
    wording = {**REFUSALS, **(messages or {})}
    fields = {"where": f"{label} {path}" if label else str(path), "path": path, "label": label, "marker": marker,
              "owner": owner, "or_another": f", or choose another {label}" if label.startswith("--") else ""}

    def refuse(situation: str, **extra) -> MattingInputError:
        return MattingInputError(wording[situation].format(**fields, **extra))

    if path.exists():
        if kind == "folder" and not path.is_dir():
            raise refuse("is_file")
        if kind == "file" and path.is_dir():
            raise refuse("is_folder")
    blocker = file_in_the_way(path.parent)  # mkdir would fail after the work, with a traceback
    if blocker is not None:
        raise refuse("in_a_file", blocker=blocker)
    if not path.exists():
        return
    in_use = kind == "file" or not empty_ok or any(path.iterdir())
    if in_use and not overwrite:
        raise refuse("exists")
    if kind == "folder" and marker is not None and any(path.iterdir()) and not (path / marker).is_file():
        raise refuse("not_ours")


def make_run_folder(out: str | os.PathLike, *, overwrite: bool, marker: str, label: str = "--out") -> Path:
    """Check ``out`` again (:func:`check_output`, time has passed), delete an old run there, create it empty.

    For tools that train straight into their run folder (``matting finetune``, ``matting adapt``):
    the run's own files name that folder, so it cannot be staged elsewhere.
    """
    check_output(out, label=label, overwrite=overwrite, marker=marker)
    return empty_folder(out)


# First characters that make a spreadsheet read a cell as a formula (=2+3, @SUM(...), -cmd|...).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_text(rows: list[list]) -> str:
    """The one CSV writer: rows of cells as CSV text, cells that a spreadsheet would run as a formula
    (a file named ``=2+3.png``) prefixed with ``'``; numbers, negative ones included, stay as they are."""
    import csv
    import io

    def safe(cell) -> str:
        text = str(cell)
        if text.startswith(_FORMULA_STARTS):
            try:
                float(text)
            except ValueError:
                return "'" + text
        return text

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows([[safe(cell) for cell in row] for row in rows])
    return buffer.getvalue()
