"""Coarse-alpha segmentation samples of people from COCO, for the semantic head.

The recipe: from a COCO instances file, keep the images that show one or two people (non-crowd
``person`` annotations; an image with any crowd-labelled person is dropped, its people cannot be
counted) whose union mask covers 20% to 70% of the image. Each kept image becomes a sample whose
"alpha" is that binary union mask: coarse, so suited to the semantic (coarse alpha) objective
rather than the detail one.

``matting prepare-data coco --root COCO --annotations annotations/instances_train2017.json``
writes the masks as PNGs into the manifest directory (``people/<split>/<stem>.png``) and a split
``people_train2017`` whose records pair each image with its mask. Training then needs no
pycocotools, only the manifest. Reading annotations needs ``pycocotools``.
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from matting.data.prepare.layouts import RawSample
from matting.io.errors import MattingInputError
from matting.io.images import write_png

__all__ = ["PeopleImage", "people_split", "select_people"]


@dataclass
class PeopleImage:
    """One selected image: its COCO file name, people count, coverage and union mask (uint8 0/1)."""

    file_name: str
    people: int
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


def select_people(annotation_file: Path, min_people: int = 1, max_people: int = 2,
                  min_coverage: float = 0.2, max_coverage: float = 0.7) -> Iterator[PeopleImage]:
    """Images with ``min_people``..``max_people`` people covering ``min_coverage``..``max_coverage``, by image id."""
    coco = _load_coco(annotation_file)
    person = coco.getCatIds(catNms=["person"])
    if not person:
        raise MattingInputError(f"{annotation_file}: no 'person' category")
    for image_id in sorted(coco.getImgIds(catIds=person)):
        annotations = coco.loadAnns(coco.getAnnIds(imgIds=image_id, catIds=person, iscrowd=None))
        if any(a.get("iscrowd", 0) for a in annotations):
            continue
        if not min_people <= len(annotations) <= max_people:
            continue
        info = coco.loadImgs(image_id)[0]
        mask = np.zeros((info["height"], info["width"]), np.uint8)
        with warnings.catch_warnings():  # pycocotools' numpy-2 copy-keyword notice, once per mask
            warnings.simplefilter("ignore", DeprecationWarning)
            for annotation in annotations:
                mask |= coco.annToMask(annotation).astype(np.uint8)
        coverage = float(mask.mean())
        if min_coverage <= coverage <= max_coverage:
            yield PeopleImage(info["file_name"], len(annotations), coverage, mask)


def image_folder_for(annotation_file: Path) -> str:
    """``instances_train2017.json`` -> ``train2017`` (the folder its images are in)."""
    match = re.fullmatch(r"instances_(\w+)\.json", Path(annotation_file).name)
    if not match:
        raise MattingInputError(f"{annotation_file}: expected a COCO instances file named instances_<split>.json")
    return match.group(1)


def people_split(coco_root: Path, annotation_file: Path, manifest_dir: Path, **selection) -> tuple[str, list[RawSample]]:
    """Select people images and write their masks; returns (split name, samples).

    Masks go to ``<manifest_dir>/people/<folder>/<stem>.png`` (0 / 255). Images listed in the
    annotations but absent from ``<coco_root>/<folder>`` raise, naming them.
    """
    folder = image_folder_for(annotation_file)
    split = f"people_{folder}"
    samples, missing = [], []
    for item in select_people(annotation_file, **selection):
        image_rel = f"{folder}/{item.file_name}"
        if not (Path(coco_root) / image_rel).is_file():
            missing.append(image_rel)
            continue
        stem = Path(item.file_name).stem
        mask_rel = f"people/{folder}/{stem}.png"
        write_png(Path(manifest_dir) / mask_rel, item.mask.astype(bool), overwrite=True)
        samples.append(RawSample(stem, {"image": image_rel, "alpha": f"manifests:{mask_rel}"},
                                 {"people": item.people, "coverage": round(item.coverage, 4)}))
    if missing:
        shown = "\n  ".join(missing[:20]) + (f"\n  ... and {len(missing) - 20} more" if len(missing) > 20 else "")
        raise MattingInputError(f"{coco_root}: {len(missing)} images of {annotation_file.name} are missing:\n  {shown}")
    return split, samples
