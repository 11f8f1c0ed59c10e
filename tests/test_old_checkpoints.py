"""Checkpoints written by earlier versions of the package keep loading and predicting the same alpha.

``tests/data/checkpoints_v1/`` holds two 2-step ``matting fit`` checkpoints (tiny ``test_efficientnet``
encoder) saved by version 0.1.0 before the package was reorganised: the default family with the
guided-filter refiner, and GFM glance/focus with TT fusion. ``expected.npz`` holds the input image
and the ``pred_alpha`` each gave in eval mode.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from matting.inference import load_net
from matting.io.checkpoints import read_checkpoint

DATA = Path(__file__).parent / "data" / "checkpoints_v1"
NAMES = ("modnet_guided", "gfm_tt")


@pytest.mark.parametrize("name", NAMES)
def test_an_old_checkpoint_rebuilds_its_network_and_predicts_the_same_alpha(name, one_torch_thread):
    expected = np.load(DATA / "expected.npz")
    net = load_net(DATA / f"{name}.ckpt")
    with torch.no_grad():
        pred_alpha = net(torch.from_numpy(expected["image"]))["pred_alpha"]
    np.testing.assert_allclose(pred_alpha.numpy(), expected[name], rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_an_old_checkpoint_names_only_classes_that_still_import(name):
    import importlib

    def class_paths(value):
        if isinstance(value, dict):
            if isinstance(value.get("class_path"), str):
                yield value["class_path"]
            for item in value.values():
                yield from class_paths(item)
        elif isinstance(value, list):
            for item in value:
                yield from class_paths(item)

    paths = list(class_paths(read_checkpoint(DATA / f"{name}.ckpt")["hyper_parameters"]))
    assert paths
    for path in paths:
        module, _, attr = path.rpartition(".")
        assert hasattr(importlib.import_module(module), attr), path
