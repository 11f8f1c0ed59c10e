"""``matting predict`` and the safe checkpoint loading behind it: tiny models, tiny images, real photos."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from matting.commands import predict
from matting.inference.frozen import (
    FrozenAlphaNet,
    fold_batchnorm,
    prepare_for_inference,
)
from matting.inference.loading import load_net
from matting.inference.predict import base_shape, predict_alpha
from matting.io.errors import MattingInputError
from tests.tiny_checkpoint import NET_CONFIG, REPO, tiny_net, write_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def ckpt(net_ckpt) -> Path:
    return net_ckpt(seed=0)


def _rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = np.full((h, w, 3), (40, 120, 60), np.uint8)
    cv2.circle(image, (w // 2, h // 2), min(h, w) // 3, (230, 180, 150), -1, cv2.LINE_AA)
    return np.clip(image + rng.integers(0, 20, image.shape), 0, 255).astype(np.uint8)


def _photos(folder: Path) -> dict[str, tuple[int, int]]:
    """Write small inputs of every supported kind; returns stem -> expected (width, height) of the outputs."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = _rgb(30, 44)
    Image.fromarray(rgb).save(folder / "plain.png")
    Image.fromarray(rgb[..., 0]).save(folder / "gray.png")  # single channel
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)])).save(folder / "rgba.png")
    cv2.imwrite(str(folder / "deep.png"), (rgb[..., ::-1].astype(np.uint16) * 257))  # 16-bit
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 44 wide, 30 high; shown rotated: 30 wide, 44 high
    Image.fromarray(rgb).save(folder / "rotated.jpg", exif=exif.tobytes(), quality=95)
    return {"plain": (44, 30), "gray": (44, 30), "rgba": (44, 30), "deep": (44, 30), "rotated": (30, 44)}


def run(args: list[str]) -> int:
    return predict.main([str(a) for a in args])


# ---------------------------------------------------------------------------- inference


def test_base_shape_rounds_to_multiples_of_32():
    assert base_shape(600, 800, 512) == (384, 512)
    assert base_shape(800, 600, 512, "short") == (672, 512)
    assert base_shape(3, 1000, 512) == (32, 512)  # never below one stride
    with pytest.raises(MattingInputError):
        base_shape(10, 10, 512, "diagonal")


def test_predict_alpha_full_resolution_and_range():
    net = tiny_net()
    image = _rgb(37, 53).astype(np.float32) / 255
    alpha = predict_alpha(net, image, base_size=64)
    assert alpha.shape == (37, 53) and alpha.dtype == np.float32
    assert 0.0 <= alpha.min() and alpha.max() <= 1.0 and alpha.std() > 0
    # The base pass: the network on the image resized to (long side 64, multiples of 32) with PyTorch's
    # antialiased bilinear filter (here 37 -> 32 rows shrink, 53 -> 64 columns grow), then bilinear upsampling.
    bh, bw = base_shape(37, 53, 64)
    with torch.no_grad():
        full = torch.from_numpy(image.transpose(2, 0, 1).copy())[None]
        small = torch.nn.functional.interpolate(full, size=(bh, bw), mode="bilinear", align_corners=False, antialias=True)
        direct = net(small)["pred_alpha"][0, 0].numpy()
    expected = cv2.resize(direct, (53, 37), interpolation=cv2.INTER_LINEAR)
    assert np.abs(alpha - expected).max() < 1e-5


def test_refiner_hook_gets_the_full_resolution_image():
    from matting.models.contract import MattingNetwork

    seen = {}

    class Refined(MattingNetwork):
        def __init__(self):
            super().__init__()
            self.refiner = torch.nn.Identity()
            self.weight = torch.nn.Parameter(torch.zeros(1))

        def forward(self, image, base_size):
            seen["shape"], seen["base"] = tuple(image.shape), base_size
            return {"pred_alpha": image[:, :1]}

    image = np.random.default_rng(0).random((50, 70, 3), dtype=np.float32)
    alpha = predict_alpha(Refined(), image, base_size=32)
    assert seen == {"shape": (1, 3, 50, 70), "base": (32, 32)}
    assert np.abs(alpha - image[..., 0]).max() < 1e-6


