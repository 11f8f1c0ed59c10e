import itertools

import pytest
import torch

from matting.models import (
    CollaborativeFusion,
    DetailHead,
    FocusHead,
    GlanceHead,
    LearnedFusion,
    MattingNet,
    ModnetFusion,
    SemanticHead,
    TimmEncoder,
)

from .conftest import TINY_ENCODERS


@pytest.mark.parametrize("name", TINY_ENCODERS)
def test_encoder_channels_match_outputs(name):
    encoder = TimmEncoder(name)
    feats = encoder(torch.rand(1, 3, 64, 96))
    assert set(feats) >= {2, 4}, "detail head needs stride 2 and 4"
    assert set(feats) == set(encoder.spec.channels)
    for stride, f in feats.items():
        assert f.shape == (1, encoder.spec.channels[stride], 64 // stride, 96 // stride)


def test_encoder_unknown_name_is_a_clear_error():
    from matting.io.errors import MattingInputError

    with pytest.raises(MattingInputError, match="no_such_backbone"):
        TimmEncoder("no_such_backbone")


HEAD_SUBSETS = [c for r in (1, 2) for c in itertools.combinations(["semantic", "detail"], r)]


@pytest.mark.parametrize("heads", HEAD_SUBSETS, ids=lambda h: "+".join(h))
@pytest.mark.parametrize("name", TINY_ENCODERS)
def test_net_any_head_subset_any_size(name, heads):
    torch.manual_seed(0)
    net = MattingNet(
        TimmEncoder(name),
        semantic_head=SemanticHead if "semantic" in heads else None,
        detail_head=DetailHead if "detail" in heads else None,
        fusion=ModnetFusion,
    ).eval()
    image = torch.rand(2, 3, 70, 100)  # not a multiple of 32: padded inside, cropped back
    with torch.no_grad():
        out = net(image)
    assert out["pred_alpha"].shape == (2, 1, 70, 100)
    assert 0 <= out["pred_alpha"].min() and out["pred_alpha"].max() <= 1
    assert ("pred_semantic" in out) == ("semantic" in heads)
    assert ("pred_detail" in out) == ("detail" in heads)
    if "semantic" in heads:
        assert out["pred_semantic"].shape[-2:] == (96 // 16, 128 // 16)


def test_net_without_heads_is_refused():
    with pytest.raises(ValueError, match="at least one"):
        MattingNet(TimmEncoder("test_resnet"))


def test_detail_head_sizes_follow_semantic_context():
    encoder = TimmEncoder("test_resnet")
    with_context = DetailHead(encoder.spec.with_context(semantic_s8=7))
    without = DetailHead(encoder.spec)
    assert with_context.conv_s4[0][0].in_channels == without.conv_s4[0][0].in_channels + 7


FUSIONS = {
    "modnet": ModnetFusion,
    "learned": LearnedFusion,
    "tt": lambda spec: CollaborativeFusion(spec, "TT"),
    "ft": lambda spec: CollaborativeFusion(spec, "FT"),
    "bt": lambda spec: CollaborativeFusion(spec, "BT"),
}


@pytest.mark.parametrize("fusion", sorted(FUSIONS))
@pytest.mark.parametrize("semantic,detail", [(SemanticHead, DetailHead), (GlanceHead, FocusHead), (GlanceHead, DetailHead), (SemanticHead, FocusHead)],
                         ids=["modnet", "gfm", "glance+hr", "semantic+focus"])
def test_every_head_and_fusion_combination(semantic, detail, fusion):
    classes = 2 if fusion in ("ft", "bt") else 3
    sem = (lambda spec: GlanceHead(spec, hidden=16, classes=classes)) if semantic is GlanceHead else semantic
    net = MattingNet(TimmEncoder("test_convnext"), sem, detail, FUSIONS[fusion]).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 3, 64, 96))
    assert out["pred_alpha"].shape == (1, 1, 64, 96)
    assert 0 <= out["pred_alpha"].min() and out["pred_alpha"].max() <= 1
    if semantic is GlanceHead:
        assert out["pred_glance"].shape == (1, classes, 16, 24)
    assert not {"semantic_s8", "detail_s2"} & set(out), "hidden features are not outputs"


def test_collaborative_tt_takes_focus_only_in_the_transition():
    fusion = CollaborativeFusion(mode="TT")
    logits = torch.full((1, 3, 1, 3), -10.0)
    logits[0, 0, 0, 0] = logits[0, 1, 0, 1] = logits[0, 2, 0, 2] = 10.0  # bg, transition, fg
    focus = torch.full((1, 1, 1, 3), 0.3)
    alpha = fusion(torch.zeros(1, 3, 1, 3), {"pred_glance": logits, "pred_detail": focus})["pred_alpha"]
    assert torch.allclose(alpha[0, 0, 0], torch.tensor([0.0, 0.3, 1.0]))


def test_collaborative_ft_and_bt_forms():
    logits = torch.tensor([[[[10.0, -10.0]], [[-10.0, 10.0]]]])  # class 0 then class 1
    focus = torch.tensor([[[[0.3, 0.3]]]])
    ctx = {"pred_glance": logits, "pred_detail": focus}
    image = torch.zeros(1, 3, 1, 2)
    assert torch.allclose(CollaborativeFusion(mode="FT")(image, ctx)["pred_alpha"][0, 0, 0], torch.tensor([0.3, 1.0]))
    assert torch.allclose(CollaborativeFusion(mode="BT")(image, ctx)["pred_alpha"][0, 0, 0], torch.tensor([0.0, 0.7]))


def test_trimap_based_variant_needs_a_four_channel_encoder_and_a_trimap():
    with pytest.raises(ValueError, match="in_chans=4"):
        MattingNet(TimmEncoder("test_resnet"), SemanticHead, DetailHead, ModnetFusion, trimap_input=True)
    net = MattingNet(TimmEncoder("test_resnet", in_chans=4), SemanticHead, DetailHead, ModnetFusion, trimap_input=True).eval()
    image, trimap = torch.rand(1, 3, 64, 64), torch.full((1, 1, 64, 64), 0.5)
    with pytest.raises(ValueError, match="trimap"):
        net(image)
    with torch.no_grad():
        a = net(image, trimap=trimap)["pred_alpha"]
        b = net(image, trimap=torch.zeros_like(trimap))["pred_alpha"]
    assert a.shape == (1, 1, 64, 64) and not torch.equal(a, b), "the trimap must reach the network"
