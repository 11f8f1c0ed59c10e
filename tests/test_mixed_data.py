"""ManifestDataModule with synthetic_fraction: real composited foregrounds mixed with procedural subjects, on tiny
Distinctions-646 / COCO / AM-2k trees made in their published layouts."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, Subset

from matting.data import ManifestDataModule
from matting.data.mixed import SYNTHETIC_PREFIX, MixedTrainDataset
from matting.io.errors import MattingInputError
from matting.runtime.lightning_cli import build_cli

from .conftest import REPO
from .test_data_layouts import prepared

CROP = 32


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """d646 (true foregrounds, composited) over coco backgrounds; am2k (photos without fg / bg)."""
    root = tmp_path_factory.mktemp("mixed") / "data"
    for dataset in ("d646", "coco", "am2k"):
        prepared(dataset, root)
    return root


def _module(data_root: Path, fraction: float, **kwargs) -> ManifestDataModule:
    settings = {"train": "d646/train", "backgrounds": "coco/train2014", "root": str(data_root), "mode": "composite",
                "foreground": "true", "crop_size": CROP, "samples_per_epoch": 200, "batch_size": 4,
                "num_workers": 0, "synthetic_fraction": fraction, **kwargs}
    return ManifestDataModule(**settings)


def _train_set(data_root: Path, fraction: float, **kwargs) -> MixedTrainDataset:
    module = _module(data_root, fraction, **kwargs)
    module.setup("fit")
    return module.train_set


def _first(dataset: MixedTrainDataset, procedural: bool) -> int:
    return next(i for i in range(len(dataset)) if dataset.is_procedural(i) == procedural)


def test_fraction_zero_gives_only_real_samples(data_root):
    from matting.data.matte_dataset import MatteTrainDataset

    dataset = _train_set(data_root, 0.0)
    assert isinstance(dataset, MatteTrainDataset)  # nothing procedural: the real training set itself
    records = {r.name for r in dataset.records}
    assert len(dataset) == 200 and {dataset[i]["name"] for i in range(4)} <= records


def test_fraction_one_gives_only_procedural_samples_without_real_data():
    module = ManifestDataModule(synthetic_fraction=1.0, samples_per_epoch=6, crop_size=CROP, num_workers=0)
    module.setup("fit")  # no train split, no backgrounds, no data root
    dataset = module.train_set
    assert len(dataset) == 6 and dataset.real is None
    names = [dataset[i]["name"] for i in range(len(dataset))]
    assert names == [f"{SYNTHETIC_PREFIX}train_{k:05d}" for k in range(6)]
    assert module.val_dataloader() == []  # no val split: no validation loader


def test_half_mixes_both_kinds_about_equally_and_names_tell(data_root):
    dataset = _train_set(data_root, 0.5)
    procedural = [dataset.is_procedural(i) for i in range(200)]
    assert 70 <= sum(procedural) <= 130
    for i in (_first(dataset, True), _first(dataset, False)):
        assert dataset[i]["name"].startswith(SYNTHETIC_PREFIX) == dataset.is_procedural(i)
    more = _train_set(data_root, 0.8)  # a higher fraction only turns real items into procedural ones
    assert all(more.is_procedural(i) for i in range(200) if procedural[i])


def test_the_same_index_gives_the_same_item(data_root):
    dataset = _train_set(data_root, 0.5)
    for i in (_first(dataset, True), _first(dataset, False)):
        torch.manual_seed(0)  # a real sample's augmentation comes from the loading process's torch seed
        first = dataset[i]
        torch.manual_seed(0)
        again = dataset[i]
        assert first["name"] == again["name"]
        assert all(torch.equal(first[k], again[k]) for k in first if k != "name")
    k = _first(dataset, True)
    assert torch.equal(dataset[k]["image"], dataset[k]["image"])  # procedural ones need no seed
    assert _train_set(data_root, 0.5).is_procedural(k)  # another module, same choice


def test_both_kinds_carry_the_same_keys_shapes_and_dtypes(data_root):
    dataset = _train_set(data_root, 0.5, augment=None)
    real, procedural = dataset[_first(dataset, False)], dataset[_first(dataset, True)]
    assert set(real) == set(procedural) == {"image", "alpha", "fg", "bg", "trimap", "name"}
    for key in ("image", "alpha", "fg", "bg", "trimap"):
        assert (real[key].shape, real[key].dtype) == (procedural[key].shape, procedural[key].dtype), key
    assert procedural["image"].shape == (3, CROP, CROP) and procedural["trimap"].dtype == torch.uint8
    assert set(procedural["trimap"].unique().tolist()) <= {0, 128, 255}
    recomposed = procedural["alpha"] * procedural["fg"] + (1 - procedural["alpha"]) * procedural["bg"]
    assert (recomposed - procedural["image"]).abs().max() < 1e-5


def test_a_batch_of_both_kinds_collates(data_root):
    dataset = _train_set(data_root, 0.5)
    picks = [_first(dataset, True), _first(dataset, False)]
    batch = next(iter(DataLoader(Subset(dataset, picks * 2), batch_size=4)))
    assert batch["image"].shape == (4, 3, CROP, CROP) and batch["trimap"].shape == (4, 1, CROP, CROP)
    assert sum(name.startswith(SYNTHETIC_PREFIX) for name in batch["name"]) == 2


def test_photos_without_colours_mix_with_procedural_samples_that_drop_theirs(data_root):
    module = ManifestDataModule(train="am2k/train", root=str(data_root), mode="original", foreground="none",
                             crop_size=CROP, samples_per_epoch=16, batch_size=16, num_workers=0, synthetic_fraction=0.5)
    module.setup("fit")
    batch = next(iter(module.train_dataloader()))
    assert set(batch) == {"image", "alpha", "trimap", "name"}
    assert 0 < sum(name.startswith(SYNTHETIC_PREFIX) for name in batch["name"]) < 16


def test_default_epoch_holds_about_one_real_item_per_record(data_root):
    dataset = _train_set(data_root, 0.25, samples_per_epoch=None)
    assert len(dataset) == math.ceil(len(dataset.real.records) / 0.75)


@pytest.mark.parametrize("fraction", [-0.1, 1.5, float("nan"), "half"])
def test_bad_fraction_is_refused_naming_the_key(fraction):
    with pytest.raises(MattingInputError, match="synthetic_fraction"):
        ManifestDataModule(synthetic_fraction=fraction, samples_per_epoch=4, num_workers=0)


def test_missing_pieces_are_named(tmp_path):
    with pytest.raises(MattingInputError, match="synthetic_seed"):
        ManifestDataModule(synthetic_fraction=0.5, synthetic_seed=-1, num_workers=0)
    with pytest.raises(MattingInputError, match="samples_per_epoch"):
        ManifestDataModule(synthetic_fraction=1.0, num_workers=0)
    with pytest.raises(MattingInputError, match="crop_size"):
        ManifestDataModule(synthetic_fraction=0.5, crop_size=8, num_workers=0)
    with pytest.raises(MattingInputError, match="synthetic_fraction: 1.0"):
        ManifestDataModule(synthetic_fraction=0.5, samples_per_epoch=4, num_workers=0, root=str(tmp_path)).setup("fit")


def test_fingerprint_changes_with_the_fraction_and_covers_the_generator(data_root):
    prints = {f: _module(data_root, f).fingerprint() for f in (0.0, 0.25, 0.5)}
    assert len({p["sha256"] for p in prints.values()}) == 3
    assert "synthetic_fraction" not in prints[0.0]["hyperparameters"]
    assert not any(name.startswith("matting/data/synthetic/") for name in prints[0.0]["files"])
    generator = prints[0.5]["files"]["matting/data/synthetic/scene.py"]
    assert generator["sha256"] is not None
    assert "d646/train.jsonl" in prints[0.5]["files"]
    assert _module(data_root, 0.5, synthetic_seed=1).fingerprint()["sha256"] != prints[0.5]["sha256"]
    assert _module(data_root, 0.0, synthetic_seed=1).fingerprint()["sha256"] == prints[0.0]["sha256"]


@pytest.mark.slow
def test_the_cli_builds_it_from_yaml_and_trains_a_step(data_root, tmp_path):
    config = tmp_path / "mixed.yaml"
    config.write_text(f"""
