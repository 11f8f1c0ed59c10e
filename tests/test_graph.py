"""Exported graphs as the product runs them: full-size photo in, full-size alpha out, for every network
kind, equal to ``predict_alpha`` in float32; ``matting predict`` on a graph without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from matting.commands import predict
from matting.inference.export import export_onnx
from matting.inference.frozen import prepare_for_inference
from matting.inference.graph import AlphaGraph, is_graph
from matting.inference.predict import predict_alpha
from matting.io.errors import MattingInputError
from matting.models.segmentation import FCDenseNet, PatchClassifier
from tests.conftest import subprocess_env
from tests.tiny_checkpoint import REPO, tiny_net

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

BASE = 64
# One photo larger than the base (shrunk, antialiased) and one smaller (enlarged), neither a multiple of 32.
SIZES = [(150, 97), (41, 53)]
IMPORTS_A_GRAPH_NEEDS_NOT = ("torch", "timm", "torchvision", "lightning", "jsonargparse")


def _kinds() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {"mattingnet": tiny_net(3), "patch_classifier": PatchClassifier(7, width=8),
            "dense_patch_classifier": PatchClassifier(6, dense=True, width=8),
            "fcdensenet": FCDenseNet(growth=4, down_layers=(2, 2), bottleneck=2, first_channels=8)}


KINDS = _kinds()


def _photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1]: a smooth scene with a sharp disc, so the alpha is not flat."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    image = np.stack([0.2 + 0.6 * xx, 0.5 + 0.4 * np.sin(7 * yy), 0.3 + 0.5 * xx * yy], -1)
    image[(yy - 0.4) ** 2 + (xx - 0.3) ** 2 < 0.05] = (0.9, 0.2, 0.1)
    return np.clip(image + np.random.default_rng(seed).normal(0, 0.05, image.shape), 0, 1).astype(np.float32)


@pytest.fixture(scope="module")
def graphs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("graphs")
    files = {}
    for kind, net in KINDS.items():
        files[kind] = folder / f"{kind}.onnx"
        export_onnx(net.eval(), files[kind], base_size=BASE)
    return files


@pytest.mark.parametrize("kind", list(KINDS))
def test_graph_is_predict_alpha_in_float32_at_two_sizes(kind, graphs):
    net = KINDS[kind].eval()
    graph = AlphaGraph(graphs[kind], threads=1)
    fast = prepare_for_inference(net, jit=False)  # the checkpoint path of `matting predict`
    for h, w in SIZES:
        image = _photo(h, w)
        expected = predict_alpha(net, image, base_size=BASE, channels_last=False)
        got = graph(image)
        assert got.shape == (h, w) and expected.std() > 1e-4  # not a comparison of two flat maps
        assert np.abs(got - expected).max() <= 1e-4, f"{kind} {h}x{w}"
        assert np.abs(predict_alpha(fast, image, base_size=BASE) - expected).max() <= 1e-4


def test_graph_is_told_apart_by_suffix_and_an_old_graph_is_refused(graphs, tmp_path):
    assert is_graph("a/model.ONNX") and not is_graph("a/model.ckpt") and not is_graph("model.safetensors")
    import onnx

    old = onnx.load(str(graphs["mattingnet"]))
    del old.metadata_props[:]  # the metadata of a graph that wants a pre-resized photo lacks the contract
    onnx.save(old, str(tmp_path / "old.onnx"))
    with pytest.raises(MattingInputError, match="already resized"):
        AlphaGraph(tmp_path / "old.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a graph")
    with pytest.raises(MattingInputError, match="junk.onnx: not an ONNX graph"):
        AlphaGraph(tmp_path / "junk.onnx")


@pytest.mark.slow
def test_predict_refuses_options_a_graph_cannot_honour(graphs, tmp_path):
    (tmp_path / "in").mkdir()
    import cv2

    cv2.imwrite(str(tmp_path / "in" / "a.png"), (_photo(40, 50) * 255).astype(np.uint8))
    common = ["--ckpt", str(graphs["mattingnet"]), str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--no-progress"]
    with pytest.raises(MattingInputError, match="exported with 64"):
        predict.main(common + ["--base-size", "512"])
    with pytest.raises(MattingInputError, match="float32 on the CPU"):
        predict.main(common + ["--bf16"])


@pytest.mark.slow
def test_predict_on_a_graph_imports_no_torch_and_writes_the_checkpoints_matte(graphs, net_ckpt, tmp_path):
    """The whole command in a fresh interpreter: the same matte as from the checkpoint, a loading line
    first, and none of torch, timm, torchvision, Lightning or jsonargparse imported."""
    import cv2

    from matting.commands import export

    ckpt = net_ckpt(seed=3)
    graph = tmp_path / "tiny.onnx"
    assert export.main(["--ckpt", str(ckpt), "--onnx", str(graph), "--base-size", str(BASE)]) == 0
    (tmp_path / "in").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "a.png"), (_photo(120, 90)[..., ::-1] * 255).astype(np.uint8))
    script = (f"import sys, json; from matting.cli import main; rc = main(sys.argv[1:]); "
              f"print(json.dumps([rc, [m for m in {IMPORTS_A_GRAPH_NEEDS_NOT!r} if m in sys.modules]]))")
    args = ["predict", "--ckpt", str(graph), str(tmp_path / "in"), "--out", str(tmp_path / "g"), "--no-progress", "--no-cutout"]
    done = subprocess.run([sys.executable, "-c", script, *args], cwd=REPO, env=subprocess_env(PYTHONPATH=str(REPO)),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [0, []]
    assert done.stderr.splitlines()[0] == f"matting predict: loading {graph} (exported graph, onnxruntime)"
    assert predict.main(["--ckpt", str(ckpt), str(tmp_path / "in"), "--out", str(tmp_path / "c"), "--no-progress",
                         "--no-cutout", "--base-size", str(BASE)]) == 0
    a = cv2.imread(str(tmp_path / "g" / "alpha" / "a.png"), cv2.IMREAD_UNCHANGED).astype(int)
    b = cv2.imread(str(tmp_path / "c" / "alpha" / "a.png"), cv2.IMREAD_UNCHANGED).astype(int)
    assert np.abs(a - b).max() <= 1
