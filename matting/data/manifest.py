"""Dataset manifests: which files make up each split, with their sizes and content hashes.

A manifest directory (by default ``<dataset folder>/manifests``, written by
``matting prepare-data``) holds:

- ``dataset.json``: ``{"format": 1, "dataset": "am2k", "hash": "sha256", "splits": {"train": 1800, ...},
  "excluded": [...], "foreground": {...}}``.
- ``<split>.jsonl``: one JSON object per sample, sorted by name::

      {"name": "m_0a6c2018",
       "files": {"image": {"path": "train/original/m_0a6c2018.jpg", "width": 1080, "height": 720,
                           "sha256": "9f2c..."},
                 "alpha": {"path": "train/mask/m_0a6c2018.png", ...}},
       "compose": "comp1k"}            # optional: how eval samples are built (see composite.py)

File roles: ``image`` (a photo), ``alpha``, ``fg`` (true foreground colours), ``bg``, ``trimap``,
``trimap2``, and ``fg_est`` / ``bg_est`` (estimated colours cached by ``prepare-data --foreground``).

Paths are relative, so a manifest stays valid when the data moves; a path that is absolute or
climbs out with ``..`` is refused, naming the manifest and its line, so that a manifest never
makes a run open a file outside its dataset folders. A path is read against:

- the dataset's own folder by default (``train/mask/x.png``);
- another dataset's folder when prefixed with its name (``voc:JPEGImages/2008_000123.jpg``, the
  backgrounds of the Composition-1k test set);
- the manifest directory when prefixed with ``manifests:`` (caches written by ``prepare-data``).

Width and height are those of the decoded pixels, after any EXIF rotation, read from the file
header. The hash is the SHA-256 of the file's bytes (``sha256sum`` gives the same), or absent
when the manifest was written with ``--no-hash``. ``matting prepare-data --verify`` checks every
stored hash (``verify_hashes``); ``MATTING_VERIFY_HASHES=1`` checks them whenever a data module reads
a split.

Dataset folders: a dataset named ``am2k`` lives at ``<data root>/am2k`` unless told otherwise.
The data root is the ``root`` argument of the data module or, when that is not given, the
``MATTING_DATA_ROOT`` environment variable; relative roots resolve against it too.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping

from matting.io.errors import MattingInputError
from matting.io.files import atomic_write
from matting.io.limits import read_header

ENV_DATA_ROOT = "MATTING_DATA_ROOT"
ENV_VERIFY_HASHES = "MATTING_VERIFY_HASHES"
FORMAT_VERSION = 1
INFO_FILE = "dataset.json"
MANIFEST_PREFIX = "manifests:"
ROLES = ("image", "alpha", "fg", "bg", "trimap", "trimap2", "fg_est", "bg_est")

__all__ = [
    "ENV_DATA_ROOT",
    "ENV_VERIFY_HASHES",
    "FileEntry",
    "ManifestInfo",
    "Record",
    "Resolver",
    "data_root",
    "dataset_folder",
    "describe_file",
    "image_size",
    "read_info",
    "read_split",
    "sha256_file",
    "verify_hashes",
    "write_manifest",
]


# ---------------------------------------------------------------------------- entries


@dataclass(frozen=True)
class FileEntry:
    """One file of a sample: its path (relative, possibly prefixed), pixel size and hash."""

    path: str
    width: int
    height: int
    sha256: str | None = None

    def to_json(self) -> dict:
        out = {"path": self.path, "width": self.width, "height": self.height}
        if self.sha256:
            out["sha256"] = self.sha256
        return out

    @classmethod
    def from_json(cls, data: Mapping, where: str) -> "FileEntry":
        try:
            entry = cls(str(data["path"]), int(data["width"]), int(data["height"]), data.get("sha256"))
        except (KeyError, TypeError, ValueError) as exc:
            raise MattingInputError(f"{where}: malformed file entry {data!r} ({exc})") from exc
        check_relative(entry.path, where)
        return entry


def check_relative(path: str, where: str) -> None:
    """Refuse a manifest path that is absolute or climbs out of its folder with ``..`` (after any prefix).

    Lexical, so a dataset folder may still hold symbolic links to where the files really are.
    """
    from pathlib import PurePosixPath, PureWindowsPath

    tail = path[len(MANIFEST_PREFIX):] if path.startswith(MANIFEST_PREFIX) else path
    head, sep, rest = tail.partition(":")
    if sep and "/" not in head and len(head) > 1:  # 'voc:JPEGImages/x.jpg'
        tail = rest
    posix = PurePosixPath(tail.replace("\\", "/"))
    if not tail or posix.is_absolute() or PureWindowsPath(tail).drive or ".." in posix.parts:
        raise MattingInputError(
            f"{where}: file path {path!r} is outside the dataset folder (absolute, or climbing out with '..'); "
            "manifest paths are relative to their dataset folder"
        )


@dataclass
class Record:
    """One sample: a name, its files by role and optional extra keys (``compose``)."""

    name: str
    files: dict[str, FileEntry]
    extra: dict = field(default_factory=dict)
    where: str = field(default="", compare=False, repr=False)  # manifest file and line, for messages

    def to_json(self) -> dict:
        return {"name": self.name, "files": {k: v.to_json() for k, v in self.files.items()}, **self.extra}

    @classmethod
    def from_json(cls, data: Mapping, where: str) -> "Record":
        if not isinstance(data, Mapping) or "name" not in data or "files" not in data:
            raise MattingInputError(f"{where}: a record needs 'name' and 'files', got {str(data)[:200]}")
        files = {role: FileEntry.from_json(entry, where) for role, entry in data["files"].items()}
        extra = {k: v for k, v in data.items() if k not in ("name", "files")}
        return cls(str(data["name"]), files, extra, where)


@dataclass
class ManifestInfo:
    """Contents of ``dataset.json``."""

    dataset: str
    splits: dict[str, int]
    hash: str | None = "sha256"
    excluded: list = field(default_factory=list)
    foreground: dict | None = None
    notes: list = field(default_factory=list)

    def to_json(self) -> dict:
        out = {"format": FORMAT_VERSION, "dataset": self.dataset, "hash": self.hash, "splits": self.splits}
        if self.excluded:
            out["excluded"] = self.excluded
        if self.foreground:
            out["foreground"] = self.foreground
        if self.notes:
            out["notes"] = self.notes
        return out


# ---------------------------------------------------------------------------- file facts


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) of the decoded pixels from the file header, EXIF rotation applied.

    Raises MattingInputError naming the file when it is missing (a dangling link with its
    target), not an image, or over the pixel limit (:mod:`matting.io.limits`).
    """
    path = Path(path)
    header = read_header(path)
    if header is None:
        raise MattingInputError(f"{path}: not a readable image (unknown format or damaged header)")
    width, height = header.width, header.height
    if header.orientation in (5, 6, 7, 8):  # rotated by 90 degrees: the decoded image is transposed
        width, height = height, width
    return width, height


