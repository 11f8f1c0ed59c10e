"""Coarse-alpha segmentation samples from COCO (people by default, any class grouping), for the semantic head.

The recipe: COCO categories are grouped into *subject* (alpha 1) and *background* (alpha 0) by a
``ClassGroups`` (default: ``person`` against everything else; ``--classes FILE.yaml`` for others,
e.g. ``datasets/coco/things_vs_stuff.yaml``). From the annotation files of one image folder
(``instances_<folder>.json``, and optionally COCO-Stuff's ``stuff_<folder>.json``), keep the images
that show ``min_count`` to ``max_count`` subject instances (non-crowd; an image with a crowd-labelled
subject is dropped, its instances cannot be counted) whose union mask covers ``min_coverage`` to
``max_coverage`` of the image. When the background is listed, an image showing a class in neither
list is dropped too: its pixels belong to no group. Each kept image becomes a sample whose
"alpha" is that binary union mask: coarse, so suited to the semantic (coarse alpha) objective
rather than the detail one.

``matting prepare-data coco --root COCO --annotations annotations/instances_train2017.json``
writes the masks as PNGs into the manifest directory (``<name>/<folder>/<stem>.png``) and a split
``<name>_<folder>`` (``people_train2017``) whose records pair each image with its mask. Training
then needs no pycocotools, only the manifest. Reading annotations needs ``pycocotools``.
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Iterator

import numpy as np

from matting.data.prepare.layouts import RawSample
from matting.io.errors import MattingInputError, yaml_error
from matting.io.images import write_png

__all__ = ["ClassGroups", "SubjectImage", "read_class_groups", "select_subjects", "subject_split"]


@dataclass(frozen=True)
class ClassGroups:
    """Which COCO categories form the subject and which the background, and which images to keep.

    Attributes:
        name: split and mask-folder prefix (``people`` -> split ``people_train2017``).
        subject: category names or ids whose masks make alpha 1.
        background: category names or ids that are background (alpha 0); None: every other category.
            Names absent from the annotation files are allowed (COCO-Stuff's classes are in
            ``stuff_*.json``, a COCO-format subset may lack some things); a subject of which no
            name is found is refused, it would select nothing.
        min_count, max_count: subject instances per image.
        min_coverage, max_coverage: fraction of the image the subject covers, in [0, 1].
    """

    name: str = "people"
    subject: tuple[str | int, ...] = ("person",)
    background: tuple[str | int, ...] | None = None
    min_count: int = 1
    max_count: int = 2
    min_coverage: float = 0.2
    max_coverage: float = 0.7


def read_class_groups(path: str | Path) -> ClassGroups:
    """A ``ClassGroups`` from YAML (keys as its attributes); MattingInputError naming the file and key."""
    import yaml

    path = Path(path).expanduser()
    if not path.is_file():
        raise MattingInputError(f"{path}: class grouping file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise yaml_error(path, exc) from exc
    if not isinstance(data, dict):
        raise MattingInputError(f"{path}: expected a mapping with subject: [...] and background: [...]")
    known = {f.name for f in fields(ClassGroups)}
    unknown = sorted(set(map(str, data)) - known)
    if unknown:
        raise MattingInputError(f"{path}: unknown key {unknown[0]!r}; keys: {', '.join(sorted(known))}")
    for key in ("subject", "background"):
        value = data.get(key)
        if value is None and key == "background":
            continue
        if not isinstance(value, list) or not value or not all(isinstance(v, (str, int)) for v in value):
            raise MattingInputError(f"{path}: {key} must be a non-empty list of COCO category names or ids")
        data[key] = tuple(value)
    name = data.get("name", ClassGroups.name)
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9]+", name):
        raise MattingInputError(f"{path}: name must be lower-case letters and digits (it names the split), got {name!r}")
    for key in ("min_count", "max_count"):
        if key in data and (not isinstance(data[key], int) or data[key] < 0):
            raise MattingInputError(f"{path}: {key} must be a whole number >= 0, got {data[key]!r}")
    for key in ("min_coverage", "max_coverage"):
        if key in data and (not isinstance(data[key], (int, float)) or not 0 <= data[key] <= 1):
            raise MattingInputError(f"{path}: {key} must be a fraction in [0, 1], got {data[key]!r}")
    overlap = set(data["subject"]) & set(data.get("background") or ())
    if overlap:
        raise MattingInputError(f"{path}: {min(map(str, overlap))!r} is both subject and background")
    return ClassGroups(**data)


@dataclass
class SubjectImage:
    """One selected image: its COCO file name, subject instance count, coverage and union mask (uint8 0/1)."""

    file_name: str
    count: int
    coverage: float
    mask: np.ndarray


def _load_coco(annotation_file: Path):
    try:
        from pycocotools.coco import COCO
    except ImportError as exc:  # optional dependency
        raise MattingInputError(
            "reading COCO annotations needs pycocotools: pip install pycocotools (or pip install -e '.[data]')"
        ) from exc
    if not Path(annotation_file).is_file():
        raise MattingInputError(f"{annotation_file}: COCO annotation file not found")
    with contextlib.redirect_stdout(io.StringIO()):  # COCO() prints progress
        try:
            return COCO(str(annotation_file))
        except Exception as exc:
            raise MattingInputError(f"{annotation_file}: not a COCO annotation file ({type(exc).__name__}: {exc})") from exc


def _category_ids(coco, entries) -> set[int]:
    return {c["id"] for c in coco.loadCats(coco.getCatIds()) if c["name"] in entries or c["id"] in entries}


def select_subjects(annotation_files: list[Path], groups: ClassGroups = ClassGroups()) -> Iterator[SubjectImage]:
    """Images of one folder (annotations merged over ``annotation_files``) that ``groups`` keeps, by image id."""
    cocos = [_load_coco(f) for f in annotation_files]
    categories = [c for coco in cocos for c in coco.loadCats(coco.getCatIds())]
    if not any(c["name"] in groups.subject or c["id"] in groups.subject for c in categories):
        shown = ", ".join(str(e) for e in groups.subject[:5]) + (", ..." if len(groups.subject) > 5 else "")
        raise MattingInputError(f"{', '.join(map(str, annotation_files))}: none of the subject categories "
                                f"({shown}) is in these files")
    subject = [_category_ids(coco, groups.subject) for coco in cocos]
    background = [None if groups.background is None else _category_ids(coco, groups.background) for coco in cocos]
    image_ids = set()
    for coco, ids in zip(cocos, subject):
        image_ids.update(i for category in ids for i in coco.catToImgs.get(category, ()))
    for image_id in sorted(image_ids):
        annotations, assigned = [], True
        for coco, subject_ids, background_ids in zip(cocos, subject, background):
            if image_id not in coco.imgs:
                continue
            for annotation in coco.loadAnns(coco.getAnnIds(imgIds=image_id, iscrowd=None)):
                if annotation["category_id"] in subject_ids:
                    annotations.append((coco, annotation))
                elif background_ids is not None and annotation["category_id"] not in background_ids:
                    assigned = False
        if not assigned or any(a.get("iscrowd", 0) for _, a in annotations):
            continue
        if not groups.min_count <= len(annotations) <= groups.max_count:
            continue
        info = next(coco.imgs[image_id] for coco in cocos if image_id in coco.imgs)
        mask = np.zeros((info["height"], info["width"]), np.uint8)
        with warnings.catch_warnings():  # pycocotools' numpy-2 copy-keyword notice, once per mask
            warnings.simplefilter("ignore", DeprecationWarning)
            for coco, annotation in annotations:
                mask |= coco.annToMask(annotation).astype(np.uint8)
        coverage = float(mask.mean())
        if groups.min_coverage <= coverage <= groups.max_coverage:
            yield SubjectImage(info["file_name"], len(annotations), coverage, mask)


def image_folder_for(annotation_file: Path) -> str:
    """``instances_train2017.json`` (or COCO-Stuff's ``stuff_train2017.json``) -> ``train2017``, the folder of its images."""
    match = re.fullmatch(r"(?:instances|stuff)_(\w+)\.json", Path(annotation_file).name)
    if not match:
        raise MattingInputError(f"{annotation_file}: expected a COCO annotation file named instances_<split>.json "
                                "(or stuff_<split>.json)")
    return match.group(1)


def subject_split(coco_root: Path, annotation_files: list[Path], manifest_dir: Path,
                  groups: ClassGroups = ClassGroups()) -> tuple[str, list[RawSample]]:
    """Select the images of one folder and write their masks; returns (split name, samples).

    Masks go to ``<manifest_dir>/<name>/<folder>/<stem>.png`` (0 / 255). Images listed in the
    annotations but absent from ``<coco_root>/<folder>`` raise, naming them.
    """
    folders = sorted({image_folder_for(f) for f in annotation_files})
    if len(folders) != 1:
        raise MattingInputError(f"annotation files of several image folders given together: {', '.join(folders)}")
    folder = folders[0]
    split = f"{groups.name}_{folder}"
    samples, missing = [], []
    for item in select_subjects(annotation_files, groups):
        image_rel = f"{folder}/{item.file_name}"
        if not (Path(coco_root) / image_rel).is_file():
            missing.append(image_rel)
            continue
        stem = Path(item.file_name).stem
        mask_rel = f"{groups.name}/{folder}/{stem}.png"
        write_png(Path(manifest_dir) / mask_rel, item.mask.astype(bool), overwrite=True)
        samples.append(RawSample(stem, {"image": image_rel, "alpha": f"manifests:{mask_rel}"},
                                 {groups.name: item.count, "coverage": round(item.coverage, 4)}))
    if missing:
        shown = "\n  ".join(missing[:20]) + (f"\n  ... and {len(missing) - 20} more" if len(missing) > 20 else "")
        names = ", ".join(Path(f).name for f in annotation_files)
        raise MattingInputError(f"{coco_root}: {len(missing)} images of {names} are missing:\n  {shown}")
    return split, samples
