"""Matting metrics: hand-computed values, properties, MATLAB-parity details, protocols.

Reference values for the alphamatting regression come from experiments/metrics_alphamatting.
"""

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from scipy import ndimage

from matting.io.errors import MattingInputError
from matting.io.images import list_images, read_alpha, read_trimap
from matting.metrics import (
    DISPLAY_SCALES,
    METRIC_HEADERS,
    PROTOCOLS,
    MattingMetrics,
    _largest_component,
    compute_metrics,
    conn,
    format_metric,
    grad,
    mad,
    metric_keys,
    mse,
    sad,
)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
F32 = np.float32

PRED = np.array([[0.0, 0.5], [1.0, 1.0]], F32)
GT = np.array([[0.0, 1.0], [1.0, 0.0]], F32)
TOP_ROW = np.array([[True, True], [False, False]])


# ---------------------------------------------------------------------------- SAD / MSE / MAD


def test_sad_mse_mad_hand_computed():
    # |diff| = 0, 0.5, 0, 1 ; diff^2 = 0, 0.25, 0, 1
    assert sad(PRED, GT) == pytest.approx(1.5 / 1000)
    assert mse(PRED, GT) == pytest.approx(1.25 / 4)
    assert mad(PRED, GT) == pytest.approx(1.5 / 4)
    assert sad(PRED, GT, TOP_ROW) == pytest.approx(0.5 / 1000)
    assert mse(PRED, GT, TOP_ROW) == pytest.approx(0.25 / 2)
    assert mad(PRED, GT, TOP_ROW) == pytest.approx(0.5 / 2)


def test_empty_mask_counts_nothing():
    empty = np.zeros((2, 2), bool)
    for metric in (sad, mse, mad, grad, conn):
        assert metric(PRED, GT, empty) == 0.0


def test_input_checks():
    with pytest.raises(MattingInputError, match="pred_alpha.*\\[0, 1\\]"):
        sad(PRED * 255, GT)
    with pytest.raises(MattingInputError, match="gt_alpha"):
        mse(PRED, np.full((2, 2), np.nan, F32))
    with pytest.raises(MattingInputError, match="shape"):
        mad(PRED, GT[:1])
    with pytest.raises(MattingInputError, match="mask"):
        sad(PRED, GT, np.ones((3, 3), bool))


# ---------------------------------------------------------------------------- Grad


def _kernel_factors(sigma=1.4):
    x = np.arange(-4, 5, dtype=np.float64)
    gauss = np.exp(-(x**2) / (2 * sigma**2))
    dgauss = -x * gauss
    return gauss / np.linalg.norm(gauss), dgauss / np.linalg.norm(dgauss)


def test_grad_impulse_equals_twice_the_unit_kernel_energy():
    # gt constant -> zero gradient; pred an impulse far from the border. The amplitude map is the
    # kernel pair itself, so sum(amp^2) = ||hx||^2 + ||hy||^2 = 2 (both L2-normalised).
    gt = np.zeros((17, 17), F32)
    pred = gt.copy()
    pred[8, 8] = 1.0
    assert grad(pred, gt) == pytest.approx(2.0 / 1000, rel=1e-6)


def test_grad_min_max_normalises_each_map():
    # 0.25 background with a 0.5 impulse becomes 0/1 after mat2gray: same value as above.
    gt = np.full((17, 17), 0.7, F32)
    pred = np.full((17, 17), 0.25, F32)
    pred[8, 8] = 0.5
    assert grad(pred, gt) == pytest.approx(2.0 / 1000, rel=1e-6)


def test_grad_single_pixel_mask():
    # At the right neighbour of the impulse: gx = s(0) d(-1), gy = d(0) s(-1) = 0.
    smooth, deriv = _kernel_factors()
    gt = np.zeros((17, 17), F32)
    pred = gt.copy()
    pred[8, 8] = 1.0
    mask = np.zeros((17, 17), bool)
    mask[8, 9] = True
    expected = (smooth[4] * deriv[3]) ** 2
    assert grad(pred, gt, mask) == pytest.approx(expected / 1000, rel=1e-6)


