"""What a training run records: run.json, prediction grids, and the same in every logger."""

import importlib.util
import json
import re
import shutil
import subprocess

import cv2
import pytest
import torch

from matting.data import ManifestDataModule, SyntheticDataModule
from matting.data.synthetic.dataset import GENERATOR_SOURCES
from matting.report.grid import HEADER_PX, LABEL_PX, grid_sample, prediction_grid
from matting.runtime.lightning_cli import build_cli
from matting.runtime.run_record import (
    GRID_KEY,
    RunRecord,
    data_fingerprint,
    git_state,
)

from .conftest import REPO

CFG = ["-c", str(REPO / "configs" / "default.yaml"), "-c", str(REPO / "configs" / "smoke.yaml")]
# Two epochs of two steps; each validation sees 2 batches of 2 samples, the grid keeps 3 of them.
TWO_EPOCHS = ["--trainer.max_epochs=2", "--trainer.max_steps=4", "--data.init_args.val_length=6",
              "--trainer.limit_val_batches=2", "--run_record.grid_samples=3"]
GRID_ROWS, SMOKE_SIZE = 3, 64
HEX40 = re.compile(r"[0-9a-f]{40}")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _logger(class_name: str, save_dir, **init_args) -> dict:
    return {"class_path": f"lightning.pytorch.loggers.{class_name}", "init_args": {"save_dir": str(save_dir), **init_args}}


def _fit(tmp_path, loggers: list[dict] | None, *extra):
    """A tiny fit through the CLI, in-process, rooted at ``tmp_path``; returns the CLI."""
    logger_arg = json.dumps(loggers) if loggers else "false"
    cli = build_cli(CFG + [f"--trainer.default_root_dir={tmp_path}", f"--trainer.logger={logger_arg}",
                           "--trainer.enable_checkpointing=false", "--trainer.callbacks=[]", *extra], run=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return cli


def _is_git_checkout() -> bool:
    if shutil.which("git") is None:
        return False
    done = subprocess.run(["git", "rev-parse", "--verify", "HEAD"], check=False, cwd=REPO, capture_output=True)
    return done.returncode == 0


def _git(cwd, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True, capture_output=True)


# ---------------------------------------------------------------------------- a real run


@pytest.mark.slow
def test_fit_writes_run_json_and_a_grid_per_validation_epoch(tmp_path):
    cli = _fit(tmp_path, [_logger("CSVLogger", tmp_path, name="logs")], *TWO_EPOCHS)
    run_dir = tmp_path / "logs" / "version_0"
    record = json.loads((run_dir / "run.json").read_text())

    code = record["code"]
    if _is_git_checkout():
        assert HEX40.fullmatch(code["commit"]) and isinstance(code["dirty"], bool)
    else:
        assert code["commit"] is None and code["dirty"] is None
    assert record["versions"]["torch"] == torch.__version__
    assert record["versions"]["python"] and record["versions"]["matting"]
    assert record["seed"] == 0
    assert record["trainer"]["world_size"] == 1 and record["trainer"]["precision"] == "32-true"
    assert record["config_file"] == str(run_dir / "config.yaml") and (run_dir / "config.yaml").is_file()
    assert record["data"]["sha256"] == data_fingerprint(cli.datamodule)["sha256"]
    assert record["data"]["hyperparameters"]["seed"] == 0
    # The CSV logger keeps the record with the hyper-parameters.
    assert "run:" in (run_dir / "hparams.yaml").read_text()

    grids = sorted(p.name for p in (run_dir / "predictions").iterdir())
    assert grids == ["epoch000-step000002.png", "epoch001-step000004.png"]  # no temporary files left
    grid = cv2.imread(str(run_dir / "predictions" / grids[-1]))
    assert grid.shape == (HEADER_PX + GRID_ROWS * (LABEL_PX + SMOKE_SIZE), 4 * SMOKE_SIZE, 3)


@pytest.mark.slow
def test_record_can_be_configured_and_switched_off(tmp_path):
    cli = build_cli(CFG + [f"--trainer.default_root_dir={tmp_path}", "--run_record.grid_samples=8"], run=False)
    callback = next(cb for cb in cli.trainer.callbacks if isinstance(cb, RunRecord))
    assert callback.enabled and callback.grid_samples == 8

    _fit(tmp_path / "off", None, "--run_record.enabled=false", "--trainer.max_steps=1")
    assert (tmp_path / "off" / "config.yaml").is_file()  # the run itself happened
    assert not (tmp_path / "off" / "run.json").exists()
    assert not (tmp_path / "off" / "predictions").exists()


# ---------------------------------------------------------------------------- loggers


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None, reason="the tensorboard package is not installed")
def test_tensorboard_gets_the_grids_and_the_record_next_to_the_model_hyperparameters(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    _fit(tmp_path, [_logger("TensorBoardLogger", tmp_path, name="tb")], *TWO_EPOCHS)
    events = EventAccumulator(str(tmp_path / "tb" / "version_0"), size_guidance={"images": 0})
    events.Reload()
    images = events.Images(GRID_KEY)
    assert [i.step for i in images] == [2, 4]
    assert (images[0].width, images[0].height) == (4 * SMOKE_SIZE, HEADER_PX + GRID_ROWS * (LABEL_PX + SMOKE_SIZE))
    # TensorBoard's HParams view shows the first hparams summary of a run: it holds both.
    content = events.summary_metadata["_hparams_/session_start_info"].plugin_data.content
    keys = set(plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams)
    assert {"run/code/commit", "run/data/sha256", "run/versions/torch", "net/class_path"} <= keys
    assert (tmp_path / "tb" / "version_0" / "run.json").is_file()


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("wandb") is None, reason="the wandb package is not installed")
def test_wandb_offline_gets_the_grids_and_the_record(tmp_path, monkeypatch):
    for name in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb_home"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    loggers = [_logger("CSVLogger", tmp_path, name="logs"),
               _logger("WandbLogger", tmp_path, project="matting-test", offline=True)]
    cli = _fit(tmp_path, loggers, *TWO_EPOCHS)
    run = cli.trainer.loggers[1].experiment
    try:
        assert run.config["run"]["data"]["sha256"] == json.loads((tmp_path / "logs" / "version_0" / "run.json").read_text())["data"]["sha256"]
        media = sorted((tmp_path / "wandb").rglob("*.png"))
        assert len([p for p in media if "predictions" in p.name]) == 2
    finally:
        run.finish()


