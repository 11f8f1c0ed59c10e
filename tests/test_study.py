"""The synthetic stage of tools/study.py as modules: matting.study.synthetic (run), results (collect), retime, and the
experiments' run.py, called on tiny studies; and the real arms of experiments/decoder_heads with a
1-step budget."""

import json

import numpy as np
import pytest
import yaml

from experiments.metrics_alphamatting import run as metrics_alphamatting
from experiments.refiner import run as refiner_experiment
from matting.study import results as collect_results
from matting.study import retime as retime_study
from matting.study import synthetic as run_study

from .conftest import REPO

STUDY = REPO / "experiments" / "decoder_heads"
ARMS = ["modnet_fusion", "patch_classifier_dense", "color_threshold"]
TINY = ["--timing-size", "32", "--timing-runs", "1", "--thresholds", "10", "30",
        "--data.init_args.size=32", "--data.init_args.val_length=2", "--data.init_args.test_length=2",
        "--data.init_args.batch_size=2", "--data.init_args.num_workers=0", "--trainer.precision=32-true"]


def test_study_folder_is_complete():
    arms = run_study.study_arms(STUDY)
    expected = {"semantic_only", "detail_only", "modnet_fusion", "learned_fusion", "learned_fusion_dw", "collaborative_tt", "gfm",
                "trimap_based", "unet_segmentation", "fcdensenet_segmentation", "patch_classifier",
                "patch_classifier_dense", "color_threshold"}
    assert set(arms) == expected
    readme = (STUDY / "README.md").read_text()
    assert all(f"arms/{a}.yaml" in readme for a in expected - {"color_threshold"})


CONFIGS = REPO / "configs"
# A study of one 32 px step on top of configs/default.yaml + configs/smoke.yaml (passed as --base).
TINY_BASE = """data:
  init_args: {size: 32, train_length: 2, val_length: 2, test_length: 2, batch_size: 2, num_workers: 0}
"""
TINY_ARM = """model:
  net:
    init_args:
      fusion:
        class_path: matting.models.ModnetFusion
        init_args: {hidden: 8}
"""


def _tiny_study(root):
    study = root / "tiny"
    (study / "arms").mkdir(parents=True)
    (study / "base.yaml").write_text(TINY_BASE)
    (study / "arms" / "small_fusion.yaml").write_text(TINY_ARM)
    return study


def test_study_arms_are_the_yaml_files_and_the_colour_threshold(tmp_path):
    study = _tiny_study(tmp_path)
    assert run_study.study_arms(study) == {"small_fusion": study / "arms" / "small_fusion.yaml", "color_threshold": None}
    with pytest.raises(run_study.StudyError, match="not a study folder"):
        run_study.study_arms(tmp_path)
    (study / "arms" / "color_threshold.yaml").write_text("{}")
    with pytest.raises(run_study.StudyError, match="built-in colour-threshold arm"):
        run_study.study_arms(study)


@pytest.mark.slow
def test_fingerprint_changes_with_every_input(tmp_path):
    study = _tiny_study(tmp_path)
    files = [study / "base.yaml", study / "arms" / "small_fusion.yaml"]
    first = run_study.fingerprint(files, ["--trainer.max_steps=1"], 0)
    assert run_study.fingerprint(files, ["--trainer.max_steps=1"], 0) == first
    assert run_study.fingerprint(files, ["--trainer.max_steps=2"], 0) != first
    assert run_study.fingerprint(files, ["--trainer.max_steps=1"], 1) != first
    assert run_study.fingerprint(files, ["--trainer.max_steps=1"], 0, {"thresholds": [10]}) != first
    files[0].write_text(TINY_BASE + "seed_everything: 3\n")
    assert run_study.fingerprint(files, ["--trainer.max_steps=1"], 0) != first