def test_grad_kernel_is_the_matlab_size_and_norm():
    from matting.metrics import _DERIVATIVE, _SMOOTH

    assert len(_SMOOTH) == len(_DERIVATIVE) == 9  # halfsize = ceil(1.4 sqrt(-2 ln(sqrt(2 pi) 1.4 0.01))) = 4
    hx = np.outer(_SMOOTH, _DERIVATIVE)
    assert np.sum(hx**2) == pytest.approx(1.0)
    # Pre-normalisation L2 norm of the MATLAB kernel (with the 1/(sigma sqrt(2 pi)) factors).
    x = np.arange(-4, 5)
    g = np.exp(-(x**2) / (2 * 1.4**2)) / (1.4 * math.sqrt(2 * math.pi))
    assert np.linalg.norm(np.outer(g, -x * g / 1.4**2)) == pytest.approx(0.1017678, rel=1e-6)


def test_grad_replicates_borders():
    # A step touching the left border: with zero padding the border column would see a fake
    # edge; with replication the amplitude there equals the one deep inside the image.
    gt = np.zeros((20, 20), F32)
    pred = np.zeros((20, 20), F32)
    pred[:, 10:] = 1.0
    left = np.zeros((20, 20), bool)
    left[:, :2] = True
    assert grad(pred, gt, left) == 0.0


# ---------------------------------------------------------------------------- Conn


def test_conn_isolated_island():
    # The island at column 4 has both-maps value 0 -> level 0; pred's d = 1 -> phi 0, gt's phi 1.
    gt = np.array([[1, 1, 1, 0, 0]], F32)
    pred = np.array([[1, 1, 1, 0, 1]], F32)
    assert conn(pred, gt) == pytest.approx(1.0 / 1000, rel=1e-6)


def test_conn_levels_hand_computed():
    # min(pred, gt) = 0.5 0.5 0 0.3: at 0.1 the largest component is {0, 1}; pixel 3 leaves at
    # 0.1 -> l = 0: phi_pred = 1 - 0.8 = 0.2, phi_gt = 1 - 0.3 = 0.7. Pixels 0, 1 stay to 0.5 -> l = 0.5,
    # d = 0 for both maps. Total 0.5.
    gt = np.array([[0.5, 0.5, 0.0, 0.3]], F32)
    pred = np.array([[0.5, 0.5, 0.0, 0.8]], F32)
    assert conn(pred, gt) == pytest.approx(0.5 / 1000, rel=1e-6)
    assert conn(pred, gt, np.array([[True, True, True, False]])) == 0.0


def test_conn_single_precision_threshold_153():
    # 153/255 >= 0.6 in float32 (MATLAB single), so the pixel is in the component at 0.6 and
    # l = 0.6: phi_pred = 1 - 0.4, phi_gt = 1 -> 0.4. In float64 (6 * 0.1 > 153/255) l would be 0.5
    # and the error 0.5.
    gt = np.array([[F32(153) / F32(255)]], F32)
    pred = np.array([[1.0]], F32)
    assert 6 * 0.1 > 153 / 255  # the float64 pitfall this guards against
    assert conn(pred, gt) == pytest.approx(0.4 / 1000, rel=1e-6)


def test_conn_tie_goes_to_first_component_in_column_major_order():
    # Two 2-pixel components: A top-right (first in row-major order, OpenCV label 1) and B
    # bottom-left (first in column-major order, MATLAB's component 1). MATLAB keeps B.
    both = np.array([[0, 0, 1, 1], [0, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0]], np.uint8)
    count, labels = cv2.connectedComponents(both, connectivity=4, ltype=cv2.CV_32S)
    assert count == 3 and labels[0, 2] == 1 and labels[2, 0] == 2
    assert _largest_component(labels, count) == 2
    assert _largest_component(labels.astype(np.uint16), count) == 2  # the calcHist path
    # End to end: gt = 0.35 in B's lower pixel. B wins up to 0.3, so l = 0.3 there:
    # phi_gt = 1 (d = 0.05 < 0.15), phi_pred = 1 - 0.7 -> 0.7. Picking A would give 0.65.
    pred = both.astype(F32)
    gt = pred.copy()
    gt[3, 0] = 0.35
    assert conn(pred, gt) == pytest.approx(0.7 / 1000, rel=1e-6)