def test_prepared_network_gives_the_same_alpha():
    net, fast = tiny_net(), prepare_for_inference(tiny_net())
    assert isinstance(fast, FrozenAlphaNet)
    rng = np.random.default_rng(0)
    for shape in [(50, 77, 3), (90, 40, 3), (50, 77, 3)]:
        image = rng.random(shape, dtype=np.float32)
        assert np.abs(predict_alpha(fast, image, base_size=64) - predict_alpha(net, image, base_size=64)).max() < 1e-5
    assert len(fast._graphs) == 2 and all(g is not None for g in fast._graphs.values())  # one graph per shape
    bf16 = predict_alpha(fast, image, base_size=64, bf16=True)  # autocast runs the eager network
    assert np.abs(bf16 - predict_alpha(net, image, base_size=64)).max() < 0.05


def test_fold_batchnorm_is_exact_and_refuses_shared_convolutions():
    net = tiny_net()
    folded = fold_batchnorm(net)
    assert folded is not net
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules()) < sum(
        isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())

    from matting.models.contract import MattingNetwork

    class Shared(MattingNetwork):  # the convolution's raw output is used after its BatchNorm too
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 1, 3, padding=1)
            self.bn = torch.nn.BatchNorm2d(1)
            self.bn.running_mean.fill_(0.5)

        def forward(self, x):
            y = self.conv(x)
            return {"pred_alpha": torch.sigmoid(self.bn(y) + y)}

    shared = Shared().eval()
    assert fold_batchnorm(shared) is shared


# ---------------------------------------------------------------------------- checkpoint loading


def test_loads_lightning_layout_with_weights(ckpt):
    net = load_net(ckpt)
    reference = tiny_net()
    for (name, a), b in zip(net.state_dict().items(), reference.state_dict().values()):
        assert torch.equal(a, b), name
    assert not net.training


class _Payload:  # any object outside the safe-unpickler allowlist
    def __reduce__(self):
        return (os.getcwd, ())


def test_unsafe_checkpoint_is_refused_with_a_clear_message(tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"net": _Payload()}}, path)
    with pytest.raises(MattingInputError, match=r"evil\.ckpt: not a safe checkpoint.*weights_only"):
        load_net(path)
    namespace = tmp_path / "namespace.ckpt"  # Lightning checkpoints of hand-made modules hold such objects
    torch.save({"state_dict": {}, "hyper_parameters": argparse.Namespace(net=1)}, namespace)
    with pytest.raises(MattingInputError, match="not a safe checkpoint"):
        load_net(namespace)


@pytest.mark.slow
def test_garbage_truncated_and_foreign_class_checkpoints(tmp_path, ckpt):
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"this is not a checkpoint at all")
    with pytest.raises(MattingInputError, match=r"garbage\.ckpt: not a"):
        load_net(garbage)
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(ckpt.read_bytes()[:5000])
    with pytest.raises(MattingInputError, match=r"truncated\.ckpt"):
        load_net(truncated)
    foreign = json.loads(json.dumps(NET_CONFIG))
    foreign["init_args"]["fusion"] = {"class_path": "subprocess.Popen", "init_args": {"args": "true"}}
    with pytest.raises(MattingInputError, match=r"refusing to build net\.fusion\.class_path='subprocess\.Popen'"):
        load_net(write_checkpoint(tmp_path / "foreign.ckpt", config=foreign))
    callable_path = json.loads(json.dumps(NET_CONFIG))
    callable_path["init_args"]["semantic_head"] = "os.system"  # jsonargparse would import and call it
    with pytest.raises(MattingInputError, match=r"refusing net\.semantic_head='os\.system'"):
        load_net(write_checkpoint(tmp_path / "callable.ckpt", config=callable_path))
    with pytest.raises(MattingInputError, match="checkpoint not found"):
        load_net(tmp_path / "missing.ckpt")


def test_pretrained_weights_file_of_the_training_machine_is_not_needed(tmp_path):
    config = json.loads(json.dumps(NET_CONFIG))
    config["init_args"]["encoder"]["init_args"]["weights_file"] = "/home/someone/backbone.pth"  # absent here
    net = load_net(write_checkpoint(tmp_path / "pretrained.ckpt", config=config))
    assert torch.equal(net.state_dict()["fusion.out.1.weight"], tiny_net().state_dict()["fusion.out.1.weight"])