def describe_file(path: Path, stored_as: str, with_hash: bool = True) -> FileEntry:
    """FileEntry for ``path`` recorded under the relative name ``stored_as``."""
    width, height = image_size(path)
    return FileEntry(stored_as, width, height, sha256_file(path) if with_hash else None)


# ---------------------------------------------------------------------------- roots


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: ``root`` if given (relative roots resolve against ``$MATTING_DATA_ROOT``
    when it is set), else ``$MATTING_DATA_ROOT``; raises when neither says where the data is."""
    env = os.environ.get(ENV_DATA_ROOT)
    if root is None or str(root) == "":
        if not env:
            raise MattingInputError(
                f"no data root: set the {ENV_DATA_ROOT} environment variable or pass root= "
                "(--data.init_args.root=DIR) to the data module"
            )
        return Path(env).expanduser()
    path = Path(root).expanduser()
    if not path.is_absolute() and env:
        path = Path(env).expanduser() / path
    return path


def dataset_folder(name: str, root: Path, paths: Mapping[str, str] | None = None) -> Path:
    """Folder of dataset ``name``: ``paths[name]`` (relative to ``root`` unless absolute) or ``root/name``."""
    given = (paths or {}).get(name)
    if given is None:
        return root / name
    path = Path(given).expanduser()
    return path if path.is_absolute() else root / path


class Resolver:
    """Turns manifest paths into files on disk (see the module docstring for the prefixes).

    Args:
        folder: the dataset's folder.
        manifest_dir: the manifest directory.
        other: dataset name -> its folder, for prefixed paths (``voc:...``).
    """

    def __init__(self, folder: Path, manifest_dir: Path, other: Callable[[str], Path] | None = None):
        self.folder = Path(folder)
        self.manifest_dir = Path(manifest_dir)
        self.other = other

    def __call__(self, path: str) -> Path:
        check_relative(path, "manifest")
        if path.startswith(MANIFEST_PREFIX):
            return self.manifest_dir / path[len(MANIFEST_PREFIX):]
        head, sep, tail = path.partition(":")
        if sep and "/" not in head and len(head) > 1:  # 'voc:JPEGImages/x.jpg' (not 'C:/...')
            if self.other is None:
                raise MattingInputError(f"manifest path {path!r} refers to dataset '{head}', which is not configured")
            return self.other(head) / tail
        return self.folder / path


# ---------------------------------------------------------------------------- reading and writing


def write_split(manifest_dir: Path, split: str, records: Iterable[Record]) -> Path:
    """Write ``<split>.jsonl`` (records sorted by name), atomically."""
    lines = [json.dumps(r.to_json(), sort_keys=False, separators=(",", ":")) for r in sorted(records, key=lambda r: r.name)]
    path = Path(manifest_dir) / f"{split}.jsonl"
    atomic_write(path, "\n".join(lines) + ("\n" if lines else ""))
    return path


def write_manifest(manifest_dir: Path, info: ManifestInfo, splits: Mapping[str, list[Record]]) -> None:
    """Write every split and then ``dataset.json`` (last, so a complete info file means a complete manifest)."""
    manifest_dir = Path(manifest_dir)
    for split, records in splits.items():
        write_split(manifest_dir, split, records)
    info.splits = {split: len(records) for split, records in splits.items()}
    atomic_write(manifest_dir / INFO_FILE, json.dumps(info.to_json(), indent=2) + "\n")


def read_info(manifest_dir: Path) -> ManifestInfo:
    """Read ``dataset.json``; raises naming the file when it is missing or malformed."""
    path = Path(manifest_dir) / INFO_FILE
    if not path.is_file():
        raise MattingInputError(f"{path}: no manifest here (run `matting prepare-data` first)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return ManifestInfo(
            dataset=data["dataset"], splits=dict(data["splits"]), hash=data.get("hash"),
            excluded=list(data.get("excluded", [])), foreground=data.get("foreground"), notes=list(data.get("notes", [])),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise MattingInputError(f"{path}: malformed manifest info ({exc})") from exc


def read_split(manifest_dir: Path, split: str) -> list[Record]:
    """Records of ``split``; raises naming the file (and line) when missing or malformed."""
    path = Path(manifest_dir) / f"{split}.jsonl"
    if not path.is_file():
        available = sorted(p.stem for p in Path(manifest_dir).glob("*.jsonl")) if Path(manifest_dir).is_dir() else []
        hint = f"; this manifest has {', '.join(available)}" if available else " (run `matting prepare-data` first)"
        raise MattingInputError(f"{path}: no split '{split}'{hint}")
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise MattingInputError(f"{path}:{number}: not JSON ({exc})") from exc
        records.append(Record.from_json(data, f"{path}:{number}"))
    return records


def verify_hashes(records: Iterable[Record], resolve: Callable[[str], Path]) -> list[str]:
    """Compare every stored sha256 with the file it names.

    Returns:
        One line per problem, naming the manifest line and the file: a changed or missing file.
        Entries without a hash (``--no-hash``) are not checked.
    """
    problems = []
    for record in records:
        for role, entry in record.files.items():
            if not entry.sha256:
                continue
            path = resolve(entry.path)
            if not path.is_file():
                problems.append(f"{record.where}: {role} {path}: file not found")
            elif (actual := sha256_file(path)) != entry.sha256:
                problems.append(f"{record.where}: {role} {path}: sha256 {actual[:12]}... differs from the stored "
                                f"{entry.sha256[:12]}... (the file changed since the manifest was written)")
    return problems