def test_component_sizes_with_many_labels():
    # More than 65534 components: the uint16 labelling overflows and int32 is used instead.
    binary = np.zeros((600, 600), np.uint8)
    binary[::2, ::2] = 1
    binary[0, :] = 1  # one long component along the top row wins
    from matting.metrics import _components

    count, labels = _components(binary)
    assert count > 65536 and labels.dtype == np.int32
    assert _largest_component(labels, count) == labels[0, 0]


def test_conn_step_levels():
    from matting.metrics import _conn_thresholds

    levels = _conn_thresholds(0.1)
    assert len(levels) == 11 and levels.dtype == np.float32
    assert levels[6] == F32(0.6) == F32(153) / F32(255)
    assert len(_conn_thresholds(0.25)) == 5
    with pytest.raises(MattingInputError):
        _conn_thresholds(0.0)


# ---------------------------------------------------------------------------- reference ports


def _reference_grad(pred, gt, mask):
    """Literal port of compute_gradient_loss.m: full 9x9 kernel, 'conv', replicate."""
    sigma, half = 1.4, 4
    g = lambda x: math.exp(-(x**2) / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))
    hx = np.array([[g(i - half) * (-(j - half) * g(j - half) / sigma**2) for j in range(9)] for i in range(9)])
    hx /= math.sqrt((hx**2).sum())
    hy = hx.T

    def amplitude(image):
        image = image.astype(np.float64)
        image = (image - image.min()) / (image.max() - image.min())
        gx = ndimage.convolve(image, hx, mode="nearest")
        gy = ndimage.convolve(image, hy, mode="nearest")
        return np.sqrt(gx**2 + gy**2).astype(F32)

    error = (amplitude(pred) - amplitude(gt)) ** 2
    return float(error[mask].sum(dtype=np.float64)) / 1000


def _reference_conn(pred, gt, mask, step=0.1):
    """Literal port of compute_connectivity_error.m with MATLAB's column-major numbering."""
    thresholds = (np.arange(0, 11) * step).astype(F32)
    l_map = -np.ones(pred.shape, F32)
    for i in range(1, len(thresholds)):
        both = (pred >= thresholds[i]) & (gt >= thresholds[i])
        # scipy numbers components in row-major order; label the transpose for column-major.
        labels_t, count = ndimage.label(both.T)
        omega = np.zeros(pred.shape, bool)
        if count:
            sizes = np.bincount(labels_t.ravel())[1:]
            omega = (labels_t == np.argmax(sizes) + 1).T
        l_map[(l_map == -1) & ~omega] = thresholds[i - 1]
    l_map[l_map == -1] = 1
    d_pred, d_gt = pred - l_map, gt - l_map
    phi_pred = 1 - d_pred * (d_pred >= F32(0.15))
    phi_gt = 1 - d_gt * (d_gt >= F32(0.15))
    return float(np.abs(phi_pred - phi_gt)[mask].sum(dtype=np.float64)) / 1000


def _random_pair(rng, shape=(48, 64)):
    gt = ndimage.gaussian_filter(rng.random(shape), 3)
    gt = np.clip((gt - gt.mean()) * 8 + 0.5, 0, 1)
    pred = np.clip(gt + ndimage.gaussian_filter(rng.standard_normal(shape), 1.5) * 0.4, 0, 1)
    quantised = lambda a: (np.rint(a * 255).astype(F32) / F32(255))
    return quantised(pred), quantised(gt)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grad_and_conn_match_literal_ports(seed):
    rng = np.random.default_rng(seed)
    pred, gt = _random_pair(rng)
    mask = np.zeros(pred.shape, bool)
    mask[10:30, 5:40] = True
    for m in (mask, np.ones_like(mask)):
        assert grad(pred, gt, m) == pytest.approx(_reference_grad(pred, gt, m), rel=1e-6)
        assert conn(pred, gt, m) == pytest.approx(_reference_conn(pred, gt, m), rel=1e-6, abs=1e-12)
    assert conn(pred, gt) > 0  # the random pairs do have disconnected parts


