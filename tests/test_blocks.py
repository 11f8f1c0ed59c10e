"""Cheap head blocks (``block``: conv / dw / ir) and the detail branch's resolution (``stride``: 2 / 4)."""

from __future__ import annotations

import functools
import hashlib
import json

import numpy as np
import pytest
import torch
from torch import nn

from matting.inference import prepare_for_inference
from matting.inference.frozen import FrozenAlphaNet, fold_batchnorm
from matting.io.errors import MattingInputError
from matting.models import (
    DetailHead,
    MattingNet,
    ModnetFusion,
    SemanticHead,
    TimmEncoder,
)
from matting.models.blocks import (
    BLOCKS,
    ConvNormAct,
    DepthwiseSeparable,
    InvertedResidual,
    conv_block,
)
from matting.bench.flops import count

pytestmark = pytest.mark.usefixtures("one_torch_thread")

KINDS_STRIDES = [(kind, stride) for kind in BLOCKS for stride in (2, 4)]


def make_net(block: str = "conv", stride: int = 2, seed: int = 0, **detail) -> MattingNet:
    """The default family (SemanticHead, DetailHead, ModnetFusion) on the tiny ``test_resnet`` encoder."""
    torch.manual_seed(seed)
    return MattingNet(
        TimmEncoder("test_resnet"),
        semantic_head=functools.partial(SemanticHead, block=block),
        detail_head=functools.partial(DetailHead, block=block, stride=stride, **detail),
        fusion=functools.partial(ModnetFusion, block=block),
    )


def head_params(net: nn.Module) -> int:
    return sum(p.numel() for name, p in net.named_parameters() if not name.startswith("encoder."))


