"""Raw dataset layouts and ``matting prepare-data`` on tiny trees made in each dataset's published layout.

``make_tree`` (used by the other ``test_data_*`` files) writes a few small images per split in
the folder structure the dataset's authors distribute.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from matting.cli import main as matting_main
from matting.data.manifest import read_info, read_split
from matting.data.prepare.build import prepare
from matting.data.prepare.layouts import LAYOUTS, IncompleteTreeError, get_layout
from matting.io.errors import MattingInputError

H, W = 48, 64


# ---------------------------------------------------------------------------- tiny trees


def _photo(rng: np.random.Generator, h: int = H, w: int = W) -> np.ndarray:
    """A smooth random colour image, uint8 BGR."""
    base = rng.integers(0, 256, size=(3, 4, 3)).astype(np.uint8)
    return cv2.resize(base, (w, h), interpolation=cv2.INTER_CUBIC)


def _alpha(rng: np.random.Generator, h: int = H, w: int = W) -> np.ndarray:
    """A disc with a soft rim (many fractional pixels), uint8."""
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx = h / 2 + rng.uniform(-3, 3), w / 2 + rng.uniform(-3, 3)
    r = np.hypot(yy - cy, xx - cx)
    return np.clip((min(h, w) * 0.35 - r) / 6 + 0.5, 0, 1).__mul__(255).round().astype(np.uint8)


def _trimap(alpha: np.ndarray) -> np.ndarray:
    trimap = np.full(alpha.shape, 128, np.uint8)
    trimap[alpha == 0] = 0
    trimap[alpha == 255] = 255
    return trimap


def _write(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array), path
    return path


def _pairs(root: Path, rng, names, folders: dict[str, str], image_ext=".jpg", size=(H, W)) -> None:
    for name in names:
        alpha = _alpha(rng, *size)
        for role, rel in folders.items():
            if role == "alpha":
                _write(root / rel / f"{name}.png", alpha)
            elif role == "trimap":
                _write(root / rel / f"{name}.png", _trimap(alpha))
            else:
                ext = image_ext if role == "image" else ".png"
                _write(root / rel / f"{name}{ext}", _photo(rng, *size))


def make_voc(root: Path, count: int = 20, seed: int = 7) -> Path:
    """VOC2012-like folder: JPEGImages/ with ``count`` small photos (smaller than the foregrounds)."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        _write(root / "JPEGImages" / f"2008_{i:06d}.jpg", _photo(rng, 30 + i % 5, 40 + i % 7))
    return root


