"""Dataset manifests from strangers: their paths stay inside the dataset folder, their hashes are checked."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from matting.data.manifest import ManifestInfo, Record, Resolver, describe_file, read_split, write_manifest
from matting.io.errors import MattingInputError


@pytest.fixture
def am2k(tmp_path) -> Path:
    """``<root>/am2k`` with one train sample and its manifests."""
    folder = tmp_path / "root" / "am2k"
    for sub, array in (("original", np.full((6, 8, 3), 90, np.uint8)), ("mask", np.full((6, 8), 200, np.uint8))):
        (folder / "train" / sub).mkdir(parents=True)
        Image.fromarray(array).save(folder / "train" / sub / "a.png")
    record = Record("a", {"image": describe_file(folder / "train/original/a.png", "train/original/a.png"),
                          "alpha": describe_file(folder / "train/mask/a.png", "train/mask/a.png")})
    write_manifest(folder / "manifests", ManifestInfo("am2k", {}), {"train": [record]})
    return folder


def _forge(folder: Path, path: str) -> Path:
    manifest = folder / "manifests" / "train.jsonl"
    data = json.loads(manifest.read_text())
    data["files"]["image"]["path"] = path
    manifest.write_text(json.dumps(data) + "\n")
    return manifest


@pytest.mark.parametrize("path", ["../../outside/x.jpg", "/etc/passwd", "train/../../../etc/passwd",
                                  "voc:../../x.jpg", "manifests:../../x.png", "C:\\x.jpg"])
def test_a_manifest_path_outside_the_dataset_folder_is_refused_naming_the_line(am2k, path):
    manifest = _forge(am2k, path)
    expected = f"{manifest}:1: file path {path!r} is outside the dataset folder"
    with pytest.raises(MattingInputError, match=re.escape(expected)):
        read_split(am2k / "manifests", "train")
    with pytest.raises(MattingInputError, match="outside the dataset folder"):
        Resolver(am2k, am2k / "manifests")(path)


def test_paths_inside_the_dataset_folder_still_resolve(am2k):
    resolve = Resolver(am2k, am2k / "manifests", other=lambda name: am2k.parent / name)
    assert resolve("train/original/a.png") == am2k / "train/original/a.png"
    assert resolve("voc:JPEGImages/x.jpg") == am2k.parent / "voc" / "JPEGImages/x.jpg"
    assert resolve("manifests:foreground/a.png") == am2k / "manifests" / "foreground/a.png"


@pytest.mark.slow
def test_prepare_data_verify_checks_the_stored_hashes(am2k, capsys):
    from matting.cli import main

    assert main(["prepare-data", "am2k", "--root", str(am2k), "--verify"]) == 0
    assert "the files of 1 records match their stored sha256" in capsys.readouterr().out
    Image.fromarray(np.full((6, 8), 10, np.uint8)).save(am2k / "train/mask/a.png")
    assert main(["prepare-data", "am2k", "--root", str(am2k), "--verify"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"{am2k / 'manifests' / 'train.jsonl'}:1: alpha {am2k / 'train/mask/a.png'}: sha256 ")
    assert err[-1] == f"matting: error: {am2k / 'manifests'}: 1 files do not match the sha256 stored in their manifest"
    assert not (am2k / "manifests" / "train.jsonl").read_text().count("\n") > 1  # nothing rewritten


def test_hashes_are_checked_at_load_when_asked(am2k, monkeypatch):
    from matting.data.manifest_datamodule import ManifestDataModule

    module = ManifestDataModule(train="am2k/train", root=str(am2k.parent), num_workers=0)
    assert len(module._records("am2k/train", "train")[1]) == 1
    Image.fromarray(np.full((6, 8), 10, np.uint8)).save(am2k / "train/mask/a.png")
    assert len(module._records("am2k/train", "train")[1]) == 1  # not asked: not checked
    monkeypatch.setenv("MATTING_VERIFY_HASHES", "1")
    with pytest.raises(MattingInputError, match=re.escape(f"{am2k / 'manifests' / 'train.jsonl'}:1: alpha ")):
        module._records("am2k/train", "train")
