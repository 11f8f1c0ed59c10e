"""``matting gallery``: two tiny checkpoints on tiny images, checked against ``matting predict`` and ``matting evaluate``."""

from __future__ import annotations

import csv
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from matting.commands import export, gallery, predict
from matting.evaluation import evaluate_dirs
from matting.io.errors import MattingInputError
from matting.metrics import METRIC_HEADERS, format_metric

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Stems with a space, '&', a quote and '#': escaped in the HTML, percent-encoded in its links.
STEMS = ("plain", "two words & more", "it's #3")
SHAPES = {"plain": (40, 56), "two words & more": (40, 56), "it's #3": (48, 36)}
BASE = ["--base-size", "64", "--no-progress"]


def _scene(shape: tuple[int, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 RGB image, uint8 alpha): a soft disc composited over a noisy background."""
    rng = np.random.default_rng(seed)
    h, w = shape
    alpha = np.zeros(shape, np.float32)
    cv2.circle(alpha, (w // 2 + seed, h // 2), min(h, w) // 3, 1.0, -1)
    alpha = cv2.GaussianBlur(alpha, (7, 7), 2 + seed)
    fg, bg = np.array([230, 180, 150], np.float32), rng.integers(0, 120, (h, w, 3)).astype(np.float32)
    image = alpha[..., None] * fg + (1 - alpha[..., None]) * bg
    return np.clip(image, 0, 255).astype(np.uint8), np.rint(alpha * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """image/, alpha/ (ground truth) and trimap/ folders, one file per stem in STEMS."""
    root = tmp_path_factory.mktemp("data")
    for sub in ("image", "alpha", "trimap"):
        (root / sub).mkdir()
    for seed, stem in enumerate(STEMS):
        image, alpha = _scene(SHAPES[stem], seed)
        Image.fromarray(image).save(root / "image" / f"{stem}.png")
        Image.fromarray(alpha).save(root / "alpha" / f"{stem}.png")
        trimap = np.where(alpha == 0, 0, np.where(alpha == 255, 255, 128)).astype(np.uint8)
        Image.fromarray(trimap).save(root / "trimap" / f"{stem}.png")
    return root


@pytest.fixture(scope="module")
def ckpts(net_ckpt, tmp_path_factory) -> list[Path]:
    """Two checkpoints of different weights: a Lightning-layout .ckpt and an exported .safetensors."""
    first = net_ckpt(seed=1, name="first")
    second = tmp_path_factory.mktemp("ckpts") / "second.safetensors"
    assert export.main(["--ckpt", str(net_ckpt(seed=2, name="second")), "--safetensors", str(second)]) == 0
    return [first, second]


@pytest.fixture(scope="module")
def built(data, ckpts, tmp_path_factory) -> Path:
    """A gallery with ground truth, default settings except a small base size."""
    out = tmp_path_factory.mktemp("galleries") / "gallery"
    assert run(["--ckpt", *ckpts, "--images", data / "image", "--alpha", data / "alpha", "--out", out] + BASE) == 0
    return out


def run(args: list) -> int:
    return gallery.main([str(a) for a in args])


class _Tags(HTMLParser):
    """Every start tag with its (unescaped) attributes, in document order."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _tags(out: Path) -> list[tuple[str, dict]]:
    parser = _Tags()
    parser.feed((out / "index.html").read_text(encoding="utf-8"))
    return parser.tags


def _csv(out: Path) -> list[dict]:
    with open(out / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _row_order(out: Path) -> list[str]:
    return [attrs["data-image"] for tag, attrs in _tags(out) if tag == "tr" and "data-image" in attrs]


def _no_output(out: Path) -> bool:
    return not out.exists() and not gallery.staging_dir(out).exists()


# ---------------------------------------------------------------------------- the gallery


@pytest.mark.slow
def test_index_links_every_file_it_needs_and_nothing_outside(built):
    links = [a[k] for tag, a in _tags(built) for k in ("src", "href") if k in a]
    assert links and all("://" not in link and not link.startswith("/") for link in links)  # relative only
    files = {Path(unquote(link)) for link in links}
    for path in files:
        assert (built / path).is_file(), path
    for stem in STEMS:
        assert {gallery.input_file(stem), gallery.gt_file(stem)} <= files
        for slug in ("first", "second"):
            needed = {gallery.pred_thumb_file(slug, stem), gallery.error_file(slug, stem), gallery.alpha_file(slug, stem)}
            assert needed <= files, stem
    assert Path("metrics.csv") in files
    text = (built / "index.html").read_text(encoding="utf-8")
    assert "<script" not in text.lower() and "two words &amp; more" in text and "two words & more" not in text
    assert "pytest-of-" not in text  # no absolute path of the machine it was made on (checkpoints and truth are in tmp)
    thumb = Image.open(built / gallery.input_file("plain"))
    assert max(thumb.size) <= 512 and thumb.size == (56, 40)  # small images are not enlarged


@pytest.mark.slow
def test_metrics_equal_matting_evaluate_on_the_saved_predictions(built, data):
    rows = _csv(built)
    assert len(rows) == len(STEMS) * 2
    assert list(rows[0]) == ["image", "model"] + [METRIC_HEADERS[k] for k in ("sad", "mse", "grad")]
    for slug in ("first", "second"):
        expected, _ = evaluate_dirs(built / "alpha" / slug, data / "alpha", protocol="whole", workers=1, progress=False)
        assert [r["name"] for r in expected] == sorted(STEMS)
        mine = {r["image"]: r for r in rows if r["model"] == slug}
        for row in expected:
            for key in ("sad", "mse", "grad"):
                assert mine[row["name"]][METRIC_HEADERS[key]] == format_metric(key, row[key], digits=6), (slug, key)


@pytest.mark.slow
def test_rows_sorted_by_sad_spread_and_best_model_highlighted(built):
    sad = {}
    for row in _csv(built):
        sad.setdefault(row["image"], {})[row["model"]] = float(row[METRIC_HEADERS["sad"]])
    spread = {stem: max(v.values()) - min(v.values()) for stem, v in sad.items()}
    order = _row_order(built)
    assert sorted(order) == sorted(STEMS)
    assert [spread[s] for s in order] == sorted(spread.values(), reverse=True)
    assert len(set(spread.values())) > 1  # the order is not decided by ties
    tags, current, best = _tags(built), None, {}
    for tag, attrs in tags:
        if tag == "tr" and "data-image" in attrs:
            current = attrs["data-image"]
        elif tag == "td" and current and "best" in attrs.get("class", ""):
            best.setdefault(current, []).append(attrs["data-model"])
    assert best == {stem: [min(v, key=v.get)] for stem, v in sad.items()}


@pytest.mark.slow
def test_predictions_are_those_of_matting_predict(built, data, ckpts, tmp_path):
    for ckpt, slug in zip(ckpts, ("first", "second")):
        out = tmp_path / slug
        assert predict.main(["--ckpt", str(ckpt), str(data / "image"), "--out", str(out), "--no-cutout"] + BASE) == 0
        for stem in STEMS:
            expected = np.asarray(Image.open(out / "alpha" / f"{stem}.png"))
            mine = np.asarray(Image.open(built / "alpha" / slug / f"{stem}.png"))
            assert np.array_equal(mine, expected), (slug, stem)
    first, second = (np.asarray(Image.open(built / "alpha" / s / "plain.png")) for s in ("first", "second"))
    assert not np.array_equal(first, second)  # two different models


@pytest.mark.slow
def test_summary_means_equal_csv_means(built):
    rows, cells, model = _csv(built), {}, None
    text = (built / "index.html").read_text(encoding="utf-8")
    summary = text[text.index('<table class="summary">'):text.index("</table>")]

    class Cells(HTMLParser):
        def handle_starttag(self, tag, attrs):
            nonlocal model
            attrs = dict(attrs)
            if tag == "tr" and "data-model" in attrs:
                model = attrs["data-model"]
            self.metric = attrs.get("data-metric") if tag == "td" else None

        def handle_data(self, data):
            if getattr(self, "metric", None):
                cells[(model, self.metric)] = float(data)
                self.metric = None

    Cells().feed(summary)
    assert len(cells) == 2 * 3
    for (slug, key), shown in cells.items():
        values = [float(r[METRIC_HEADERS[key]]) for r in rows if r["model"] == slug]
        assert len(values) == len(STEMS)
        assert abs(shown - np.mean(values)) <= 0.0005 + 1e-6, (slug, key)


@pytest.mark.slow
def test_conn_and_comp1k_equal_matting_evaluate(data, ckpts, tmp_path):
    for protocol, extra, keys in (("whole", ["--conn"], ("sad", "mse", "grad", "conn")),
                                  ("comp1k", ["--trimap", data / "trimap"], ("sad", "mse", "grad"))):
        out = tmp_path / protocol
        args = ["--ckpt", *ckpts, "--images", data / "image", "--alpha", data / "alpha", "--out", out,
                "--protocol", protocol, "--eager", *extra] + BASE
        assert run(args) == 0
        rows = _csv(out)
        assert list(rows[0])[2:] == [METRIC_HEADERS[k] for k in keys]
        trimaps = data / "trimap" if protocol == "comp1k" else None
        for slug in ("first", "second"):
            expected, _ = evaluate_dirs(out / "alpha" / slug, data / "alpha", trimaps, protocol, workers=1, progress=False)
            mine = {r["image"]: r for r in rows if r["model"] == slug}
            for row in expected:
                for key in keys:
                    assert mine[row["name"]][METRIC_HEADERS[key]] == format_metric(key, row[key], digits=6), (protocol, key)


@pytest.mark.slow
def test_without_ground_truth_rows_follow_model_disagreement(data, ckpts, tmp_path):
    out = tmp_path / "nogt"
    assert run(["--ckpt", *ckpts, "--images", str(data / "image" / "*.png"), "--out", out, "--names", "A & B", "<b>"] + BASE) == 0
    assert not (out / "metrics.csv").exists()
    links = {Path(unquote(a[k])) for tag, a in _tags(out) for k in ("src", "href") if k in a}
    assert all((out / link).is_file() for link in links)
    assert {gallery.diff_file(s) for s in STEMS} <= links
    text = (out / "index.html").read_text(encoding="utf-8")
    assert "A &amp; B" in text and "&lt;b&gt;" in text and "<b>" not in text
    difference = {}
    for stem in STEMS:
        a, b = (np.asarray(Image.open(out / "alpha" / slug / f"{stem}.png")).astype(int) for slug in ("A_B", "b"))
        difference[stem] = np.abs(a - b).mean()
    assert [difference[s] for s in _row_order(out)] == sorted(difference.values(), reverse=True)


@pytest.mark.slow
def test_sort_by_name(built, data, ckpts, tmp_path):
    out = tmp_path / "byname"
    assert run(["--ckpt", ckpts[0], "--images", data / "image", "--alpha", data / "alpha", "--out", out,
                "--sort", "name", "--eager"] + BASE) == 0
    assert _row_order(out) == sorted(STEMS)


# ---------------------------------------------------------------------------- bad input


@pytest.mark.slow
def test_bad_checkpoints_name_the_file_and_write_nothing(data, ckpts, tmp_path):
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    no_network = tmp_path / "weights_only.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, no_network)
    out = tmp_path / "out"
    for bad in (tmp_path / "missing.ckpt", garbage, no_network):
        with pytest.raises(MattingInputError, match=re.escape(str(bad))):
            run(["--ckpt", ckpts[0], bad, "--images", data / "image", "--out", out] + BASE)
        assert _no_output(out), bad


@pytest.mark.slow
def test_unreadable_image_midway_leaves_no_half_gallery(data, ckpts, tmp_path):
    images = tmp_path / "images"
    shutil.copytree(data / "image", images)
    broken = images / "zz_broken.png"  # last in order: the other images are done when it fails
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = tmp_path / "out"
    with pytest.raises(MattingInputError, match=re.escape(str(broken))):
        run(["--ckpt", *ckpts, "--images", images, "--out", out, "--eager"] + BASE)
    assert _no_output(out)


@pytest.mark.slow
def test_bad_out_and_names_and_missing_ground_truth(data, ckpts, tmp_path):
    common = ["--ckpt", *ckpts, "--images", data / "image"] + BASE
    a_file = tmp_path / "file.html"
    a_file.write_text("mine")
    with pytest.raises(MattingInputError, match=re.escape(f"{a_file}: exists and is not a folder")):
        run(common + ["--out", a_file])
    assert a_file.read_text() == "mine" and not gallery.staging_dir(a_file).exists()

    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("keep")
    with pytest.raises(MattingInputError, match=re.escape(f"{full}: exists and is not empty")):
        run(common + ["--out", full])
    with pytest.raises(MattingInputError, match=re.escape(f"{full}: not a gallery")):  # --overwrite replaces galleries only
        run(common + ["--out", full, "--overwrite"])
    assert [p.name for p in full.iterdir()] == ["notes.txt"] and not gallery.staging_dir(full).exists()

    out = tmp_path / "out"
    with pytest.raises(MattingInputError, match=r"--names gives 1 name\(s\) for 2 --ckpt"):
        run(common + ["--out", out, "--names", "only-one"])
    partial_gt = tmp_path / "partial_gt"
    partial_gt.mkdir()
    shutil.copy(data / "alpha" / "plain.png", partial_gt)
    with pytest.raises(MattingInputError, match=r"(?s)2 image.*no ground truth") as caught:
        run(common + ["--out", out, "--alpha", partial_gt])
    assert "two words & more.png" in str(caught.value) and "it's #3.png" in str(caught.value)
    assert _no_output(out)

    assert run(common + ["--out", out, "--alpha", partial_gt, "--allow-missing", "--eager"]) == 0
    assert _row_order(out) == ["plain"]
    assert "it&#x27;s #3.png" in (out / "index.html").read_text(encoding="utf-8")  # listed as skipped


@pytest.mark.slow
def test_overwrite_replaces_the_old_gallery_only_when_the_new_one_is_complete(data, ckpts, tmp_path, monkeypatch):
    out = tmp_path / "g"
    common = ["--ckpt", *ckpts, "--images", data / "image" / "plain.png", "--out", out, "--eager"] + BASE
    assert run(common + ["--names", "old1", "old2"]) == 0
    before = (out / "index.html").read_text(encoding="utf-8")

    def crash(*args, **kwargs):
        raise RuntimeError("interrupted")

    with monkeypatch.context() as patch:
        patch.setattr(gallery, "render_html", crash)
        with pytest.raises(RuntimeError):
            run(common + ["--names", "new1", "new2", "--overwrite"])
    assert (out / "index.html").read_text(encoding="utf-8") == before
    assert not gallery.staging_dir(out).exists()
    assert run(common + ["--names", "new1", "new2", "--overwrite"]) == 0
    text = (out / "index.html").read_text(encoding="utf-8")
    assert "new1" in text and "old1" not in text
    assert sorted(p.name for p in (out / "alpha").iterdir()) == ["new1", "new2"]  # nothing of the old one left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g"]


@pytest.mark.slow
def test_matting_command_exits_2_naming_the_checkpoint(data, tmp_path, monkeypatch, capsys):
    from matting import cli

    monkeypatch.setitem(cli.TOOLS, "gallery", "matting.commands.gallery")
    missing = tmp_path / "missing.ckpt"
    code = cli.main(["gallery", "--ckpt", str(missing), "--images", str(data / "image"), "--out", str(tmp_path / "o")])
    assert code == 2
    assert f"matting: error: {missing}" in capsys.readouterr().err
    assert _no_output(tmp_path / "o")