def make_tree(name: str, root: Path, n: int = 3, seed: int = 0) -> Path:
    """A tiny tree of dataset ``name`` in its published layout; returns ``root``."""
    rng = np.random.default_rng(seed)
    names = [f"s{i:02d}" for i in range(n)]
    if name == "comp1k":
        train_groups = ["Training_set/Adobe-licensed images", "Training_set/Other"]
        files = []
        for i, stem in enumerate(names):
            group = train_groups[i % 2]
            ext = ".jpg" if i % 2 else ".png"
            _write(root / group / "fg" / f"{stem}{ext}", _photo(rng))
            alpha = _alpha(rng)
            _write(root / group / "alpha" / f"{stem}{ext}", alpha if ext == ".png" else np.dstack([alpha] * 3))
            files.append(f"{stem}{ext}")
        (root / "Training_set/training_fg_names.txt").write_text("\n".join(files) + "\n")
        test = root / "Test_set/Adobe-licensed images"
        _write(test / "fg" / "t00.png", _photo(rng))
        alpha = _alpha(rng)
        _write(test / "alpha" / "t00.png", np.dstack([alpha] * 3))  # the official test alphas are RGB
        for k in range(20):
            _write(test / "trimaps" / f"t00_{k}.png", _trimap(alpha))
        (root / "Test_set/test_fg_names.txt").write_text("t00.png\n")
        (root / "Test_set/test_bg_names.txt").write_text("".join(f"2008_{k:06d}.jpg\n" for k in range(20)))
    elif name == "d646":
        _pairs(root, rng, names, {"fg": "Train/FG", "alpha": "Train/GT"})
        _pairs(root, rng, ["t00"], {"fg": "Test/FG", "alpha": "Test/GT"})
    elif name == "am2k":
        _pairs(root, rng, names, {"image": "train/original", "alpha": "train/mask"})
        _pairs(root, rng, names[:2], {"image": "validation/original", "alpha": "validation/mask", "trimap": "validation/trimap"})
    elif name == "p3m10k":
        _pairs(root, rng, names, {"image": "train/blurred_image", "alpha": "train/mask"})
        v = "validation/P3M-500-P"
        _pairs(root, rng, names[:2], {"image": f"{v}/blurred_image", "alpha": f"{v}/mask", "trimap": f"{v}/trimap"})
        v = "validation/P3M-500-NP"
        _pairs(root, rng, names[:2], {"image": f"{v}/original_image", "alpha": f"{v}/mask", "trimap": f"{v}/trimap"})
    elif name == "ppm100":
        _pairs(root, rng, names, {"image": "image", "alpha": "matte"})
    elif name == "aim500":
        _pairs(root, rng, names, {"image": "original", "alpha": "mask", "trimap": "trimap"})
    elif name == "bg20k":
        for split in ("train", "testval"):
            for stem in names:
                _write(root / split / f"h_{stem}.jpg", _photo(rng, 80, 120))
    elif name == "coco":
        for i in range(n + 2):
            _write(root / "train2014" / f"COCO_train2014_{i:012d}.jpg", _photo(rng, 60, 80))
    elif name == "voc":
        make_voc(root, n)
    elif name == "alphamatting":
        _pairs(root, rng, [f"GT{i + 1:02d}" for i in range(n)],
               {"image": "input_training_lowres", "alpha": "gt_training_lowres",
                "trimap": "trimap_training_lowres/Trimap1"}, image_ext=".png")
        for i in range(n):
            alpha = cv2.imread(str(root / "gt_training_lowres" / f"GT{i + 1:02d}.png"), cv2.IMREAD_GRAYSCALE)
            _write(root / "trimap_training_lowres/Trimap2" / f"GT{i + 1:02d}.png", _trimap(alpha))
    else:
        raise ValueError(name)
    return root


def prepared(name: str, data_root: Path, n: int = 3, **kwargs) -> Path:
    """make_tree + prepare into ``data_root/name`` (comp1k and d646 get a VOC tree for their test split)."""
    root = make_tree(name, data_root / name, n)
    if name in ("comp1k", "d646"):
        kwargs.setdefault("voc", make_voc(data_root / "voc"))
    prepare(name, root, log=lambda *_: None, **kwargs)
    return root


# ---------------------------------------------------------------------------- tests


def test_every_listed_dataset_has_a_layout():
    assert set(LAYOUTS) == {"comp1k", "d646", "am2k", "p3m10k", "ppm100", "aim500", "bg20k", "coco", "voc", "alphamatting"}


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_prepare_writes_manifests_with_sizes_and_hashes(name, tmp_path):
    root = prepared(name, tmp_path)
    info = read_info(root / "manifests")
    assert info.dataset == name and info.hash == "sha256"
    assert info.splits and all(count > 0 for count in info.splits.values()), info.splits
    for split in info.splits:
        records = read_split(root / "manifests", split)
        assert len(records) == info.splits[split]
        for record in records:
            for role, entry in record.files.items():
                assert not Path(entry.path).is_absolute()
                path = (tmp_path / "voc" / entry.path[4:]) if entry.path.startswith("voc:") else root / entry.path
                assert hashlib.sha256(path.read_bytes()).hexdigest() == entry.sha256
                decoded = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
                assert (entry.width, entry.height) == (decoded.shape[1], decoded.shape[0])


def test_comp1k_test_split_pairs_each_foreground_with_twenty_voc_backgrounds(tmp_path):
    root = prepared("comp1k", tmp_path)
    test = read_split(root / "manifests", "test")
    assert [r.name for r in test] == sorted(f"t00_{k}" for k in range(20))
    by_name = {r.name: r for r in test}
    assert by_name["t00_7"].files["bg"].path == "voc:JPEGImages/2008_000007.jpg"
    assert by_name["t00_7"].files["trimap"].path.endswith("trimaps/t00_7.png")
    assert all(r.extra["compose"] == "comp1k" for r in test)
    assert len(read_split(root / "manifests", "train")) == 3  # found in both Adobe-licensed images/ and Other/


