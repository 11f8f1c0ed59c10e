"""Segmentation baselines: output shapes, the patch classifiers' locality, FC-DenseNet-103's size."""

import pytest
import torch

from matting.io.errors import MattingInputError
from matting.losses import MattingLoss, transition_band
from matting.models.segmentation import FCDenseNet, PatchClassifier


@pytest.mark.parametrize("size", [(32, 32), (37, 50)])
@pytest.mark.parametrize("net", [PatchClassifier(7, width=8), PatchClassifier(6, dense=True, width=8),
                                 FCDenseNet(growth=4, down_layers=(2, 2), bottleneck=2, first_channels=8)],
                         ids=["centre", "dense", "fcdensenet"])
def test_output_shape_and_range(net, size):
    image = torch.rand(2, 3, *size)
    out = net.eval()(image)
    assert set(out) == {"pred_alpha"}
    assert out["pred_alpha"].shape == (2, 1, *size)
    assert 0 <= out["pred_alpha"].min() and out["pred_alpha"].max() <= 1


def test_centre_form_receptive_field_is_k():
    k, r = 7, 3
    net = PatchClassifier(k, width=8).eval()
    image = torch.rand(1, 3, 25, 25)
    cy = cx = 12
    with torch.no_grad():
        ref = net(image)["pred_alpha"][0, 0, cy, cx]
        for dy, dx, inside in [(r + 1, 0, False), (0, -(r + 1), False), (r + 1, r + 1, False), (r, r, True), (-r, 0, True)]:
            changed = image.clone()
            changed[0, :, cy + dy, cx + dx] = 1 - changed[0, :, cy + dy, cx + dx]
            value = net(changed)["pred_alpha"][0, 0, cy, cx]
            assert (value != ref).item() == inside, (dy, dx)


def test_centre_form_equals_classifying_each_patch():
    k = 5
    net = PatchClassifier(k, width=8).eval()
    image = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        full = net(image)["pred_alpha"][0, 0]
        # The patch around (6, 7), classified alone: its centre output is the full map's value.
        alone = net(image[..., 4:9, 5:10])["pred_alpha"][0, 0, 2, 2]
    torch.testing.assert_close(alone, full[6, 7])


def test_dense_form_patches_are_independent():
    k = 6
    net = PatchClassifier(k, dense=True, width=8).eval()
    image = torch.rand(1, 3, 3 * k, 2 * k + 3)  # the last column of patches is padded
    changed = image.clone()
    changed[..., k:2 * k, k:2 * k] = torch.rand(3, k, k)  # patch (1, 1) only
    with torch.no_grad():
        a, b = net(image)["pred_alpha"][0, 0], net(changed)["pred_alpha"][0, 0]
    differs = (a != b)
    assert differs[k:2 * k, k:2 * k].all()
    differs[k:2 * k, k:2 * k] = False
    assert not differs.any()


def test_patch_classifier_rejects_even_centre_patch():
    with pytest.raises(MattingInputError, match=r"dense=False.*odd.*patch=8"):
        PatchClassifier(8)


def test_fcdensenet_103_size():
    params = sum(p.numel() for p in FCDenseNet().parameters())
    # FC-DenseNet-103 as published (growth 16, blocks 4-5-7-10-12 / 15 / 12-10-7-5-4, 48 first
    # filters): 9.32 M here; the paper reports 9.4 M.
    assert 9.2e6 < params < 9.5e6, params
    net = FCDenseNet()
    depth = sum(isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) for m in net.modules())
    # 103 = first conv + 38 down layers + 5 transitions down + 15 bottleneck + 5 transitions up
    # + 38 up layers + the final 1x1 convolution.
    assert depth == 103


@pytest.mark.parametrize("net", [PatchClassifier(5, width=4), FCDenseNet(growth=4, down_layers=(2,), bottleneck=2, first_channels=8)],
                         ids=["patch", "fcdensenet"])
def test_segmentation_loss_trains(net):
    loss = MattingLoss(semantic=0, glance=0, detail=0, alpha=0, composition=0, segmentation=1, band_boost=0)
    image = torch.rand(2, 3, 16, 16)
    alpha = (torch.rand(2, 1, 16, 16) > 0.5).float()
    terms = loss(net(image), {"image": image, "alpha": alpha}, transition_band(alpha, 1))
    terms["loss"].backward()
    assert set(terms) == {"segmentation", "loss"}
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


@pytest.mark.parametrize("net_config", [
    {"class_path": "matting.models.segmentation.FCDenseNet",
     "init_args": {"growth": 4, "down_layers": [2, 2], "bottleneck": 2, "first_channels": 8}},
    {"class_path": "matting.models.segmentation.PatchClassifier", "init_args": {"patch": 5, "width": 4}},
], ids=["fcdensenet", "patch"])
def test_segmentation_checkpoint_loads_for_prediction(net_config, tmp_path):
    """A trained segmentation baseline is scored through ``matting predict``, which rebuilds it from its checkpoint."""
    from matting.inference.loading import build_net, load_net
    from tests.tiny_checkpoint import write_checkpoint

    torch.manual_seed(0)
    net = build_net(net_config)
    path = write_checkpoint(tmp_path / "seg.ckpt", net, net_config)
    loaded = load_net(path)
    assert type(loaded) is type(net)
    image = torch.rand(1, 3, 36, 40)
    with torch.no_grad():
        assert torch.equal(loaded(image)["pred_alpha"], net(image)["pred_alpha"])
