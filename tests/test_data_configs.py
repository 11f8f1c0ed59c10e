"""Every ``configs/data/*.yaml`` switches the data: one training step (or one validation batch for the
evaluation-only sets) through the CLI, on tiny trees made in each dataset's published layout."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from matting.data.manifest_datamodule import ManifestDataModule
from matting.data.prepare.build import prepare
from matting.io.errors import MattingInputError
from matting.runtime.lightning_cli import build_cli

from .conftest import REPO
from .test_data_layouts import make_tree, prepared

DATA_CONFIGS = sorted((REPO / "configs" / "data").glob("*.yaml"))
# config -> datasets its splits read (each prepared in the test's data root)
TRAINING = {
    "comp1k": ["comp1k", "coco"],
    "d646": ["d646", "coco"],
    "am2k": ["am2k"],
    "am2k_comp": ["am2k", "bg20k"],
    "p3m10k": ["p3m10k"],
    "coco_people": ["coco", "p3m10k"],
}
EVALUATION = {"ppm100": ["ppm100"], "aim500": ["aim500"], "alphamatting": ["alphamatting"]}
# Configs over a data root that a study builds (matting/study/cv_data.py), not a published layout.
STUDY = {"alphamatting_cv"}


def _cli(config: str, data_root: Path, tmp_path: Path, *extra: str):
    return build_cli([
        "-c", str(REPO / "configs" / "default.yaml"), "-c", str(REPO / "configs" / "data" / f"{config}.yaml"),
        f"--data.init_args.root={data_root}", "--data.init_args.crop_size=64", "--data.init_args.batch_size=2",
        "--data.init_args.num_workers=0", "--data.init_args.val_max_side=96", "--data.init_args.val_samples=1",
        "--model.net.init_args.encoder.init_args.name=test_resnet",
        f"--trainer.default_root_dir={tmp_path}", "--trainer.logger=false", "--trainer.enable_checkpointing=false",
        "--trainer.callbacks=[]", "--trainer.max_steps=1",
        "--trainer.num_sanity_val_steps=0", "--trainer.enable_progress_bar=false", *extra,
    ], run=False)


def test_every_data_config_is_covered():
    assert {p.stem for p in DATA_CONFIGS} == set(TRAINING) | set(EVALUATION) | STUDY


def _people_tree(data_root: Path) -> None:
    pytest.importorskip("pycocotools")
    from .test_data_coco import write_coco

    coco = make_tree("coco", data_root / "coco")
    annotations = write_coco(coco, "train2017")
    prepare("coco", coco, annotations=[annotations], log=lambda *_: None)


@pytest.mark.slow
@pytest.mark.parametrize("config", sorted(TRAINING))
def test_training_config_trains_one_step(config, tmp_path):
    data_root = tmp_path / "data"
    for dataset in TRAINING[config]:
        if config == "coco_people" and dataset == "coco":
            _people_tree(data_root)
        elif config == "am2k_comp" and dataset == "am2k":
            prepared("am2k", data_root, foreground=True)
        else:
            prepared(dataset, data_root)
    cli = _cli(config, data_root, tmp_path)
    assert cli.model.band == "pipeline"  # the loss weights the trimap the config's augmentation makes
    datamodule = cli.datamodule
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["image"].shape == (2, 3, 64, 64) and batch["alpha"].shape == (2, 1, 64, 64)
    composited = config in ("comp1k", "d646", "am2k_comp")
    assert ("fg" in batch and "bg" in batch) == composited  # composition loss on the true layers
    if composited:
        recomposed = batch["alpha"] * batch["fg"] + (1 - batch["alpha"]) * batch["bg"]
        assert (recomposed - batch["image"]).abs().max() < 0.1
    cli.trainer.fit(cli.model, datamodule=datamodule)
    assert cli.trainer.global_step == 1
    assert all(torch.isfinite(p).all() for p in cli.model.parameters())


@pytest.mark.slow
@pytest.mark.parametrize("config", sorted(EVALUATION) + ["comp1k"])
def test_evaluation_config_validates_with_trimap_metrics(config, tmp_path):
    data_root = tmp_path / "data"
    for dataset in EVALUATION.get(config, ["comp1k"]):
        prepared(dataset, data_root)
    cli = _cli(config, data_root, tmp_path)
    (metrics,) = cli.trainer.validate(cli.model, datamodule=cli.datamodule, verbose=False)
    assert "val/sad" in metrics
    ships_trimaps = config != "ppm100"
    assert ("val/sad_unknown" in metrics) == ships_trimaps


def test_evaluation_only_config_refuses_to_fit_with_a_clear_message(tmp_path):
    prepared("ppm100", tmp_path / "data")
    module = ManifestDataModule(val="ppm100/test", test="ppm100/test", root=str(tmp_path / "data"))
    with pytest.raises(MattingInputError, match="no training split"):
        module.setup("fit")


@pytest.mark.slow
def test_training_and_evaluation_configs_combine(tmp_path):
    """A training config followed by an evaluation-only one: train on P3M-10k, validate on PPM-100."""
    data_root = tmp_path / "data"
    prepared("p3m10k", data_root)
    prepared("ppm100", data_root)
    cli = _cli("p3m10k", data_root, tmp_path, "-c", str(REPO / "configs" / "data" / "ppm100.yaml"),
               f"--data.init_args.root={data_root}", "--data.init_args.val_max_side=96")
    assert cli.datamodule.hparams.train == "p3m10k/train" and cli.datamodule.hparams.val == "ppm100/test"


def test_missing_manifest_and_missing_root_are_named(tmp_path, monkeypatch):
    monkeypatch.delenv("MATTING_DATA_ROOT", raising=False)
    with pytest.raises(MattingInputError, match="nowhere/am2k/manifests"):
        ManifestDataModule(train="am2k/train", root=str(tmp_path / "nowhere")).setup("fit")
    with pytest.raises(MattingInputError, match="MATTING_DATA_ROOT"):
        ManifestDataModule(train="am2k/train").setup("fit")


def test_environment_variable_locates_the_data(tmp_path, monkeypatch):
    prepared("ppm100", tmp_path / "data")
    monkeypatch.setenv("MATTING_DATA_ROOT", str(tmp_path / "data"))
    module = ManifestDataModule(test="ppm100")  # a bare name takes the dataset's first evaluation split
    module.setup("test")
    assert len(module.test_set) == 3
    monkeypatch.setenv("MATTING_DATA_ROOT", str(tmp_path))
    module = ManifestDataModule(test="ppm100", root="data")  # a relative root resolves against the variable
    module.setup("test")
    assert len(module.test_set) == 3
