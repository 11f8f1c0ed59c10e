"""The ``matting evaluate`` tool: matching, file formats, every bad-input case, reports."""

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from matting.commands.evaluate import main
from matting.evaluation import evaluate_arrays, summarise, write_report
from matting.io.errors import MattingInputError
from matting.io.images import read_alpha, read_trimap, write_png
from matting.metrics import METRIC_HEADERS, MattingMetrics, compute_metrics, metric_keys

NAMES = ("a", "b", "c")
SHAPE = (24, 32)


def _scene(seed: int):
    """(pred float, gt float, trimap uint8): a soft blob, a noisy prediction, a consistent trimap."""
    rng = np.random.default_rng(seed)
    gt = ndimage.gaussian_filter(rng.random(SHAPE), 3)
    gt = np.clip((gt - gt.mean()) * 10 + 0.5, 0, 1).astype(np.float32)
    gt = np.rint(gt * 255) / np.float32(255)
    pred = np.clip(gt + rng.normal(0, 0.1, SHAPE), 0, 1).astype(np.float32)
    trimap = np.full(SHAPE, 128, np.uint8)
    trimap[gt == 0] = 0
    trimap[gt == 1] = 255
    return pred, gt, trimap


@pytest.fixture
def dataset(tmp_path):
    """pred/ (8-bit PNG), gt/ (mixed: 16-bit PNG, 3-channel gray PNG, TIFF), trimap/ (palette PNGs)."""
    root = tmp_path / "data"
    scenes = {}
    for i, name in enumerate(NAMES):
        pred, gt, trimap = _scene(i)
        scenes[name] = (pred, gt, trimap)
        write_png(root / "pred" / f"{name}.png", pred)
        (root / "gt").mkdir(parents=True, exist_ok=True)
        gt8 = np.rint(gt * 255).astype(np.uint8)
        if name == "a":
            cv2.imwrite(str(root / "gt" / "a.png"), gt8.astype(np.uint16) * 257)  # 16-bit
        elif name == "b":
            Image.fromarray(np.dstack([gt8] * 3), "RGB").save(root / "gt" / "b.png")  # 3-channel gray
        else:
            cv2.imwrite(str(root / "gt" / "c.tif"), gt8)
        palette = Image.fromarray((trimap // 127).astype(np.uint8), "P")  # indices 0, 1, 2
        palette.putpalette([0, 0, 0, 128, 128, 128, 255, 255, 255] + [0] * 759)
        (root / "trimap").mkdir(parents=True, exist_ok=True)
        palette.save(root / "trimap" / f"{name}.png")
    return root, scenes


def _args(root: Path, protocol: str = "comp1k", trimap: bool = True, *extra: str) -> list[str]:
    args = ["--pred", str(root / "pred"), "--gt", str(root / "gt"), "--protocol", protocol, "--workers", "1", "--no-progress"]
    if trimap:
        args += ["--trimap", str(root / "trimap")]
    return args + list(extra)


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# ---------------------------------------------------------------------------- happy paths


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["comp1k", "whole", "modnet"])
def test_reports_match_compute_metrics(dataset, protocol, capsys):
    root, scenes = dataset
    assert main(_args(root, protocol)) == 0
    out = root / f"pred_eval_{protocol}"
    assert sorted(p.name for p in out.iterdir()) == ["per_image.csv", "summary.json", "summary.md"]
    keys = metric_keys(protocol, with_trimap=protocol != "modnet")
    expected = {
        name: compute_metrics(read_alpha(root / "pred" / f"{name}.png"), gt, trimap if protocol != "modnet" else None, protocol)
        for name, (_, gt, trimap) in scenes.items()
    }
    summary = json.loads((out / "summary.json").read_text())
    assert summary["protocol"] == protocol and summary["images"] == 3 and summary["problems"] == []
    assert list(summary["metrics"]) == list(keys)
    for key in keys:
        values = [expected[name][key] for name in NAMES]
        assert summary["metrics"][key]["mean"] == pytest.approx(np.mean(values), rel=1e-9)
        assert summary["metrics"][key]["std"] == pytest.approx(np.std(values), rel=1e-9)
        assert summary["metrics"][key]["header"] == METRIC_HEADERS[key]
    rows = _read_csv(out / "per_image.csv")
    assert [r["image"] for r in rows] == list(NAMES)
    assert list(rows[0])[1:] == [METRIC_HEADERS[k] for k in keys]
    if "mse" in keys:  # displayed x1000
        assert float(rows[0]["MSE (x1e-3)"]) == pytest.approx(expected["a"]["mse"] * 1000, abs=1e-6)
    markdown = (out / "summary.md").read_text()
    assert METRIC_HEADERS[keys[0]] in markdown and "images evaluated: 3" in markdown
    assert METRIC_HEADERS[keys[0]] in capsys.readouterr().out


@pytest.mark.slow
def test_two_workers_give_the_same_numbers(dataset):
    root, _ = dataset
    main(_args(root, "comp1k", True, "--out", str(root / "one")))
    args = _args(root, "comp1k", True, "--out", str(root / "two"))
    args[args.index("--workers") + 1] = "2"
    main(args)
    one = json.loads((root / "one" / "summary.json").read_text())["metrics"]
    two = json.loads((root / "two" / "summary.json").read_text())["metrics"]
    assert one == two


@pytest.mark.slow
def test_training_metric_equals_tool_on_saved_predictions(dataset):
    # A float prediction logged by MattingMetrics gives the number the tool prints for its PNG.
    root, scenes = dataset
    metric = MattingMetrics(protocol="comp1k")
    for pred, gt, trimap in scenes.values():
        metric.update(torch.from_numpy(pred)[None, None], torch.from_numpy(gt)[None, None], torch.from_numpy(trimap)[None, None])
    logged = metric.compute()
    main(_args(root, "comp1k"))
    summary = json.loads((root / "pred_eval_comp1k" / "summary.json").read_text())["metrics"]
    for key, value in logged.items():
        assert value.item() == pytest.approx(summary[key]["mean"], rel=1e-12)


def test_reusable_report_functions(tmp_path):
    items = [(name, *_scene(i)) for i, name in enumerate(NAMES)]
    rows = evaluate_arrays(items, "whole")
    assert [r["name"] for r in rows] == list(NAMES)
    summary = summarise(rows, "whole")
    assert summary["images"] == 3 and "sad_unknown" in summary["metrics"]
    out = write_report(rows, tmp_path / "report", "whole", sources={"checkpoint": "x.ckpt"})
    assert "checkpoint" in (out / "summary.md").read_text()
    with pytest.raises(MattingInputError, match="exists"):
        write_report(rows, out, "whole")
    write_report(rows[:1], out, "whole", overwrite=True)
    assert len(_read_csv(out / "per_image.csv")) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["report"]  # no staging folder left behind


# ---------------------------------------------------------------------------- bad input


def _error(args) -> str:
    with pytest.raises(MattingInputError) as info:
        main(args)
    return str(info.value)


@pytest.mark.slow
def test_missing_prediction_is_an_error_naming_the_file(dataset):
    root, _ = dataset
    (root / "pred" / "b.png").unlink()
    message = _error(_args(root))
    assert "missing prediction" in message and str(root / "gt" / "b.png") in message
    assert not (root / "pred_eval_comp1k").exists()


@pytest.mark.slow
def test_stray_prediction_is_an_error(dataset):
    root, _ = dataset
    write_png(root / "pred" / "extra.png", np.zeros(SHAPE, np.float32))
    message = _error(_args(root))
    assert "stray prediction" in message and str(root / "pred" / "extra.png") in message


@pytest.mark.slow
def test_size_mismatch_is_an_error_naming_both_files(dataset):
    root, _ = dataset
    write_png(root / "pred" / "a.png", np.zeros((10, 10), np.float32), overwrite=True)
    message = _error(_args(root))
    assert "size mismatch" in message
    assert str(root / "pred" / "a.png") in message and str(root / "gt" / "a.png") in message


@pytest.mark.slow
def test_unreadable_file_is_an_error(dataset):
    root, _ = dataset
    (root / "pred" / "c.png").write_bytes(b"\x89PNG\r\n\x1a\ntruncated")
    message = _error(_args(root))
    assert str(root / "pred" / "c.png") in message


@pytest.mark.slow
def test_every_problem_is_listed_at_once(dataset):
    root, _ = dataset
    (root / "pred" / "a.png").unlink()
    (root / "pred" / "c.png").write_bytes(b"garbage")
    write_png(root / "pred" / "zz.png", np.zeros(SHAPE, np.float32))
    message = _error(_args(root))
    assert "3 file problem(s)" in message
    for fragment in ("gt/a.png", "pred/c.png", "pred/zz.png"):
        assert fragment in message


@pytest.mark.slow
def test_missing_trimap_and_comp1k_without_trimaps(dataset):
    root, _ = dataset
    assert "needs --trimap" in _error(_args(root, "comp1k", trimap=False))
    (root / "trimap" / "b.png").unlink()
    message = _error(_args(root))
    assert "missing trimap" in message and str(root / "gt" / "b.png") in message


@pytest.mark.slow
def test_existing_output_is_never_overwritten_silently(dataset):
    root, _ = dataset
    out = root / "pred_eval_whole"
    out.mkdir()
    (out / "keep.txt").write_text("previous results")
    assert "exists already" in _error(_args(root, "whole"))
    assert (out / "keep.txt").read_text() == "previous results"
    assert main(_args(root, "whole", True, "--overwrite")) == 0
    assert not (out / "keep.txt").exists() and (out / "summary.json").exists()


@pytest.mark.slow
def test_allow_missing_lists_problems_in_the_summary(dataset):
    root, _ = dataset
    (root / "pred" / "a.png").unlink()
    (root / "pred" / "c.png").write_bytes(b"garbage")
    assert main(_args(root, "comp1k", True, "--allow-missing")) == 0
    out = root / "pred_eval_comp1k"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == 1 and summary["skipped"] == 2
    assert {p["kind"] for p in summary["problems"]} == {"missing prediction", "unreadable"}
    assert "gt/a.png" in (out / "summary.md").read_text()
    assert [r["image"] for r in _read_csv(out / "per_image.csv")] == ["b"]


@pytest.mark.slow
def test_nothing_to_evaluate_and_missing_folder(dataset):
    root, _ = dataset
    for name in NAMES:
        (root / "pred" / f"{name}.png").unlink()
    assert "nothing to evaluate" in _error(_args(root, "comp1k", True, "--allow-missing"))
    assert "folder not found" in _error(["--pred", str(root / "nope"), "--gt", str(root / "gt"), "--no-progress"])


@pytest.mark.slow
def test_project_cli_prints_a_clean_error(dataset, capsys):
    from matting.cli import main as cli_main

    root, _ = dataset
    (root / "pred" / "b.png").unlink()
    assert cli_main(["evaluate"] + _args(root)) != 0
    assert "missing prediction" in capsys.readouterr().err


def test_fixture_formats_are_what_they_claim(dataset):
    root, scenes = dataset
    assert cv2.imread(str(root / "gt" / "a.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    assert Image.open(root / "trimap" / "a.png").mode == "P"
    np.testing.assert_array_equal(read_trimap(root / "trimap" / "a.png"), scenes["a"][2])
    np.testing.assert_array_equal(read_alpha(root / "gt" / "b.png"), scenes["b"][1])


# ---------------------------------------------------------------------------- precision, --no-force, workers


def test_per_image_values_are_written_in_full(tmp_path):
    from matting.metrics import display_value

    rng = np.random.default_rng(11)
    items = []
    for i, name in enumerate(NAMES):
        pred, gt, trimap = _scene(i)
        pred = np.clip(pred + rng.normal(0, 1e-4, SHAPE), 0, 1).astype(np.float32)  # values with many digits
        items.append((name, pred, gt, trimap))
    rows = evaluate_arrays(items, "whole", quantize=False)
    out = write_report(rows, tmp_path / "report", "whole")
    keys = metric_keys("whole")
    for row, written in zip(rows, _read_csv(out / "per_image.csv")):
        for key in keys:
            assert float(written[METRIC_HEADERS[key]]) == display_value(key, row[key])
            if display_value(key, 1.0) == 1.0:  # SAD, Grad, Conn: the CSV holds the value itself
                assert float(written[METRIC_HEADERS[key]]) == row[key]
    per_image = json.loads((out / "summary.json").read_text())["per_image"]
    assert per_image == [{"name": row["name"], **{k: row[k] for k in keys}} for row in rows]
    assert "| SAD (/1000) |" in (out / "summary.md").read_text()


@pytest.mark.slow
def test_no_force_scores_comp1k_files_as_saved(dataset):
    root, scenes = dataset
    main(_args(root, "comp1k", True, "--out", str(root / "forced")))
    main(_args(root, "comp1k", True, "--out", str(root / "saved"), "--no-force"))
    forced = json.loads((root / "forced" / "summary.json").read_text())
    saved = json.loads((root / "saved" / "summary.json").read_text())
    assert "as saved" in saved["region"] and "forced" in forced["region"]
    for row_forced, row_saved in zip(forced["per_image"], saved["per_image"]):
        _, gt, trimap = scenes[row_saved["name"]]
        pred = read_alpha(root / "pred" / f"{row_saved['name']}.png")
        unknown = trimap == 128
        assert (pred[~unknown] != gt[~unknown]).any()  # the saved prediction is not forced
        from matting.metrics import conn, grad, mse, sad

        literal = {"sad": sad(pred, gt, unknown), "mse": mse(pred, gt, unknown), "grad": grad(pred, gt, unknown), "conn": conn(pred, gt, unknown)}
        assert {k: v for k, v in row_saved.items() if k != "name"} == literal
        assert row_saved["sad"] == row_forced["sad"] and row_saved["mse"] == row_forced["mse"]
        assert row_saved["grad"] != row_forced["grad"]


@pytest.mark.slow
def test_worker_processes_do_not_import_torch(dataset, tmp_path):
    # The parent is a script shaped like the `matting` console script: spawned workers re-run its
    # imports (the dispatcher) and import matting.evaluation to unpickle their task.
    import subprocess
    import sys

    root, _ = dataset
    script = tmp_path / "matting_like.py"
    script.write_text(
        "import sys\n"
        "from matting.cli import main\n"
        "if __name__ == '__main__':\n"
        "    from pathlib import Path\n"
        "    from matting.evaluation import Pair, _pool, _task\n"
        f"    root = Path({str(root)!r})\n"
        "    pair = Pair('a', root / 'pred' / 'a.png', root / 'gt' / 'a.png', root / 'trimap' / 'a.png')\n"
        "    with _pool(1) as pool:\n"
        "        name, row, problem = pool.apply(_task, ((pair, 'comp1k', False, True),))\n"
        "        assert row is not None and problem is None, problem\n"
        "        heavy = ('torch', 'lightning', 'torchmetrics', 'timm')\n"
        "        code = 'sorted(m for m in %r if m in __import__(\"sys\").modules)' % (heavy,)\n"
        "        print(pool.apply(eval, (code,)))\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_default_worker_count_follows_the_amount_of_work(tmp_path):
    from matting.evaluation import PARALLEL_MIN_PIXELS, Pair, _cpus, default_workers

    write_png(tmp_path / "small.png", np.zeros(SHAPE, np.float32))
    small = [Pair(str(i), tmp_path / "small.png", tmp_path / "small.png") for i in range(30)]
    assert default_workers(small) == 1  # 30 small pairs: one process finishes before a pool starts
    many = PARALLEL_MIN_PIXELS // (SHAPE[0] * SHAPE[1]) + 1
    assert default_workers(small * (many // 30 + 1)) == min(2, _cpus())
