"""The real-photo stage of tools/study.py: folds, the data root, every cv.yaml arm, scoring and the report.

The shared photos are not needed: a stand-in ``shared`` folder of 20 small photos with alpha and
3 backgrounds is made here, laid out like ``../shared/data``.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import yaml

from matting.io.errors import MattingInputError
from matting.runtime.lightning_cli import build_cli
from matting.study import cv
from matting.study.cv_data import build_cv_root, heldout_folder
from matting.study.cv_report import ANALYSIS_MARKER, arm_summary, fold_figures, stored_arms, write_cv_results
from matting.study.folds import read_folds

from .conftest import REPO

FOLDS = REPO / "datasets" / "alphamatting" / "folds.yaml"
STUDIES = sorted(p.parent for p in (REPO / "experiments").glob("*/cv.yaml"))
TINY = ["--model.net.init_args.encoder.init_args.name=test_resnet", "--trainer.precision=32-true",
        "--data.init_args.batch_size=2", "--data.init_args.num_workers=0"]


def _stand_in_shared(root, size=(48, 64)) -> None:
    """``root/alphamatting/{image,alpha,trimap,trimap2}/GT01..GT20.png`` and ``root/backgrounds/`` (3 files)."""
    rng = np.random.default_rng(0)
    h, w = size
    yy, xx = np.mgrid[:h, :w]
    for kind in ("image", "alpha", "trimap", "trimap2"):
        (root / "alphamatting" / kind).mkdir(parents=True)
    for i in range(1, 21):
        name = f"GT{i:02d}.png"
        r = np.hypot(yy - h / 2 - rng.uniform(-5, 5), xx - w / 2 - rng.uniform(-5, 5))
        alpha = np.clip((14 + i % 5 - r) / 4, 0, 1)
        image = (rng.random((h, w, 3)) * 255).astype(np.uint8)
        a8 = np.rint(alpha * 255).astype(np.uint8)
        trimap = np.where(a8 == 255, 255, np.where(a8 == 0, 0, 128)).astype(np.uint8)
        for kind, array in (("image", image), ("alpha", a8), ("trimap", trimap), ("trimap2", trimap)):
            cv2.imwrite(str(root / "alphamatting" / kind / name), array)
    (root / "backgrounds").mkdir()
    for j in range(3):
        cv2.imwrite(str(root / "backgrounds" / f"bg{j}.png"), (rng.random((80, 90, 3)) * 255).astype(np.uint8))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    base = tmp_path_factory.mktemp("cv")
    _stand_in_shared(base / "shared")
    return build_cv_root(base / "shared", base / "data", read_folds(FOLDS), procedural=2, log=lambda *_: None)


def test_committed_folds_hold_each_photo_once():
    folds = read_folds(FOLDS)
    assert len(folds) == 4 and all(len(f) == 5 for f in folds.held_out)
    assert folds.names == [f"GT{i:02d}" for i in range(1, 21)]
    for k in range(4):
        assert set(folds.train(k)).isdisjoint(folds.held_out[k]) and len(folds.train(k)) == 15


def test_folds_file_errors_name_the_file_and_the_photo(tmp_path):
    bad = tmp_path / "folds.yaml"
    bad.write_text("folds: [[GT01, GT02], [GT02]]\n")
    with pytest.raises(MattingInputError, match=r"folds.yaml: GT02 is in fold 0 and fold 1"):
        read_folds(bad)
    bad.write_text("folds: [[GT01]]\n")
    with pytest.raises(MattingInputError, match="at least two"):
        read_folds(bad)


def test_data_root_splits_by_fold_and_links_the_held_out_photos(data_root):
    from matting.data.manifest import read_split

    manifests = data_root / "manifests" / "alphamatting"
    folds = read_folds(FOLDS)
    for k in range(4):
        assert [r.name for r in read_split(manifests, f"fold{k}_train")] == folds.train(k)
        assert [r.name for r in read_split(manifests, f"fold{k}_test")] == list(folds.held_out[k])
        assert sorted(p.stem for p in (heldout_folder(data_root, k) / "image").iterdir()) == list(folds.held_out[k])
    every = read_split(manifests, "all")
    assert len(every) == 20 and all("fg_est" in r.files for r in every)  # each photo's own estimate


def test_data_root_is_not_replaced_and_missing_photos_are_named(data_root, tmp_path):
    with pytest.raises(MattingInputError, match="exists"):
        build_cv_root(data_root.parent / "shared", data_root, read_folds(FOLDS), procedural=0, log=lambda *_: None)
    (tmp_path / "alphamatting").mkdir()
    (tmp_path / "backgrounds").mkdir()
    other = tmp_path / "folds.yaml"
    other.write_text("folds: [[GT01], [GT99]]\n")
    for kind in ("image", "alpha"):
        (tmp_path / "alphamatting" / kind).mkdir()
    with pytest.raises(MattingInputError):
        build_cv_root(tmp_path, tmp_path / "out", read_folds(other), procedural=0, log=lambda *_: None)


def test_cv_spec_errors_name_the_file_and_the_key(tmp_path):
    study = tmp_path / "study"
    study.mkdir()
    with pytest.raises(MattingInputError, match="has no cv.yaml"):
        cv.read_cv_spec(study)
    spec = {"folds": str(FOLDS), "base": [str(REPO / "configs" / "default.yaml")],
            "real_data": str(REPO / "configs" / "data" / "alphamatting_cv.yaml"), "arms": {"a": {"data": "folds"}}}
    (study / "cv.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(MattingInputError, match=r"cv.yaml: arms.a: give steps"):
        cv.read_cv_spec(study)
    spec["arms"] = {"a": {"data": "photos", "steps": 1}}
    (study / "cv.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(MattingInputError, match=r"arms.a.data: 'photos'"):
        cv.read_cv_spec(study)
    spec["arms"] = {"a": {"steps": 1, "configs": ["missing.yaml"]}}
    (study / "cv.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(MattingInputError, match=r"arms.a.configs: .*missing.yaml not found"):
        cv.read_cv_spec(study)
    spec["arms"] = {"a": {"baseline": "otsu"}}
    (study / "cv.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(MattingInputError, match=r"arms.a.baseline: 'otsu'; choose one of color_threshold"):
        cv.read_cv_spec(study)


def test_colour_threshold_is_searched_on_the_training_photos_only(data_root, tmp_path):
    from matting.io.images import read_image
    from matting.study.cv_score import color_threshold_matte

    photos = data_root / "alphamatting"
    train = read_folds(FOLDS).train(0)
    method = color_threshold_matte(photos / "image", photos / "alpha", train, tmp_path / "t")
    chosen = json.loads((tmp_path / "t" / "threshold.json").read_text())
    assert chosen["photos"] == train and "(chosen)" in (tmp_path / "t" / "sweep.md").read_text()
    alpha = method(read_image(photos / "image" / "GT01.png"))
    assert alpha.shape == (48, 64) and set(np.unique(alpha)) <= {0.0, 1.0}
    # Kept: the same photos read the threshold back; other photos search again.
    (tmp_path / "t" / "sweep.md").unlink()
    color_threshold_matte(photos / "image", photos / "alpha", train, tmp_path / "t")
    assert not (tmp_path / "t" / "sweep.md").exists()
    color_threshold_matte(photos / "image", photos / "alpha", train[:3], tmp_path / "t")
    assert json.loads((tmp_path / "t" / "threshold.json").read_text())["photos"] == train[:3]


def test_cpu_budgets_become_steps_from_the_measured_cost(tmp_path, data_root):
    from matting.study.calibrate import calibrated_steps

    assert calibrated_steps(9.7, {"cpu_seconds_per_step": 0.97}) == 600
    spec = cv.read_cv_spec(REPO / "experiments" / "decoder_heads")
    assert spec.arms["semantic_only"].steps is None and spec.arms["semantic_only"].cpu_of == "two_decoder"
    with pytest.raises(MattingInputError, match="calibrate its steps first"):
        cv.plan_runs(spec, tmp_path, data_root, ["semantic_only"])
    # A measurement kept for this pair of stacks on this CPU (in the precision its training runs
    # use), both measured in one sitting, is reused: no training run. The budget is the two-decoder
    # arm's 600 steps at its own measured cost (0.97 CPU-s), spent at the arm's (1.94). Each arm's
    # cost measured alone, at another time, is not used for a ratio.
    from matting.study import calibrate

    # Scoring alone (--score-only) measures nothing: without a kept measurement the arm has no steps.
    assert cv.calibrate_arms(spec, tmp_path, data_root, ["semantic_only"], log=lambda *_: None, measure=False) == {}
    assert spec.arms["semantic_only"].steps is None and not (tmp_path / "calibration").exists()
    data = [f"--data.init_args.root={data_root.resolve()}", "--data.init_args.train=alphamatting/fold0_train"]
    stacks = [(cv.arm_files(spec, spec.arms[name]), data + cv.precision_options()) for name in ("two_decoder", "semantic_only")]
    (tmp_path / "calibration").mkdir()
    pair = calibrate._key(stacks, cv._cpu_name())
    (tmp_path / "calibration" / f"{pair}.json").write_text(json.dumps({"stacks": [{"cpu_seconds_per_step": 0.97},
                                                                                  {"cpu_seconds_per_step": 1.94}]}))
    alone = calibrate._key(stacks[1:], cv._cpu_name())
    (tmp_path / "calibration" / f"{alone}.json").write_text(json.dumps({"cpu_seconds_per_step": 0.5}))
    assert alone != pair
    done = cv.calibrate_arms(spec, tmp_path, data_root, ["two_decoder", "semantic_only"], log=lambda *_: None)
    assert list(done) == ["semantic_only"] and spec.arms["semantic_only"].steps == 300
    assert done["semantic_only"]["cpu_minutes"] == pytest.approx(9.7)
    assert [p.arm.steps for p in cv.plan_runs(spec, tmp_path, data_root, ["semantic_only"])] == [300] * 4
    bad = tmp_path / "study"
    bad.mkdir()
    (bad / "cv.yaml").write_text(yaml.safe_dump({"folds": str(FOLDS), "base": [], "real_data": str(FOLDS),
                                                 "arms": {"a": {"steps": 5, "cpu_minutes": 1.0}}}))
    with pytest.raises(MattingInputError, match="give steps .* or cpu_of"):
        cv.read_cv_spec(bad)
    (bad / "cv.yaml").write_text(yaml.safe_dump({"folds": str(FOLDS), "base": [], "real_data": str(FOLDS),
                                                 "arms": {"a": {"cpu_of": "b"}, "b": {"steps": 5}}}))
    with pytest.raises(MattingInputError, match="arms.a.cpu_of: 'b' is not an arm with steps listed before it"):
        cv.read_cv_spec(bad)


@pytest.mark.slow
def test_calibrate_only_prints_the_budgets_and_trains_scores_and_writes_nothing(tmp_path, data_root, capsys):
    from matting.study import calibrate
    from tools import study as tool

    study = REPO / "experiments" / "decoder_heads"
    spec = cv.read_cv_spec(study)
    data = [f"--data.init_args.root={data_root.resolve()}", "--data.init_args.train=alphamatting/fold0_train"]
    stacks = [(cv.arm_files(spec, spec.arms[name]), data + cv.precision_options()) for name in ("two_decoder", "semantic_only")]
    (tmp_path / "calibration").mkdir()
    (tmp_path / "calibration" / f"{calibrate._key(stacks, cv._cpu_name())}.json").write_text(json.dumps(
        {"stacks": [{"cpu_seconds_per_step": 0.97}, {"cpu_seconds_per_step": 1.94, "measured": "2026-01-01 10:00:00"}]}))
    pages = {p: p.stat().st_mtime_ns for p in study.iterdir()}
    argv = ["cv", str(study), "--arms", "two_decoder", "semantic_only", "--calibrate-only", "--runs", str(tmp_path),
            "--data", str(data_root)]
    assert tool.main(argv) == 0
    out = capsys.readouterr().out
    assert "semantic_only: 300 steps, 1.94 CPU-s per step, 9.7 CPU-min (the time of two_decoder's steps); " \
           "measured 2026-01-01 10:00:00" in out and "two_decoder:" not in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calibration"], "nothing trained or scored"
    assert {p: p.stat().st_mtime_ns for p in study.iterdir()} == pages, "no page written"
    with pytest.raises(SystemExit):  # one of training, scoring alone or measuring alone
        tool.parse_args(argv + ["--score-only"])


@pytest.mark.slow
def test_calibration_measures_a_positive_cost_and_keeps_it(tmp_path, data_root):
    from matting.study.calibrate import step_cpu_seconds

    files = [REPO / "configs" / "default.yaml", REPO / "configs" / "study" / "real_cv.yaml"]
    options = TINY + ["--data.init_args.size=32"]
    stacks = [(files, options), (files + [REPO / "experiments" / "decoder_heads" / "arms" / "learned_fusion_dw.yaml"], options)]
    labels = []
    records = step_cpu_seconds(stacks, tmp_path, cv.TRAIN_ENV, "test CPU", log=labels.append)
    # Interleaved in one sitting: every stack's short run, then every stack's long run.
    assert [line.split("]")[0] for line in labels if "started" in line] == [
        "[calibrate 10 steps, stack 1 of 2", "[calibrate 10 steps, stack 2 of 2",
        "[calibrate 40 steps, stack 1 of 2", "[calibrate 40 steps, stack 2 of 2"]
    # The cost is the two runs' CPU difference per step (their order depends on the machine's noise).
    for record in records:
        assert record["short"] > 0 and record["long"] > 0
        assert record["cpu_seconds_per_step"] == max(1e-3, (record["long"] - record["short"]) / 30)
    assert step_cpu_seconds(stacks, tmp_path, cv.TRAIN_ENV, "test CPU", log=lambda *_: None) == records
    kept = list((tmp_path / "calibration").iterdir())
    assert len(kept) == 1, "one record for the sitting"
    assert json.loads(kept[0].read_text())["stacks"] == records, "one format, whatever the number of stacks"


def test_runs_are_keyed_by_their_inputs(tmp_path, data_root):
    spec = cv.read_cv_spec(REPO / "experiments" / "real_foregrounds")
    plans = cv.plan_runs(spec, tmp_path, data_root)
    by_arm = {}
    for plan in plans:
        by_arm.setdefault(plan.arm.name, []).append(plan)
    assert [p.fold for p in by_arm["real"]] == [0, 1, 2, 3] and [p.fold for p in by_arm["synthetic"]] == [None]
    assert "all_background" not in by_arm  # constants train nothing
    assert len({p.fingerprint for p in plans}) == len(plans)
    again = cv.plan_runs(spec, tmp_path, data_root, ["real"])
    assert [p.fingerprint for p in again] == [p.fingerprint for p in by_arm["real"]]
    every = cv.plan_runs(spec, tmp_path, data_root, ["real", "synthetic"], all_photos=True)
    assert [(p.arm.name, p.fold) for p in every] == [("real", None), ("synthetic", None)]
    assert "--data.init_args.train=alphamatting/all" in every[0].options and every[0].fingerprint not in {
        p.fingerprint for p in by_arm["real"]}
    assert every[1].fingerprint == by_arm["synthetic"][0].fingerprint  # it reads no photo either way
    with pytest.raises(MattingInputError, match="no all-photos run"):
        cv.plan_runs(spec, tmp_path, data_root, ["soc"], all_photos=True)
    # The efficiency study's default arm is the same run as the data study's real arm: trained once.
    efficiency = cv.plan_runs(cv.read_cv_spec(REPO / "experiments" / "efficiency"), tmp_path, data_root, ["default"])
    assert [p.fingerprint for p in efficiency] == [p.fingerprint for p in by_arm["real"]]


@pytest.mark.slow
@pytest.mark.parametrize("study", STUDIES, ids=lambda p: p.name)
def test_every_cv_arm_builds_and_trains_one_step(study, data_root, tmp_path):
    spec = cv.read_cv_spec(study)
    for arm in spec.arms.values():
        arm.steps = arm.steps or 1  # a CPU budget's steps are calibrated on the machine that runs the study
    for plan in cv.plan_runs(spec, tmp_path, data_root):
        if plan.fold not in (None, 0) or plan.source is not None:  # adapt arms run matting adapt (the end-to-end test)
            continue
        size = "--data.init_args.size=64" if plan.fold is None else "--data.init_args.crop_size=64"
        tiny = TINY[1:] if any("segmentation.FCDenseNet" in f.read_text() for f in plan.files) else TINY  # no encoder
        args = [a for f in plan.files for a in ("-c", str(f))] + plan.options + tiny + [
            "--trainer.max_steps=1", size, "--trainer.logger=false", "--trainer.enable_checkpointing=false",
            "--trainer.callbacks=[]", f"--trainer.default_root_dir={tmp_path / plan.fingerprint}"]
        built = build_cli(args, run=False)
        built.trainer.fit(built.model, datamodule=built.datamodule)
        assert built.trainer.global_step == 1, plan.label
        if plan.fold is not None:
            assert built.datamodule.hparams.train == "alphamatting/fold0_train"


def test_mask_counts_pool_pixels_over_photos(tmp_path):
    from matting.io.images import write_png

    pred, gt = tmp_path / "pred", tmp_path / "gt"
    truth = np.zeros((10, 10), np.float32)
    truth[:, :5] = 1.0  # 50 foreground pixels
    guess = np.zeros((10, 10), np.float32)
    guess[:, 3:8] = 0.8  # 20 of them found, 30 false
    write_png(gt / "a.png", truth)
    write_png(pred / "a.png", guess)
    write_png(gt / "b.png", truth)
    write_png(pred / "b.png", truth)  # perfect
    counts = cv.mask_counts(pred, gt)
    assert counts == [{"name": "a", "tp": 20, "fp": 30, "fn": 30}, {"name": "b", "tp": 50, "fp": 0, "fn": 0}]
    rows = [{"name": n, "sad": 1.0, "mse": 0.002, "grad": 3.0} for n in "ab"]
    figures = fold_figures({"whole": rows, "comp1k": rows, "mask": counts})
    assert figures["iou"] == pytest.approx(70 / 130) and figures["precision"] == pytest.approx(0.7)
    assert figures["mse"] == pytest.approx(2.0)  # display units: x 1e3
    summary = arm_summary({0: {0: {"whole": rows, "comp1k": rows, "mask": counts}}})
    assert summary["per_photo"]["a"]["iou"] == pytest.approx(20 / 80) and summary["figures"]["sad"]["std"] == 0.0


def test_synthetic_columns_summarise_each_run_and_mark_what_was_not_scored(tmp_path):
    from matting.study.cv_report import synthetic_figures

    counts = [{"name": "a", "tp": 20, "fp": 30, "fn": 30}]
    rows = [{"name": "a", "sad": 1.0, "mse": 0.002, "grad": 3.0}]
    run = {"whole": rows, "comp1k": rows, "mask": counts}
    synthetic = [synthetic_figures({"whole": [{"name": "s", "sad": sad, "mse": 0.001, "grad": 1.0}],
                                    "mask": [{"name": "s", "tp": 1, "fp": 1, "fn": 0}]}) for sad in (2.0, 4.0)]
    assert synthetic[0] == {"sad": 2.0, "mse": pytest.approx(1.0), "grad": 1.0, "iou": 0.5, "precision": 0.5, "recall": 1.0}
    scored = {0: {0: {**run, "synthetic": synthetic[0]}, 1: {**run, "synthetic": synthetic[1]}}}
    figures = arm_summary(scored)["figures"]
    assert figures["synthetic_sad"] == {"mean": 3.0, "std": pytest.approx(np.std([2.0, 4.0], ddof=1))}
    # A run not scored there (a row from an earlier page, a trimap-based network) leaves the arm without them.
    assert "synthetic_sad" not in arm_summary({0: {0: {**run, "synthetic": {}}, 1: {**run, "synthetic": synthetic[1]}}})["figures"]
    page = write_cv_results(tmp_path, "t", {"scored": scored, "old": {0: {0: run}}}, {}, {}, ["Here."])
    table = page.read_text()
    assert "| synthetic SAD | synthetic IoU |" in table
    assert "| 3.00 +- 1.41 | 0.500 +- 0.000 |" in table and table.split("| old |")[1].split("\n")[0].endswith("| - | - |")
    page = write_cv_results(tmp_path, "t", {"old": {0: {0: run}}}, {}, {}, ["Here."])
    assert "synthetic SAD" not in page.read_text(), "no column where no arm was scored there"


def test_kept_scores_belong_to_their_scorer_and_split(tmp_path):
    from matting.study.cv_score import SCORER, kept_scores

    split = {"length": 128, "size": 256}
    (tmp_path / "scores.json").write_text(json.dumps({"whole": [], "scorer": SCORER, "split": split}))
    assert kept_scores(tmp_path, {"length": 128, "size": 256}) is not None
    assert kept_scores(tmp_path, {"length": 128, "size": 512}) is None, "a split made at another size is scored again"
    assert kept_scores(tmp_path) is None, "held-out photos are not a generated split"
    (tmp_path / "scores.json").write_text(json.dumps({"whole": [], "scorer": SCORER}))
    assert kept_scores(tmp_path) is not None and kept_scores(tmp_path, split) is None
    (tmp_path / "scores.json").write_text(json.dumps({"whole": [], "scorer": SCORER - 1}))
    assert kept_scores(tmp_path) is None


@pytest.mark.slow
def test_trains_scores_and_reports_keeping_the_analysis(data_root, tmp_path, monkeypatch):
    from matting.study import cv_data

    # Two folds of two photos each over the same data root (its manifests are rewritten for them):
    # the whole path, at half the cost of the committed four folds.
    folds = tmp_path / "folds.yaml"
    folds.write_text("folds: [[GT01, GT02], [GT03, GT04]]\n")
    small = build_cv_root(data_root.parent / "shared", tmp_path / "data", read_folds(folds), procedural=1, log=lambda *_: None)
    study = tmp_path / "study"
    study.mkdir()
    (study / "cv.yaml").write_text(yaml.safe_dump({
        "folds": str(folds), "base": [str(REPO / "configs" / "default.yaml"), str(REPO / "configs" / "study" / "real_cv.yaml")],
        "real_data": str(REPO / "configs" / "data" / "alphamatting_cv.yaml"), "budget": "Two steps.",
        "arms": {"real": {"data": "folds", "steps": 2, "options": TINY + ["--data.init_args.crop_size=64"]},
                 "zero": {"constant": 0.0}, "soc": {"adapt": "real", "epochs": 1},
                 "threshold": {"baseline": "color_threshold"}}}))
    spec = cv.read_cv_spec(study)
    runs = tmp_path / "runs"
    plans = cv.plan_runs(spec, runs, small)
    assert [p.source.fingerprint for p in plans if p.arm.name == "soc"] == [p.fingerprint for p in plans if p.arm.name == "real"]
    assert cv.train_runs(plans, 2, small, log=lambda *_: None) == []
    record = cv.train_record(plans[0])
    assert record["steps"] == 2 and not record["cut_short"] and record["cpu_seconds"] > 0 and record["fold"] == 0
    adapted = cv.train_record(next(p for p in plans if p.arm.name == "soc" and p.fold == 1))
    # One epoch over the fold's pool: its two training photos (the stand-in has no photos without ground truth).
    assert adapted["epochs"] == 1 and adapted["steps"] == 2 and "matting adapt" in adapted["command"].replace(" -m ", " ")
    monkeypatch.setattr(cv_data, "SYNTHETIC_TEST", {"length": 3, "size": 64})  # the generator's test split, small
    results = cv.score_plans(spec, plans, runs, small, ["real", "zero", "soc", "threshold"], log=lambda *_: None)
    assert sorted(results["real"][0]) == [0, 1] and sorted(results["soc"][0]) == [0, 1]
    # Each run is also scored on the generator's test split, through the same commands at its own size.
    assert len(list((small / "synthetic_test" / "alpha").iterdir())) == 3
    assert results["real"][0][0]["synthetic"] != results["real"][0][1]["synthetic"], "each fold's own run"
    assert 0.0 <= results["real"][0][0]["synthetic"]["iou"] <= 1.0 and "synthetic" not in results["zero"][0][0]
    # The colour threshold is searched per fold on that fold's training photos only.
    for k, held_out in enumerate((["GT01", "GT02"], ["GT03", "GT04"])):
        searched = cv.method_folder(spec, runs, spec.arms["threshold"], k) / "threshold.json"
        assert not set(held_out) & set(json.loads(searched.read_text())["photos"])
        assert [r["name"] for r in results["threshold"][0][k]["whole"]] == held_out
    from matting.study.cv_score import SCORER

    assert results["real"][0][0]["scorer"] == SCORER  # a score of another scorer version is made again
    assert all(c["tp"] == 0 and c["fp"] == 0 for f in results["zero"][0].values() for c in f["mask"])
    mattes = {arm: {p.stem: p for p in runs.rglob("alpha/*.png")} for arm in results}
    results.pop("soc"), results.pop("threshold")
    page = write_cv_results(study, "tiny", results, mattes, {"real": {"steps": 2, "cpu_minutes": 0.1}}, ["Made here."])
    text = page.read_text()
    assert "| real | 2 | 2 | 0.1 |" in text and "| zero | 2 | - | - |" in text and "| GT04 |" in text
    assert "synthetic IoU" in text and text.split("| zero |")[1].split("\n")[0].endswith("| - | - |")
    assert cv2.imread(str(study / "grid_real.png")) is not None
    assert json.loads((study / "results_real.json").read_text())["summaries"]["real"]["runs"] == 2
    page.write_text(text + "What the grid shows.\n")
    write_cv_results(study, "tiny", results, mattes, {}, ["Again."])
    assert page.read_text().endswith(ANALYSIS_MARKER + "\nWhat the grid shows.\n") and "Again." in page.read_text()
    # A rerun trains nothing: every run is there with the same inputs.
    assert all(p.trained for p in cv.plan_runs(spec, runs, small))



def test_cv_runs_keep_the_weights_of_their_last_step():
    # A step interval would leave last.ckpt at the last multiple of it: a calibrated 270-step run was
    # scored with its step-200 weights. The checkpoint is written when training ends instead.
    config = yaml.safe_load((REPO / "configs" / "study" / "real_cv.yaml").read_text())
    (saver,) = [c["init_args"] for c in config["trainer"]["callbacks"] if c["class_path"].endswith("ModelCheckpoint")]
    assert saver["save_last"] is True and saver["monitor"] is None
    assert not {"every_n_train_steps", "train_time_interval", "every_n_epochs"} & set(saver)


def test_rows_whose_runs_are_gone_are_kept_from_the_last_page(tmp_path):
    from matting.io.images import write_png

    rows = [{"name": "GT01", "sad": 1.0, "mse": 0.002, "grad": 3.0}]
    scores = {"whole": rows, "comp1k": rows, "mask": [{"name": "GT01", "tp": 5, "fp": 1, "fn": 0}], "scorer": 2}
    study = tmp_path / "study"
    study.mkdir()
    old = {"results": {"old": {"0": {"0": scores, "1": scores}}, "stale": {"0": {"0": {**scores, "scorer": 1}}},
                       "fresh": {"0": {"0": scores}}, "zero": {"0": {"0": scores}}},
           "costs": {"old": {"steps": 600, "cpu_minutes": 9.7, "machine": "elsewhere", "cut_short": 2, "steps_reached": [400, 600]}}}
    (study / "results_real.json").write_text(json.dumps(old))
    fresh = {"fresh": {0: {0: {**scores, "whole": [{**rows[0], "sad": 7.0}]}}}}
    kept, costs = stored_arms(study, ["fresh", "old", "stale", "absent", "zero"], fresh, scorer=2)
    # A fresh arm wins, another scorer's row is dropped, keys come back as integers; "zero" (a
    # constant) has no recorded cost.
    assert list(kept) == ["old", "zero"] and sorted(kept["old"][0]) == [0, 1] and costs["old"]["stored"] is True
    write_png(tmp_path / "m" / "GT01.png", np.ones((8, 8), np.float32))
    page = write_cv_results(study, "t", {**fresh, **kept}, {"fresh": {"GT01": tmp_path / "m" / "GT01.png"}, "old": {}},
                            costs, ["Here."])
    text = page.read_text()
    assert "| old* | 2 | 600 | 9.7 |" in text and "trained on old: elsewhere)" in text and "| fresh | 1 |" in text
    assert "| zero* | 1 | - | - |" in text
    assert "Cut short (their scored weights stop before the planned steps): old, 2 run(s), weights of step 400, 600." in text
    assert "7.00 +- 0.00" in text and "stale" not in text
    one_row = cv2.imread(str(study / "grid_real.png")).shape[0]  # only the arm with mattes on disk
    write_cv_results(study, "t", kept, {}, costs, ["Only kept rows."])  # nothing to draw: the grid is left as it was
    assert cv2.imread(str(study / "grid_real.png")).shape[0] == one_row and "Only kept rows." in page.read_text()
    write_cv_results(study, "t", {**fresh, **kept}, {"fresh": {"GT01": tmp_path / "m" / "GT01.png"},
                                                     "old": {"GT01": tmp_path / "m" / "GT01.png"}}, {}, ["Here."])
    assert cv2.imread(str(study / "grid_real.png")).shape[0] > one_row

@pytest.mark.slow
def test_decoded_cache_gives_the_same_samples_and_stays_untouched(data_root):
    def dataset(cache: bool):
        built = build_cli(["-c", str(REPO / "configs" / "default.yaml"), "-c", str(REPO / "configs" / "data" / "alphamatting_cv.yaml"),
                           f"--data.init_args.root={data_root}", "--data.init_args.crop_size=32", "--data.init_args.num_workers=0",
                           f"--data.init_args.cache_decoded={str(cache).lower()}", "--trainer.logger=false"], run=False)
        built.datamodule.setup("fit")
        return built.datamodule.train_dataloader().dataset  # no procedural share: the real set itself

    import torch

    cached, plain = dataset(True), dataset(False)
    for i in range(6):
        torch.manual_seed(i)  # a sample's randomness comes from the process's torch generator and the index
        a = cached[i]
        torch.manual_seed(i)
        b = plain[i]
        assert a["name"] == b["name"] and all(np.array_equal(a[k], b[k]) for k in ("image", "alpha", "trimap"))
    assert cached._decoded and plain._decoded is None
    for (name, _), (alpha, colours) in cached._decoded.items():
        fresh_alpha, fresh = cached._decode(next(r for r in cached.records if r.name == name), False)
        assert np.array_equal(alpha, fresh_alpha) and np.array_equal(colours["fg"], fresh["fg"])


def test_a_trimap_network_is_scored_with_the_held_out_trimaps(tmp_path):
    from matting.study.cv_score import takes_trimap
    from tests.tiny_checkpoint import NET_CONFIG, write_checkpoint

    plain = write_checkpoint(tmp_path / "plain.ckpt")
    trimap = dict(NET_CONFIG, init_args={**NET_CONFIG["init_args"], "trimap_input": True})
    with_trimap = write_checkpoint(tmp_path / "trimap.ckpt", config=trimap)  # read from the stored config
    assert not takes_trimap(plain) and takes_trimap(with_trimap)


def test_the_training_precision_is_read_from_the_recorded_command():
    fit = "python -m matting fit -c configs/default.yaml --seed_everything=0"
    assert cv.training_precision({"command": fit + " --trainer.precision=32-true"}) == "32-true"
    assert cv.training_precision({"command": fit}).startswith("as configured (bf16-mixed")


def test_a_calibration_is_keyed_by_contents_not_by_where_the_study_lives(tmp_path):
    """A study run from another checkout of the same tree finds the measurements kept for it."""
    from matting.study.calibrate import _key

    stacks = {}
    for where in ("a", "b"):
        folder = tmp_path / where
        folder.mkdir()
        (folder / "net.yaml").write_text("model: {}\n")
        (folder / "arm.yaml").write_text("trainer: {max_steps: 3}\n")
        stacks[where] = [([folder / "net.yaml"], ["--seed_everything=0"]), ([folder / "net.yaml", folder / "arm.yaml"], [])]
    assert _key(stacks["a"], "cpu") == _key(stacks["b"], "cpu")
    (tmp_path / "b" / "arm.yaml").write_text("trainer: {max_steps: 4}\n")
    assert _key(stacks["a"], "cpu") != _key(stacks["b"], "cpu")
    assert _key(stacks["a"], "cpu") != _key(stacks["a"][::-1], "cpu")
