import functools

import pytest
import torch

from matting.losses import MattingLoss, transition_band
from matting.models import (
    DetailHead,
    GuidedFilterRefiner,
    MattingNet,
    ModnetFusion,
    PatchRefiner,
    SemanticHead,
    TimmEncoder,
)


def _net(refiner, encoder="test_resnet", **kw):
    torch.manual_seed(0)
    return MattingNet(TimmEncoder(encoder), SemanticHead, DetailHead, ModnetFusion, refiner=refiner, **kw)


@pytest.mark.parametrize("refiner", [PatchRefiner, GuidedFilterRefiner], ids=["patch", "guided"])
@pytest.mark.parametrize("encoder", ["test_resnet", "test_convnext"])
def test_refined_net_outputs_full_resolution_any_size(refiner, encoder):
    net = _net(refiner, encoder).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 3, 250, 302))  # not multiples of 4 or 32
    assert out["pred_alpha"].shape == (1, 1, 250, 302)
    assert 0 <= out["pred_alpha"].min() and out["pred_alpha"].max() <= 1
    assert out["pred_alpha_base"].shape[-2:] == net.base_shape(250, 302)
    assert ("pred_error" in out) == (refiner is PatchRefiner)


def test_base_size_argument_sets_the_base_pass():
    net = _net(GuidedFilterRefiner).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 3, 256, 256), base_size=(96, 64))
    assert out["pred_alpha_base"].shape[-2:] == (96, 64)


def test_patch_selection_modes():
    spec = TimmEncoder("test_resnet").spec.with_heads(semantic_s8=8, detail_s2=8)
    err = torch.zeros(1, 1, 4, 4)
    err[0, 0, 1, 2] = 0.9
    err[0, 0, 3, 0] = 0.5
    err[0, 0, 0, 0] = 0.05
    top = PatchRefiner(spec, mode="sampling", sample_pixels=2 * 16).select(err)
    assert top.sum() == 2 and top[0, 0, 1, 2] and top[0, 0, 3, 0]
    thr = PatchRefiner(spec, mode="thresholding", threshold=0.1).select(err)
    assert thr.sum() == 2
    assert PatchRefiner(spec, mode="full").select(err).all()
    # Never more cells than requested, and cells with zero error are not refined.
    assert PatchRefiner(spec, mode="sampling", sample_pixels=100 * 16).select(err).sum() == 3


def test_patch_refiner_changes_only_the_selected_cells():
    net = _net(functools.partial(PatchRefiner, mode="sampling", sample_pixels=16 * 10)).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 3, 128, 128))
        coarse = torch.nn.functional.interpolate(out["pred_alpha_base"], size=(128, 128), mode="bilinear", align_corners=False)
    changed = (out["pred_alpha"] != coarse).view(1, 32, 4, 32, 4).any(dim=(2, 4))
    cells = out["refined_cells"][:, 0]
    assert cells.sum() == 10
    assert not (changed & ~cells).any(), "only refined cells may differ from the upsampled base"


def test_patch_refiner_full_mode_is_local():
    """A change of the input far from a pixel leaves the refinement of that pixel unchanged, as
    long as the base output is the same: the refiner only looks at its window."""
    spec = TimmEncoder("test_resnet").spec.with_heads(detail_s2=4)
    refiner = PatchRefiner(spec, mode="full").eval()
    with torch.no_grad():
        refiner.stage_full[1].bias.fill_(0.5)  # keep random-init outputs inside (0, 1), away from the clamp
        refiner.stage_full[1].weight.mul_(0.01)
    small = torch.rand(1, 3, 16, 16)
    base_alpha, feat = torch.rand(1, 1, 16, 16), torch.rand(1, 4, 8, 8)
    image = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        a = refiner(image, small, base_alpha, feat).pred_alpha
        image2 = image.clone()
        image2[..., 40:, 40:] = 0
        b = refiner(image2, small, base_alpha, feat).pred_alpha
    assert torch.equal(a[..., :32, :32], b[..., :32, :32])
    assert not torch.equal(a[..., 44:, 44:], b[..., 44:, 44:])


def test_guided_filter_keeps_a_constant_alpha_on_a_flat_image():
    """b = mean_alpha - A . mean_guide: on a flat guide, a constant base alpha comes out exactly,
    whatever A the (random) network predicts."""
    spec = TimmEncoder("test_resnet").spec.with_heads(detail_s2=4)
    refiner = GuidedFilterRefiner(spec).eval()
    base_alpha, feat = torch.full((1, 1, 16, 16), 0.7), torch.rand(1, 4, 8, 8)
    small = torch.full((1, 3, 16, 16), 0.3)  # flat guide: no variance, A x is constant
    with torch.no_grad():
        out = refiner(torch.full((1, 3, 64, 64), 0.3), small, base_alpha, feat).pred_alpha
    assert torch.allclose(out, torch.full_like(out, 0.7), atol=1e-5)


def test_refiner_losses_cover_both_scales_and_the_error_map():
    net = _net(PatchRefiner)
    image = torch.rand(2, 3, 128, 128)
    alpha = (torch.rand(2, 1, 128, 128) > 0.5).float()
    out = net(image)
    terms = MattingLoss(gradient=1.0)(out, {"image": image, "alpha": alpha}, transition_band(alpha, 3))
    assert {"semantic", "detail", "alpha", "alpha_base", "error", "gradient"} <= set(terms)
    terms["loss"].backward()
    assert net.refiner.stage_full[1].weight.grad is not None
    assert net.refiner.error_head[1].weight.grad is not None


@pytest.mark.parametrize("size", [(2048, 2048)])
def test_large_input_runs_in_chunks(size):
    net = _net(functools.partial(PatchRefiner, chunk=4096)).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 3, *size))
    assert out["pred_alpha"].shape[-2:] == size
    assert out["refined_cells"].sum() == size[0] * size[1] // 16 // 16


def test_residual_patch_refiner_starts_as_the_upsampled_base_and_learns_a_correction():
    net = _net(functools.partial(PatchRefiner, mode="full", residual=True)).eval()
    image = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        out = net(image)
        coarse = torch.nn.functional.interpolate(out["pred_alpha_base"], size=(64, 64), mode="bilinear", align_corners=False)
    assert torch.equal(out["pred_alpha"], coarse.clamp(0, 1))  # every cell refined, none changed yet
    # The correction is trainable: one step (BatchNorm in eval mode) moves the refined alpha.
    target = torch.zeros(1, 1, 64, 64)
    params = [p for n, p in net.named_parameters() if n.startswith("refiner.stage_full")]
    optimizer = torch.optim.SGD(params, lr=1.0)
    loss = (net(image)["pred_alpha"] - target).abs().mean()
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        assert not torch.equal(net(image)["pred_alpha"], out["pred_alpha"])