# ---------------------------------------------------------------------------- protocols


def _scene(rng, shape=(40, 50)):
    pred, gt = _random_pair(rng, shape)
    gt[:, :3] = 0  # a band of known background
    trimap = np.full(shape, 128, np.uint8)
    trimap[gt == 0] = 0
    trimap[gt == 1] = 255
    return pred, gt, trimap


def test_protocol_keys():
    assert metric_keys("comp1k") == ("sad", "mse", "grad", "conn")
    assert metric_keys("whole", with_trimap=False) == ("sad", "mse", "mad", "grad", "conn")
    assert set(metric_keys("whole")) >= {"sad_unknown", "mse_unknown", "mad_unknown", "sad_fg", "sad_bg"}
    assert metric_keys("modnet") == ("mse", "mad")
    with pytest.raises(MattingInputError, match="protocol"):
        metric_keys("dim")
    for protocol in PROTOCOLS:
        for key in metric_keys(protocol):
            assert key in METRIC_HEADERS and key in DISPLAY_SCALES


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_identical_maps_score_zero(protocol):
    _, gt, trimap = _scene(np.random.default_rng(3))
    values = compute_metrics(gt, gt, trimap if protocol != "modnet" else None, protocol)
    assert set(values) == set(metric_keys(protocol, with_trimap=protocol != "modnet"))
    assert all(v == 0 for v in values.values()), values


def test_comp1k_hand_computed():
    gt = np.array([[0, 0.2, 1], [0, 0.6, 1]], F32)
    pred = np.array([[0.5, 0.4, 0.5], [0.9, 0.6, 0.0]], F32)
    trimap = np.array([[0, 128, 255], [0, 128, 255]], np.uint8)
    values = compute_metrics(pred, gt, trimap, "comp1k", quantize=False)
    # Known pixels are forced to gt's values here, so only the unknown column counts: |0.2|, 0.
    assert values["sad"] == pytest.approx(0.2 / 1000, rel=1e-6)
    assert values["mse"] == pytest.approx(0.04 / 2, rel=1e-6)


def test_comp1k_ignores_prediction_in_known_regions_and_needs_a_trimap():
    pred, gt, trimap = _scene(np.random.default_rng(4))
    base = compute_metrics(pred, gt, trimap, "comp1k")
    noisy = pred.copy()
    known = trimap != 128
    noisy[known] = np.random.default_rng(5).random(int(known.sum()))
    assert compute_metrics(noisy, gt, trimap, "comp1k") == base
    with pytest.raises(MattingInputError, match="trimap"):
        compute_metrics(pred, gt, None, "comp1k")


def test_whole_protocol_hand_computed_with_trimap():
    trimap = np.array([[0, 128], [255, 255]], np.uint8)
    values = compute_metrics(PRED, GT, trimap, "whole", quantize=False)
    assert values["sad"] == pytest.approx(1.5 / 1000)
    assert values["mse"] == pytest.approx(1.25 / 4)
    assert values["mad"] == pytest.approx(1.5 / 4)
    assert values["sad_unknown"] == pytest.approx(0.5 / 1000)
    assert values["mse_unknown"] == pytest.approx(0.25)
    assert values["mad_unknown"] == pytest.approx(0.5)
    assert values["sad_fg"] == pytest.approx(1.0 / 1000)
    assert values["sad_bg"] == 0.0
    # Whole-image metrics do not depend on the trimap.
    plain = compute_metrics(PRED, GT, None, "whole", quantize=False)
    assert all(values[k] == plain[k] for k in plain)


def test_modnet_protocol_ignores_trimap():
    pred, gt, trimap = _scene(np.random.default_rng(6))
    values = compute_metrics(pred, gt, trimap, "modnet")
    assert values == compute_metrics(pred, gt, None, "modnet")
    assert values["mse"] == pytest.approx(float(np.mean((pred.astype(np.float64) - gt) ** 2)), rel=1e-6)
    assert values["mad"] == pytest.approx(float(np.mean(np.abs(pred.astype(np.float64) - gt))), rel=1e-6)


