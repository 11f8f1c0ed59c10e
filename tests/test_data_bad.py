"""Bad and irregular data: a clear error naming the file, or a logged skip when asked; never an anonymous crash."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from matting.data.manifest import read_split
from matting.data.manifest_datamodule import ManifestDataModule
from matting.data.prepare.build import prepare
from matting.io.errors import MattingInputError

from .test_data_layouts import H, W, make_tree, prepared


def _train_set(data_root, on_error="raise", **kwargs):
    module = ManifestDataModule(train="am2k/train", root=str(data_root), crop_size=32, on_error=on_error, **kwargs)
    module.setup("fit")
    return module.train_set


def _am2k(tmp_path, n=3):
    return prepared("am2k", tmp_path / "data", n=n), tmp_path / "data"


@pytest.mark.parametrize("damage, expected", [
    (lambda root: (root / "train/mask/s00.png").write_bytes(b"\x89PNG truncated"), "s00.png: not a readable image"),
    (lambda root: (root / "train/mask/s00.png").unlink(), "s00.png: file not found"),
    (lambda root: cv2.imwrite(str(root / "train/mask/s00.png"), np.zeros((H, W), np.uint8)), "s00.png: alpha matte is zero everywhere"),
    (lambda root: cv2.imwrite(str(root / "train/original/s00.jpg"), np.zeros((H + 4, W, 3), np.uint8)),
     f"size mismatch: image {{root}}/train/original/s00.jpg is {W}x{H + 4}, alpha {{root}}/train/mask/s00.png is {W}x{H}"),
    (lambda root: cv2.imwrite(str(root / "train/mask/s00.png"), np.dstack([np.full((H, W), v, np.uint8) for v in (10, 200, 30)])),
     "s00.png: 3-channel file whose channels differ"),
])
def test_bad_training_file_raises_naming_it_or_is_skipped_with_a_warning(damage, expected, tmp_path, caplog):
    root, data_root = _am2k(tmp_path)
    damage(root)  # the data changed after prepare-data checked it
    expected = expected.format(root=root)
    with pytest.raises(MattingInputError) as info:
        _train_set(data_root)[0]
    assert expected in str(info.value)
    with caplog.at_level(logging.WARNING, logger="matting.data"):
        sample = _train_set(data_root, on_error="skip")[0]
    assert sample["name"] == "s01"  # the next record took its place
    assert expected in caplog.text and "skipping training sample 's00'" in caplog.text


def test_error_in_a_worker_process_names_the_file(tmp_path):
    root, data_root = _am2k(tmp_path)
    (root / "train/mask/s01.png").write_bytes(b"garbage")
    loader = DataLoader(_train_set(data_root), batch_size=3, num_workers=1)
    with pytest.raises(Exception) as info:  # re-raised in the main process by the DataLoader
        next(iter(loader))
    assert "train/mask/s01.png: not a readable image" in str(info.value)


def test_composited_training_names_a_bad_background(tmp_path):
    data_root = tmp_path / "data"
    prepared("comp1k", data_root)
    coco = prepared("coco", data_root)
    for path in (coco / "train2014").iterdir():
        path.write_bytes(b"")
    module = ManifestDataModule(train="comp1k/train", backgrounds="coco/train2014", root=str(data_root), crop_size=32)
    module.setup("fit")
    with pytest.raises(MattingInputError, match=r"coco/train2014/COCO_train2014_\d+\.jpg: not a readable image"):
        module.train_set[0]


def test_irregular_but_valid_alphas_load_correctly(tmp_path):
    """16-bit, palette and RGB-gray alpha PNGs, and an EXIF-rotated JPEG photo, pass prepare-data and load."""
    root = make_tree("am2k", tmp_path / "data" / "am2k", n=4)
    ramp = np.tile(np.linspace(0, 1, W, dtype=np.float64), (H, 1))
    cv2.imwrite(str(root / "train/mask/s00.png"), np.round(ramp * 65535).astype(np.uint16))  # 16-bit
    palette = Image.fromarray(np.round(ramp * 255).astype(np.uint8)).convert("P", palette=Image.ADAPTIVE, colors=256)
    palette.save(root / "train/mask/s01.png")  # palette PNG: indices are not levels
    cv2.imwrite(str(root / "train/mask/s02.png"), np.dstack([np.round(ramp * 255).astype(np.uint8)] * 3))  # RGB gray
    raw = np.zeros((W, H, 3), np.uint8)  # stored transposed; EXIF orientation 6 turns it 90 degrees clockwise
    raw[:8, :8] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(raw).save(root / "train/original/s03.jpg", exif=exif.tobytes(), quality=95)
    prepare("am2k", root, log=lambda *_: None)
    entry = {r.name: r for r in read_split(root / "manifests", "train")}["s03"].files["image"]
    assert (entry.width, entry.height) == (W, H)  # the displayed size, not the stored one
    dataset = _train_set(tmp_path / "data")
    for index in range(3):
        alpha, _ = dataset._load(dataset.records[index], with_image=True)
        assert np.abs(alpha - ramp).max() < 1.5 / 255, dataset.records[index].name
    _, colours = dataset._load(dataset.records[3], with_image=True)
    photo = colours["image"]
    assert photo.shape == (H, W, 3)
    assert photo[:6, -6:, 0].mean() > 0.9 and photo[:6, :6, 0].mean() < 0.1  # the red corner turned to the top right
    sample = dataset[3]
    assert sample["image"].shape == (3, 32, 32) and sample["alpha"].dtype == torch.float32


def test_evaluation_always_raises_naming_the_file(tmp_path):
    data_root = tmp_path / "data"
    root = prepared("aim500", data_root)
    cv2.imwrite(str(root / "trimap/s01.png"), np.zeros((H, W + 2), np.uint8))
    module = ManifestDataModule(test="aim500/test", root=str(data_root), on_error="skip")
    module.setup("test")
    assert module.test_set[0]["trimap"].shape == (1, H, W)
    with pytest.raises(MattingInputError, match=rf"size mismatch: trimap {root}/trimap/s01.png is {W + 2}x{H}"):
        module.test_set[1]
