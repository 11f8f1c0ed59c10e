"""``matting export --onnx`` for networks with a refiner (patch and guided-filter): the graph takes the
full-resolution image, computes the base size as ``matting predict`` does and returns the refined alpha;
onnxruntime matches the eager predict path at sizes other than the traced one."""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from matting.commands import export
from matting.inference.export import BaseSizedAlpha, export_onnx, refined_trace_shape
from matting.inference.loading import build_net, load_net
from matting.inference.predict import base_shape, predict_alpha, traced_base_shape
from matting.io.errors import MattingInputError
from matting.models.refiner import traced_cell_budget
from matting.models.resample import resize_antialiased
from tests.tiny_checkpoint import NET_CONFIG, REPO, write_checkpoint

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

pytestmark = pytest.mark.usefixtures("one_torch_thread")

KINDS = ["patch", "guided", "patch_residual"]
BASE = 128  # base size of the tests' graphs: 256 x 320 and 512 x 384 photos are 2x-4x the base, as in use
SIZES = [(256, 320), (512, 384)]


def refiner_config(kind: str) -> dict:
    """The tests' tiny network (NET_CONFIG, the default family) with configs/refiner/KIND.yaml's refiner
    (patch_residual.yaml is a delta on patch.yaml)."""
    def net_args(name: str) -> dict:
        return yaml.safe_load((REPO / "configs" / "refiner" / f"{name}.yaml").read_text())["model"]["net"]["init_args"]

    config = copy.deepcopy(NET_CONFIG)
    config["init_args"].update(net_args("patch" if kind == "patch_residual" else kind))
    if kind == "patch_residual":
        config["init_args"]["refiner"]["init_args"].update(net_args(kind)["refiner"]["init_args"])
    return config


def refiner_net(kind: str, seed: int = 0) -> torch.nn.Module:
    """Random weights with varied BatchNorm statistics; the patch refiner's last conv scaled down, so
    refined cells land inside (0, 1) rather than on the clamp (the comparison then sees them)."""
    torch.manual_seed(seed)
    net = build_net(refiner_config(kind))
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
        if kind == "patch":
            net.refiner.stage_full[1].weight.mul_(0.1)
            net.refiner.stage_full[1].bias.fill_(0.5)
        if kind == "patch_residual":  # a trained correction, not the zero it starts from
            net.refiner.stage_full[1].weight.normal_(0.0, 0.05)
    return net.eval()


def photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1] with structure at several scales (so base and refiner both matter)."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.random((1, 3, 6, 7), dtype=np.float32))
    smooth = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)[0].permute(1, 2, 0).numpy()
    return np.clip(0.8 * smooth + 0.2 * rng.random((height, width, 3), dtype=np.float32), 0, 1)


def test_traced_base_shape_and_cell_budget_are_the_python_numbers():
    for base, side in [(64, "long"), (128, "short"), (512, "long")]:
        for h in range(1, 600, 7):
            for w in (h, 2 * h + 1, 77, 320, 1000):
                got = traced_base_shape(torch.tensor(h), torch.tensor(w), base, side)
                assert tuple(int(t) for t in got) == base_shape(h, w, base, side), (h, w, base, side)
    refiner = refiner_net("patch").refiner
    for h in range(1, 300, 3):
        for w in (1, h, 3 * h + 2, 250):
            for fraction, pixels in [(1 / 16, None), (0.3, None), (1 / 16, 1600), (1 / 16, 10**9)]:
                refiner.pixel_fraction, refiner.sample_pixels = fraction, pixels
                expected = refiner.cell_budget(h, w)  # eager: Python ints
                assert int(traced_cell_budget(torch.tensor(h), torch.tensor(w), fraction, pixels)) == expected


def test_resize_antialiased_is_pytorchs_antialiased_bilinear():
    g = torch.Generator().manual_seed(0)
    for (h, w), size in [((121, 147), (64, 96)), ((512, 384), (128, 96)), ((64, 96), (256, 384)), ((37, 53), (37, 53)),
                         ((1080, 1920), (288, 512))]:
        x = torch.rand(1, 3, h, w, generator=g)
        expected = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        assert (resize_antialiased(x, size) - expected).abs().max() <= 1e-6


