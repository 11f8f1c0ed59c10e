"""Reproducibility and numerical guards of a training run (CPU, tiny model)."""

import pytest
import torch

from matting.runtime.lightning_cli import build_cli

from .conftest import REPO

CFG = ["-c", str(REPO / "configs" / "default.yaml"), "-c", str(REPO / "configs" / "smoke.yaml")]


def _fit(tmp_path, *extra):
    cli = build_cli(CFG + [f"--trainer.default_root_dir={tmp_path}", "--trainer.logger=false",
                           "--trainer.enable_checkpointing=false", "--trainer.callbacks=[]", *extra], run=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return cli


@pytest.mark.slow
def test_same_seed_same_config_same_validation_metrics(tmp_path):
    first = _fit(tmp_path / "a", "--trainer.max_steps=3").trainer.callback_metrics
    second = _fit(tmp_path / "b", "--trainer.max_steps=3").trainer.callback_metrics
    assert set(first) >= {"val/sad", "val/grad"}
    for key in ("val/sad", "val/mse", "val/grad", "val/conn"):
        assert torch.equal(first[key], second[key]), key


@pytest.mark.slow
def test_a_different_seed_changes_the_run(tmp_path):
    a = _fit(tmp_path / "a", "--trainer.max_steps=3", "--seed_everything=0").trainer.callback_metrics["val/sad"]
    b = _fit(tmp_path / "b", "--trainer.max_steps=3", "--seed_everything=1").trainer.callback_metrics["val/sad"]
    assert not torch.equal(a, b)


@pytest.mark.slow
def test_non_finite_loss_stops_with_the_step_and_the_term(tmp_path):
    cli = build_cli(CFG + [f"--trainer.default_root_dir={tmp_path}", "--trainer.logger=false",
                           "--trainer.enable_checkpointing=false", "--trainer.callbacks=[]"], run=False)
    loss = cli.model.loss
    original = loss.forward

    def poisoned(outputs, batch, band, mode="TT"):
        terms = original(outputs, batch, band, mode)
        terms["detail"] = terms["detail"] * float("nan")
        return terms

    loss.forward = poisoned
    with pytest.raises(FloatingPointError, match=r"'detail'.*global step 0"):
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)


def _fit_photos(tmp_path, pairs, seed: int):
    """Two epochs on real-style crops and augmentations, drawn by two spawned worker processes."""
    cli = build_cli(CFG + [f"--trainer.default_root_dir={tmp_path}", "--trainer.logger=false",
                           "--trainer.enable_checkpointing=false", "--trainer.callbacks=[]",
                           "--trainer.max_epochs=2", "--trainer.max_steps=-1", f"--seed_everything={seed}",
                           "--data=matting.data.folder.FolderDataModule", f"--data.root={pairs}",
                           "--data.val_fraction=0.2", "--data.crop_size=48", "--data.batch_size=2",
                           "--data.num_workers=2", "--data.samples_per_epoch=4"], run=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return cli


@pytest.mark.slow
def test_worker_processes_keep_runs_reproducible(tmp_path):
    from .tiny_checkpoint import write_pairs

    pairs = write_pairs(tmp_path / "pairs", count=6)
    runs = [_fit_photos(tmp_path / name, pairs, seed) for name, seed in (("a", 0), ("b", 0), ("c", 1))]
    metrics = [run.trainer.callback_metrics for run in runs]
    weights = [run.model.net.state_dict() for run in runs]
    for key in ("val/sad", "val/mse", "val/grad"):
        assert torch.equal(metrics[0][key], metrics[1][key]), key
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not all(torch.equal(weights[0][k], weights[2][k]) for k in weights[0])
