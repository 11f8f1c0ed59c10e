"""Every CSV the project writes escapes cells that a spreadsheet would run as a formula."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from PIL import Image

from matting.io.files import csv_text


def test_csv_text_escapes_formulas_and_keeps_numbers():
    text = csv_text([["image", "SAD"], ["=2+3", "1.5"], ["@SUM(A1)", "-0.25"], ["+x", "-1e-3"], ["-cmd|' /C calc'!A0", "0"],
                     ["\tx", "3"], ["plain", "2"]])
    rows = list(csv.reader(io.StringIO(text)))
    assert [r[0] for r in rows[1:]] == ["'=2+3", "'@SUM(A1)", "'+x", "'-cmd|' /C calc'!A0", "'\tx", "plain"]
    assert [r[1] for r in rows[1:]] == ["1.5", "-0.25", "-1e-3", "0", "3", "2"]


@pytest.mark.parametrize("writer", ["evaluate", "gallery"])
def test_the_csv_writers_escape_an_image_named_as_a_formula(writer):
    if writer == "evaluate":
        from matting.evaluation import per_image_csv

        keys = ("sad", "mse", "mad", "grad", "conn")
        text = per_image_csv([{"name": "=2+3", **{k: 1.0 for k in keys}}], "whole")
    else:
        from matting.report.gallery_page import Model, Row, metrics_csv

        row = Row("=2+3", (4, 4))
        row.scores.append({"sad": 1.0, "mse": 0.1})
        text = metrics_csv([Model("@model", "m", None, 1, None)], [row], ("sad", "mse"))
    lines = list(csv.reader(io.StringIO(text)))
    assert lines[1][0] == "'=2+3"
    if writer == "gallery":
        assert lines[1][1] == "'@model"


@pytest.mark.slow
def test_evaluate_writes_an_escaped_per_image_csv(tmp_path, capsys):
    from matting.cli import main

    for folder in ("pred", "gt"):
        (tmp_path / folder).mkdir()
    Image.fromarray(np.full((8, 8), 100, np.uint8)).save(tmp_path / "pred" / "=2+3.png")
    Image.fromarray(np.full((8, 8), 120, np.uint8)).save(tmp_path / "gt" / "=2+3.png")
    out = tmp_path / "scores"
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--out", str(out)]) == 0
    rows = list(csv.reader((out / "per_image.csv").open()))
    assert rows[1][0] == "'=2+3"
