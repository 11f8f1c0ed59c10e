"""Output folders of the training tools (``matting finetune``, ``matting adapt``).

A tool writes a marker file into its run folder first; ``--overwrite`` deletes only folders that
hold that marker (or are empty), so a mistyped ``--out`` can never remove unrelated files.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from matting.io.errors import MattingInputError


def file_in_the_way(folder: str | Path) -> Path | None:
    """``folder`` itself, or its nearest existing parent, when that is a file (so the folder cannot be made); else None."""
    for candidate in (Path(folder), *Path(folder).parents):
        if candidate.exists():
            return None if candidate.is_dir() else candidate
    return None


def check_run_folder(out: Path, overwrite: bool, marker: str) -> None:
    """Raise MattingInputError when ``out`` cannot become a new run folder.

    That is: ``out`` or one of its parents is a file; ``out`` exists and ``overwrite`` is not
    set; ``out`` is a non-empty folder without ``marker`` (not a run of this tool).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise MattingInputError(f"--out {out} is a file, not a folder")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise MattingInputError(f"--out {out}: {parent} is a file, not a folder")
            break
    if out.exists():
        if not overwrite:
            raise MattingInputError(f"--out {out} exists already; pass --overwrite to replace it, or choose another --out")
        if any(out.iterdir()) and not (out / marker).is_file():
            raise MattingInputError(f"--out {out} is not empty and holds no {marker}, so it is not a run of this "
                                    "command; refusing to delete it even with --overwrite")


def make_run_folder(out: Path, overwrite: bool, marker: str) -> None:
    """Check ``out`` (:func:`check_run_folder`), delete an old run there, create it empty."""
    check_run_folder(out, overwrite, marker)
    if Path(out).exists():
        shutil.rmtree(out)
    Path(out).mkdir(parents=True)
