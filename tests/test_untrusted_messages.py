"""Misleading messages and tracebacks: each failure a user can fix is one line saying what it is."""

from __future__ import annotations

from pathlib import Path

import cv2
import lightning.pytorch  # noqa: F401  (its log handler binds to the real stderr, not to one test's capture)
import numpy as np
import pytest

from matting.io.errors import MattingInputError

from .test_bad_input import assert_clean_error, lightning, run
from .tiny_checkpoint import write_pairs

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.filterwarnings("ignore")]

UNSAFE = 'class_path: matting.models.MattingNet\ninit_args: !!python/object/apply:os.system ["echo hi"]\n'


def test_an_onnx_file_given_as_a_checkpoint_is_named_as_one(tmp_path):
    from matting.io.checkpoints import read_checkpoint

    for path in (tmp_path / "model.bin", tmp_path / "model.onnx"):  # found by its first bytes, or by its name
        # An ONNX ModelProto's first fields: ir_version 8, producer_name "pytorch".
        path.write_bytes(b"\x08\x08\x12\x07pytorch\x1a\x032.1" + bytes(range(256)))
        with pytest.raises(MattingInputError, match=f"{path}: not a PyTorch checkpoint \\(an ONNX graph, run by "
                                                    "onnxruntime: give the .ckpt of `matting fit`"):
            read_checkpoint(path)


def test_a_label_encoded_trimap_says_so_and_how_to_convert(tmp_path):
    from matting.evaluation import evaluate_dirs

    for role, array in (("pred", np.full((8, 8), 128, np.uint8)), ("gt", np.full((8, 8), 128, np.uint8)),
                        ("trimap", np.tile(np.uint8([0, 1, 2, 1]), (8, 2)))):
        (tmp_path / role).mkdir()
        cv2.imwrite(str(tmp_path / role / "a.png"), array)
    with pytest.raises(MattingInputError) as info:
        evaluate_dirs(tmp_path / "pred", tmp_path / "gt", tmp_path / "trimap", "comp1k", workers=1, progress=False)
    line = str(info.value).splitlines()[1]
    assert "unreadable" not in line
    assert line == (f"  - wrong values: {tmp_path / 'trimap' / 'a.png'}: trimap values [0, 1, 2] look label-encoded "
                    "(0/1/2), not gray levels 0/128/255; convert it, e.g. numpy.array([0, 128, 255], numpy.uint8)[labels] "
                    "if 1 is unknown and 2 foreground")


@pytest.mark.slow  # parses a fit command line
def test_an_unsafe_yaml_tag_in_an_option_file_is_named(tmp_path, capsys):
    net = tmp_path / "net.yaml"
    net.write_text(UNSAFE)
    code, err = run(capsys, *lightning("fit", tmp_path / "run", f"--model.net={net}"))
    message = assert_clean_error(code, err, f"--model.net={net}", "unsafe YAML tag '!!python/object/apply:os.system'")
    assert "not accessible" not in message
    assert not (tmp_path / "run").exists()


@pytest.mark.slow  # builds a trainer
def test_a_setting_lightning_refuses_is_one_line(tmp_path, capsys):
    code, err = run(capsys, *lightning("fit", tmp_path / "run", "--trainer.max_steps=-5"))
    assert_clean_error(code, err, "Lightning refused the configuration: `max_steps` must be a non-negative integer",
                       "You passed in -5")


@pytest.mark.slow  # trains
def test_a_diverged_fit_is_one_line(tmp_path, capsys):
    code, err = run(capsys, *lightning("fit", tmp_path / "run", "--model.optimizer.init_args.lr=1e12",
                                       "--trainer.max_steps=6", "--trainer.callbacks=[]"))
    assert_clean_error(code, err, "training diverged: non-finite loss term", "learning rate 1e+12",
                       "--model.optimizer.init_args.lr")


@pytest.mark.slow  # trains
def test_a_failed_finetune_leaves_no_run_folder(tiny_ckpt, tmp_path, capsys):
    pairs = write_pairs(tmp_path / "pairs", count=6, size=64)
    out = tmp_path / "ft"
    args = ["finetune", tiny_ckpt, "--data", pairs, "--out", out, "--size", "32", "--batch-size", "2", "--steps", "3",
            "--lr", "1e12", "--data.init_args.num_workers=0"]
    code, err = run(capsys, *args)
    assert_clean_error(code, err, "training diverged: non-finite loss term", "--lr")
    assert not out.exists()  # the same command runs again without --overwrite
    code, err = run(capsys, *args)
    assert "exists already" not in err and "training diverged" in err


@pytest.mark.slow  # runs the commands
@pytest.mark.parametrize("command", ["predict", "gallery"])
def test_base_size_has_an_upper_bound(command, tmp_path, capsys):
    photo = tmp_path / "in" / "photo.png"
    photo.parent.mkdir()
    cv2.imwrite(str(photo), np.full((248, 400, 3), 90, np.uint8))
    option = "--images" if command == "gallery" else None
    args = [command, "--ckpt", tmp_path / "none.ckpt", *([option] if option else []), photo.parent,
            "--out", tmp_path / "out", "--base-size", "40000"]
    code, err = run(capsys, *args)
    assert_clean_error(code, err, "--base-size must be at most 4096", "got 40000")
    assert not (tmp_path / "out").exists()