def test_run_folders_are_claimed_finished_and_never_mixed(tmp_path):
    run_dir = tmp_path / "arm" / "seed0"
    partial = run_study.claim_run_dir(run_dir, "fp1", overwrite=False)
    assert partial == tmp_path / "arm" / "seed0.partial" and partial.is_dir()
    (partial / "config.yaml").write_text(f"default_root_dir: {partial}\n")
    run_study.finish_run_dir(partial, run_dir, {"fingerprint": "fp1"})
    assert not partial.exists() and json.loads((run_dir / "result.json").read_text()) == {"fingerprint": "fp1"}
    assert yaml.safe_load((run_dir / "config.yaml").read_text()) == {"default_root_dir": str(run_dir)}

    assert run_study.claim_run_dir(run_dir, "fp1", overwrite=False) is None  # done with these inputs
    with pytest.raises(run_study.StudyError, match="different inputs"):
        run_study.claim_run_dir(run_dir, "fp2", overwrite=False)
    assert run_study.claim_run_dir(run_dir, "fp2", overwrite=True) == partial
    assert (run_dir / "result.json").is_file()  # kept until the new run finishes
    (tmp_path / "other").mkdir()
    # A .partial that a live run_study process owns is refused, not replaced; a dead owner's is replaced.
    import os

    from matting.io.files import OWNER_FILE

    other = run_study.claim_run_dir(tmp_path / "arm" / "seed1", "fp1", overwrite=False)
    (other / OWNER_FILE).write_text(f"{os.getppid()}\n")  # a live process that is not this one
    with pytest.raises(run_study.StudyError, match=f"in use by process {os.getppid()}"):
        run_study.claim_run_dir(tmp_path / "arm" / "seed1", "fp1", overwrite=False)
    (other / OWNER_FILE).write_text(f"{2**22 + 1}\n")  # above Linux's largest pid_max: never alive
    again = run_study.claim_run_dir(tmp_path / "arm" / "seed1", "fp1", overwrite=False)
    assert again == other and (again / OWNER_FILE).read_text().strip() == str(os.getpid())
    run_study.finish_run_dir(again, tmp_path / "arm" / "seed1", {"fingerprint": "fp1"})
    assert not (tmp_path / "arm" / "seed1" / OWNER_FILE).exists()  # publish removes it
    with pytest.raises(run_study.StudyError, match="no result.json"):
        run_study.claim_run_dir(tmp_path / "other", "fp1", overwrite=False)


@pytest.mark.slow
def test_budget_options_shrink_steps_validation_and_schedule_together():
    # The study's budget (600 steps, validation every 100, OneCycle over 600) on the smoke model.
    files = [CONFIGS / "default.yaml", CONFIGS / "smoke.yaml", STUDY / "base.yaml", STUDY / "arms" / "modnet_fusion.yaml"]
    assert run_study.budget_options(files, 0, [], None) == []
    assert run_study.budget_options(files, 0, [], 5) == [
        "--trainer.max_steps=5", "--trainer.val_check_interval=5", "--model.scheduler.init_args.total_steps=5"]


@pytest.mark.slow
def test_runner_collector_and_retimer_on_a_tiny_study(tmp_path, capsys):
    study, runs, out = _tiny_study(tmp_path), tmp_path / "runs", tmp_path / "out"
    args = [str(study), "--seeds", "0", "--arms", "small_fusion", "--out", str(runs), "--max-steps", "1",
            "--base", str(CONFIGS / "default.yaml"), "--base", str(CONFIGS / "smoke.yaml"),
            "--timing-size", "32", "--timing-runs", "1"]
    assert run_study.main(args) == 0
    result = json.loads((runs / "small_fusion" / "seed0" / "result.json").read_text())
    assert result["steps"] == 1 and result["ms"] > 0 and result["params"] > 0
    assert {"sad", "mse", "grad", "conn", "iou"} <= set(result["metrics"])
    assert result["config_files"][-1].endswith("small_fusion.yaml")
    saved = yaml.safe_load((runs / "small_fusion" / "seed0" / "config.yaml").read_text())
    assert saved["model"]["net"]["init_args"]["fusion"]["init_args"]["hidden"] == 8
    assert not list(runs.rglob("*.ckpt")) and not list(runs.rglob("*.partial"))
    assert run_study.main([*args[:3], "--arms", "no_such_arm"]) == 2
    assert "unknown arms ['no_such_arm']" in capsys.readouterr().err

    assert collect_results.main([str(runs), "--out", str(out)]) == 0
    assert "small_fusion" in (out / "results.md").read_text()
    assert "results_real.md" not in (out / "results.md").read_text()  # no real-photo page beside it: no link
    (out / "results_real.md").write_text("# real photos\n")
    assert collect_results.main([str(runs), "--out", str(out)]) == 0
    assert collect_results.REAL_POINTER in (out / "results.md").read_text().splitlines()
    assert retime_study.main([str(runs), "--size", "32", "--runs", "1"]) == 0
    retimed = json.loads((runs / "small_fusion" / "seed0" / "result.json").read_text())
    assert retimed["ms_during_study"] == result["ms"] and retimed["timing"]["retimed"]["size"] == 32