@pytest.mark.parametrize("kind", BLOCKS)
@pytest.mark.parametrize("in_ch,out_ch,stride", [(8, 8, 1), (8, 16, 1), (24, 8, 2)])
def test_every_block_kind_keeps_the_conv_shapes(kind, in_ch, out_ch, stride):
    for kernel in (3, 5):
        block = conv_block(kind, in_ch, out_ch, kernel, stride=stride)
        assert block(torch.rand(2, in_ch, 16, 12)).shape == (2, out_ch, 16 // stride, 12 // stride)


def test_block_kinds_are_the_documented_layers():
    assert type(conv_block("conv", 8, 16, 3)) is ConvNormAct
    dw = conv_block("dw", 8, 16, 5)
    assert isinstance(dw, DepthwiseSeparable)
    assert dw[0].groups == 8 and dw[0].kernel_size == (5, 5) and dw[3].kernel_size == (1, 1)
    assert (dw(torch.randn(1, 8, 6, 6)) >= 0).all()  # ends in a ReLU, like the dense conv
    ir = conv_block("ir", 8, 8, 3)
    assert isinstance(ir, InvertedResidual) and ir.residual
    assert ir.depthwise[0].groups == ir.depthwise[0].in_channels == 32  # expand 4 x min(in, out)
    assert not conv_block("ir", 8, 8, 3, stride=2).residual and not conv_block("ir", 8, 16, 3).residual
    wide = conv_block("ir", 960, 96, 5)  # a wide encoder feature reduced: expanded from the output width
    assert wide.depthwise[0].in_channels == 384
    assert isinstance(conv_block("ir", 8, 16, 3, expand=1).expand, nn.Identity)  # no expansion conv at ratio 1


def test_inverted_residual_adds_its_input():
    ir = conv_block("ir", 8, 8, 3).eval()
    x = torch.randn(1, 8, 6, 6)
    with torch.no_grad():
        assert torch.allclose(ir(x), x + ir.project(ir.depthwise(ir.expand(x))))


@pytest.mark.parametrize("part,kwargs", [(SemanticHead, {}), (DetailHead, {}), (ModnetFusion, {}), (None, {})])
def test_unknown_block_is_refused_naming_the_key_and_the_choices(part, kwargs):
    spec = TimmEncoder("test_resnet").spec.with_heads(semantic_s8=32, detail_s2=32)
    with pytest.raises(MattingInputError, match=r"block must be one of conv, dw, ir, got block='sep'"):
        part(spec, block="sep") if part else conv_block("sep", 8, 8)


def test_detail_stride_other_than_2_or_4_is_refused():
    with pytest.raises(MattingInputError, match=r"DetailHead stride must be 2 or 4, got stride=8"):
        DetailHead(TimmEncoder("test_resnet").spec, stride=8)


@pytest.mark.parametrize("block,stride", KINDS_STRIDES)
@pytest.mark.parametrize("size", [(64, 64), (64, 96), (50, 41)])
def test_every_kind_and_stride_gives_the_output_shapes(block, stride, size):
    net = make_net(block, stride).train()
    image = torch.rand(2, 3, *size)
    out = net(image)
    assert out["pred_alpha"].shape == out["pred_detail"].shape == (2, 1, *size)
    padded = [-(-s // 32) * 32 for s in size]
    assert out["pred_semantic"].shape == (2, 1, padded[0] // 16, padded[1] // 16)
    sum(v.mean() for v in out.values()).backward()  # every layer is on the path of some training output
    assert all(p.grad is not None for p in net.parameters())
    with torch.no_grad():
        alpha = net.eval()(image)["pred_alpha"]
    assert alpha.shape == (2, 1, *size) and 0 <= alpha.min() <= alpha.max() <= 1


def test_detail_stride_4_drops_the_half_resolution_stack():
    head = make_net(stride=4).detail_head
    assert not hasattr(head, "conv_s2") and isinstance(head.merge_s2, ConvNormAct)
    assert head.merge_s2[0].in_channels == 2 * 32 + 3 and head.out_channels == 32  # the fusion's interface is kept
    assert DetailHead(TimmEncoder("test_resnet").spec, stride=4, image_s2=False).merge_s2[0].in_channels == 2 * 32


# The default network before the block and stride options existed (recorded on that code, test_resnet
# encoder, torch.manual_seed(0)): sha256 of its head parameter names and shapes, and the sums of its
# outputs on a seeded 64 px image. Checkpoints of earlier versions load by these names.
DEFAULT_HEADS_DIGEST = "6835065820a925ca24ce04a033c77393525af24cd766ed1511d1b0a340a1a333"
DEFAULT_OUTPUT_SUMS = {"pred_semantic": 8.230552434921265, "pred_detail": 2108.0127513706684, "pred_alpha": 2047.3355251252651}


def test_default_blocks_and_stride_are_the_network_as_before():
    torch.manual_seed(0)
    net = MattingNet(TimmEncoder("test_resnet"), semantic_head=SemanticHead, detail_head=DetailHead, fusion=ModnetFusion).eval()
    keys = [(k, list(v.shape)) for k, v in net.state_dict().items() if not k.startswith("encoder.")]
    assert hashlib.sha256(json.dumps(keys).encode()).hexdigest() == DEFAULT_HEADS_DIGEST
    explicit = make_net("conv", 2).eval()
    assert list(explicit.state_dict()) == list(net.state_dict())
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out, again = net(image, outputs="all"), explicit(image, outputs="all")
    for key, expected in DEFAULT_OUTPUT_SUMS.items():
        assert out[key].double().sum().item() == pytest.approx(expected, rel=1e-5), key
        assert torch.equal(out[key], again[key]), key


def test_cheap_blocks_and_the_coarser_detail_branch_cut_params_and_flops():
    nets = {key: make_net(*key).eval() for key in KINDS_STRIDES}
    costs = {key: count(net, 64) for key, net in nets.items()}
    params = {key: head_params(net) for key, net in nets.items()}
    for stride in (2, 4):
        assert params["dw", stride] < params["ir", stride] < params["conv", stride]
        flops = {block: costs[block, stride]["flops"] for block in BLOCKS}
        assert flops["dw"] < flops["ir"] < flops["conv"]
    for block in BLOCKS:
        assert costs[block, 4]["by_part"]["detail_head"] < costs[block, 2]["by_part"]["detail_head"]
        assert costs[block, 4]["by_part"]["encoder"] == costs[block, 2]["by_part"]["encoder"]


@pytest.mark.parametrize("block,stride", KINDS_STRIDES)
def test_every_kind_folds_traces_and_freezes_to_the_same_alpha(block, stride):
    net = make_net(block, stride, seed=1).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so folding is tested
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
    folded = fold_batchnorm(net)
    assert folded is not net  # folding checked out against the eager network
    heads = (folded.semantic_head, folded.detail_head, folded.fusion)
    assert not any(isinstance(m, nn.BatchNorm2d) for head in heads for m in head.modules())  # every head BatchNorm folded
    fast = prepare_for_inference(net)
    assert isinstance(fast, FrozenAlphaNet)
    image = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = net(image)["pred_alpha"]
        got = fast(image.contiguous(memory_format=torch.channels_last))["pred_alpha"]
    assert fast._graphs and all(graph is not None for graph in fast._graphs.values())  # the frozen graph ran, not eager
    assert (got - expected).abs().max().item() <= 1e-4


@pytest.mark.parametrize("block,stride", [("dw", 4), ("ir", 4), ("ir", 2)])
def test_every_kind_exports_to_onnx_with_parity(block, stride, tmp_path):
    pytest.importorskip("onnxruntime")
    from matting.inference.export import export_onnx, refined_verify_shapes, verify_onnx

    net = make_net(block, stride, seed=3).eval()
    path = tmp_path / "net.onnx"
    export_onnx(net, path, base_size=64)
    results = verify_onnx(net, path, refined_verify_shapes(64), base_size=64)
    assert len(results) == 3 and all(err <= 1e-4 for _, err in results), results
    assert np.isfinite([err for _, err in results]).all()