def test_weights_that_do_not_fit_the_config(tmp_path):
    wider = json.loads(json.dumps(NET_CONFIG))
    wider["init_args"]["detail_head"]["init_args"]["hidden"] = 12
    path = write_checkpoint(tmp_path / "mismatch.ckpt", config=wider)  # weights of hidden=8
    with pytest.raises(MattingInputError, match="weights do not fit the network config"):
        load_net(path)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")  # LightningCLI / jsonargparse deprecation chatter
def test_real_lightning_checkpoint_from_cli(tmp_path):
    """A checkpoint written by Lightning's own Trainer for a LightningCLI-built module loads with weights_only=True."""
    from matting.runtime.lightning_cli import build_cli

    cli = build_cli(
        ["-c", str(REPO / "configs" / "default.yaml"), "-c", str(REPO / "configs" / "smoke.yaml"),
         f"--trainer.default_root_dir={tmp_path}", "--trainer.logger=false"],
        run=False,
    )
    cli.trainer.strategy.connect(cli.model)
    cli.trainer.save_checkpoint(tmp_path / "real.ckpt")
    net = load_net(tmp_path / "real.ckpt")
    assert net.encoder.backbone.default_cfg["architecture"] == "test_resnet"
    for (name, a), b in zip(net.state_dict().items(), cli.model.net.state_dict().values()):
        assert torch.equal(a, b), name


# ---------------------------------------------------------------------------- the command


@pytest.mark.slow
def test_predict_writes_matte_cutout_and_composite(tmp_path, ckpt):
    expected = _photos(tmp_path / "in")
    out = tmp_path / "out"
    code = run(["--ckpt", ckpt, tmp_path / "in", "--out", out, "--background", "#0000ff", "--base-size", "64", "--no-progress"])
    assert code == 0
    for stem, size in expected.items():
        alpha = Image.open(out / "alpha" / f"{stem}.png")
        cutout = Image.open(out / "cutout" / f"{stem}.png")
        comp = Image.open(out / "composite" / f"{stem}.png")
        assert (alpha.mode, cutout.mode, comp.mode) == ("L", "RGBA", "RGB")
        assert alpha.size == cutout.size == comp.size == size, stem
        a = np.asarray(alpha)
        # the cutout's alpha is the matte, its faintest levels cleared (matting.inference.cutout.CUTOUT_CLEAR_BELOW)
        assert np.array_equal(np.asarray(cutout)[..., 3], np.where(a < 8, 0, a))
        assert a.std() > 0
        rgb = np.asarray(cutout)[..., :3].astype(int)
        assert (rgb[a < 8] == 0).all()
        c = np.asarray(comp).astype(int)
        # alpha * F + (1 - alpha) * blue, rounded: within 1 level of the cutout's colours mixed by hand
        # (where the cutout keeps the matte's level; the composite uses the matte itself).
        mixed = (a[..., None] / 255) * rgb + (1 - a[..., None] / 255) * np.array([0, 0, 255])
        kept = (a == 0) | (a >= 8)
        assert np.abs(c - mixed)[kept].max() <= 2
    assert not [p for p in out.rglob(".*")], "temporary files left behind"


@pytest.mark.slow
def test_eager_and_folded_runs_write_the_same_matte(tmp_path, ckpt):
    _photos(tmp_path / "in")
    common = ["--ckpt", ckpt, tmp_path / "in" / "plain.png", "--base-size", "64", "--no-cutout", "--no-progress"]
    assert run(common + ["--out", tmp_path / "a"]) == 0
    assert run(common + ["--out", tmp_path / "b", "--eager"]) == 0
    a = np.asarray(Image.open(tmp_path / "a" / "alpha" / "plain.png")).astype(int)
    b = np.asarray(Image.open(tmp_path / "b" / "alpha" / "plain.png")).astype(int)
    assert np.abs(a - b).max() <= 1


@pytest.mark.slow
def test_inputs_as_files_and_globs_with_an_image_background(tmp_path, ckpt):
    _photos(tmp_path / "in")
    background = tmp_path / "bg.png"
    Image.fromarray(np.full((10, 20, 3), (200, 10, 10), np.uint8)).save(background)
    out = tmp_path / "out"
    code = run(["--ckpt", ckpt, tmp_path / "in" / "plain.png", str(tmp_path / "in" / "g*.png"), "--out", out,
                "--background", background, "--no-cutout", "--base-size", "32", "--no-progress"])
    assert code == 0
    assert sorted(p.name for p in (out / "alpha").iterdir()) == ["gray.png", "plain.png"]
    assert not (out / "cutout").exists()
    comp = np.asarray(Image.open(out / "composite" / "plain.png"))
    alpha = np.asarray(Image.open(out / "alpha" / "plain.png"))
    clear = alpha == 0
    if clear.any():
        assert (np.abs(comp[clear].astype(int) - (200, 10, 10)) <= 1).all()