@pytest.mark.parametrize("kind", KINDS)
def test_a_traced_refiner_network_is_the_eager_one_at_other_sizes(kind):
    """The tensor-op forms of the base size, the cell budget k and the one-batch refinement give the
    eager numbers: a graph traced at one size runs others (k follows the size) exactly as eager."""
    net = refiner_net(kind)
    wrapper = BaseSizedAlpha(net, base_size=64).eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python values; the comparison checks them
        graph = torch.jit.trace(wrapper, torch.rand(1, 3, *refined_trace_shape(64, "long", net.pad_multiple)), check_trace=False)
        for h, w in [(96, 128), (139, 77), (200, 260)]:
            image = torch.from_numpy(photo(h, w).transpose(2, 0, 1).copy())[None]
            expected = net(image, base_size=base_shape(h, w, 64))
            assert torch.equal(graph(image), expected["pred_alpha"])
            if kind.startswith("patch"):
                assert expected["refined_cells"].sum() == max(1, (-(-h // 4)) * (-(-w // 4)) // 16)


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("onnx_refiner")
    files = {}
    for kind in KINDS:
        files[kind] = folder / f"{kind}.onnx"
        export_onnx(refiner_net(kind), files[kind], base_size=BASE)
    return files


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_onnx_refiner_graph_matches_the_predict_path_at_two_sizes(kind, onnx_files):
    net = refiner_net(kind)
    session = ort.InferenceSession(str(onnx_files[kind]), providers=["CPUExecutionProvider"])
    assert list(session.get_inputs()[0].shape[2:]) == ["height", "width"]
    for h, w in SIZES:
        image = photo(h, w, seed=h)
        (alpha,) = session.run(["alpha"], {"image": image.transpose(2, 0, 1)[None].copy()})
        expected = predict_alpha(net, image, base_size=BASE)  # full image in, base pass at 128 px, refined alpha out
        assert alpha.shape == (1, 1, h, w)
        assert expected.std() > 1e-3
        diff = float(np.abs(alpha[0, 0] - expected).max())
        assert diff <= 1e-4, f"{kind} {h}x{w}: max |onnxruntime - predict| = {diff:.2e}"
        if kind.startswith("patch"):  # the refiner did change cells: the comparison covers the gather / scatter
            with torch.no_grad():
                out = net(torch.from_numpy(image.transpose(2, 0, 1).copy())[None], base_size=base_shape(h, w, BASE))
            coarse = F.interpolate(out["pred_alpha_base"], size=(h, w), mode="bilinear", align_corners=False)
            assert (out["pred_alpha"] != coarse).float().mean() > 0.02
    # A batch: each image refined on its own cells.
    batch = np.stack([photo(*SIZES[0], seed=s).transpose(2, 0, 1) for s in (1, 2)])
    (alpha,) = session.run(["alpha"], {"image": batch})
    for i in range(2):
        assert np.abs(alpha[i, 0] - predict_alpha(net, batch[i].transpose(1, 2, 0), base_size=BASE)).max() <= 1e-4


@pytest.fixture(scope="module")
def patch_ckpt(tmp_path_factory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("refiner_ckpt") / "patch.ckpt", refiner_net("patch"), refiner_config("patch"))


@pytest.mark.slow
def test_export_command_on_a_refiner_checkpoint(patch_ckpt, tmp_path, capsys):
    target = tmp_path / "patch.onnx"
    assert export.main(["--ckpt", str(patch_ckpt), "--onnx", str(target), "--base-size", str(BASE)]) == 0
    checks = [line for line in capsys.readouterr().out.splitlines() if line.startswith("check ")]
    assert len(checks) == 3  # two full-resolution sizes above the base, one below
    meta = {p.key: p.value for p in onnx.load(str(target)).metadata_props}
    assert json.loads(meta["net_config"]) == refiner_config("patch")
    assert (meta["base_size"], meta["base_side"]) == (str(BASE), "long") and "full resolution" in meta["input"]
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    image = photo(300, 200, seed=5)
    (alpha,) = session.run(["alpha"], {"image": image.transpose(2, 0, 1)[None].copy()})
    assert np.abs(alpha[0, 0] - predict_alpha(load_net(patch_ckpt), image, base_size=BASE)).max() <= 1e-4


@pytest.mark.slow
def test_a_base_size_below_the_multiple_is_refused(patch_ckpt, tmp_path):
    with pytest.raises(MattingInputError, match="at least 32"):
        export.main(["--ckpt", str(patch_ckpt), "--onnx", str(tmp_path / "b.onnx"), "--base-size", "16"])
    assert not list(tmp_path.iterdir())
