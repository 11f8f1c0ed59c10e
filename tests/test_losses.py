import torch

from matting.losses import (
    MattingLoss,
    glance_target,
    gradient_loss,
    laplacian_loss,
    random_band_radius,
    semantic_target,
    transition_band,
)


def test_transition_band_hand_computed():
    alpha = torch.zeros(1, 1, 1, 9)
    alpha[..., 3] = 0.5
    alpha[..., 4:] = 1.0
    band = transition_band(alpha, radius=1)
    # dilate(alpha>0) covers 2..8, erode(alpha>=1) keeps 5..8 (8 is padded as -inf, so kept): band = 2, 3, 4
    assert band[0, 0, 0].tolist() == [0, 0, 1, 1, 1, 0, 0, 0, 0]


def test_band_radius_scales_with_size():
    import random

    rng = random.Random(0)
    radii = [random_band_radius(256, rng) for _ in range(200)]
    assert min(radii) >= 5 and max(radii) <= 10
    assert random_band_radius(64, rng) >= 1


def test_semantic_target_keeps_constant_maps():
    target = semantic_target(torch.ones(1, 1, 64, 64), (4, 4))
    assert torch.allclose(target, torch.ones(1, 1, 4, 4))


def _batch(alpha):
    image = torch.rand(1, 3, *alpha.shape[-2:])
    fg, bg = torch.rand_like(image), torch.rand_like(image)
    image = alpha * fg + (1 - alpha) * bg
    return {"image": image, "alpha": alpha, "fg": fg, "bg": bg}


def test_loss_zero_for_perfect_prediction_and_skips_missing_outputs():
    alpha = torch.zeros(1, 1, 32, 32)
    alpha[..., 8:24, 8:24] = 1
    batch = _batch(alpha)
    band = transition_band(alpha, 2)
    terms = MattingLoss()({"pred_alpha": alpha.clone()}, batch, band)
    assert set(terms) == {"alpha", "composition", "loss"}
    assert terms["loss"].item() < 1e-6


def test_loss_terms_weighted_and_band_boosted():
    alpha = torch.zeros(1, 1, 16, 16)
    batch = _batch(alpha)
    band = torch.zeros_like(alpha)
    band[..., :8, :] = 1  # half the image
    pred = torch.full_like(alpha, 0.5)
    terms = MattingLoss(semantic=0, detail=10, alpha=2, composition=0, band_boost=4)(
        {"pred_alpha": pred, "pred_detail": pred}, batch, band)
    # alpha: 2 * (mean 0.5 + 4 * 0.5 * 0.5) = 3.0 ; detail: 10 * 0.5 * 0.5 = 2.5
    assert abs(terms["alpha"].item() - 3.0) < 1e-6
    assert abs(terms["detail"].item() - 2.5) < 1e-6
    assert abs(terms["loss"].item() - 5.5) < 1e-6


def test_glance_targets_per_mode():
    alpha = torch.tensor([[[[0.0, 0.0, 0.6, 1.0, 1.0]]]])
    band = torch.tensor([[[[0.0, 1.0, 1.0, 1.0, 0.0]]]])
    assert glance_target(alpha, band, "TT")[0, 0].tolist() == [0, 1, 1, 1, 2]
    assert glance_target(alpha, band, "FT")[0, 0].tolist() == [0, 0, 0, 0, 1]
    assert glance_target(alpha, band, "BT")[0, 0].tolist() == [0, 1, 1, 1, 1]


def test_bt_mode_flips_the_detail_target():
    alpha = torch.zeros(1, 1, 8, 8)
    alpha[..., 4:] = 1
    band = torch.ones_like(alpha)
    batch = {"image": torch.rand(1, 3, 8, 8), "alpha": alpha}
    outputs = {"pred_alpha": alpha, "pred_detail": 1 - alpha}
    loss = MattingLoss(semantic=0, detail=1, alpha=0, composition=0)
    assert loss(outputs, batch, band, mode="BT")["detail"].item() == 0
    assert loss(outputs, batch, band, mode="TT")["detail"].item() == 1


def test_structure_terms_are_zero_only_for_the_truth():
    gt = torch.zeros(1, 1, 32, 32)
    gt[..., 10:22, 10:22] = 1
    blurred = torch.nn.functional.avg_pool2d(gt, 5, stride=1, padding=2)
    assert laplacian_loss(gt, gt).item() == 0 and gradient_loss(gt, gt).item() == 0
    assert laplacian_loss(blurred, gt).item() > 0.01 and gradient_loss(blurred, gt).item() > 0.01
    terms = MattingLoss(laplacian=1, gradient=1)({"pred_alpha": blurred}, {"image": torch.rand(1, 3, 32, 32), "alpha": gt}, transition_band(gt, 2))
    assert {"laplacian", "gradient"} <= set(terms)


def test_segmentation_term_is_bce_against_the_binary_mask():
    gt = torch.tensor([[[[0.0, 0.4, 0.6, 1.0]]]])
    pred = torch.tensor([[[[0.5, 0.5, 0.5, 0.5]]]])
    terms = MattingLoss(semantic=0, detail=0, alpha=0, composition=0, segmentation=2.0)({"pred_alpha": pred}, {"image": torch.rand(1, 3, 1, 4), "alpha": gt}, torch.zeros_like(gt))
    assert abs(terms["segmentation"].item() - 2.0 * 0.693147) < 1e-4