@pytest.mark.slow
def test_unreadable_input_is_reported_and_the_rest_processed(tmp_path, ckpt, capsys):
    _photos(tmp_path / "in")
    (tmp_path / "in" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = tmp_path / "out"
    code = run(["--ckpt", ckpt, tmp_path / "in", tmp_path / "nothing_here.jpg", "--out", out, "--base-size", "32", "--no-progress"])
    assert code != 0
    err = capsys.readouterr().err
    assert "broken.png" in err and "nothing_here.jpg" in err
    assert sorted(p.stem for p in (out / "alpha").iterdir()) == ["deep", "gray", "plain", "rgba", "rotated"]
    assert not (out / "cutout" / "broken.png").exists()


@pytest.mark.slow
def test_existing_outputs_are_never_overwritten_unless_asked(tmp_path, ckpt, capsys):
    _photos(tmp_path / "in")
    out = tmp_path / "out"
    args = ["--ckpt", ckpt, tmp_path / "in" / "plain.png", "--out", out, "--base-size", "32", "--no-progress"]
    assert run(args) == 0
    matte = out / "alpha" / "plain.png"
    Image.fromarray(np.full((30, 44), 7, np.uint8)).save(matte)  # a user's edited file
    before = matte.read_bytes()
    assert run(args) != 0
    assert "exists already" in capsys.readouterr().err
    assert matte.read_bytes() == before
    (out / "cutout" / "plain.png").unlink()
    assert run(args + ["--skip-existing"]) == 0  # writes only the missing cutout
    assert matte.read_bytes() == before and (out / "cutout" / "plain.png").exists()
    assert run(args + ["--overwrite"]) == 0
    assert matte.read_bytes() != before


@pytest.mark.slow
def test_interrupted_run_leaves_no_half_written_file(tmp_path, ckpt, monkeypatch):
    _photos(tmp_path / "in")
    out = tmp_path / "out"
    import matting.io.images as imageio

    real_replace, calls = imageio.os.replace, []

    def interrupt(src, dst):
        calls.append(dst)
        if len(calls) == 2:  # the second file of the first image: interrupted while writing
            raise KeyboardInterrupt
        return real_replace(src, dst)

    monkeypatch.setattr(imageio.os, "replace", interrupt)
    # Ctrl-C ends the run with the shell's status for SIGINT (the message is tested in test_bad_input.py).
    assert run(["--ckpt", ckpt, tmp_path / "in", "--out", out, "--base-size", "32", "--no-progress"]) == 130
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) == 1 and files[0].parent.name == "alpha"  # the one file finished; no temporary leftovers
    Image.open(files[0]).load()


@pytest.mark.slow
def test_command_level_errors(tmp_path, ckpt):
    _photos(tmp_path / "in")
    not_a_folder = tmp_path / "out.png"
    not_a_folder.write_bytes(b"x")
    with pytest.raises(MattingInputError, match="exists and is not a folder"):
        run(["--ckpt", ckpt, tmp_path / "in", "--out", not_a_folder])
    unsafe = tmp_path / "unsafe.ckpt"
    torch.save({"hyper_parameters": argparse.Namespace(net=1)}, unsafe)
    with pytest.raises(MattingInputError, match=r"unsafe\.ckpt: not a safe checkpoint"):
        run(["--ckpt", unsafe, tmp_path / "in", "--out", tmp_path / "o1"])
    assert not (tmp_path / "o1").exists()  # nothing created before the checkpoint loaded
    with pytest.raises(MattingInputError, match="neither an image file nor a colour"):
        run(["--ckpt", ckpt, tmp_path / "in", "--out", tmp_path / "o2", "--background", "#12345z"])
    with pytest.raises(MattingInputError, match="no input images"):
        run(["--ckpt", ckpt, tmp_path / "none*.png", "--out", tmp_path / "o3"])
    (tmp_path / "other").mkdir()
    Image.fromarray(_rgb(8, 8)).save(tmp_path / "other" / "plain.png")
    with pytest.raises(MattingInputError, match="share a file stem"):
        run(["--ckpt", ckpt, tmp_path / "in", tmp_path / "other", "--out", tmp_path / "o4"])


