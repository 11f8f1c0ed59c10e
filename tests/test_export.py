"""``matting export``: ONNX with dynamic height and width (parity with PyTorch under onnxruntime), safetensors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from matting.commands import export
from matting.inference.loading import load_net
from matting.inference.predict import predict_alpha
from matting.io.errors import MattingInputError
from tests.tiny_checkpoint import NET_CONFIG

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def ckpt(net_ckpt) -> Path:
    return net_ckpt(seed=3)


@pytest.fixture(scope="module")
def onnx_file(ckpt, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    assert export.main(["--ckpt", str(ckpt), "--onnx", str(out), "--base-size", "64"]) == 0
    return out


@pytest.mark.slow
@pytest.mark.parametrize("height,width", [(128, 192), (75, 41)])  # above the base size, and below it (enlarged)
def test_onnx_takes_the_full_size_photo_as_predict_does(ckpt, onnx_file, height, width):
    net = load_net(ckpt)
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    assert [d for d in session.get_inputs()[0].shape[2:]] == ["height", "width"]  # symbolic, not fixed
    image = np.random.default_rng(height).random((height, width, 3), dtype=np.float32)
    (alpha,) = session.run(["alpha"], {"image": image.transpose(2, 0, 1)[None].copy()})
    expected = predict_alpha(net, image, base_size=64)
    assert alpha.shape == (1, 1, height, width)
    assert expected.std() > 1e-4  # the comparison is not between two constant maps
    assert np.abs(alpha[0, 0] - expected).max() <= 1e-4


@pytest.mark.slow
def test_onnx_metadata_and_batch(onnx_file, ckpt):
    umask = os.umask(0)
    os.umask(umask)
    assert onnx_file.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    model = onnx.load(str(onnx_file))
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["net_config"]) == NET_CONFIG
    assert meta["contract"] == "full-size photo in, full-size alpha out" and meta["base_size"] == "64"
    assert int(meta["parameters"]) == sum(p.numel() for p in load_net(ckpt).parameters())
    assert model.opset_import[0].version >= 17
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    image = np.random.default_rng(0).random((2, 3, 40, 56), dtype=np.float32)
    (alpha,) = session.run(["alpha"], {"image": image})
    assert alpha.shape == (2, 1, 40, 56)
    assert 0.0 <= alpha.min() and alpha.max() <= 1.0


@pytest.mark.slow
def test_export_refuses_to_overwrite_and_bad_targets(ckpt, onnx_file, tmp_path):
    before = onnx_file.read_bytes()
    with pytest.raises(MattingInputError, match="exists already"):
        export.main(["--ckpt", str(ckpt), "--onnx", str(onnx_file)])
    assert onnx_file.read_bytes() == before
    with pytest.raises(MattingInputError, match="is a folder"):
        export.main(["--ckpt", str(ckpt), "--onnx", str(tmp_path)])
    with pytest.raises(MattingInputError, match="nothing to do"):
        export.main(["--ckpt", str(ckpt)])
    with pytest.raises(MattingInputError, match="at least 17"):
        export.main(["--ckpt", str(ckpt), "--onnx", str(tmp_path / "a.onnx"), "--opset", "13"])
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"\x80\x04\x95garbage")
    with pytest.raises(MattingInputError, match=r"garbage\.ckpt: not a"):
        export.main(["--ckpt", str(garbage), "--onnx", str(tmp_path / "b.onnx")])
    assert not list(tmp_path.glob("*.onnx")) and not list(tmp_path.glob(".*.tmp"))


@pytest.mark.slow
def test_failed_parity_check_removes_the_file(ckpt, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(export, "verify_onnx", lambda net, path, shapes, **options: [((64, 64), 0.5)])
    target = tmp_path / "bad.onnx"
    assert export.main(["--ckpt", str(ckpt), "--onnx", str(target)]) == 1
    assert not target.exists()
    assert "differs from PyTorch" in capsys.readouterr().err


@pytest.mark.slow
def test_safetensors_round_trip_and_sidecar(ckpt, tmp_path):
    target = tmp_path / "model.safetensors"
    assert export.main(["--ckpt", str(ckpt), "--safetensors", str(target)]) == 0
    image = np.random.default_rng(1).random((45, 70, 3), dtype=np.float32)
    expected = predict_alpha(load_net(ckpt), image, base_size=64)
    assert np.array_equal(predict_alpha(load_net(target), image, base_size=64), expected)

    # Weights without config metadata (e.g. saved by another tool) need a sidecar YAML.
    from safetensors.torch import load_file, save_file

    bare = tmp_path / "bare.safetensors"
    save_file(load_file(str(target)), str(bare))
    with pytest.raises(MattingInputError, match="no network config"):
        load_net(bare)
    (tmp_path / "bare.yaml").write_text(yaml.safe_dump({"model": {"net": NET_CONFIG}}))  # LightningCLI config layout
    assert np.array_equal(predict_alpha(load_net(bare), image, base_size=64), expected)

    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(target.read_bytes()[:100])
    with pytest.raises(MattingInputError, match=r"broken\.safetensors: not a readable safetensors file"):
        load_net(broken)
