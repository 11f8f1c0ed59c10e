"""Scores that look perfect because of the input, not the model: said, never silent."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from .test_bad_input import assert_clean_error, run

pytestmark = pytest.mark.filterwarnings("ignore")


def _folders(root: Path, trimap: np.ndarray | None = None) -> Path:
    """``root/{pred,gt,trimap}/a.png``: a prediction that differs from the ground truth everywhere."""
    gt = np.zeros((16, 16), np.uint8)
    gt[4:12, 4:12] = 255
    pred = np.full((16, 16), 100, np.uint8)
    for role, array in (("pred", pred), ("gt", gt), ("trimap", trimap)):
        if array is not None:
            (root / role).mkdir(parents=True)
            cv2.imwrite(str(root / role / "a.png"), array)
    return root


@pytest.mark.slow  # runs the command
def test_a_mask_given_as_the_comp1k_trimap_is_refused_naming_it(tmp_path, capsys):
    root = _folders(tmp_path, trimap=np.where(np.arange(256).reshape(16, 16) > 100, 255, 0).astype(np.uint8))
    args = ["evaluate", "--pred", root / "pred", "--gt", root / "gt", "--trimap", root / "trimap",
            "--protocol", "comp1k", "--out", root / "report", "--no-progress"]
    code, err = run(capsys, *args)
    message = assert_clean_error(code, err, one_line=False)
    assert message.splitlines()[1] == (
        f"  - no unknown region: trimap {root / 'trimap' / 'a.png'} has no unknown pixel (128): comp1k scores only "
        "those, so every metric would be a perfect 0; give this image's trimap, or use --protocol whole")
    assert not (root / "report").exists()
    code, err = run(capsys, *args, "--allow-missing")  # the only image skipped: nothing to score
    assert_clean_error(code, err, "nothing to evaluate")


@pytest.mark.slow  # runs the command
def test_the_same_folder_as_prediction_and_ground_truth_is_refused(tmp_path, capsys):
    root = _folders(tmp_path)
    code, err = run(capsys, "evaluate", "--pred", root / "gt", "--gt", f"{root}/./gt/", "--out", root / "report")
    assert_clean_error(code, err, f"--pred {root / 'gt'}", "are the same folder: every prediction would score a perfect 0")
    assert not (root / "report").exists()


@pytest.mark.slow  # runs the command
def test_predictions_that_copy_the_ground_truth_are_scored_with_a_warning(tmp_path, capsys):
    root = _folders(tmp_path)
    (root / "copy").mkdir()
    (root / "copy" / "a.png").write_bytes((root / "gt" / "a.png").read_bytes())
    code, err = run(capsys, "evaluate", "--pred", root / "copy", "--gt", root / "gt", "--out", root / "report",
                    "--no-progress")
    assert code == 0 and (root / "report" / "summary.json").is_file()
    assert err.strip() == (f"matting evaluate: warning: every prediction in {root / 'copy'} is a copy of its ground "
                           f"truth in {root / 'gt'}, so every score is 0 and says nothing about a model")
    # a prediction that is not a copy: no warning
    code, err = run(capsys, "evaluate", "--pred", root / "pred", "--gt", root / "gt", "--out", root / "r2", "--no-progress")
    assert code == 0 and "warning" not in err
