"""Collecting input images (files, folders, globs) and pairing files by stem."""

from __future__ import annotations

import glob
from pathlib import Path

from matting.io.errors import MattingInputError
from matting.io.images import (
    IMAGE_EXTENSIONS,
    list_images,
)


def _is_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def collect_inputs(items: list[str]) -> tuple[list[Path], list[str]]:
    """Expand files, folders and globs into image paths (in order, without repeats).

    Returns:
        (paths, problems): the images found, and one message per input that matched nothing.
    """
    paths: list[Path] = []
    problems: list[str] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            try:
                found = list(list_images(path).values())
            except MattingInputError as exc:
                problems.append(str(exc))
                continue
            if not found:
                problems.append(f"{path}: folder has no images ({', '.join(IMAGE_EXTENSIONS)})")
            paths.extend(found)
        elif path.exists():
            paths.append(path)
        elif _is_glob(item):
            found = [Path(p) for p in sorted(glob.glob(item, recursive=True))]
            found = [p for p in found if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")]
            if not found:
                problems.append(f"{item}: pattern matches no image")
            paths.extend(found)
        else:
            problems.append(f"{path}: file not found")
    unique = list(dict.fromkeys(p.resolve() for p in paths))
    return [Path(p) for p in unique], problems


def check_stems(paths: list[Path]) -> None:
    by_stem: dict[str, Path] = {}
    clashes = []
    for path in paths:
        if path.stem in by_stem:
            clashes.append(f"{by_stem[path.stem]} and {path}")
        else:
            by_stem[path.stem] = path
    if clashes:
        raise MattingInputError(
            f"inputs share a file stem, so their outputs would collide: {'; '.join(clashes[:5])}"
            + (f" (and {len(clashes) - 5} more)" if len(clashes) > 5 else "")
        )