def test_prediction_scored_as_its_8bit_png():
    gt = np.zeros((1, 2), F32)
    pred = np.array([[0.5, 0.001]], F32)  # -> 128/255 and 0
    values = compute_metrics(pred, gt, None, "modnet")
    assert values["mad"] == pytest.approx((128 / 255) / 2, rel=1e-6)
    assert compute_metrics(pred, gt, None, "modnet", quantize=False)["mad"] == pytest.approx(0.501 / 2, rel=1e-6)


def test_display_headers_and_format():
    assert METRIC_HEADERS["sad"] == "SAD (/1000)"
    assert METRIC_HEADERS["mse"] == "MSE (x1e-3)"
    assert format_metric("mse", 0.00403) == "4.030"
    assert format_metric("sad", 35.1234) == "35.123"


# ---------------------------------------------------------------------------- MattingMetrics


def test_matting_metrics_matches_compute_metrics():
    rng = np.random.default_rng(7)
    scenes = [_scene(rng) for _ in range(3)]
    metric = MattingMetrics(protocol="comp1k")
    pred = torch.from_numpy(np.stack([s[0] for s in scenes]))[:, None]
    gt = torch.from_numpy(np.stack([s[1] for s in scenes]))[:, None]
    trimap = torch.from_numpy(np.stack([s[2] for s in scenes]))[:, None]
    metric.update(pred[:2], gt[:2], trimap[:2])
    metric.update(pred[2:], gt[2:], trimap[2:].float())  # float 0/128/255 trimaps too
    result = metric.compute()
    per_image = [compute_metrics(*s, protocol="comp1k") for s in scenes]
    assert set(result) == {"sad", "mse", "grad", "conn"}
    for key, value in result.items():
        assert value.item() == pytest.approx(np.mean([row[key] for row in per_image]), rel=1e-12)
    metric.reset()
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert metric.compute() == {}


def test_matting_metrics_whole_without_trimap_and_bad_shapes():
    rng = np.random.default_rng(8)
    pred, gt, _ = _scene(rng)
    metric = MattingMetrics()
    metric.update(torch.from_numpy(pred)[None], torch.from_numpy(gt)[None])  # (B, H, W) accepted
    assert set(metric.compute()) == set(metric_keys("whole", with_trimap=False))
    with pytest.raises(MattingInputError):
        metric.update(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4))


# ---------------------------------------------------------------------------- real data regression


def _alphamatting():
    root = SHARED_DATA / "alphamatting"
    if not (root / "alpha").is_dir():
        pytest.skip(f"real test data not found at {root}; it is not redistributed with the code")
    return root


# Means over GT01-GT20 (Trimap1) from experiments/metrics_alphamatting/results.md.
REGRESSION = {
    ("blur2", "comp1k"): {"sad": 3.9818484207806413, "mse": 0.008893053120548706, "grad": 5.678261553662425, "conn": 3.320959726980329},
    ("blur4", "whole"): {"sad": 7.153595252417423, "mse": 0.003311939314171286, "grad": 15.234176701012027, "conn": 6.431656881144643, "sad_fg": 0.050068036231398584},
    ("threshold", "comp1k"): {"conn": 5.316891999155283, "grad": 6.896345668000626},
}


