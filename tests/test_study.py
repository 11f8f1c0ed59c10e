"""The study runner and collector, on real arms of experiments/decoder_heads with a 1-step budget."""

import importlib.util
import json

import pytest

from .conftest import REPO

STUDY = REPO / "experiments" / "decoder_heads"
ARMS = ["modnet_fusion", "patch_classifier_dense", "color_threshold"]
TINY = ["--timing-size", "32", "--timing-runs", "1", "--thresholds", "10", "30",
        "--data.init_args.size=32", "--data.init_args.val_length=2", "--data.init_args.test_length=2",
        "--data.init_args.batch_size=2", "--data.init_args.num_workers=0", "--trainer.precision=32-true"]


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_study_folder_is_complete():
    run_study = _tool("run_study")
    arms = run_study.study_arms(STUDY)
    expected = {"semantic_only", "detail_only", "modnet_fusion", "learned_fusion", "collaborative_tt", "gfm",
                "trimap_based", "unet_segmentation", "fcdensenet_segmentation", "patch_classifier",
                "patch_classifier_dense", "color_threshold"}
    assert set(arms) == expected
    readme = (STUDY / "README.md").read_text()
    assert all(f"arms/{a}.yaml" in readme for a in expected - {"color_threshold"})


@pytest.mark.slow
def test_runner_and_collector_end_to_end(tmp_path, capsys):
    run_study, collect = _tool("run_study"), _tool("collect_results")
    runs, out = tmp_path / "runs", tmp_path / "out"
    args = [str(STUDY), "--seeds", "0", "--arms", *ARMS, "--out", str(runs), "--max-steps", "1", *TINY]
    assert run_study.main(args) == 0
    for arm in ARMS:
        result = json.loads((runs / arm / "seed0" / "result.json").read_text())
        assert (runs / arm / "seed0" / "config.yaml").is_file()
        assert {"sad", "mse", "grad", "conn", "iou", "precision", "recall"} <= set(result["metrics"])
        assert result["ms"] > 0 and result["steps"] == (0 if arm == "color_threshold" else 1)
    assert not list(runs.rglob("*.ckpt")) and not list(runs.rglob("*.partial"))
    assert (runs / "color_threshold" / "seed0" / "sweep.md").read_text().count("| 10 |") == 1

    # Resumable: a second call finds every pair done and trains nothing.
    capsys.readouterr()
    assert run_study.main(args) == 0
    assert "0 run, 3 already done" in capsys.readouterr().out
    # Changed inputs are refused rather than silently mixed or overwritten.
    one_arm = [str(STUDY), "--seeds", "0", "--arms", "modnet_fusion", "--out", str(runs), "--max-steps", "1", *TINY]
    assert run_study.main(one_arm + ["--trainer.gradient_clip_val=1.0"]) == 2
    assert "different inputs" in capsys.readouterr().err
    (runs / "patch_classifier" / "seed0").mkdir(parents=True)
    assert run_study.main([str(STUDY), "--seeds", "0", "--arms", "patch_classifier", "--out", str(runs), "--max-steps", "1", *TINY]) == 2
    assert "no result.json" in capsys.readouterr().err

    assert collect.main([str(runs), "--out", str(out)]) == 0
    text = (out / "results.md").read_text()
    assert (out / "results.png").stat().st_size > 1000
    table = [line for line in text.splitlines() if line.count("|") > 10 and "seeds" not in line and "---" not in line]
    assert sorted(line.split("|")[1].strip().strip("*") for line in table) == sorted(ARMS)
    assert "FC-DenseNet" not in text and "patch classifier (dense form, 16x16 tiles)" in text
    assert "colour threshold (+-" in text and "two-decoder" in text and "seed baseline" in text
    assert "**Does the two-decoder model (`modnet_fusion`" in text
    assert "python tools/run_study.py" in text and "python tools/collect_results.py" in text
    assert "measured right after each training" in text

    # Re-timing on a quiet machine replaces ms in every seed's result and says so in results.md.
    before = {arm: json.loads((runs / arm / "seed0" / "result.json").read_text())["ms"] for arm in ARMS}
    assert _tool("retime_study").main([str(runs), "--size", "32", "--runs", "1"]) == 0
    for arm in ARMS:
        result = json.loads((runs / arm / "seed0" / "result.json").read_text())
        assert result["ms_during_study"] == before[arm] and result["ms"] > 0
        assert result["timing"]["retimed"]["size"] == 32
    assert collect.main([str(runs), "--out", str(out)]) == 0
    assert "re-measured after the study" in (out / "results.md").read_text()


def test_labels_come_from_the_config():
    collect = _tool("collect_results")
    net = lambda **init: {"model": {"net": {"class_path": "matting.models.MattingNet", "init_args": {
        "encoder": {"class_path": "matting.models.TimmEncoder", "init_args": {"name": "enc"}}, **init}},
        "loss": {"init_args": {"semantic": 10.0}}}}
    head = lambda name: {"class_path": f"matting.models.{name}", "init_args": {}}
    two = net(semantic_head=head("SemanticHead"), detail_head=head("DetailHead"), fusion=head("ModnetFusion"))
    assert collect.describe(two) == ("two-decoder", "SemanticHead + DetailHead, ModnetFusion (enc)")
    assert collect.is_modnet_two_decoder(two)
    assert collect.describe(net(semantic_head=head("SemanticHead"), detail_head=None, fusion=head("ModnetFusion")))[0] == "single-decoder"
    assert collect.describe({**two, "model": {**two["model"], "net": {**two["model"]["net"], "init_args": {
        **two["model"]["net"]["init_args"], "trimap_input": True}}}})[0] == "upper bound"
    unet = net(semantic_head=None, detail_head=head("FocusHead"))
    unet["model"]["loss"] = {"init_args": {"semantic": 0.0, "detail": 0.0, "alpha": 0.0, "composition": 0.0, "segmentation": 1.0}}
    assert collect.describe(unet) == ("seed baseline", "U-Net (enc encoder + FocusHead), binary masks + BCE")
    fcd = {"model": {"net": {"class_path": "matting.models.segmentation.FCDenseNet", "init_args": {}}, "loss": unet["model"]["loss"]}}
    assert collect.describe(fcd)[1].startswith("FC-DenseNet-103")


def test_threshold_sweep_reports_precision_and_recall():
    from matting.baselines.threshold_search import (
        best_row,
        sweep_markdown,
        sweep_thresholds,
    )
    from matting.data.synthetic.dataset import SyntheticMattingDataset

    data = SyntheticMattingDataset("val", 3, 48, 0)
    samples = [(d["image"], d["alpha"]) for d in (data.arrays(i) for i in range(3))]
    rows = sweep_thresholds(samples, [5, 20, 60, 255])
    assert [r["threshold"] for r in rows] == [5, 20, 60, 255] and rows[0]["images"] == 3
    # A wider tolerance only grows the background: foreground recall never rises.
    recalls = [r["recall"] for r in rows]
    assert recalls == sorted(recalls, reverse=True) and rows[-1]["recall"] == 0.0
    assert all(0 <= r["precision"] <= 1 and 0 <= r["iou"] <= 1 for r in rows)
    best = best_row(rows)
    assert best["sad"] == min(r["sad"] for r in rows)
    table = sweep_markdown(rows, best["threshold"])
    assert "| precision | recall |" in table and f"| {best['threshold']:g} (chosen) |" in table
