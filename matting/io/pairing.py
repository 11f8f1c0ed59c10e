"""Collecting input images (files, folders, globs) and pairing files by stem.

``group_by_stem`` is the one pairing of the package: prediction / ground truth / trimap folders
(``matting evaluate``), photo / matte / fg / bg folders (``FolderDataModule``, the dataset
layouts of ``matting prepare``), input images with ground truth (``matting gallery``). It only
matches; each caller words its own problems from what is missing.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from matting.io.errors import MattingInputError
from matting.io.images import (
    IMAGE_EXTENSIONS,
    is_dangling_link,
    list_images,
)
from matting.io.limits import missing_file


def _is_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def collect_inputs(items: list[str]) -> tuple[list[Path], list[str]]:
    """Expand files, folders and globs into image paths (in order, without repeats).

    Returns:
        (paths, problems): the images found, and one message per input that matched nothing, per
        dangling symbolic link (named with its target) found in a folder or by a pattern, and per
        entry of a folder skipped although it looks like an image (``skipped_entries``).
    """
    paths: list[Path] = []
    problems: list[str] = []

    def add(found: list[Path]) -> None:
        dangling = [p for p in found if is_dangling_link(p)]
        problems.extend(str(missing_file(p)) for p in dangling)
        paths.extend(p for p in found if p not in dangling)

    for item in items:
        path = Path(item)
        if path.is_dir():
            try:
                found = list(list_images(path).values())
            except MattingInputError as exc:
                problems.append(str(exc))
                continue
            problems.extend(skipped_entries(path))
            if not found:
                problems.append(f"{path}: folder has no images ({', '.join(IMAGE_EXTENSIONS)})")
            add(found)
        elif path.exists() and not path.is_file():  # a FIFO or device: named as given, never opened
            problems.append(str(missing_file(path)))
        elif path.exists():
            paths.append(path)
        elif _is_glob(item):
            found = [Path(p) for p in sorted(glob.glob(item, recursive=True))]
            found = [p for p in found if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")]
            problems.extend(f"{missing_file(p)}; skipped" for p in found if not p.is_file() and not is_dangling_link(p))
            found = [p for p in found if p.is_file() or is_dangling_link(p)]
            if not found:
                problems.append(f"{item}: pattern matches no image")
            add(found)
        else:
            problems.append(str(missing_file(path)))
    unique = list(dict.fromkeys(p.resolve() for p in paths))
    return [Path(p) for p in unique], problems


# Image formats a folder may hold that are not listed from folders (IMAGE_EXTENSIONS): reported, not
# skipped in silence, so that a folder of photos is never processed short of some without a word.
OTHER_IMAGE_EXTENSIONS = (".gif", ".avif", ".heic", ".heif", ".jxl", ".jp2", ".exr", ".pfm", ".ppm", ".pgm", ".tga")


def skipped_entries(directory: Path) -> list[str]:
    """One message per entry of ``directory`` that looks like an image but is not listed: a folder or a
    special file (FIFO, device, link to one) with an image name, a file of an image format not listed
    from folders. Hidden entries are ignored, as ``list_images`` ignores them."""
    messages = []
    for entry in sorted(directory.iterdir()):
        suffix = entry.suffix.lower()
        if entry.name.startswith("."):
            continue
        if suffix in IMAGE_EXTENSIONS and not entry.is_file() and not is_dangling_link(entry):
            messages.append(f"{missing_file(entry)}; skipped")
        elif suffix in OTHER_IMAGE_EXTENSIONS:
            messages.append(f"{entry}: skipped: {suffix} files are not read from a folder (only "
                            f"{' '.join(IMAGE_EXTENSIONS)}); convert it to PNG")
    return messages


def check_stems(paths: list[Path]) -> dict[str, Path]:
    """stem -> path of ``paths`` (in their order); inputs sharing a stem raise, since their outputs
    (``<out>/<kind>/<stem>.png``) would collide."""
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
    return by_stem


@dataclass(frozen=True)
class StemGroup:
    """The files of one stem across roles.

    Attributes:
        stem: the file stem shared by the files.
        files: role -> file, for the roles that have one.
        missing: the roles without a file of this stem, in the order the roles were given.
    """

    stem: str
    files: dict[str, Path]
    missing: tuple[str, ...]

    @property
    def complete(self) -> bool:
        return not self.missing


def group_by_stem(
    listings: Mapping[str, Mapping[str, Path] | None],
    leading: Sequence[str] | None = None,
    sort: bool = True,
) -> list[StemGroup]:
    """Match files of several roles by stem.

    Args:
        listings: role -> (stem -> file), e.g. from ``list_images`` or ``check_stems``; a role
            given as None is not in use (it is never missing).
        leading: the roles whose stems make the groups (default: every role in use). Stems found
            only in the other roles are ignored, e.g. ground truth without an input image.
        sort: groups in stem order; False keeps the order in which the leading roles list them.

    Returns:
        One group per stem of the leading roles; ``missing`` says which roles in use lack it.
    """
    used = {role: files for role, files in listings.items() if files is not None}
    leading = list(used) if leading is None else [role for role in leading if role in used]
    stems = list(dict.fromkeys(stem for role in leading for stem in used[role]))
    if sort:
        stems.sort()
    return [StemGroup(stem, {role: files[stem] for role, files in used.items() if stem in files},
                      tuple(role for role, files in used.items() if stem not in files))
            for stem in stems]
