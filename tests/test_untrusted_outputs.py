"""NaN weights, NaN outputs and float files out of range: refused in one line, never written as a matte."""

from __future__ import annotations

from pathlib import Path

import cv2
import lightning.pytorch  # noqa: F401  (its log handler binds to the real stderr, not to one test's capture)
import numpy as np
import pytest
import torch

from matting.io.errors import MattingInputError, NonFiniteOutput
from matting.models.contract import MattingNetwork

from .test_bad_input import _tool_args, assert_clean_error, run
from .tiny_checkpoint import tiny_net, write_checkpoint, write_pairs

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.filterwarnings("ignore")]


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    return write_pairs(tmp_path_factory.mktemp("data") / "pairs", count=2, size=64)


@pytest.fixture(scope="module")
def nan_ckpt(tmp_path_factory) -> Path:
    net = tiny_net()
    with torch.no_grad():
        for param in net.parameters():
            param.fill_(float("nan"))
    return write_checkpoint(tmp_path_factory.mktemp("nan") / "nan.ckpt", net)


@pytest.mark.parametrize("command", ["predict", "gallery", "export", "finetune", "adapt"])
def test_a_checkpoint_with_nan_weights_is_refused_naming_it(command, nan_ckpt, pairs, tmp_path, capsys):
    out = tmp_path / "out"
    assert_clean_error(*run(capsys, *_tool_args(command, nan_ckpt, pairs, out)), nan_ckpt, "holds NaN or infinite values")
    assert not out.exists() and not out.with_name("out.partial").exists()


class _NanNet(MattingNetwork):  # a network of the family (the contract predict_alpha reads), gone bad
    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1))

    def forward(self, x):
        return {"pred_alpha": x[:, :1] * self.scale * float("nan")}


def test_predict_alpha_refuses_a_nan_output_naming_the_source():
    from matting.inference.predict import predict_alpha

    with pytest.raises(NonFiniteOutput, match=r"^model\.ckpt: the network's alpha matte holds NaN"):
        predict_alpha(_NanNet(), np.zeros((40, 50, 3), np.float32), base_size=32, source="model.ckpt")


@pytest.mark.slow
def test_predict_stops_at_the_first_nan_output(net_ckpt, pairs, tmp_path, capsys, monkeypatch):
    import matting.inference.predict as predict

    original = predict.predict_alpha
    monkeypatch.setattr(predict, "predict_alpha", lambda net, image, source="", **k: original(
        _NanNet(), image, base_size=32, source=source))
    out = tmp_path / "out"
    ckpt = net_ckpt()
    message = assert_clean_error(*run(capsys, *_tool_args("predict", ckpt, pairs, out)), ckpt, "holds NaN")
    assert message.count("holds NaN") == 1
    assert not any(out.rglob("*.png"))


def _float_tiff(path: Path, array: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), array.astype(np.float32))
    return path


@pytest.mark.slow
def test_evaluate_refuses_a_predicted_matte_holding_nan(pairs, tmp_path, capsys):
    pred = tmp_path / "pred"
    pred.mkdir()
    for gt in sorted((pairs / "alpha").iterdir()):
        alpha = cv2.imread(str(gt), cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255
        alpha[0, 0] = np.nan
        _float_tiff(pred / f"{gt.stem}.tif", alpha)
    out = tmp_path / "scores"
    assert_clean_error(*run(capsys, "evaluate", "--pred", pred, "--gt", pairs / "alpha", "--out", out),
                       pred, "holds NaN or infinite values", one_line=False)  # evaluate lists every file


@pytest.mark.parametrize("values, expected", [
    (np.full((4, 5, 3), 200.0), "values from 200 to 200, outside [0, 1] (it looks like 0..255: divide it by 255)"),
    (np.full((4, 5, 3), np.inf), "float image holds NaN or infinite values"),
    (np.full((4, 5, 3), -0.5), "values from -0.5 to -0.5, outside [0, 1]"),
])
def test_float_images_out_of_range_or_not_finite_are_refused(values, expected, tmp_path):
    from matting.io.images import read_alpha, read_image

    path = _float_tiff(tmp_path / "x.tif", values)
    with pytest.raises(MattingInputError, match=f"^{path}: .*" + expected.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        read_image(path)
    gray = _float_tiff(tmp_path / "g.tif", values[..., 0])
    with pytest.raises(MattingInputError, match=str(gray)):
        read_alpha(gray)


def test_float_images_in_range_still_read(tmp_path):
    from matting.io.images import read_image

    values = np.linspace(0, 1.0005, 60).reshape(4, 5, 3)
    image = read_image(_float_tiff(tmp_path / "x.tif", values))
    assert image.max() == 1.0 and abs(float(image[0, 0, 1]) - float(values[0, 0, 1])) < 1e-6
