"""The real alphamatting.com images (../shared/data) through the same manifests, datasets and metrics,
and the foreground cache against pymatting's estimate_foreground_ml."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from matting.data.manifest import read_split
from matting.data.matte_dataset import BackgroundPool
from matting.data.prepare.build import prepare
from matting.io.images import list_images, read_alpha, read_image

from .test_data_configs import _cli
from .test_data_layouts import prepared

pytestmark = pytest.mark.shared_data


@pytest.mark.slow
def test_alphamatting_images_are_evaluable_through_the_data_config(shared_data, tmp_path):
    source = shared_data / "alphamatting"
    manifests = tmp_path / "manifests"
    info = prepare("alphamatting", source, out=manifests, log=lambda *_: None)
    assert info.splits == {"lowres": 20}
    records = read_split(manifests, "lowres")
    first = records[0]
    assert set(first.files) == {"image", "alpha", "trimap", "trimap2"}
    alpha = read_alpha(source / first.files["alpha"].path)
    assert (first.files["alpha"].width, first.files["alpha"].height) == (alpha.shape[1], alpha.shape[0])
    cli = _cli("alphamatting", tmp_path, tmp_path, f"--data.init_args.paths={{alphamatting: {source}}}",
               f"--data.init_args.manifests={{alphamatting: {manifests}}}", "--data.init_args.val_max_side=160",
               "--data.init_args.val_samples=2")
    cli.datamodule.setup("validate")
    sample = cli.datamodule.val_set[0]
    assert max(sample["image"].shape[1:]) == 160 and set(sample["trimap"].unique().tolist()) <= {0, 128, 255}
    (metrics,) = cli.trainer.validate(cli.model, datamodule=cli.datamodule, verbose=False)
    assert {"val/sad", "val/sad_unknown", "val/grad", "val/conn"} <= set(metrics)


def test_real_backgrounds_include_gray_textures_and_composite_as_rgb(shared_data):
    files = sorted(list_images(shared_data / "backgrounds").values())
    pool = BackgroundPool([(path, None) for path in files])
    rng = np.random.default_rng(0)
    for _ in range(len(files)):
        bg = pool.draw(rng, 48, 64)
        assert bg.shape == (48, 64, 3) and bg.dtype == np.float32 and 0 <= bg.min() and bg.max() <= 1


def test_foreground_cache_matches_pymatting_within_the_stated_tolerance(shared_data):
    """Stated tolerance (docs/data.md): per image, over alpha > 0, mean difference <= 3 levels and 99th
    percentile <= 45 levels; against a known foreground, the error is within 15% of pymatting's."""
    pymatting = pytest.importorskip("pymatting")
    backgrounds = sorted(list_images(shared_data / "backgrounds").values())
    for name in ("GT04", "GT13"):
        image = read_image(shared_data / "alphamatting" / "image" / f"{name}.png")
        alpha = read_alpha(shared_data / "alphamatting" / "alpha" / f"{name}.png")
        size = (image.shape[1], image.shape[0])
        from matting.foreground import estimate_foreground

        ours = estimate_foreground(image, alpha)
        theirs = pymatting.estimate_foreground_ml(image.astype(np.float64), alpha.astype(np.float64)).astype(np.float32)
        diff = np.abs(ours - theirs).max(axis=2)[alpha > 0] * 255
        assert diff.mean() <= 3.0 and np.percentile(diff, 99) <= 45, (name, diff.mean(), np.percentile(diff, 99))
        bg = cv2.resize(read_image(backgrounds[int(name[2:]) % len(backgrounds) - 1]), size, interpolation=cv2.INTER_AREA)
        composite = (alpha[..., None] * image + (1 - alpha[..., None]) * bg).astype(np.float32)
        visible, weight = alpha > 0, alpha[alpha > 0]
        error = lambda fg: (np.abs(fg - image).mean(axis=2)[visible] * weight).sum() / weight.sum()
        ours_error = error(estimate_foreground(composite, alpha))
        theirs_error = error(pymatting.estimate_foreground_ml(composite.astype(np.float64), alpha.astype(np.float64)))
        assert ours_error <= 1.15 * theirs_error, (name, ours_error, theirs_error)


def test_prepare_caches_foregrounds_beside_the_manifest_and_reuses_them(tmp_path):
    root = prepared("p3m10k", tmp_path, foreground=True)
    records = read_split(root / "manifests", "train")
    assert all(set(r.files) == {"image", "alpha", "fg_est", "bg_est"} for r in records)
    entry = records[0].files["fg_est"]
    assert entry.path == f"manifests:foreground/train/{records[0].name}.png"
    cached = root / "manifests" / "foreground" / "train" / f"{records[0].name}.png"
    fg, image, alpha = read_image(cached), read_image(root / records[0].files["image"].path), read_alpha(root / records[0].files["alpha"].path)
    solid = alpha > 0.999
    assert np.abs(fg - image)[solid].mean() < 0.02  # where alpha is 1 the foreground is the photo
    before = cached.stat().st_mtime_ns
    prepare("p3m10k", root, foreground=True, log=lambda *_: None)
    assert cached.stat().st_mtime_ns == before  # kept, not recomputed
    assert all("fg_est" not in r.files for r in read_split(root / "manifests", "p3m500p"))  # evaluation splits untouched


def test_prepare_can_cache_pymatting_foregrounds(tmp_path):
    pytest.importorskip("pymatting")
    root = prepared("am2k", tmp_path, n=2, foreground=True, estimator="pymatting")
    info = json.loads((root / "manifests" / "dataset.json").read_text())
    assert info["foreground"]["method"].startswith("pymatting.estimate_foreground_ml")
    record = read_split(root / "manifests", "train")[0]
    fg = read_image(root / "manifests" / record.files["fg_est"].path.split(":", 1)[1])
    assert fg.shape == read_image(root / record.files["image"].path).shape
