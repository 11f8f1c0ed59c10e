"""MattingModule: per-part learning rates, freezing, and stage-1 weights for stage 2."""

import functools

import pytest
import torch

from matting.models import (
    DetailHead,
    MattingNet,
    ModnetFusion,
    PatchRefiner,
    SemanticHead,
    TimmEncoder,
)
from matting.module import MattingModule


def _net(refiner=None):
    torch.manual_seed(0)
    return MattingNet(TimmEncoder("test_resnet"), SemanticHead, DetailHead, ModnetFusion, refiner=refiner)


def test_lr_scales_make_groups_and_zero_freezes():
    module = MattingModule(_net(PatchRefiner), optimizer=functools.partial(torch.optim.AdamW, lr=1e-3),
                           lr_scales={"net": 0.1, "net.refiner": 1.0, "net.encoder": 0.0})
    opt = module.configure_optimizers()
    lrs = sorted(round(g["lr"], 8) for g in opt.param_groups)
    assert lrs == [1e-4, 1e-3]
    assert not any(p.requires_grad for p in module.net.encoder.parameters())
    refiner_params = {id(p) for p in module.net.refiner.parameters()}
    fast = next(g for g in opt.param_groups if g["lr"] == 1e-3)
    assert {id(p) for p in fast["params"]} == refiner_params


def test_lr_scales_survive_one_cycle_schedules():
    module = MattingModule(_net(), optimizer=functools.partial(torch.optim.AdamW, lr=1e-3),
                           scheduler=functools.partial(torch.optim.lr_scheduler.OneCycleLR, max_lr=1e-2, total_steps=10),
                           lr_scales={"net.encoder": 0.5})
    opt = module.configure_optimizers()["optimizer"]
    peaks = sorted(g["max_lr"] for g in opt.param_groups)
    assert peaks == [5e-3, 1e-2]


def test_init_weights_loads_the_base_and_leaves_the_new_refiner_fresh(tmp_path):
    stage1 = MattingModule(_net())
    path = tmp_path / "stage1.ckpt"
    torch.save({"hyper_parameters": {"net": {"class_path": "matting.models.MattingNet", "init_args": {}}},
                "state_dict": stage1.state_dict()}, path)
    stage2 = MattingModule(_net(PatchRefiner), init_weights=str(path))
    for name, tensor in stage1.net.state_dict().items():
        assert torch.equal(stage2.net.state_dict()[name], tensor), name
    fresh = MattingModule(_net(PatchRefiner))
    assert torch.equal(stage2.net.refiner.stage_full[1].weight, fresh.net.refiner.stage_full[1].weight)


def test_frozen_parts_keep_their_batchnorm_statistics():
    module = MattingModule(_net(PatchRefiner), lr_scales={"net": 0.0, "net.refiner": 1.0})
    module.train()
    encoder_bn = next(m for m in module.net.encoder.modules() if isinstance(m, torch.nn.BatchNorm2d))
    refiner_bn = next(m for m in module.net.refiner.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert not encoder_bn.training and refiner_bn.training
    before = encoder_bn.running_mean.clone()
    module(torch.rand(2, 3, 128, 128))
    assert torch.equal(encoder_bn.running_mean, before)


@pytest.mark.slow
def test_fit_keeps_frozen_batchnorm_statistics(tmp_path):
    """Through Lightning's fit loop, not just module.train(): the encoder (lr scale 0) must not drift."""
    from .tiny_checkpoint import smoke_cli

    cli = smoke_cli(tmp_path, "--trainer.max_steps=2", "--model.lr_scales={net.encoder: 0.0}")
    encoder = cli.model.net.encoder
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    head_before = {k: v.clone() for k, v in cli.model.net.detail_head.state_dict().items()}
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert any(not torch.equal(v, head_before[k]) for k, v in cli.model.net.detail_head.state_dict().items())
