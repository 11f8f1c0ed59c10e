"""One trimap convention: the loss's band can be the data pipeline's trimap, and training and
evaluation give a trimap-based network the same unknown value."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from matting.data.folder import FolderDataModule
from matting.data.trimap import (
    MODNET_FG_THRESHOLD,
    UNKNOWN_VALUE,
    make_trimap,
    modnet_trimap,
    transition_band,
    trimap_band,
    trimap_to_float,
)
from matting.io.errors import MattingInputError
from matting.io.images import TRIMAP_UNKNOWN, normalise_trimap
from matting.losses import MattingLoss
from matting.metrics import compute_metrics
from matting.models import (
    DetailHead,
    MattingNet,
    ModnetFusion,
    SemanticHead,
    TimmEncoder,
)
from matting.module import MattingModule

from .tiny_checkpoint import write_pairs

# Training steps run outside a Trainer here: nothing to log to.
pytestmark = pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")


class _RecordingLoss(MattingLoss):
    """MattingLoss that keeps the band it was given."""

    def forward(self, outputs, batch, band, mode="TT"):
        self.band = band
        return super().forward(outputs, batch, band, mode)


def _module(band: str, trimap_input: bool = False) -> MattingModule:
    torch.manual_seed(0)
    encoder = TimmEncoder("test_resnet", in_chans=4 if trimap_input else 3)
    net = MattingNet(encoder, SemanticHead, DetailHead, ModnetFusion, trimap_input=trimap_input)
    return MattingModule(net, loss=_RecordingLoss(), band=band, channels_last=False)


@pytest.fixture(scope="module")
def folder_batch(tmp_path_factory) -> dict:
    """One training batch of the folder pipeline (DIM trimaps made by the augmentation)."""
    root = write_pairs(tmp_path_factory.mktemp("data") / "pairs", count=4, size=64)
    data = FolderDataModule(str(root), crop_size=64, batch_size=2, num_workers=0)
    data.setup("fit")
    torch.manual_seed(0)
    return next(iter(data.train_dataloader()))


def test_pipeline_band_is_the_unknown_region_of_the_batch_trimap(folder_batch):
    assert folder_batch["trimap"].dtype == torch.uint8
    module = _module("pipeline")
    module.training_step(folder_batch, 0)
    expected = (folder_batch["trimap"] == TRIMAP_UNKNOWN).float()
    assert expected.sum() > 0
    assert torch.equal(module.loss.band, expected)
    # The default draws its own band from the ground truth, whatever the batch's trimap says.
    random_module = _module("random")
    random_module.training_step(folder_batch, 0)
    assert not torch.equal(random_module.loss.band, expected)


def test_pipeline_band_without_a_trimap_is_refused_and_bad_names_too(folder_batch):
    batch = {k: v for k, v in folder_batch.items() if k != "trimap"}
    with pytest.raises(MattingInputError, match="carry no 'trimap'"):
        _module("pipeline").training_step(batch, 0)
    with pytest.raises(MattingInputError, match="model.band must be one of random, pipeline"):
        _module("dataset")


def test_unknown_is_one_value_in_training_and_evaluation(folder_batch):
    """A trimap-based network sees UNKNOWN_VALUE for unknown pixels from the ground-truth band
    (training) and from an 8-bit dataset trimap (evaluation); evaluation counts the same pixels."""
    alpha = folder_batch["alpha"]
    band = transition_band(alpha, 3)
    from_band = MattingModule._trimap_input({"alpha": alpha, "trimap": None}, band)
    from_file = MattingModule._trimap_input({"alpha": alpha, "trimap": folder_batch["trimap"]}, band)
    assert set(from_band[band > 0].unique().tolist()) == {UNKNOWN_VALUE}
    unknown = folder_batch["trimap"] == TRIMAP_UNKNOWN
    assert set(from_file[unknown].unique().tolist()) == {UNKNOWN_VALUE}
    assert set(from_file.unique().tolist()) <= {0.0, UNKNOWN_VALUE, 1.0}
    assert torch.equal(trimap_band(folder_batch["trimap"]).bool(), unknown)
    # The float trimap the network sees reads back as the 8-bit one the metrics score with.
    trimap_u8 = folder_batch["trimap"][0, 0].numpy()
    assert np.array_equal(normalise_trimap(trimap_to_float(folder_batch["trimap"])[0, 0].numpy()), trimap_u8)
    gt = alpha[0, 0].numpy()
    pred = np.clip(gt + 0.1, 0, 1)
    scores = compute_metrics(pred, gt, trimap_u8, "whole")
    assert scores["sad_unknown"] > 0
    assert compute_metrics(pred, gt, trimap_to_float(folder_batch["trimap"])[0, 0].numpy(), "whole") == scores


def test_trimap_based_network_trains_on_the_pipeline_trimap(folder_batch):
    module = _module("pipeline", trimap_input=True)
    seen = {}
    forward = module.forward

    def spy(image, trimap=None):
        seen["trimap"] = trimap
        return forward(image, trimap)

    module.forward = spy
    module.training_step(folder_batch, 0)
    assert torch.equal(seen["trimap"], trimap_to_float(folder_batch["trimap"]))


def test_modnet_trimap_follows_the_published_rule():
    """Foreground is alpha >= 0.9 (MODNet's own code), so 0.9..1 is known foreground inside."""
    alpha = np.zeros((512, 512), np.float32)
    alpha[128:384, 128:384] = 0.95
    trimap = modnet_trimap(alpha, np.random.default_rng(0))
    assert MODNET_FG_THRESHOLD == 0.9
    assert trimap[256, 256] == 255 and trimap[0, 0] == 0
    assert (make_trimap("gfm", alpha)[128:384, 128:384] == 128).all()  # gfm's foreground is alpha = 1


@pytest.mark.parametrize("side,padding", [(1, 0), (4, 0), (7, 3), (31, 15)])
def test_square_max_pool_equals_the_square_window(side, padding):
    import torch.nn.functional as F

    from matting.data.trimap import square_max_pool

    x = torch.rand(2, 1, 40, 37) - 0.5
    x[0, 0, 5:9, 10:30] = 1.0  # plateaus and ties, as in masks
    assert torch.equal(square_max_pool(x, side, padding), F.max_pool2d(x, side, stride=1, padding=padding))