# ---------------------------------------------------------------------------- pieces


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_state_outside_a_repository_is_null_and_inside_one_is_commit_and_dirty(tmp_path, monkeypatch):
    # Stop git from finding a repository above tmp_path.
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    plain = tmp_path / "plain"
    plain.mkdir()
    assert git_state(plain) == {"commit": None, "dirty": None, "changes": []}

    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "a.py").write_text("x = 1\n")
    _git(repo, "init", "-q")
    assert git_state(repo / "pkg")["commit"] is None  # no commit yet
    _git(repo, "add", "pkg/a.py")
    _git(repo, "commit", "-q", "-m", "one")
    clean = git_state(repo / "pkg")
    assert HEX40.fullmatch(clean["commit"]) and clean["dirty"] is False
    (repo / "pkg" / "a.py").write_text("x = 2\n")
    dirty = git_state(repo / "pkg")
    assert dirty["commit"] == clean["commit"] and dirty["dirty"] is True and dirty["changes"] == [" M pkg/a.py"]
    # A folder inside the checkout that git does not track (an installed copy, a venv) has no commit.
    (repo / "untracked").mkdir()
    assert git_state(repo / "untracked")["commit"] is None


def test_synthetic_fingerprint_follows_the_data_not_the_loader():
    record = data_fingerprint(SyntheticDataModule(train_length=4, val_length=2, size=64, seed=0))
    assert set(record["files"]) == {f"matting/data/synthetic/{name}" for name in GENERATOR_SOURCES}
    assert all(entry["sha256"] for entry in record["files"].values())
    base = record["sha256"]
    assert data_fingerprint(SyntheticDataModule(train_length=4, val_length=2, size=64, seed=0))["sha256"] == base
    assert data_fingerprint(SyntheticDataModule(train_length=4, val_length=2, size=64, seed=0, num_workers=0))["sha256"] == base
    assert data_fingerprint(SyntheticDataModule(train_length=4, val_length=2, size=64, seed=1))["sha256"] != base
    assert data_fingerprint(SyntheticDataModule(train_length=4, val_length=2, size=96, seed=0))["sha256"] != base
    assert data_fingerprint(None) is None


