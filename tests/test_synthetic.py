"""Tests for the procedural matting dataset (matting.data.synthetic)."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pytest
import torch

from matting.data.synthetic.dataset import (
    SyntheticMattingDataset,
    generate_sample,
    write_split,
)
from matting.io.errors import MattingInputError

KEYS = ("image", "alpha", "fg", "bg")


def _digest(item: dict) -> str:
    h = hashlib.sha256()
    for k in KEYS:
        v = item[k]
        h.update((v.numpy() if isinstance(v, torch.Tensor) else v).tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def samples() -> list[dict]:
    """A few mid-sized test-split samples shared by the statistical checks."""
    ds = SyntheticMattingDataset("test", 40, 128, seed=0)
    return [ds.arrays(i) for i in range(len(ds))]


# --------------------------------------------------------------------------- generate_sample


def test_generate_sample_shapes_dtypes_ranges():
    for size in (32, 64, 96):
        d = generate_sample(np.random.default_rng(size), size)
        assert set(d) == set(KEYS)
        assert d["alpha"].shape == (size, size)
        for k in ("image", "fg", "bg"):
            assert d[k].shape == (size, size, 3)
        for k, v in d.items():
            assert v.dtype == np.float32, k
            assert np.isfinite(v).all(), k
            assert v.min() >= 0.0 and v.max() <= 1.0, k


def test_composite_equation_exact(samples):
    for d in samples[:10]:
        a = d["alpha"][..., None]
        expected = a * d["fg"] + (1.0 - a) * d["bg"]
        assert expected.dtype == np.float32
        assert np.array_equal(d["image"], expected)


def test_composite_equation_exact_in_tensors():
    item = SyntheticMattingDataset("val", 2, 64, seed=3)[1]
    a = item["alpha"]
    assert torch.equal(item["image"], a * item["fg"] + (1.0 - a) * item["bg"])


def test_fg_defined_outside_subject(samples):
    # The foreground layer is a full-frame texture, not black where alpha is zero.
    for d in samples[:10]:
        outside = d["fg"][d["alpha"] == 0.0]
        assert len(outside) > 0
        assert outside.mean() > 0.02 and outside.std() > 0.005


# --------------------------------------------------------------------------- determinism and splits


def test_same_seed_same_bytes():
    a = SyntheticMattingDataset("train", 4, 64, seed=11)
    b = SyntheticMattingDataset("train", 4, 64, seed=11)
    # Order of access must not matter: each item is a function of (seed, split, index).
    da = [_digest(a[i]) for i in range(4)]
    db = [_digest(b[i]) for i in reversed(range(4))][::-1]
    assert da == db


def test_different_split_or_seed_differs():
    base = _digest(SyntheticMattingDataset("train", 1, 64, seed=0)[0])
    assert _digest(SyntheticMattingDataset("val", 1, 64, seed=0)[0]) != base
    assert _digest(SyntheticMattingDataset("test", 1, 64, seed=0)[0]) != base
    assert _digest(SyntheticMattingDataset("train", 1, 64, seed=1)[0]) != base


def test_splits_are_disjoint():
    seen: dict[str, str] = {}
    for split in ("train", "val", "test"):
        ds = SyntheticMattingDataset(split, 30, 48, seed=0)
        for i in range(len(ds)):
            h = _digest(ds.arrays(i))
            assert h not in seen, f"{split}_{i} duplicates {seen[h]}"
            seen[h] = f"{split}_{i}"
    assert len(seen) == 90


# --------------------------------------------------------------------------- matting structure


def test_soft_alpha_present(samples):
    alphas = np.stack([d["alpha"] for d in samples])
    soft = ((alphas > 0.02) & (alphas < 0.98)).mean()
    assert soft > 0.03, soft
    assert (alphas == 0.0).mean() > 0.2 and (alphas == 1.0).mean() > 0.1


def test_subject_coverage(samples):
    cover = np.array([d["alpha"].mean() for d in samples])
    assert cover.min() > 0.08 and cover.max() < 0.8, cover
    assert 0.2 < np.median(cover) < 0.5, cover


def test_thin_strands_present(samples):
    # Hair pixels: partial coverage in structures thinner than 5 px, i.e. removed by a
    # 5x5 morphological opening of the support of alpha.
    kernel = np.ones((5, 5), np.uint8)
    with_strands = 0
    for d in samples:
        a = d["alpha"]
        support = (a > 0.02).astype(np.uint8)
        thin = (cv2.morphologyEx(support, cv2.MORPH_OPEN, kernel) == 0) & (a > 0.02) & (a < 0.98)
        with_strands += int(thin.sum() > 50)
    assert with_strands >= len(samples) // 2, with_strands


def test_semi_transparent_regions_present(samples):
    # Veils and glass: solid areas (not just edges) with alpha in [0.2, 0.8].
    kernel = np.ones((5, 5), np.uint8)
    found = 0
    for d in samples:
        mid = ((d["alpha"] >= 0.2) & (d["alpha"] <= 0.8)).astype(np.uint8)
        found += int(cv2.erode(mid, kernel).sum() > 30)
    assert found >= 3, found


def test_holes_present(samples):
    # A hole is a background region entirely enclosed by the subject.
    found = 0
    for d in samples:
        bgmask = (d["alpha"] < 0.02).astype(np.uint8)
        n, labels = cv2.connectedComponents(bgmask, connectivity=4)
        border = set(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])))
        sizes = np.bincount(labels.ravel(), minlength=n)
        found += int(any(sizes[k] >= 10 for k in range(1, n) if k not in border))
    assert found >= 3, found


def test_colour_alone_often_fails(samples):
    # A nontrivial share of samples have subject and background of near-identical mean colour.
    dists = []
    for d in samples:
        fg = d["image"][d["alpha"] > 0.95]
        bg = d["image"][d["alpha"] < 0.05]
        dists.append(np.linalg.norm(fg.mean(0) - bg.mean(0)))
    dists = np.array(dists)
    assert (dists < 0.12).mean() >= 0.1, np.sort(dists)[:10]
    assert (dists > 0.25).mean() >= 0.3  # and plenty of ordinary, well-separated ones


# --------------------------------------------------------------------------- dataset


def test_dataset_item_contract():
    ds = SyntheticMattingDataset("test", 13, 64, seed=0)
    assert len(ds) == 13
    item = ds[12]
    assert item["name"] == "test_00012"
    assert item["image"].shape == (3, 64, 64) and item["alpha"].shape == (1, 64, 64)
    assert item["fg"].shape == (3, 64, 64) and item["bg"].shape == (3, 64, 64)
    for k in KEYS:
        assert item[k].dtype == torch.float32, k
        assert item[k].min() >= 0 and item[k].max() <= 1, k
    assert _digest(ds[-1]) == _digest(item)
    with pytest.raises(IndexError):
        ds[13]
    with pytest.raises(IndexError):
        ds[-14]


def test_dataset_rejects_unknown_split():
    with pytest.raises(ValueError, match="bogus"):
        SyntheticMattingDataset("bogus")


def test_dataset_works_with_dataloader():
    ds = SyntheticMattingDataset("train", 4, 32, seed=0)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch["image"].shape == (4, 3, 32, 32) and batch["alpha"].shape == (4, 1, 32, 32)
    assert list(batch["name"]) == [f"train_{i:05d}" for i in range(4)]


# --------------------------------------------------------------------------- write_split


def test_write_split_layout(tmp_path):
    ds = SyntheticMattingDataset("val", 3, 32, seed=0)
    out = write_split(ds, tmp_path / "val")
    assert out == tmp_path / "val"
    assert sorted(p.name for p in out.iterdir()) == ["alpha", "bg", "fg", "image"]
    for sub in KEYS:
        assert sorted(p.name for p in (out / sub).iterdir()) == [f"val_{i:05d}.png" for i in range(3)]
    alpha = cv2.imread(str(out / "alpha" / "val_00001.png"), cv2.IMREAD_UNCHANGED)
    assert alpha.dtype == np.uint8 and alpha.shape == (32, 32)
    ref = ds.arrays(1)
    assert np.array_equal(alpha, np.rint(ref["alpha"] * 255).astype(np.uint8))
    image = cv2.imread(str(out / "image" / "val_00001.png"), cv2.IMREAD_UNCHANGED)
    assert image.shape == (32, 32, 3)
    assert np.abs(image[..., ::-1].astype(np.float32) / 255 - ref["image"]).max() <= 0.5 / 255 + 1e-6
    # Nothing but the split itself is left next to it.
    assert [p.name for p in tmp_path.iterdir()] == ["val"]


def test_write_split_refuses_nonempty_dir(tmp_path):
    ds = SyntheticMattingDataset("test", 2, 32, seed=0)
    out = tmp_path / "split"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(MattingInputError, match="split"):
        write_split(ds, out)
    assert (out / "keep.txt").exists()
    write_split(ds, out, overwrite=True)
    assert not (out / "keep.txt").exists()
    assert len(list((out / "image").iterdir())) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["split"]


def test_write_split_into_empty_dir(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    write_split(SyntheticMattingDataset("train", 1, 32, seed=0), out)
    assert (out / "fg" / "train_00000.png").exists()


# --------------------------------------------------------------------------- the texture cue


# sha256 (first 16 hex digits) of image, alpha, fg and bg bytes of samples of the first generator at
# 128 px, data seed 0, taken from the code before texture_cue existed: texture_cue=True keeps them.
FIRST_GENERATOR = {("train", 0): "da0de84a191befb4", ("train", 7): "d70461034c4b4161",
                   ("val", 3): "1354eec40cbd00fc", ("test", 12): "f9d33966e365eb95"}


def _bytes_digest(d: dict) -> str:
    return hashlib.sha256(b"".join(np.ascontiguousarray(d[k]).tobytes() for k in ("image", "alpha", "fg", "bg"))).hexdigest()[:16]


def test_texture_cue_reproduces_the_first_generator_byte_for_byte():
    for (split, i), digest in FIRST_GENERATOR.items():
        assert _bytes_digest(SyntheticMattingDataset(split, 20, 128, 0, texture_cue=True).arrays(i)) == digest
        assert _bytes_digest(SyntheticMattingDataset(split, 20, 128, 0).arrays(i)) != digest


def _subject_sharper_share(texture_cue: bool, n: int = 80) -> float:
    """Share of samples whose opaque subject has more Laplacian energy than the pure background."""
    ds = SyntheticMattingDataset("train", n, 128, 0, texture_cue=texture_cue)
    kernel = np.ones((7, 7), np.uint8)
    wins = counted = 0
    for i in range(n):
        d = ds.arrays(i)
        lap = np.abs(cv2.Laplacian(cv2.cvtColor(d["image"], cv2.COLOR_RGB2GRAY), cv2.CV_32F))
        inside = cv2.erode((d["alpha"] >= 1).astype(np.uint8), kernel) > 0
        outside = cv2.erode((d["alpha"] <= 0).astype(np.uint8), kernel) > 0
        if inside.sum() > 50 and outside.sum() > 50:
            counted += 1
            wins += lap[inside].mean() > lap[outside].mean()
    return wins / counted


def test_sharpness_no_longer_tells_subject_from_background():
    # First generator: the subject is the sharper region in about 2 samples of 3; now in fewer than half.
    assert _subject_sharper_share(True) >= 0.6
    assert _subject_sharper_share(False) <= 0.5


def test_new_generator_keeps_the_compositing_identity_and_ranges():
    ds = SyntheticMattingDataset("train", 30, 96, 0)
    for i in range(30):
        d = ds.arrays(i)
        for k in ("image", "fg", "bg", "alpha"):
            assert d[k].dtype == np.float32 and d[k].min() >= 0.0 and d[k].max() <= 1.0, k
        a = d["alpha"][..., None]
        np.testing.assert_allclose(d["image"], a * d["fg"] + (1 - a) * d["bg"], atol=1e-6)
        assert 0.0 < d["alpha"].mean() < 1.0


def _thin_soft_pixels(alpha: np.ndarray) -> int:
    """Pixels of partial coverage in structures thinner than 5 px (as in test_thin_strands_present)."""
    support = (alpha > 0.02).astype(np.uint8)
    thin = (cv2.morphologyEx(support, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8)) == 0) & (alpha > 0.02) & (alpha < 0.98)
    return int(thin.sum())


def test_hair_probability_keeps_other_draws_and_adds_strands():
    # 0.8 is the threshold the generators always had: the first generator's bytes stay.
    for (split, i), digest in FIRST_GENERATOR.items():
        assert _bytes_digest(SyntheticMattingDataset(split, 20, 128, 0, texture_cue=True, hair=0.8).arrays(i)) == digest
    more = SyntheticMattingDataset("train", 3, 96, 0, hair=1.0)
    fewer = SyntheticMattingDataset("train", 3, 96, 0, hair=0.0)
    for i in range(3):  # the background is drawn before the hair decision: the same in both
        assert np.array_equal(more.arrays(i)["bg"], fewer.arrays(i)["bg"])
    n = 24
    thin = {p: sum(_thin_soft_pixels(SyntheticMattingDataset("train", n, 96, 0, hair=p).arrays(i)["alpha"]) for i in range(n))
            for p in (0.0, 1.0)}
    assert thin[1.0] > 1.5 * thin[0.0], thin
    with pytest.raises(ValueError, match="hair"):
        SyntheticMattingDataset("train", 1, 64, 0, hair=1.5)


# --------------------------------------------------------------------------- zoom

# The same digests for the generator as it is (texture_cue=False), taken before `zoom` existed:
# zoom=1.0 (the default) keeps them.
TODAY_GENERATOR = {("train", 0): "81063eb5493e3e4c", ("train", 7): "218622509c42a1eb",
                   ("val", 3): "827c420e37e8acef", ("test", 12): "0965bf6ae254933d"}


def test_zoom_one_keeps_todays_samples_byte_for_byte():
    for (split, i), digest in TODAY_GENERATOR.items():
        assert _bytes_digest(SyntheticMattingDataset(split, 20, 128, 0).arrays(i)) == digest
        assert _bytes_digest(SyntheticMattingDataset(split, 20, 128, 0, zoom=1.0).arrays(i)) == digest


def test_zoom_enlarges_subjects_and_cuts_them_by_the_frame():
    n = 40

    def stats(zoom):
        ds = SyntheticMattingDataset("train", n, 96, 0, zoom=zoom)
        alphas = [ds.arrays(i)["alpha"] for i in range(n)]
        cut = sum(float(max(a[0].max(), a[-1].max(), a[:, 0].max(), a[:, -1].max())) > 0.5 for a in alphas)
        return float(np.mean([a.mean() for a in alphas])), cut

    (area, cut), (area_z, cut_z) = stats(1.0), stats(3.0)
    assert area_z > 1.2 * area, (area, area_z)
    assert cut_z > cut, (cut, cut_z)
    for i in range(8):  # still a composite in range, with background left in most frames
        d = SyntheticMattingDataset("train", 8, 96, 0, zoom=3.0).arrays(i)
        a = d["alpha"][..., None]
        np.testing.assert_allclose(d["image"], a * d["fg"] + (1 - a) * d["bg"], atol=1e-6)
        assert d["alpha"].min() >= 0.0 and d["alpha"].max() <= 1.0
    with pytest.raises(ValueError, match="zoom"):
        SyntheticMattingDataset("train", 1, 64, 0, zoom=0.5)


def test_zoom_is_a_training_augmentation_only():
    from matting.data.synthetic.datamodule import SyntheticDataModule

    dm = SyntheticDataModule(train_length=4, val_length=2, test_length=2, size=64, zoom=2.0, num_workers=0)
    dm.setup("fit")
    assert dm.train_set.zoom == 2.0
    assert dm.val_set.zoom == 1.0 and dm.test_set.zoom == 1.0


# --------------------------------------------------------------------------- holes and markings


def test_holes_and_markings_defaults_keep_todays_samples_byte_for_byte():
    for (split, i), digest in TODAY_GENERATOR.items():
        assert _bytes_digest(SyntheticMattingDataset(split, 20, 128, 0, holes=0.45, markings=0.0).arrays(i)) == digest


def test_holes_cut_the_subject_and_markings_paint_it():
    n = 24

    def samples(**kw):
        ds = SyntheticMattingDataset("train", n, 96, 0, **kw)
        return [ds.arrays(i) for i in range(n)]

    solid, holed = samples(holes=0.0), samples(holes=1.0)
    assert np.mean([d["alpha"].mean() for d in holed]) < np.mean([d["alpha"].mean() for d in solid])
    plain, marked = samples(), samples(markings=1.0)
    for p, m in zip(plain, marked):  # the background is drawn before the subject: the same in both
        assert np.array_equal(p["bg"], m["bg"])

    def body_spread(d):  # colour spread over the opaque body
        body = d["alpha"] > 0.99
        return float(d["fg"][body].std(axis=0).mean()) if body.sum() > 50 else 0.0

    assert np.mean([body_spread(d) for d in marked]) > np.mean([body_spread(d) for d in plain])
    for d in marked:
        a = d["alpha"][..., None]
        np.testing.assert_allclose(d["image"], a * d["fg"] + (1 - a) * d["bg"], atol=1e-6)
    for name in ("holes", "markings"):
        with pytest.raises(ValueError, match=name):
            SyntheticMattingDataset("train", 1, 64, 0, **{name: 1.5})


def test_holes_and_markings_change_the_training_split_only():
    from matting.data.synthetic.datamodule import SyntheticDataModule

    dm = SyntheticDataModule(train_length=4, val_length=2, test_length=2, size=64, holes=0.1, markings=0.5,
                             num_workers=0)
    dm.setup("fit")
    assert (dm.train_set.holes, dm.train_set.markings) == (0.1, 0.5)
    assert all((s.holes, s.markings) == (0.45, 0.0) for s in (dm.val_set, dm.test_set))
    # Markings are on by default for training (chosen on real photos); the dataset alone draws none.
    dm = SyntheticDataModule(train_length=4, val_length=2, test_length=2, size=64, num_workers=0)
    dm.setup("fit")
    assert dm.train_set.markings == 0.5 and dm.test_set.markings == 0.0
    assert SyntheticMattingDataset("train", 1, 64, 0).markings == 0.0


def test_the_first_generator_never_draws_markings():
    for (split, i), digest in FIRST_GENERATOR.items():
        assert _bytes_digest(SyntheticMattingDataset(split, 20, 128, 0, texture_cue=True, markings=1.0).arrays(i)) == digest


@pytest.mark.slow
def test_make_data_writes_the_train_split_as_training_draws_it(tmp_path):
    import cv2

    from matting.commands.make_data import main

    for split, markings in (("train", 0.5), ("test", 0.0)):
        out = tmp_path / split
        assert main(["--out", str(out), "--split", split, "--length", "2", "--size", "64"]) == 0
        expected = SyntheticMattingDataset(split, 2, 64, 0, markings=markings)
        for i in range(2):
            written = cv2.imread(str(out / "alpha" / f"{expected.name(i)}.png"), cv2.IMREAD_GRAYSCALE)
            assert np.array_equal(written, np.round(expected.arrays(i)["alpha"] * 255).astype(np.uint8))
    from matting.io.errors import MattingInputError

    with pytest.raises(MattingInputError, match="--markings"):
        main(["--out", str(tmp_path / "bad"), "--markings", "2"])
    assert not (tmp_path / "bad").exists()