@pytest.mark.slow
def test_cli_exit_status_for_a_bad_checkpoint(tmp_path):
    from matting.cli import TOOLS
    from matting.cli import main as cli_main

    if "predict" not in TOOLS:
        pytest.skip("`matting predict` is not registered in matting.cli.TOOLS yet")
    (tmp_path / "x.png").write_bytes(b"")
    assert cli_main(["predict", "--ckpt", str(tmp_path / "missing.ckpt"), str(tmp_path / "x.png"), "--out", str(tmp_path / "o")]) == 2


# ---------------------------------------------------------------------------- real photos


@pytest.mark.slow
def test_real_photos(shared_data, ckpt, tmp_path):
    folder = shared_data / "alphamatting-test-nogt" / "image"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    out = tmp_path / "out"
    code = run(["--ckpt", ckpt, folder, "--out", out, "--background", "white", "--base-size", "64", "--no-progress"])
    assert code == 0
    inputs = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png")
    assert len(inputs) >= 1
    for path in inputs:
        with Image.open(path) as source:
            size = source.size
        alpha = Image.open(out / "alpha" / path.name)
        cutout = Image.open(out / "cutout" / path.name)
        comp = Image.open(out / "composite" / path.name)
        assert (alpha.mode, cutout.mode, comp.mode) == ("L", "RGBA", "RGB")
        assert alpha.size == cutout.size == comp.size == size
        a = np.asarray(alpha)
        assert a.min() >= 0 and a.max() <= 255 and a.std() > 0
        assert np.array_equal(np.asarray(cutout)[..., 3], a)


# ---------------------------------------------------------------------------- a network that takes a trimap


@pytest.mark.slow
def test_a_trimap_network_is_given_each_photos_trimap(tmp_path, ckpt, capsys):
    from matting.inference.loading import build_net

    config = {**NET_CONFIG, "init_args": {**NET_CONFIG["init_args"], "trimap_input": True, "encoder": {
        **NET_CONFIG["init_args"]["encoder"], "init_args": {**NET_CONFIG["init_args"]["encoder"]["init_args"], "in_chans": 4}}}}
    torch.manual_seed(0)
    trimap_ckpt = write_checkpoint(tmp_path / "trimap.ckpt", build_net(config), config)
    photos, trimaps = tmp_path / "photos", tmp_path / "trimaps"
    photos.mkdir(), trimaps.mkdir()
    for name in ("a", "b"):
        Image.fromarray(_rgb(30, 44)).save(photos / f"{name}.png")
    trimap = np.full((30, 44), 128, np.uint8)
    trimap[:, :10], trimap[:, -10:] = 0, 255
    Image.fromarray(trimap).save(trimaps / "a.png")  # b has none
    # Without trimaps the network is refused before anything is written, and a plain one refuses them.
    with pytest.raises(MattingInputError, match="takes a trimap with each photo.*--trimap DIR"):
        run([photos, "--ckpt", trimap_ckpt, "--out", tmp_path / "none"])
    with pytest.raises(MattingInputError, match="takes no trimap"):
        run([photos, "--ckpt", ckpt, "--out", tmp_path / "plain", "--trimap", trimaps])
    assert not (tmp_path / "none").exists() and not (tmp_path / "plain").exists()
    # With them: a's matte is written, b is a problem naming what is missing.
    assert run([photos, "--ckpt", trimap_ckpt, "--out", tmp_path / "out", "--trimap", trimaps, "--no-progress"]) == 1
    assert (tmp_path / "out" / "alpha" / "a.png").is_file() and not (tmp_path / "out" / "alpha" / "b.png").exists()
    assert "b.png: no trimap named b.* in --trimap" in capsys.readouterr().err
    # The trimap reaches the network: another trimap gives another matte.
    net = load_net(trimap_ckpt)
    image = _rgb(30, 44).astype(np.float32) / 255
    one = predict_alpha(net, image, base_size=64, trimap=trimap)
    other = predict_alpha(net, image, base_size=64, trimap=255 - trimap)
    assert one.shape == (30, 44) and not np.allclose(one, other)
    with pytest.raises(MattingInputError, match="the trimap is 10x30, the photo 44x30"):
        predict_alpha(net, image, base_size=64, trimap=trimap[:, :10])
