"""tools/benchmark.py frontier: arms timed interleaved against the reference, in predict's path."""

from __future__ import annotations

import json

import pytest

from matting.bench import frontier as bench_frontier

TINY_ENCODER = "model:\n  net:\n    init_args:\n      encoder:\n        class_path: matting.models.TimmEncoder\n" \
               "        init_args: {name: test_resnet, pretrained: false}\n"


@pytest.fixture()
def study(tmp_path):
    (tmp_path / "arms").mkdir()
    (tmp_path / "base.yaml").write_text(TINY_ENCODER)
    (tmp_path / "arms" / "reference.yaml").write_text("{}\n")
    (tmp_path / "arms" / "cheap.yaml").write_text(
        "model:\n  net:\n    init_args:\n      detail_head:\n        class_path: matting.models.DetailHead\n"
        "        init_args: {hidden: 8, block: dw, stride: 4}\n")
    return tmp_path


@pytest.mark.slow
def test_times_every_arm_against_the_reference(study, tmp_path):
    out = tmp_path / "latency.json"
    assert bench_frontier.main([str(study), "--together", "--sizes", "64", "96", "--rounds", "2", "--threads", "1",
                                "--out", str(out)]) == 0
    results = json.loads(out.read_text())["results"]
    assert set(results) == {"64", "96"}
    for size in ("64", "96"):
        assert results[size]["reference"]["ratio"] == pytest.approx(1.0)
        assert set(results[size]) == {"reference", "cheap"}
        assert all(r["ms"] > 0 and r["ms_min"] <= r["ms"] for r in results[size].values())


@pytest.mark.slow
def test_refuses_unknown_arms(study, capsys):
    assert bench_frontier.main([str(study), "--arms", "nope"]) == 2
    assert "unknown arms ['nope']" in capsys.readouterr().err


@pytest.mark.slow
def test_each_arm_gets_a_process_and_a_reference_of_its_own(study, tmp_path):
    (study / "arms" / "narrow.yaml").write_text(
        "model:\n  net:\n    init_args:\n      fusion:\n        class_path: matting.models.ModnetFusion\n"
        "        init_args: {hidden: 4}\n")
    out = tmp_path / "pairs.json"
    assert bench_frontier.main([str(study), "--sizes", "64", "--rounds", "2", "--threads", "1", "--out", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written["processes"] == "one per arm, with its own reference"
    rows = written["results"]["64"]
    assert set(rows) == {"reference", "cheap", "narrow"}
    assert rows["reference"]["ratio"] == 1.0
    assert all(r["ms"] > 0 and r["ms_min"] <= r["ms"] and r["ratio"] > 0 for r in rows.values())


@pytest.mark.slow
def test_with_applies_a_config_to_every_arm_but_the_reference(study, tmp_path, monkeypatch, capsys):
    """A decoder-head delta timed on a study's arms: the reference stays as it is."""
    built = {}

    def fake_predictor(study_dir, arm, extra=()):
        built[arm] = [str(f) for f in extra]
        return lambda image, size: image[..., 0]

    monkeypatch.setattr(bench_frontier, "build_predictor", fake_predictor)
    delta = tmp_path / "fusion.yaml"
    delta.write_text("{}\n")
    out = tmp_path / "with.json"
    assert bench_frontier.main([str(study), "--together", "--arms", "cheap", "--sizes", "16", "--rounds", "1",
                                "--threads", "1", "--with", str(delta), "--out", str(out)]) == 0
    assert built == {"reference": [], "cheap": [str(delta)]}
    assert json.loads(out.read_text())["with"] == [str(delta)]
    assert f"arms other than reference with: {delta}" in capsys.readouterr().out
    assert bench_frontier.main([str(study), "--with", str(tmp_path / "missing.yaml")]) == 2
    assert "--with: no such file" in capsys.readouterr().err