def test_comp1k_without_voc_writes_train_only_and_says_why(tmp_path):
    root = make_tree("comp1k", tmp_path / "comp1k")
    lines = []
    info = prepare("comp1k", root, log=lines.append)
    assert set(info.splits) == {"train"}
    assert any("--voc" in line for line in lines)


@pytest.mark.parametrize("name, remove, expected", [
    ("am2k", "train/mask/s01.png", "train/mask/s01.*"),
    ("am2k", "validation/trimap", "validation/trimap/ (folder)"),
    ("p3m10k", "validation/P3M-500-NP/original_image/s00.jpg", "validation/P3M-500-NP/original_image/s00.*"),
    ("comp1k", "Training_set/Other/fg/s01.jpg", "Training_set/Other/fg/s01.jpg"),
    ("comp1k", "Test_set/Adobe-licensed images/trimaps/t00_13.png", "trimaps/t00_13.png"),
    ("ppm100", "matte/s02.png", "matte/s02.*"),
    ("alphamatting", "trimap_training_lowres/Trimap1/GT02.png", "Trimap1/GT02.*"),
])
def test_prepare_refuses_an_incomplete_tree_naming_what_is_missing(name, remove, expected, tmp_path, capsys):
    root = make_tree(name, tmp_path / name)
    target = root / remove
    if target.is_dir():
        for child in target.iterdir():
            child.unlink()
        target.rmdir()
    else:
        target.unlink()
    voc = ["--voc", str(make_voc(tmp_path / "voc"))] if name == "comp1k" else []
    assert matting_main(["prepare-data", name, "--root", str(root), *voc]) == 2
    message = capsys.readouterr().err
    assert expected in message and "incomplete" in message
    assert not (root / "manifests").exists()


def test_prepare_refuses_a_missing_voc_background(tmp_path):
    root = make_tree("comp1k", tmp_path / "comp1k")
    voc = make_voc(tmp_path / "voc")
    (voc / "JPEGImages" / "2008_000011.jpg").unlink()
    with pytest.raises(IncompleteTreeError, match="2008_000011.jpg"):
        prepare("comp1k", root, voc=voc, log=lambda *_: None)


def test_prepare_names_bad_samples_and_skips_them_when_asked(tmp_path):
    root = make_tree("am2k", tmp_path / "am2k", n=4)
    cv2.imwrite(str(root / "train/mask/s00.png"), np.zeros((H, W), np.uint8))  # empty matte
    cv2.imwrite(str(root / "train/mask/s01.png"), np.zeros((H + 2, W), np.uint8) + 9)  # wrong size
    (root / "train/original/s02.jpg").write_bytes(b"not a jpeg")  # corrupt
    with pytest.raises(MattingInputError) as info:
        prepare("am2k", root, log=lambda *_: None)
    message = str(info.value)
    assert "s00.png: alpha matte is zero everywhere" in message
    assert "size mismatch" in message and "s01.png" in message and f"{W}x{H + 2}" in message
    assert "s02.jpg: not a readable image" in message
    assert not (root / "manifests").exists()
    written = prepare("am2k", root, skip_bad=True, log=lambda *_: None)
    assert [r.name for r in read_split(root / "manifests", "train")] == ["s03"]
    assert {item["name"] for item in written.excluded} == {"s00", "s01", "s02"}
    assert json.loads((root / "manifests/dataset.json").read_text())["excluded"][0]["problems"]


def test_strict_refuses_counts_that_differ_from_the_release(tmp_path):
    root = make_tree("ppm100", tmp_path / "ppm100")
    lines = []
    prepare("ppm100", root, log=lines.append)
    assert any("official release has 100" in line for line in lines)
    with pytest.raises(MattingInputError, match="official release has 100"):
        prepare("ppm100", root, strict=True, log=lambda *_: None)


def test_alphamatting_flat_layout_is_recognised(tmp_path):
    root = tmp_path / "am"
    _pairs(root, np.random.default_rng(0), ["GT01", "GT02"], {"image": "image", "alpha": "alpha", "trimap": "trimap"}, ".png")
    info = prepare("alphamatting", root, log=lambda *_: None)
    assert info.splits == {"lowres": 2}


def test_unknown_dataset_names_the_known_ones():
    with pytest.raises(MattingInputError, match="known: comp1k"):
        get_layout("imagenet")
