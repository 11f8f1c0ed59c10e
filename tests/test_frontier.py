"""matting.study.frontier (tools/study.py frontier): the latency-against-SAD frontier of a study, joined from its runs and latency file."""

import json

import cv2
import pytest

from matting.metrics import format_metric

from matting.study import frontier
from matting.study import synthetic as run_study

from .test_study import CONFIGS, _tiny_study


def test_an_arm_is_on_the_frontier_unless_another_is_both_faster_and_better():
    points = {"ref": (1.0, 5.0), "fast_bad": (0.2, 9.0), "fast_good": (0.3, 4.0), "slow_bad": (0.5, 6.0),
              "tie": (0.3, 4.0)}
    # fast_good and tie dominate ref and slow_bad; they tie each other, so neither dominates the other.
    assert frontier.on_frontier(points) == {"fast_bad", "fast_good", "tie"}
    assert frontier.on_frontier({"only": (1.0, 1.0)}) == {"only"}


@pytest.mark.slow
def test_frontier_of_a_tiny_study(tmp_path, capsys):
    study, runs, out = _tiny_study(tmp_path), tmp_path / "runs", tmp_path / "out"
    (study / "arms" / "reference.yaml").write_text("{}\n")
    assert run_study.main([str(study), "--seeds", "0", "1", "--arms", "reference", "small_fusion", "color_threshold",
                           "--out", str(runs), "--max-steps", "1", "--base", str(CONFIGS / "default.yaml"),
                           "--base", str(CONFIGS / "smoke.yaml"), "--timing-size", "32", "--timing-runs", "1",
                           "--thresholds", "10", "30"]) == 0
    latency = tmp_path / "latency.json"
    row = {"ms": 10.0, "ms_min": 9.0}
    latency.write_text(json.dumps({"command": "python tools/benchmark.py frontier tiny", "machine": "test", "rounds": 1,
                                   "results": {"512": {"reference": {**row, "ratio": 1.0},
                                                       "small_fusion": {**row, "ms": 5.0, "ratio": 0.5}}}}))
    assert frontier.main([str(runs), "--latency", str(latency), "--out", str(out)]) == 0
    text = (out / "frontier.md").read_text()
    sad = {arm: sum(json.loads((runs / arm / f"seed{s}" / "result.json").read_text())["metrics"]["sad"]
                    for s in (0, 1)) / 2 for arm in ("reference", "small_fusion")}
    lines = {line.split(" | ")[0].strip("| *"): line for line in text.splitlines() if line.startswith("| ")}
    assert "| yes |" in lines["small_fusion"]  # the faster arm is always on the frontier
    assert ("| yes |" in lines["reference"]) == (sad["reference"] < sad["small_fusion"])
    assert f"| {format_metric('sad', sad['small_fusion'])} +- " in lines["small_fusion"]  # collect_results' cells
    assert "colour threshold" not in lines and "color_threshold (test SAD" in text  # listed, not plotted
    assert cv2.imread(str(out / "frontier.png")) is not None

    latency.write_text(json.dumps({"results": {"1024": {}}}))
    assert frontier.main([str(runs), "--latency", str(latency), "--out", str(out)]) == 2
    assert "not --size 512" in capsys.readouterr().err
    assert frontier.main([str(runs), "--latency", str(tmp_path / "missing.json")]) == 2
    assert "no such file" in capsys.readouterr().err