def test_refiner_experiment_band_and_error_shares():
    import torch

    yy, xx = np.mgrid[0:32, 0:32]
    alpha = ((xx - 16) ** 2 + (yy - 16) ** 2 < 100).astype(np.float32)
    trimap = refiner_experiment.scored_trimap(alpha, 2)
    assert set(np.unique(trimap)) == {0, 128, 255}
    assert (trimap[alpha == 1] != 0).all() and (trimap[alpha == 0] != 255).all()
    # All of the base's error in cell (0, 1) and a quarter as much in cell (2, 2): 4x4 cells of a 16 px image.
    gt, base, band = torch.zeros(1, 1, 16, 16), torch.zeros(1, 1, 16, 16), torch.ones(1, 1, 16, 16)
    base[..., 0:4, 4:8] = 0.8
    base[..., 8:12, 8:12] = 0.2
    cells = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    cells[..., 2, 2] = True  # the refiner chose the smaller error
    chosen, oracle = refiner_experiment.error_shares(base, gt, band, cells)
    assert chosen == pytest.approx(0.2) and oracle == pytest.approx(0.8)
    # A 14 px image: the refiner's grid covers it padded to 16 px.
    chosen, oracle = refiner_experiment.error_shares(base[..., :14, :14], gt[..., :14, :14], band[..., :14, :14], cells)
    assert chosen == pytest.approx(0.2) and oracle == pytest.approx(0.8)
    # A refinement that halves the error in the worst cell and doubles it elsewhere.
    refined = base.clone()
    refined[..., 0:4, 4:8] = 0.4
    refined[..., 8:12, 8:12] = 0.4
    worst, others = refiner_experiment.refinement_gain(base, refined, gt, band, count=1)
    assert worst == pytest.approx(0.5) and others == pytest.approx(2.0)


@pytest.mark.slow
def test_refiner_experiment_trains_and_scores_each_refiner(tiny_fit, tmp_path, capsys):
    # A stage-1 base with the default network (smoke.yaml swaps in a test encoder: swap it back).
    stage1 = tiny_fit("--model.net.init_args.encoder.init_args.name=mobilenetv3_small_100")
    args = ["--stage1", str(stage1), "--steps", "2", "--train-size", "64", "--test-sizes", "64", "--test-length", "1",
            "--band", "4", "--out", str(tmp_path / "runs"), "--results", str(tmp_path / "results")]
    assert refiner_experiment.main(args) == 0
    results = json.loads((tmp_path / "results" / "results.json").read_text())["results"]["64"]
    assert set(results) == {"base only", "patch", "patch (1/4 of pixels)", "patch (every cell)", "guided", "patch (residual)"}
    for row in results.values():
        assert all(np.isfinite(row[m]) for m in refiner_experiment.METRICS)
    assert 0 <= results["patch"]["error_share_refined"] <= 1
    assert results["patch (every cell)"]["error_left_worst_cells"] >= 0
    for name in refiner_experiment.REFINERS:
        assert json.loads((tmp_path / "runs" / refiner_experiment.run_folder(name) / "train.json").read_text())["steps"] == 2
    page = (tmp_path / "results" / "results.md").read_text()
    assert "## 64 px" in page and page.endswith(refiner_experiment.ANALYSIS_MARKER + "\n")
    # Running again trains nothing (the runs match these settings) and keeps what was written below the marker.
    (tmp_path / "results" / "results.md").write_text(page + "by hand\n")
    records = {n: (tmp_path / "runs" / refiner_experiment.run_folder(n) / "train.json").read_text() for n in refiner_experiment.REFINERS}
    capsys.readouterr()
    assert refiner_experiment.main(args) == 0
    assert "training ->" not in capsys.readouterr().out
    assert records == {n: (tmp_path / "runs" / refiner_experiment.run_folder(n) / "train.json").read_text() for n in refiner_experiment.REFINERS}
    assert (tmp_path / "results" / "results.md").read_text().endswith("by hand\n")
    # Scoring varies the patch refiner's budget and leaves it as trained.
    from matting.inference.loading import load_net

    parsed = refiner_experiment.parse_args(args)
    nets = {n: load_net(refiner_experiment.trained(n, parsed)) for n in refiner_experiment.REFINERS}
    nets["patch"].refiner.sample_pixels = 64  # a setting unlike the budget rows'
    refiner_experiment.score(nets, 64, parsed)
    assert (nets["patch"].refiner.mode, nets["patch"].refiner.sample_pixels) == ("sampling", 64)


