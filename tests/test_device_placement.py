"""Tensors a step builds for itself follow its inputs' device, checked without a GPU.

On the ``meta`` device a tensor has a shape and a device but no data, and an op that mixes it with
a CPU tensor fails as a CUDA op would ("Tensor on device cpu is not on the expected device meta"):
a band, trimap, kernel or filter tap built with ``torch.zeros(...)`` and no ``device=`` shows here.
What reads values (``nonzero``, ``.item()``, the patch refiner's cell choice) cannot run on meta;
tests/test_gpu.py runs it on CUDA.
"""

from __future__ import annotations

import random

import pytest
import torch

from matting.data.trimap import transition_band, trimap_band, trimap_from_band, trimap_to_float
from matting.losses import MattingLoss, glance_target, gradient_loss, laplacian_loss, semantic_target
from matting.models.refiner import GuidedFilterRefiner
from matting.models.resample import antialias_taps, resize_antialiased
from tests.tiny_checkpoint import NET_CONFIG, tiny_net

META = torch.device("meta")


def on_meta(*shape: int) -> torch.Tensor:
    return torch.empty(*shape, device=META)


def test_meta_catches_a_tensor_left_on_the_cpu():
    with pytest.raises(RuntimeError, match="device"):
        on_meta(1, 1, 8, 8) * torch.ones(1, 1, 8, 8)


def test_bands_and_trimaps_stay_on_the_device():
    alpha = on_meta(2, 1, 32, 32)
    band = transition_band(alpha, 3)
    trimap8 = torch.empty(2, 1, 32, 32, dtype=torch.uint8, device=META)
    for tensor in (band, trimap_band(trimap8), trimap_to_float(trimap8), trimap_from_band(band, alpha),
                   glance_target(alpha, band), semantic_target(alpha, (8, 8))):
        assert tensor.device == META


def test_every_loss_term_stays_on_the_device():
    """Kornia's kernels, the band boost and the glance / composition / refiner terms (not the
    segmentation term: autocast, which it turns off, knows no meta device)."""
    weights = dict(semantic=1, glance=1, detail=1, alpha=1, composition=1, laplacian=1, gradient=1, alpha_base=1, error=1)
    outputs = {"pred_alpha": on_meta(2, 1, 32, 32), "pred_semantic": on_meta(2, 1, 2, 2), "pred_glance": on_meta(2, 3, 32, 32),
               "pred_detail": on_meta(2, 1, 16, 16), "pred_alpha_base": on_meta(2, 1, 8, 8), "pred_error": on_meta(2, 1, 8, 8)}
    batch = {"image": on_meta(2, 3, 32, 32), "alpha": on_meta(2, 1, 32, 32), "fg": on_meta(2, 3, 32, 32), "bg": on_meta(2, 3, 32, 32)}
    terms = MattingLoss(**weights)(outputs, batch, transition_band(batch["alpha"], 2))
    assert set(terms) == {*weights, "loss"} and all(v.device == META for v in terms.values())
    assert laplacian_loss(batch["alpha"], batch["alpha"]).device == gradient_loss(batch["alpha"], batch["alpha"]).device == META


def test_the_network_and_the_guided_refiner_stay_on_the_device(one_torch_thread):
    from matting.inference.loading import build_net

    net = tiny_net().to(META)
    assert net(on_meta(1, 3, 64, 64))["pred_alpha"].device == META
    config = {**NET_CONFIG, "init_args": {**NET_CONFIG["init_args"], "base_scale": 0.5,
                                          "refiner": {"class_path": "matting.models.GuidedFilterRefiner"}}}
    refined = build_net(config).to(META).train()
    assert isinstance(refined.refiner, GuidedFilterRefiner)
    outputs = refined(on_meta(2, 3, 64, 64))
    assert outputs["pred_alpha"].shape == (2, 1, 64, 64) and all(v.device == META for v in outputs.values())


def test_the_trimap_based_network_stays_on_the_device(one_torch_thread):
    from matting.inference.loading import build_net

    encoder = {**NET_CONFIG["init_args"]["encoder"]}
    encoder["init_args"] = {**encoder["init_args"], "in_chans": 4}
    net = build_net({**NET_CONFIG, "init_args": {**NET_CONFIG["init_args"], "encoder": encoder, "trimap_input": True}}).to(META)
    alpha = on_meta(1, 1, 64, 64)
    trimap = trimap_from_band(transition_band(alpha, random.Random(0).randint(1, 4)), alpha)
    assert net(on_meta(1, 3, 64, 64), trimap=trimap)["pred_alpha"].device == META


def test_antialiased_resize_taps_follow_the_image():
    """The ONNX graph's resize (run when a network loaded on CUDA is exported) built its taps on the CPU."""
    index, weight = antialias_taps(64, 20, META)
    assert index.device == weight.device == META
    assert resize_antialiased(on_meta(1, 3, 64, 48), (20, 16)).shape == (1, 3, 20, 16)
    cpu_index, cpu_weight = antialias_taps(64, 20)
    assert cpu_index.device.type == cpu_weight.device.type == "cpu"
