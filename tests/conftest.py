"""Shared test settings: offline, tiny models, the real-data location."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
TINY_ENCODERS = ["test_resnet", "test_convnext", "test_vit"]


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` (real photos with ground truth); skips when this checkout has none."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real evaluation data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for a module of tiny-network tests: on a busy 2-core machine, two
    spinning OpenMP threads make tiny convolutions up to 100x slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