@pytest.mark.slow
def test_metrics_experiment_agrees_with_matting_evaluate(tmp_path, capsys):
    from matting.io.images import write_png

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:40, 0:48]
    for name in ("one", "two"):
        radius = rng.uniform(8, 14)
        alpha = np.clip(radius - np.hypot(xx - 24, yy - 20), 0, 1).astype(np.float32)
        trimap = np.where(np.abs(np.hypot(xx - 24, yy - 20) - radius) < 3, 128, np.where(alpha > 0.5, 255, 0))
        write_png(tmp_path / "alpha" / f"{name}.png", alpha)
        write_png(tmp_path / "trimap" / f"{name}.png", trimap.astype(np.uint8))
    samples = metrics_alphamatting.load(tmp_path)
    assert [name for name, _, _ in samples] == ["one", "two"]
    assert metrics_alphamatting.predict(samples[0][1], "threshold").dtype == np.float32
    # main() scores every predictor and checks `python -m matting evaluate` on the blur2 PNGs.
    assert metrics_alphamatting.main(["--data", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "## comp1k (Trimap1), mean over 2 images" in printed and "reports the same means" in printed


@pytest.mark.slow
def test_runner_and_collector_end_to_end(tmp_path, capsys):
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

    assert collect_results.main([str(runs), "--out", str(out)]) == 0
    text = (out / "results.md").read_text()
    assert (out / "results.png").stat().st_size > 1000
    table = [line for line in text.splitlines() if line.count("|") > 10 and "seeds" not in line and "---" not in line]
    assert sorted(line.split("|")[1].strip().strip("*") for line in table) == sorted(ARMS)
    assert "FC-DenseNet" not in text and "patch classifier (dense form, 16x16 tiles)" in text
    assert "colour threshold (+-" in text and "two-decoder" in text and "seed baseline" in text
    assert "**Does the two-decoder model (`modnet_fusion`" in text
    assert "python tools/study.py run" in text and "python tools/study.py collect" in text
    assert "measured right after each training" in text

    # Re-timing on a quiet machine replaces ms in every seed's result and says so in results.md.
    before = {arm: json.loads((runs / arm / "seed0" / "result.json").read_text())["ms"] for arm in ARMS}
    assert retime_study.main([str(runs), "--size", "32", "--runs", "1"]) == 0
    for arm in ARMS:
        result = json.loads((runs / arm / "seed0" / "result.json").read_text())
        assert result["ms_during_study"] == before[arm] and result["ms"] > 0
        assert result["timing"]["retimed"]["size"] == 32
    assert collect_results.main([str(runs), "--out", str(out)]) == 0
    assert "re-measured after the study" in (out / "results.md").read_text()


def test_labels_come_from_the_config():
    net = lambda **init: {"model": {"net": {"class_path": "matting.models.MattingNet", "init_args": {
        "encoder": {"class_path": "matting.models.TimmEncoder", "init_args": {"name": "enc"}}, **init}},
        "loss": {"init_args": {"semantic": 10.0}}}}
    head = lambda name: {"class_path": f"matting.models.{name}", "init_args": {}}
    two = net(semantic_head=head("SemanticHead"), detail_head=head("DetailHead"), fusion=head("ModnetFusion"))
    assert collect_results.describe(two) == ("two-decoder", "SemanticHead + DetailHead, ModnetFusion (enc)")
    assert collect_results.is_modnet_two_decoder(two)
    assert collect_results.describe(net(semantic_head=head("SemanticHead"), detail_head=None, fusion=head("ModnetFusion")))[0] == "single-decoder"
    assert collect_results.describe({**two, "model": {**two["model"], "net": {**two["model"]["net"], "init_args": {
        **two["model"]["net"]["init_args"], "trimap_input": True}}}})[0] == "upper bound"
    unet = net(semantic_head=None, detail_head=head("FocusHead"))
    unet["model"]["loss"] = {"init_args": {"semantic": 0.0, "detail": 0.0, "alpha": 0.0, "composition": 0.0, "segmentation": 1.0}}
    assert collect_results.describe(unet) == ("seed baseline", "U-Net (enc encoder + FocusHead), binary masks + BCE")
    fcd = {"model": {"net": {"class_path": "matting.models.segmentation.FCDenseNet", "init_args": {}}, "loss": unet["model"]["loss"]}}
    assert collect_results.describe(fcd)[1].startswith("FC-DenseNet-103")


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


@pytest.mark.slow
def test_the_study_tool_trains_pairs_side_by_side_as_processes(tmp_path):
    from tools import study as study_tool

    study, runs = _tiny_study(tmp_path), tmp_path / "runs"
    args = ["run", str(study), "--seeds", "0", "1", "--out", str(runs), "--max-steps", "1", "--jobs", "2",
            "--arms", "small_fusion", "--base", str(CONFIGS / "default.yaml"), "--base", str(CONFIGS / "smoke.yaml"),
            "--timing-size", "32", "--timing-runs", "1"]
    assert study_tool.main(args) == 0
    for seed in (0, 1):
        result = json.loads((runs / "small_fusion" / f"seed{seed}" / "result.json").read_text())
        assert result["seed"] == seed and result["steps"] == 1
        assert (runs / "logs" / f"small_fusion_seed{seed}.log").is_file()
    assert study_tool._without(["a", "--arms", "x", "y", "--jobs", "2"], "--arms") == ["a", "--jobs", "2"]


def test_a_killed_run_is_reported_with_its_signal(tmp_path):
    """A run the kernel killed for memory (SIGKILL, an empty end of log) is named as such, not as exit -9."""
    import sys

    from matting.study.jobs import Job, exit_reason, run_jobs

    lines = []
    kill_self = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    done = run_jobs([Job("big", [sys.executable, "-c", kill_self], tmp_path / "big.log"),
                     Job("fails", [sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "fails.log")], 2, log=lines.append)
    assert sorted(f.exit_code for f in done) == [-9, 3]
    assert any("[big] FAILED (killed by SIGKILL: out of memory? fewer runs side by side (--jobs)" in line for line in lines)
    assert any(line.startswith("[fails] FAILED (exit 3; see ") for line in lines)
    assert exit_reason(0) == "exit 0" and exit_reason(-15) == "killed by SIGTERM" and exit_reason(-200) == "killed by signal 200"


@pytest.mark.slow
def test_sigterm_to_the_study_stops_the_runs_it_started(tmp_path):
    """A study killed with SIGTERM terminates its training processes instead of orphaning them."""
    import os
    import signal
    import subprocess
    import sys
    import time

    pids = tmp_path / "child.pid"
    child = f"import os, time; open({str(pids)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    parent = ("import sys; from pathlib import Path; from matting.study.jobs import Job, run_jobs; "
              f"run_jobs([Job('sleeper', [sys.executable, '-c', {child!r}], Path({str(tmp_path / 'sleeper.log')!r}))], 1)")
    proc = subprocess.Popen([sys.executable, "-c", parent], cwd=REPO)
    deadline = time.time() + 60
    while not (pids.is_file() and pids.read_text()) and time.time() < deadline:
        time.sleep(0.1)
    child_pid = int(pids.read_text())
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    with pytest.raises(ProcessLookupError):  # terminated and reaped by the study
        os.kill(child_pid, 0)
