"""COCO people selection (one or two people covering 20-70% of the image) on a COCO-format file the test writes."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from matting.data.manifest import read_split
from matting.data.prepare.build import prepare
from matting.io.errors import MattingInputError

from .test_data_layouts import make_tree

H, W = 60, 80


def _box(x0, y0, x1, y1) -> list[float]:
    return [float(v) for v in (x0, y0, x1, y0, x1, y1, x0, y1)]


def write_coco(coco_root: Path, folder: str) -> Path:
    """Images and ``annotations/instances_<folder>.json`` with one case per selection rule.

    kept:    one person over 40% of the image; two people together over 50%
    dropped: three people; one person over 5%; one over 90%; a crowd; no person (a dog only)
    """
    cases = {  # name -> person polygons (x0, y0, x1, y1), crowd flag
        "one_40": ([(0, 0, 40, 48)], False),
        "two_50": ([(0, 0, 40, 30), (40, 30, 80, 60)], False),
        "three": ([(0, 0, 20, 20), (30, 0, 50, 20), (60, 0, 80, 20)], False),
        "small": ([(0, 0, 12, 20)], False),
        "huge": ([(0, 0, 80, 54)], False),
        "crowd": ([(0, 0, 40, 48)], True),
        "dog": ([], False),
    }
    rng = np.random.default_rng(0)
    images, annotations = [], []
    for image_id, (name, (boxes, crowd)) in enumerate(cases.items(), 1):
        file_name = f"COCO_{folder}_{image_id:012d}.jpg"
        path = coco_root / folder / file_name
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
        images.append({"id": image_id, "file_name": file_name, "height": H, "width": W})
        for box in boxes:
            x0, y0, x1, y1 = box
            annotation = {"id": len(annotations) + 1, "image_id": image_id, "category_id": 1, "iscrowd": int(crowd),
                          "bbox": [x0, y0, x1 - x0, y1 - y0], "area": float((x1 - x0) * (y1 - y0))}
            if crowd:  # crowds are stored as uncompressed RLE
                binary = np.zeros((H, W), np.uint8)
                binary[y0:y1, x0:x1] = 1
                annotation["segmentation"] = {"size": [H, W], "counts": _uncompressed(binary)}
            else:
                annotation["segmentation"] = [_box(*box)]
            annotations.append(annotation)
        if name == "dog":
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": 18, "iscrowd": 0,
                                "bbox": [0, 0, 40, 40], "area": 1600.0, "segmentation": [_box(0, 0, 40, 40)]})
    data = {"images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": "person", "supercategory": "person"},
                           {"id": 18, "name": "dog", "supercategory": "animal"}]}
    out = coco_root / "annotations" / f"instances_{folder}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data))
    return out


def _uncompressed(binary: np.ndarray) -> list[int]:
    """COCO uncompressed RLE: run lengths in column-major order, starting with zeros."""
    flat = binary.flatten(order="F")
    counts, current, run = [], 0, 0
    for value in flat:
        if value != current:
            counts.append(run)
            current, run = value, 0
        run += 1
    counts.append(run)
    return counts


def test_people_split_keeps_one_or_two_people_covering_20_to_70_percent(tmp_path):
    pytest.importorskip("pycocotools")
    root = make_tree("coco", tmp_path / "coco")
    annotations = write_coco(root, "train2017")
    info = prepare("coco", root, annotations=[annotations], log=lambda *_: None)
    assert info.splits["people_train2017"] == 2
    records = {r.name: r for r in read_split(root / "manifests", "people_train2017")}
    assert sorted(records) == ["COCO_train2017_000000000001", "COCO_train2017_000000000002"]
    kept = records["COCO_train2017_000000000002"]
    assert kept.extra == {"people": 2, "coverage": 0.5}
    mask = cv2.imread(str(root / "manifests" / kept.files["alpha"].path.split(":", 1)[1]), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (H, W) and set(np.unique(mask)) == {0, 255}
    assert abs((mask > 0).mean() - 0.5) < 0.05
    assert kept.files["image"].path == "train2017/COCO_train2017_000000000002.jpg"
    assert kept.files["alpha"].path.startswith("manifests:people/train2017/")


def test_people_split_names_missing_images(tmp_path):
    pytest.importorskip("pycocotools")
    root = make_tree("coco", tmp_path / "coco")
    annotations = write_coco(root, "train2017")
    (root / "train2017" / "COCO_train2017_000000000001.jpg").unlink()
    with pytest.raises(MattingInputError, match="COCO_train2017_000000000001.jpg"):
        prepare("coco", root, annotations=[annotations], log=lambda *_: None)
