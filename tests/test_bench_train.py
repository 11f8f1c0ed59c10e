"""tools/benchmark.py train: training steps of arms timed in matting fit's loop, interleaved with the reference."""

from __future__ import annotations

import json

import pytest

from matting.bench import train as bench_train

BASE = ("model:\n  net:\n    init_args:\n      encoder:\n        class_path: matting.models.TimmEncoder\n"
        "        init_args: {name: test_resnet, pretrained: false}\n"
        "trainer: {precision: 32-true, max_epochs: -1}\n"
        "data:\n  class_path: matting.data.SyntheticDataModule\n"
        "  init_args: {train_length: 1000, val_length: 2, test_length: 2, size: 64, batch_size: 2, num_workers: 0}\n")


@pytest.fixture()
def study(tmp_path):
    (tmp_path / "arms").mkdir()
    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / "arms" / "reference.yaml").write_text("{}\n")
    (tmp_path / "arms" / "cheap.yaml").write_text(
        "model:\n  net:\n    init_args:\n      detail_head:\n        class_path: matting.models.DetailHead\n"
        "        init_args: {hidden: 8, block: dw, stride: 4}\n")
    return tmp_path


@pytest.mark.slow
def test_times_training_steps_of_every_arm_against_the_reference(study, tmp_path):
    out = tmp_path / "train.json"
    assert bench_train.main([str(study), "--steps", "3", "--warmup", "1", "--rounds", "2", "--out", str(out)]) == 0
    written = json.loads(out.read_text())
    rows = written["results"]
    assert set(rows) == {"reference", "cheap"}
    assert rows["reference"]["x_reference_step"] == pytest.approx(1.0)
    for r in rows.values():
        assert r["batch_size"] == 2
        assert r["steps_timed"] == 2 * 3  # rounds x steps: the warm-up step is not timed
        assert r["step_s"] > 0 and r["images_per_s"] == pytest.approx(2 / r["step_s"])
    assert written["command"].startswith("python tools/benchmark.py train")


@pytest.mark.slow
def test_refuses_unknown_arms_and_too_few_steps(study, capsys):
    assert bench_train.main([str(study), "--arms", "nope"]) == 2
    assert "unknown arms ['nope']" in capsys.readouterr().err
    assert bench_train.main([str(study), "--steps", "1"]) == 2
    assert "--steps >= 2" in capsys.readouterr().err
