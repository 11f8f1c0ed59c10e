"""bf16 training only where the CPU runs bfloat16 natively (matting.runtime.precision)."""

import lightning as L
import pytest

from matting.runtime import precision


@pytest.fixture()
def bf16_trainer():
    return L.Trainer(accelerator="cpu", devices=1, precision="bf16-mixed", logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False)


def test_bf16_falls_back_to_float32_on_a_cpu_that_emulates_it(bf16_trainer, monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    option, note = precision.cpu_precision_override(bf16_trainer, [])
    assert option == "--trainer.precision=32-true"
    assert "no native bfloat16" in note and "--trainer.precision=bf16-mixed" in note


def test_bf16_is_kept_where_native_or_asked_for(bf16_trainer, monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert precision.cpu_precision_override(bf16_trainer, []) is None
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert precision.cpu_precision_override(bf16_trainer, ["--trainer.precision=bf16-mixed"]) is None
    assert precision.cpu_precision_override(bf16_trainer, ["--trainer.precision", "bf16-mixed"]) is None
    fp32 = L.Trainer(accelerator="cpu", devices=1, precision="32-true", logger=False, enable_checkpointing=False)
    assert precision.cpu_precision_override(fp32, []) is None


def test_an_avx2_only_cpu_has_no_native_bf16():
    import torch

    if torch.backends.cpu.get_cpu_capability() not in ("DEFAULT", "AVX2"):
        pytest.skip(f"this CPU reports {torch.backends.cpu.get_cpu_capability()}: it may have native bf16")
    assert precision.cpu_has_native_bf16() is False
