import functools
import itertools

import pytest
import torch

from matting.io.errors import MattingInputError
from matting.models import (
    CollaborativeFusion,
    DetailHead,
    FocusHead,
    GlanceHead,
    LearnedFusion,
    MattingNet,
    ModnetFusion,
    PatchRefiner,
    SemanticHead,
    TimmEncoder,
)
from matting.models.outputs import DetailOutput, GlanceOutput

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
        out = net(image, outputs="all")
        inference = net(image)
    assert out["pred_alpha"].shape == (2, 1, 70, 100)
    assert 0 <= out["pred_alpha"].min() and out["pred_alpha"].max() <= 1
    assert ("pred_semantic" in out) == ("semantic" in heads)
    assert ("pred_detail" in out) == ("detail" in heads)
    if "semantic" in heads:
        assert out["pred_semantic"].shape[-2:] == (96 // 16, 128 // 16)
    assert torch.equal(inference["pred_alpha"], out["pred_alpha"])
    # The inference pass keeps a head's prediction only when it is the alpha.
    assert set(inference) == {"pred_alpha"} | ({"pred_semantic"} if heads == ("semantic",) else set()) \
        | ({"pred_detail"} if heads == ("detail",) else set())


@pytest.mark.parametrize("fusion", ["modnet", "learned"])
def test_eval_skips_the_predictions_only_training_reads(fusion):
    """MODNet's fusion reads hidden features only: in eval mode (MODNet's ``inference=True``) the
    coarse and detail predictions are not computed; a fusion that reads them still gets them."""
    torch.manual_seed(0)
    net = MattingNet(TimmEncoder("test_resnet"), SemanticHead, DetailHead, ModnetFusion if fusion == "modnet" else LearnedFusion)
    image = torch.rand(1, 3, 64, 96)
    assert set(net(image)) == {"pred_alpha", "pred_semantic", "pred_detail"}, "training mode: every output"
    net.eval()
    with torch.no_grad():
        inference, every = net(image), net(image, outputs="all")
    assert torch.equal(inference["pred_alpha"], every["pred_alpha"])
    assert set(every) == {"pred_alpha", "pred_semantic", "pred_detail"}
    assert set(inference) == ({"pred_alpha"} if fusion == "modnet" else set(every))
    with pytest.raises(MattingInputError, match="outputs='semantic'"):
        net(image, outputs="semantic")


def test_ibn_norm_splits_batch_and_instance_statistics():
    """IBNorm: BatchNorm (affine) on the first C // 2 channels, InstanceNorm (no affine) on the rest."""
    from matting.models.blocks import ConvNormAct, IBNorm

    assert [k for k, _ in ConvNormAct(3, 6).state_dict().items()][:3] == ["0.weight", "1.weight", "1.bias"], "bn keys unchanged"
    block = ConvNormAct(3, 7, norm="ibn")
    norm = block[1]
    assert isinstance(norm, IBNorm) and norm.bn.num_features == 3 and norm.inorm.num_features == 4
    assert sum(p.numel() for p in norm.parameters()) == 2 * 3
    x = torch.randn(2, 7, 5, 5) * 3 + 1
    y = norm.train()(x)
    assert torch.allclose(y[:, :3].mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5), "batch statistics on the first half"
    assert torch.allclose(y[:, 3:].mean(dim=(2, 3)), torch.zeros(2, 4), atol=1e-5), "per-image statistics on the rest"
    with pytest.raises(MattingInputError, match="norm='gn'"):
        ConvNormAct(3, 6, norm="gn")


def test_encoder_final_features_replace_the_deepest_level():
    """final_features: the stride-32 level is the backbone's head conv (MobileNetV2: 1280 channels)."""
    plain, final = TimmEncoder("test_efficientnet"), TimmEncoder("test_efficientnet", final_features=True)
    deepest = plain.spec.deepest
    assert final.spec.channels == {**plain.spec.channels, deepest: final.backbone.num_features}
    assert final.spec.channels[deepest] != plain.spec.channels[deepest]
    final.backbone.load_state_dict({**final.backbone.state_dict(), **plain.backbone.state_dict()})
    image = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        a, b = plain.eval()(image), final.eval()(image)
    for stride, f in b.items():
        assert f.shape == (1, final.spec.channels[stride], 64 // stride, 96 // stride)
        if stride != deepest:
            assert torch.equal(f, a[stride]), "the other levels are the same features"


def test_net_without_heads_is_refused():
    with pytest.raises(MattingInputError, match="at least one of semantic_head and detail_head"):
        MattingNet(TimmEncoder("test_resnet"))


def test_detail_head_sizes_follow_semantic_context():
    encoder = TimmEncoder("test_resnet")
    with_context = DetailHead(encoder.spec.with_heads(semantic_s8=7))
    without = DetailHead(encoder.spec)
    assert with_context.conv_s4[0][0].in_channels == without.conv_s4[0][0].in_channels + 7


FUSIONS = {
    "modnet": ModnetFusion,
    "learned": LearnedFusion,
    "learned_dw": lambda spec: LearnedFusion(spec, hidden=8, block="dw"),
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
        out = net(torch.rand(1, 3, 64, 96), outputs="all")
    assert out["pred_alpha"].shape == (1, 1, 64, 96)
    assert 0 <= out["pred_alpha"].min() and out["pred_alpha"].max() <= 1
    if semantic is GlanceHead:
        assert out["pred_glance"].shape == (1, classes, 16, 24)
    assert all(key.startswith("pred_") for key in out), "hidden features are not outputs"


def _glance(logits: torch.Tensor) -> GlanceOutput:
    """A glance output with the given logits; the other fields are not read by the collaborative fusion."""
    return GlanceOutput(pred_glance=logits, pred_semantic_alpha=logits[:, -1:], feat_s8=torch.zeros(1, 1, 1, 1))


def _focus(pred_detail: torch.Tensor) -> DetailOutput:
    return DetailOutput(pred_detail=pred_detail, feat_s2=torch.zeros(1, 1, 1, 1))


def test_collaborative_tt_takes_focus_only_in_the_transition():
    fusion = CollaborativeFusion(mode="TT")
    logits = torch.full((1, 3, 1, 3), -10.0)
    logits[0, 0, 0, 0] = logits[0, 1, 0, 1] = logits[0, 2, 0, 2] = 10.0  # bg, transition, fg
    focus = torch.full((1, 1, 1, 3), 0.3)
    alpha = fusion(torch.zeros(1, 3, 1, 3), _glance(logits), _focus(focus))
    assert torch.allclose(alpha[0, 0, 0], torch.tensor([0.0, 0.3, 1.0]))


def test_collaborative_ft_and_bt_forms():
    logits = torch.tensor([[[[10.0, -10.0]], [[-10.0, 10.0]]]])  # class 0 then class 1
    glance, focus = _glance(logits), _focus(torch.tensor([[[[0.3, 0.3]]]]))
    image = torch.zeros(1, 3, 1, 2)
    assert torch.allclose(CollaborativeFusion(mode="FT")(image, glance, focus)[0, 0, 0], torch.tensor([0.3, 1.0]))
    assert torch.allclose(CollaborativeFusion(mode="BT")(image, glance, focus)[0, 0, 0], torch.tensor([0.0, 0.7]))


def _glance_net(classes: int, fusion=None, detail=FocusHead):
    return MattingNet(TimmEncoder("test_resnet"), functools.partial(GlanceHead, hidden=8, classes=classes), detail, fusion)


@pytest.mark.parametrize("mode,classes", [("TT", 2), ("FT", 3), ("BT", 3)])
def test_collaborative_mode_and_glance_classes_must_agree(mode, classes):
    """GFM: TT's glance has 3 classes (background, transition, foreground), FT's and BT's 2."""
    with pytest.raises(MattingInputError, match=rf"mode='{mode}'.*classes={classes}"):
        _glance_net(classes, functools.partial(CollaborativeFusion, mode=mode))


@pytest.mark.parametrize("mode,classes", [("TT", 3), ("FT", 2), ("BT", 2)])
def test_collaborative_mode_and_glance_classes_that_agree_build(mode, classes):
    net = _glance_net(classes, functools.partial(CollaborativeFusion, mode=mode))
    assert net.fusion_mode == mode and net.semantic_head.classes == classes


@pytest.mark.parametrize("fusion,detail", [(ModnetFusion, FocusHead), (LearnedFusion, FocusHead), (None, FocusHead),
                                           (functools.partial(CollaborativeFusion, mode="FT"), None)],
                         ids=["modnet", "learned", "no-fusion", "ft-without-detail"])
def test_binary_glance_needs_a_collaborative_ft_or_bt_fusion(fusion, detail):
    """Without FT / BT fusion the loss's glance target is TT's three classes."""
    with pytest.raises(MattingInputError, match=r"GlanceHead\(classes=2\).*fusion"):
        _glance_net(2, fusion, detail)


def test_glance_classes_and_fusion_mode_are_checked_values():
    encoder = TimmEncoder("test_resnet")
    with pytest.raises(MattingInputError, match="classes=4"):
        GlanceHead(encoder.spec, classes=4)
    with pytest.raises(MattingInputError, match="mode='XT'"):
        CollaborativeFusion(mode="XT")
    with pytest.raises(MattingInputError, match="mode='topk'"):
        PatchRefiner(encoder.spec.with_heads(detail_s2=4), mode="topk")


@pytest.mark.parametrize("base_scale", [0.0, 1.5])
def test_base_scale_outside_zero_one_is_refused(base_scale):
    with pytest.raises(MattingInputError, match=rf"base_scale={base_scale}"):
        MattingNet(TimmEncoder("test_resnet"), SemanticHead, DetailHead, ModnetFusion, refiner=PatchRefiner, base_scale=base_scale)


def test_trimap_based_variant_needs_a_four_channel_encoder_and_a_trimap():
    with pytest.raises(MattingInputError, match="trimap_input=True.*in_chans=4"):
        MattingNet(TimmEncoder("test_resnet"), SemanticHead, DetailHead, ModnetFusion, trimap_input=True)
    net = MattingNet(TimmEncoder("test_resnet", in_chans=4), SemanticHead, DetailHead, ModnetFusion, trimap_input=True).eval()
    image, trimap = torch.rand(1, 3, 64, 64), torch.full((1, 1, 64, 64), 0.5)
    with pytest.raises(ValueError, match="trimap"):
        net(image)
    with torch.no_grad():
        a = net(image, trimap=trimap)["pred_alpha"]
        b = net(image, trimap=torch.zeros_like(trimap))["pred_alpha"]
    assert a.shape == (1, 1, 64, 64) and not torch.equal(a, b), "the trimap must reach the network"


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["FT", "BT"])
def test_gfm_config_forms_follow_its_comment(mode, tmp_path):
    """configs/model/gfm.yaml: "FT / BT forms: set fusion mode to FT or BT and glance classes to 2"."""
    from matting.runtime.lightning_cli import build_cli

    from .conftest import REPO

    configs = [a for f in ("default.yaml", "model/gfm.yaml", "smoke.yaml") for a in ("-c", str(REPO / "configs" / f))]
    configs += ["--trainer.logger=false", f"--trainer.default_root_dir={tmp_path}"]
    mode_arg = f"--model.net.init_args.fusion.init_args.mode={mode}"
    cli = build_cli(configs + [mode_arg, "--model.net.init_args.semantic_head.init_args.classes=2"], run=False)
    assert cli.model.net.fusion_mode == mode
    with pytest.raises(MattingInputError, match=rf"mode='{mode}'.*classes=3"):
        build_cli(configs + [mode_arg], run=False)


def test_every_network_declares_the_contract_and_strangers_are_refused():
    from matting.models import FCDenseNet, PatchClassifier
    from matting.models.contract import MattingNetwork, require_contract

    net = MattingNet(TimmEncoder("test_resnet"), SemanticHead, DetailHead, ModnetFusion)
    assert (net.pad_multiple, net.refiner, net.trimap_input, net.fusion_mode) == (32, None, False, "TT")
    fc = FCDenseNet(growth=4, down_layers=[1, 1], bottleneck=1, first_channels=8)
    assert isinstance(fc, MattingNetwork) and fc.pad_multiple == 4 and fc.refiner is None
    assert isinstance(PatchClassifier(patch=7, width=4), MattingNetwork)
    with pytest.raises(MattingInputError, match="is not a matting network of this package"):
        require_contract(torch.nn.Conv2d(3, 1, 1), "x.ckpt")


def test_old_unet_configs_build_gfms_decoders_with_the_same_parameters():
    from matting.models import FocusUNetHead, GlanceUNetHead

    spec = TimmEncoder("test_resnet").spec
    old_glance = GlanceHead(spec, hidden=64, classes=3, psp="full", decoder="unet")
    new_glance = GlanceUNetHead(spec, classes=3, psp="full")
    assert type(old_glance) is GlanceUNetHead
    assert {k: v.shape for k, v in old_glance.state_dict().items()} == {k: v.shape for k, v in new_glance.state_dict().items()}
    spec8 = spec.with_heads(semantic_s8=new_glance.out_channels)
    old_focus = FocusHead(spec8, decoder="unet", semantic_context=False)
    assert type(old_focus) is FocusUNetHead and not old_focus.use_semantic
    assert type(GlanceHead(spec)) is GlanceHead and type(FocusHead(spec)) is FocusHead