def test_manifest_fingerprint_follows_the_manifest_bytes_and_arguments(tmp_path):
    manifests = tmp_path / "am2k" / "manifests"
    manifests.mkdir(parents=True)
    (manifests / "train.jsonl").write_text('{"name": "a", "files": {}}\n')
    (manifests / "validation.jsonl").write_text('{"name": "b", "files": {}}\n')

    def fingerprint(**kwargs) -> dict:
        args = {"train": "am2k/train", "val": "am2k/validation", "root": str(tmp_path), "num_workers": 0, **kwargs}
        return data_fingerprint(ManifestDataModule(**args))

    base = fingerprint()
    assert set(base["files"]) == {"am2k/train.jsonl", "am2k/validation.jsonl"}
    assert fingerprint()["sha256"] == base["sha256"]
    assert fingerprint(num_workers=1)["sha256"] == base["sha256"]
    assert fingerprint(crop_size=256)["sha256"] != base["sha256"]
    (manifests / "train.jsonl").write_text('{"name": "c", "files": {}}\n')
    assert fingerprint()["sha256"] != base["sha256"]


def test_folder_fingerprint_follows_the_photos_bytes_not_their_location(tmp_path):
    from matting.data.folder import FolderDataModule

    from .tiny_checkpoint import write_pairs

    root = write_pairs(tmp_path / "pairs", count=3, size=32)
    base = data_fingerprint(FolderDataModule(str(root), num_workers=0))
    assert {"image/train_00000.png", "alpha/train_00000.png", "fg/train_00002.png"} <= set(base["files"])
    assert data_fingerprint(FolderDataModule(str(root), num_workers=1))["sha256"] == base["sha256"]
    moved = shutil.copytree(root, tmp_path / "elsewhere")
    assert data_fingerprint(FolderDataModule(str(moved), num_workers=0))["sha256"] == base["sha256"]
    photo = root / "image" / "train_00001.png"
    image = cv2.imread(str(photo))
    image[0, 0] = 255 - image[0, 0]
    cv2.imwrite(str(photo), image)  # same name, same size, other bytes
    changed = data_fingerprint(FolderDataModule(str(root), num_workers=0))
    assert changed["sha256"] != base["sha256"]
    assert changed["files"]["image/train_00001.png"]["sha256"] != base["files"]["image/train_00001.png"]["sha256"]
    assert data_fingerprint(FolderDataModule(str(root), num_workers=0, crop_size=256))["sha256"] != changed["sha256"]


def test_grid_tiles_are_shrunk_to_the_tile_size_and_labelled_rows_stack():
    image, alpha = torch.rand(3, 300, 200), torch.randint(0, 256, (1, 300, 200)) / 255  # 8-bit, as val/sad scores
    big = grid_sample(image, alpha, alpha, max_side=256)
    assert big.image.shape == (256, 171, 3) and big.error.shape == (256, 171) and big.sad == pytest.approx(0, abs=1e-3)
    small = grid_sample(torch.rand(3, 32, 48), torch.zeros(1, 32, 48), torch.ones(1, 32, 48))
    assert small.image.shape == (32, 48, 3) and small.sad == pytest.approx(32 * 48 / 1000)
    grid = prediction_grid([big, small])
    assert grid.shape == (HEADER_PX + 2 * (LABEL_PX + 256), 4 * 171, 3) and grid.dtype.name == "uint8"
