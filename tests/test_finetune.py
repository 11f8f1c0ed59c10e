"""``matting finetune``: a checkpoint fine-tuned on a folder of photo / matte pairs (tiny network, 64 px)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from matting.commands.finetune import main
from matting.data.folder import scan_pairs, split_by_stem
from matting.data.manifest import Record
from matting.io.checkpoints import load_net_parts, plain_config
from matting.io.errors import MattingInputError
from matting.runtime.lightning_cli import build_cli

from .tiny_checkpoint import REPO, state_of, write_pairs

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.filterwarnings("ignore")]

# Tiny, quiet, in-process runs.
SMALL = ["--size", "64", "--batch-size", "2", "--data.init_args.num_workers=0",
         "--trainer.log_every_n_steps=1", "--trainer.enable_progress_bar=false"]


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    return write_pairs(tmp_path_factory.mktemp("data") / "pairs", count=6)


def _train_losses(run: Path) -> list[float]:
    with open(run / "logs" / "version_0" / "metrics.csv") as handle:
        return [float(row["train/loss"]) for row in csv.DictReader(handle) if row.get("train/loss")]


def _encoder_keys(state: dict) -> list[str]:
    return [k for k in state if k.startswith("encoder.")]


@pytest.mark.slow
def test_finetune_lowers_the_loss_and_writes_a_repeatable_run(tiny_modnet_ckpt, pairs, tmp_path):
    # The MODNet-sized heads: the quarter-width depthwise default learns too little in 30 steps at 64 px.
    tiny_ckpt = tiny_modnet_ckpt
    out = tmp_path / "run"
    assert main([str(tiny_ckpt), "--data", str(pairs), "--steps", "30", "--val-every", "15", "--lr", "1e-3",
                 "--out", str(out), *SMALL]) == 0

    losses = _train_losses(out)
    assert len(losses) == 30
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert last < 0.8 * first, (first, last)

    logs = out / "logs" / "version_0"
    assert (out / "from_checkpoint.yaml").is_file()
    assert (logs / "checkpoints" / "last.ckpt").is_file()
    assert list((logs / "checkpoints").glob("best-*.ckpt"))
    config = yaml.safe_load((logs / "config.yaml").read_text())
    net_config, _ = load_net_parts(tiny_ckpt)
    assert plain_config(config["model"]["net"]) == plain_config(net_config)  # the checkpoint's network, not default.yaml's
    assert config["model"]["init_weights"] == str(tiny_ckpt.resolve())
    assert config["data"]["class_path"] == "matting.data.folder.FolderDataModule"
    assert config["data"]["init_args"]["root"] == str(pairs.resolve())
    assert config["model"]["scheduler"]["init_args"]["T_max"] == 30
    assert config["model"]["optimizer"]["init_args"]["lr"] == pytest.approx(1e-3)

    before, after = state_of(tiny_ckpt), state_of(logs / "checkpoints" / "last.ckpt")
    assert any(not torch.equal(before[k], after[k]) for k in _encoder_keys(before))  # not frozen: the encoder learns

    again = build_cli(["-c", str(logs / "config.yaml")], run=False)  # `matting fit -c config.yaml` repeats the run
    assert {k: v.shape for k, v in again.model.net.state_dict().items()} == {k: v.shape for k, v in before.items()}
    assert again.trainer.max_steps == 30 and again.datamodule.hparams.crop_size == 64


@pytest.mark.slow
def test_freeze_encoder_keeps_every_encoder_tensor(tiny_ckpt, pairs, tmp_path):
    out = tmp_path / "frozen"
    assert main([str(tiny_ckpt), "--data", str(pairs), "--steps", "3", "--freeze-encoder", "--out", str(out), *SMALL]) == 0
    before, after = state_of(tiny_ckpt), state_of(out / "logs" / "version_0" / "checkpoints" / "last.ckpt")
    encoder = _encoder_keys(before)
    assert any(k.endswith("running_mean") for k in encoder)  # frozen BatchNorm statistics are compared too
    for key in encoder:
        assert torch.equal(before[key], after[key]), key
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("detail_head."))
    config = yaml.safe_load((out / "logs" / "version_0" / "config.yaml").read_text())
    assert config["model"]["lr_scales"] == {"net.encoder": 0.0}


@pytest.mark.slow
def test_a_conflicting_config_is_refused_and_leaves_no_run(tiny_ckpt, pairs, tmp_path):
    out = tmp_path / "gfm"
    with pytest.raises(MattingInputError, match=r"not the checkpoint's(.|\n)*model\.net\.init_args\.semantic_head\.class_path"):
        main([str(tiny_ckpt), "--data", str(pairs), "-c", str(REPO / "configs" / "model" / "gfm.yaml"),
              "--out", str(out), *SMALL])
    assert not out.exists()


@pytest.mark.slow
def test_every_problem_in_the_data_folder_is_named_at_once(tiny_ckpt, pairs, tmp_path):
    data = tmp_path / "bad"
    shutil.copytree(pairs, data)
    (data / "alpha" / "train_00001.png").unlink()  # a photo without its matte
    cv2.imwrite(str(data / "image" / "train_00002.png"), np.zeros((70, 64, 3), np.uint8))  # 64x70 photo, 64x64 matte
    (data / "alpha" / "train_00003.png").write_bytes(b"not a png")  # unreadable
    with pytest.raises(MattingInputError) as error:
        main([str(tiny_ckpt), "--data", str(data), "--out", str(tmp_path / "run"), *SMALL])
    message = str(error.value)
    assert "3 problem(s)" in message
    assert f"{data / 'image' / 'train_00001.png'}: no matte" in message
    assert f"size mismatch: image {data / 'image' / 'train_00002.png'} is 64x70, alpha {data / 'alpha' / 'train_00002.png'} is 64x64" in message
    assert f"{data / 'alpha' / 'train_00003.png'}: not a readable image" in message
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_out_must_be_a_new_folder_or_an_old_run(tiny_ckpt, pairs, tmp_path):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep me")
    with pytest.raises(MattingInputError, match="notes.txt is a file, not a folder"):
        main([str(tiny_ckpt), "--data", str(pairs), "--out", str(a_file), *SMALL])
    other = tmp_path / "other"
    other.mkdir()
    (other / "precious.txt").write_text("keep me")
    with pytest.raises(MattingInputError, match="exists already; pass --overwrite"):
        main([str(tiny_ckpt), "--data", str(pairs), "--out", str(other), *SMALL])
    with pytest.raises(MattingInputError, match="not a run of this command"):
        main([str(tiny_ckpt), "--data", str(pairs), "--out", str(other), "--overwrite", *SMALL])
    assert (other / "precious.txt").read_text() == "keep me"


@pytest.mark.slow
def test_bad_lr_scales_are_refused(tiny_ckpt, pairs, tmp_path):
    with pytest.raises(MattingInputError, match="PREFIX=SCALE"):
        main([str(tiny_ckpt), "--data", str(pairs), "--lr-scales", "net.encoder", "--out", str(tmp_path / "r")])
    with pytest.raises(MattingInputError, match="contradicts"):
        main([str(tiny_ckpt), "--data", str(pairs), "--freeze-encoder", "--lr-scales", "net.encoder=0.5", "--out", str(tmp_path / "r")])


def test_validation_split_is_stable_when_photos_are_added():
    def records(names):
        return [Record(n, {}) for n in names]

    old = [f"photo_{i:03d}" for i in range(40)]
    _, val_before = split_by_stem(records(old), 0.2)
    train_after, val_after = split_by_stem(records(old + [f"new_{i:03d}" for i in range(40)]), 0.2)
    assert 1 <= len(val_before) < 40
    assert {r.name for r in val_after if r.name in old} == {r.name for r in val_before}
    assert not {r.name for r in train_after} & {r.name for r in val_after}
    train, val = split_by_stem(records(["a", "b"]), 0.01)  # tiny folders still hold one pair out
    assert len(train) == len(val) == 1


def test_scan_accepts_the_documented_folder_names(pairs, tmp_path):
    data = tmp_path / "renamed"
    shutil.copytree(pairs, data, ignore=shutil.ignore_patterns("fg", "bg"))
    (data / "image").rename(data / "images")
    (data / "alpha").rename(data / "gt")
    records = scan_pairs(data)
    assert len(records) == 6 and set(records[0].files) == {"image", "alpha"}
    assert records[0].files["image"].path.startswith("images/")
