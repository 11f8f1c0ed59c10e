"""experiments/real_foregrounds: the data root it builds, every arm's composition, and its scoring.

The study's photos are not needed: a stand-in ``shared`` folder of 20 small photos with alpha and
3 backgrounds is made here, laid out like ``../shared/data``.
"""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from experiments.real_foregrounds import prepare as rf_prepare
from experiments.real_foregrounds import run as rf_run
from matting.io.errors import MattingInputError
from matting.runtime.lightning_cli import build_cli

TINY = ["--model.net.init_args.encoder.init_args.name=test_resnet", "--trainer.precision=32-true",
        "--trainer.max_steps=1", "--data.init_args.batch_size=2",
        "--data.init_args.num_workers=0"]


def _stand_in_shared(root, size=(48, 64)) -> None:
    """``root/alphamatting/{image,alpha,trimap,trimap2}/GT01..GT20.png`` and ``root/backgrounds/`` (3 files)."""
    rng = np.random.default_rng(0)
    h, w = size
    yy, xx = np.mgrid[:h, :w]
    for kind in ("image", "alpha", "trimap", "trimap2"):
        (root / "alphamatting" / kind).mkdir(parents=True)
    for i in range(1, 21):
        name = f"GT{i:02d}.png"
        r = np.hypot(yy - h / 2 - rng.uniform(-5, 5), xx - w / 2 - rng.uniform(-5, 5))
        alpha = np.clip((14 + i % 5 - r) / 4, 0, 1)
        image = (rng.random((h, w, 3)) * 255).astype(np.uint8)
        a8 = np.rint(alpha * 255).astype(np.uint8)
        trimap = np.where(a8 == 255, 255, np.where(a8 == 0, 0, 128)).astype(np.uint8)
        for kind, array in (("image", image), ("alpha", a8), ("trimap", trimap), ("trimap2", trimap)):
            cv2.imwrite(str(root / "alphamatting" / kind / name), array)
    (root / "backgrounds").mkdir()
    for j in range(3):
        cv2.imwrite(str(root / "backgrounds" / f"bg{j}.png"), (rng.random((80, 90, 3)) * 255).astype(np.uint8))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    base = tmp_path_factory.mktemp("real_foregrounds")
    _stand_in_shared(base / "shared")
    return rf_prepare.build(base / "shared", base / "data", procedural=2, overwrite=False, log=lambda *_: None)


def test_prepare_splits_by_name_and_estimates_training_foregrounds(data_root):
    from matting.data.manifest import read_split

    manifests = data_root / "manifests"
    train, test = read_split(manifests / "alphamatting", "train"), read_split(manifests / "alphamatting", "test")
    assert [r.name for r in train] == rf_prepare.TRAIN and [r.name for r in test] == rf_prepare.TEST
    assert all("fg_est" in r.files for r in train) and not any("fg_est" in r.files for r in test)
    assert len(read_split(manifests / "bg20k", "train")) == 3 + 2
    assert sorted(p.name for p in (data_root / "test" / "image").iterdir()) == [f"{n}.png" for n in rf_prepare.TEST]
    assert not (manifests / "alphamatting" / "lowres.jsonl").exists()


def test_prepare_refuses_to_replace_a_data_root_and_names_missing_photos(data_root, tmp_path):
    with pytest.raises(MattingInputError, match="not empty|exists"):
        rf_prepare.build(data_root.parent / "shared", data_root, procedural=0, overwrite=False)
    with pytest.raises(MattingInputError, match="alphamatting"):
        rf_prepare.build(tmp_path / "nowhere", tmp_path / "out", procedural=0, overwrite=False)
    shared = tmp_path / "shared"
    shutil.copytree(data_root.parent / "shared", shared)
    (shared / "alphamatting" / "image" / "GT18.png").unlink()
    (shared / "alphamatting" / "alpha" / "GT18.png").unlink()
    (shared / "alphamatting" / "trimap" / "GT18.png").unlink()
    (shared / "alphamatting" / "trimap2" / "GT18.png").unlink()
    with pytest.raises(MattingInputError, match="GT18"):
        rf_prepare.build(shared, tmp_path / "out2", procedural=0, overwrite=False, log=lambda *_: None)
    assert not (tmp_path / "out2").exists()


@pytest.mark.slow
@pytest.mark.parametrize("arm", list(rf_run.ARMS))
def test_every_arm_builds_and_trains_one_step(arm, data_root, tmp_path):
    cmd = rf_run.fit_command(arm, data_root, tmp_path, TINY)
    size = "--data.init_args.size=64" if arm.startswith("synthetic") else "--data.init_args.crop_size=64"
    args = [a for a in cmd[4:] if not a.startswith("--trainer.logger")]
    cli = build_cli(args + [size, "--trainer.logger=false", "--trainer.enable_checkpointing=false", "--trainer.callbacks=[]"],
                    run=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.trainer.global_step == 1
    hp = cli.datamodule.hparams
    if arm in rf_run.USES_DATA_ROOT:
        assert hp.train == "alphamatting/train" and hp.val is None
        assert hp.synthetic_fraction == (0.0 if arm == "real" else 0.5)
    else:
        assert hp.texture_cue == (arm == "synthetic_texture_cue")


def test_mask_scores_pool_pixels_over_photos(tmp_path):
    from matting.io.images import write_png

    pred, gt = tmp_path / "pred", tmp_path / "gt"
    truth = np.zeros((10, 10), np.float32)
    truth[:, :5] = 1.0  # 50 foreground pixels
    guess = np.zeros((10, 10), np.float32)
    guess[:, 3:8] = 0.8  # 20 of them found, 30 false
    write_png(gt / "a.png", truth)
    write_png(pred / "a.png", guess)
    write_png(gt / "b.png", truth)
    write_png(pred / "b.png", truth)  # perfect
    scores = rf_run.mask_scores(pred, gt)
    assert scores["iou_per_image"] == {"a": pytest.approx(20 / 80), "b": pytest.approx(1.0)}
    assert scores["iou"] == pytest.approx((20 + 50) / (80 + 50))
    assert scores["precision"] == pytest.approx(70 / 100) and scores["recall"] == pytest.approx(70 / 100)


@pytest.mark.slow
def test_trains_scores_and_reports_keeping_the_analysis(data_root, tmp_path):
    out, results = tmp_path / "out", tmp_path / "results"
    rf_run.train_arms(["synthetic"], data_root, out, jobs=1, max_steps=2,
                      options=TINY + ["--trainer.max_steps=2", "--data.init_args.size=64"])
    record = json.loads((out / "train" / "synthetic" / "train.json").read_text())
    assert record["steps"] == 2 and not record["cut_short"] and record["cpu_seconds"] > 0
    scored = {arm: {"train": record if arm == "synthetic" else None, "scores": rf_run.score_arm(arm, data_root, out)}
              for arm in ("synthetic", "constant_background")}
    assert scored["constant_background"]["scores"]["mask"]["iou"] == 0.0
    rf_run.write_results(scored, data_root, out, results, "python experiments/real_foregrounds/run.py")
    text = (results / "results.md").read_text()
    assert "| synthetic | 2 |" in text and "| constant_background | - |" in text
    assert cv2.imread(str(results / "grid.png")) is not None and (out / "grid_full.png").is_file()
    (results / "results.md").write_text(text + "What the grid shows.\n")
    rf_run.write_results(scored, data_root, out, results, "again")
    assert (results / "results.md").read_text().endswith("What the grid shows.\n")
    assert "`again`" in (results / "results.md").read_text()