data:
  class_path: matting.data.mixed.MixedDataModule
  init_args:
    train: d646/train
    backgrounds: coco/train2014
    root: {data_root}
    mode: composite
    foreground: "true"
    augment:
      class_path: matting.data.augment.Augment
      init_args: {{p_merge: 0.0, trimap: gfm}}
    crop_size: {CROP * 2}
    samples_per_epoch: 8
    batch_size: 4
    num_workers: 0
    synthetic_fraction: 0.5
    synthetic_seed: 3
""")
    cli = build_cli([
        "-c", str(REPO / "configs" / "default.yaml"), "-c", str(config),
        "--model.net.init_args.encoder.init_args.name=test_resnet",
        f"--trainer.default_root_dir={tmp_path}", "--trainer.logger=false", "--trainer.enable_checkpointing=false",
        "--trainer.callbacks=[]", "--trainer.max_steps=1", "--trainer.limit_val_batches=0",
        "--trainer.num_sanity_val_steps=0", "--trainer.enable_progress_bar=false",
    ], run=False)
    datamodule = cli.datamodule
    assert isinstance(datamodule, ManifestDataModule) and datamodule.augment.trimap == "gfm"
    assert (datamodule.hparams.synthetic_fraction, datamodule.hparams.synthetic_seed) == (0.5, 3)
    cli.trainer.fit(cli.model, datamodule=datamodule)
    assert cli.trainer.global_step == 1
    assert all(torch.isfinite(p).all() for p in cli.model.parameters())


def test_old_data_module_names_load_as_the_manifest_data_module():
    from matting.data.manifest_datamodule import ManifestDataModule as New
    from matting.data.synthetic.datamodule import SyntheticDataModule
    from matting.inference.class_paths import is_allowed_class

    old = {"matting.data.MatteDataModule": New, "matting.data.matte_datamodule.MatteDataModule": New,
           "matting.data.mixed.MixedDataModule": New, "matting.data.MixedDataModule": New,
           "matting.data.datamodule.SyntheticDataModule": SyntheticDataModule,
           "matting.data.SyntheticDataModule": SyntheticDataModule}
    import importlib

    for path, cls in old.items():
        module, _, name = path.rpartition(".")
        assert getattr(importlib.import_module(module), name) is cls, path
        assert is_allowed_class(path), path  # a checkpoint naming the old path still loads