def _predict(gt: np.ndarray, predictor: str) -> np.ndarray:
    if predictor.startswith("blur"):
        sigma = float(predictor[4:])
        return cv2.GaussianBlur(gt, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    return (gt >= 0.5).astype(F32)


@pytest.mark.shared_data
@pytest.mark.parametrize("predictor, protocol", sorted(REGRESSION))
def test_alphamatting_regression(predictor, protocol):
    root = _alphamatting()
    rows = []
    for stem, path in list_images(root / "alpha").items():
        gt = read_alpha(path)
        trimap = read_trimap(root / "trimap" / path.name)
        rows.append(compute_metrics(_predict(gt, predictor), gt, trimap, protocol))
    assert len(rows) == 20
    for key, expected in REGRESSION[(predictor, protocol)].items():
        assert np.mean([row[key] for row in rows]) == pytest.approx(expected, rel=1e-6), key


# ---------------------------------------------------------------------------- files scored at their bit depth


def _identical_files(root: Path, bits: int):
    """pred/ and gt/ holding byte-identical PNGs of ``bits`` bits, and a consistent trimap/."""
    from matting.io.images import write_png

    rng = np.random.default_rng(bits)
    top = 65535 if bits == 16 else 255
    dtype = np.uint16 if bits == 16 else np.uint8
    names = ("a", "b")
    for name in names:
        soft = np.clip((ndimage.gaussian_filter(rng.random((40, 56)), 3) - 0.5) * 12 + 0.5, 0, 1)
        levels = np.rint(soft * top).astype(dtype)
        if bits == 16:
            levels[levels % 257 == 0] += 1  # not all on 8-bit levels
            levels[soft == 0], levels[soft == 1] = 0, top
        trimap = np.full(levels.shape, 128, np.uint8)
        trimap[levels == 0], trimap[levels == top] = 0, 255
        for folder in ("pred", "gt"):
            (root / folder).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / folder / f"{name}.png"), levels)
        write_png(root / "trimap" / f"{name}.png", trimap)
    assert (root / "pred" / "a.png").read_bytes() == (root / "gt" / "a.png").read_bytes()
    return names


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("protocol, force_known", [("comp1k", True), ("comp1k", False), ("whole", True), ("modnet", True)])
def test_identical_files_score_exactly_zero(tmp_path, bits, protocol, force_known):
    from matting.evaluation import evaluate_dirs

    names = _identical_files(tmp_path, bits)
    trimaps = tmp_path / "trimap" if protocol != "modnet" else None
    rows, _ = evaluate_dirs(
        tmp_path / "pred", tmp_path / "gt", trimaps, protocol, workers=1, progress=False, force_known=force_known
    )
    assert [row["name"] for row in rows] == list(names)
    keys = metric_keys(protocol, with_trimap=trimaps is not None)
    for row in rows:
        assert set(row) == {"name", *keys}
        assert all(row[key] == 0.0 for key in keys), row
    if bits == 16:  # a 16-bit file rounded to 8 bits, as in memory, is not its own ground truth
        gt = read_alpha(tmp_path / "gt" / "a.png")
        assert compute_metrics(gt, gt, None, "whole", quantize=True)["sad"] > 0


# ---------------------------------------------------------------------------- comp1k as saved (--no-force)


def test_comp1k_unforced_scores_the_prediction_as_given():
    pred, gt, trimap = _scene(np.random.default_rng(8))
    known = trimap != 128
    assert known.any() and (pred[known] != gt[known]).any()  # the prediction is not forced
    unknown = ~known
    as_saved = compute_metrics(pred, gt, trimap, "comp1k", quantize=False, force_known=False)
    literal = {"sad": sad(pred, gt, unknown), "mse": mse(pred, gt, unknown), "grad": grad(pred, gt, unknown), "conn": conn(pred, gt, unknown)}
    assert as_saved == literal
    assert as_saved["grad"] == pytest.approx(_reference_grad(pred, gt, unknown), rel=1e-6)
    assert as_saved["conn"] == pytest.approx(_reference_conn(pred, gt, unknown), rel=1e-6, abs=1e-12)

    # The default differs only in the known pixels: forcing them by hand gives its values.
    forced_by_hand = np.where(trimap == 255, F32(1), np.where(trimap == 0, F32(0), pred)).astype(F32)
    default = compute_metrics(pred, gt, trimap, "comp1k", quantize=False)
    assert default == compute_metrics(forced_by_hand, gt, trimap, "comp1k", quantize=False, force_known=False)
    assert default["sad"] == as_saved["sad"] and default["mse"] == as_saved["mse"]  # unknown pixels only
    assert default["grad"] != as_saved["grad"]  # the 9x9 support reaches into the known regions
