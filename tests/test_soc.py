"""``matting adapt`` (MODNet's SOC) on unlabeled photos: loss, backup, frozen norms, loadable result."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from scipy import ndimage

from matting import cli
from matting.commands import predict
from matting.commands.adapt import main
from matting.data.synthetic.dataset import SyntheticMattingDataset
from matting.inference.loading import build_net, load_net, net_from_parts
from matting.inference.predict import predict_alpha
from matting.io.checkpoints import load_net_parts
from matting.io.errors import MattingInputError
from matting.soc_loss import SOCLoss, band_window, soc_band
from matting.soc_module import SOCModule, norm_layers
from tests.tiny_checkpoint import REPO, state_of

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.filterwarnings("ignore")]

EPOCHS = 4


@pytest.fixture(scope="module")
def tiny_ckpt(tiny_fit) -> Path:
    # 25 steps: enough for mattes with a subject outline, so that the detail term has a band. The
    # MODNet-sized heads (detail branch to 1/2) on the smoke config's test encoder: SOC was built on them.
    return tiny_fit("--trainer.max_steps=25", "--trainer.max_epochs=-1", "--data.init_args.train_length=64",
                    "--model.optimizer.init_args.lr=3e-3", f"--model.net={REPO / 'configs' / 'nets' / 'modnet_sized.yaml'}",
                    "--model.net.init_args.encoder.init_args.name=test_resnet")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Four unlabeled photos (synthetic composites, 64x80: not square, so the crop is exercised)."""
    folder = tmp_path_factory.mktemp("photos")
    dataset = SyntheticMattingDataset("val", 4, 80, seed=0)
    for i in range(len(dataset)):
        image = (dataset.arrays(i)["image"][:64] * 255).round().astype(np.uint8)
        cv2.imwrite(str(folder / f"photo_{i}.png"), image[..., ::-1])
    return folder


@pytest.fixture(scope="module")
def adapted_run(tiny_ckpt, photos, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("adapt") / "run"
    assert main([str(tiny_ckpt), "--images", str(photos), "--epochs", str(EPOCHS), "--size", "64", "--lr", "1e-3",
                 "--num-workers", "0", "--out", str(out)]) == 0
    return out


def _logs(run: Path) -> Path:
    return run / "logs" / "version_0"


def _metrics(run: Path) -> list[dict]:
    with open(_logs(run) / "metrics.csv") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_adapt_lowers_the_soc_loss_and_logs_its_terms(adapted_run):
    rows = _metrics(adapted_run)
    epoch_means = [float(r["train/soc_loss_epoch"]) for r in rows if r.get("train/soc_loss_epoch")]
    assert len(epoch_means) == EPOCHS
    assert epoch_means[-1] < 0.7 * epoch_means[0], epoch_means
    steps = [r for r in rows if r.get("train/soc_loss")]
    assert steps and all(r.get("train/soc_semantic") and r.get("train/soc_detail") for r in steps)
    assert any(float(r["train/soc_detail"]) > 0 for r in steps)  # the band around the subject is not empty
    for r in steps:
        assert float(r["train/soc_loss"]) == pytest.approx(float(r["train/soc_semantic"]) + float(r["train/soc_detail"]), rel=1e-5)


@pytest.mark.slow
def test_backup_is_refreshed_once_per_epoch(adapted_run):
    checkpoints = _logs(adapted_run) / "checkpoints"
    for epoch in range(EPOCHS):
        saved = torch.load(checkpoints / f"adapted-epoch={epoch}.ckpt", map_location="cpu", weights_only=True)
        assert saved["soc"]["backup_refreshes"] == epoch + 1
        assert not any(k.startswith("_backup") or ".backup" in k for k in saved["state_dict"])  # never saved


@pytest.mark.slow
def test_normalisation_layers_keep_their_statistics_and_parameters(tiny_ckpt, adapted_run):
    before, after = state_of(tiny_ckpt), state_of(_logs(adapted_run) / "checkpoints" / "last.ckpt")
    net = build_net(load_net_parts(tiny_ckpt)[0])
    norm_names = {name for name, m in net.named_modules() if m in norm_layers(net)}
    norm_keys = [k for k in before if k.rsplit(".", 1)[0] in norm_names]
    assert any(k.endswith("running_var") for k in norm_keys) and any(k.endswith(".weight") for k in norm_keys)
    for key in norm_keys:
        assert torch.equal(before[key], after[key]), key
    assert any(not torch.equal(before[k], after[k]) for k in before if k not in norm_keys)  # the rest adapted


@pytest.mark.slow
def test_adapted_checkpoint_loads_and_predicts(adapted_run, photos, tmp_path):
    last = _logs(adapted_run) / "checkpoints" / "last.ckpt"
    alpha = predict_alpha(load_net(last), np.random.default_rng(0).random((48, 72, 3), dtype=np.float32), base_size=64)
    assert alpha.shape == (48, 72) and 0 <= alpha.min() <= alpha.max() <= 1
    out = tmp_path / "cutouts"
    assert predict.main(["--ckpt", str(last), str(photos), "--out", str(out), "--eager", "--base-size", "64", "--no-progress"]) == 0
    assert sorted(p.name for p in (out / "alpha").iterdir()) == [f"photo_{i}.png" for i in range(4)]


@pytest.mark.slow
def test_adapt_leaves_the_run_folder_of_matting_fit(tiny_ckpt, photos, adapted_run):
    logs = _logs(adapted_run)
    assert (adapted_run / "adapt.yaml").is_file() and (logs / "hparams.yaml").is_file()
    assert sorted(p.name for p in (logs / "checkpoints").iterdir()) == [
        *(f"adapted-epoch={e}.ckpt" for e in range(EPOCHS)), "last.ckpt"]
    config = yaml.safe_load((logs / "config.yaml").read_text())
    assert config["model"]["class_path"] == "matting.soc_module.SOCModule"
    model = config["model"]["init_args"]
    assert model["init_weights"] == str(tiny_ckpt.resolve())
    assert model["loss"] == {"class_path": "matting.soc_loss.SOCLoss",
                             "init_args": {"semantic": 100.0, "detail": 1.0, "band_fraction": 0.05}}
    assert model["optimizer"]["class_path"] == "torch.optim.Adam"
    assert model["optimizer"]["init_args"]["lr"] == pytest.approx(1e-3)
    assert model["optimizer"]["init_args"]["betas"] == [0.9, 0.99]
    assert config["data"]["class_path"] == "matting.data.unlabeled.UnlabeledImageDataModule"
    assert config["data"]["init_args"]["root"] == str(photos.resolve())
    assert config["trainer"]["max_epochs"] == EPOCHS

    run = json.loads((logs / "run.json").read_text())
    assert run["config_file"] == str(logs / "config.yaml") and run["seed"] == 0
    fingerprint = run["data"]
    assert fingerprint["class"] == "matting.data.unlabeled.UnlabeledImageDataModule"
    assert "root" not in fingerprint["hyperparameters"] and fingerprint["hyperparameters"]["size"] == 64
    assert sorted(fingerprint["files"]) == [f"photo_{i}.png" for i in range(4)]
    assert all(len(entry["sha256"]) == 64 for entry in fingerprint["files"].values())
    assert not (logs / "predictions").exists()  # no labels, no validation: no prediction grid


def test_the_photos_fingerprint_follows_their_bytes_not_their_folder(photos, tmp_path):
    from matting.data.unlabeled import UnlabeledImageDataModule

    moved = tmp_path / "moved"
    moved.mkdir()
    for path in photos.iterdir():
        (moved / path.name).write_bytes(path.read_bytes())
    first = UnlabeledImageDataModule(str(photos), size=64, num_workers=0).fingerprint()
    assert UnlabeledImageDataModule(str(moved), size=64, num_workers=0).fingerprint()["sha256"] == first["sha256"]
    image = cv2.imread(str(moved / "photo_0.png"))
    image[0, 0] = 255 - image[0, 0]
    cv2.imwrite(str(moved / "photo_0.png"), image)
    assert UnlabeledImageDataModule(str(moved), size=64, num_workers=0).fingerprint()["sha256"] != first["sha256"]


@pytest.mark.slow
def test_run_record_draws_no_grid_for_unlabeled_batches(tmp_path):
    from types import SimpleNamespace

    from lightning.pytorch.trainer.states import TrainerFn

    from matting.runtime.run_record import RunRecord

    record = RunRecord(grid_samples=2)
    record.log_dir = str(tmp_path)
    trainer = SimpleNamespace(is_global_zero=True, sanity_checking=False, state=SimpleNamespace(fn=TrainerFn.FITTING),
                              current_epoch=0, global_step=1, loggers=[])
    record.on_validation_epoch_start(trainer, None)
    batch = {"image": torch.rand(2, 3, 32, 32), "name": ["a", "b"]}  # photos without an alpha matte
    record.on_validation_batch_end(trainer, None, {"pred_alpha": torch.rand(2, 1, 32, 32)}, batch, 0)
    record.on_validation_epoch_end(trainer, None)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_matting_fit_repeats_an_adaptation_from_its_config(adapted_run, tmp_path):
    again = tmp_path / "again"
    assert cli.main(["fit", "-c", str(_logs(adapted_run) / "config.yaml"), "--trainer.max_epochs=1",
                     "--trainer.max_steps=1", f"--trainer.default_root_dir={again}", "--trainer.logger=false",
                     "--trainer.callbacks=[]", "--trainer.enable_checkpointing=false",
                     "--trainer.enable_progress_bar=false"]) == 0
    assert (again / "run.json").is_file()  # a RunRecord without a logger writes into the root folder


@pytest.mark.slow
def test_backup_is_a_frozen_unsaved_copy_and_norms_stay_in_eval(tiny_ckpt):
    config, state = load_net_parts(tiny_ckpt)
    module = SOCModule(net_from_parts(config, state))
    module.train()
    assert all(not m.training for m in module.norm_modules) and module.net.training
    assert all(not p.requires_grad for m in module.norm_modules for p in m.parameters())
    module.refresh_backup()
    first = module.backup_net
    assert not first.training and not any(p.requires_grad for p in first.parameters())
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), module.net.state_dict().values()))
    with torch.no_grad():
        module.net.detail_head.out[1].weight.add_(1.0)  # training moves the network ...
    assert not torch.equal(first.detail_head.out[1].weight, module.net.detail_head.out[1].weight)  # ... not the backup
    module.refresh_backup()
    assert module.backup_net is not first and module.backup_refreshes == 2
    assert torch.equal(module.backup_net.detail_head.out[1].weight, module.net.detail_head.out[1].weight)
    assert all(k.startswith("net.") for k in module.state_dict())


@pytest.mark.slow
def test_a_network_without_a_semantic_head_is_refused(tiny_ckpt, photos, tmp_path):
    config, _ = load_net_parts(tiny_ckpt)
    config = {**config, "init_args": {**config["init_args"], "semantic_head": None}}
    net = build_net(config)
    path = tmp_path / "detail_only.ckpt"
    torch.save({"hyper_parameters": {"net": config}, "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}}, path)
    out = tmp_path / "run"
    with pytest.raises(MattingInputError, match=r"SOC needs both a semantic head \(pred_semantic.*without pred_semantic"):
        main([str(path), "--images", str(photos), "--out", str(out), "--num-workers", "0"])
    assert not out.exists()


def test_band_is_the_outline_of_the_predicted_subject():
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    disc = (((yy - 32) ** 2 + (xx - 32) ** 2) < 20**2).float()[None, None]  # (1, 1, 64, 64)
    coarse = F.interpolate(disc, size=(4, 4), mode="area")  # (1, 1, 4, 4), as a 1/16 head would see it
    band = soc_band(disc, coarse)
    # The definition, computed independently: dilation minus erosion of the subject mask, not zero.
    subject = (disc > 0.1).float() * F.interpolate((coarse > 0.1).float(), scale_factor=16, mode="bilinear")
    side = band_window(64, 64)
    mask = subject[0, 0].numpy()
    expected = ndimage.grey_dilation(mask, size=(side, side)) != ndimage.grey_erosion(mask, size=(side, side))
    assert side == 3 and np.array_equal(band[0, 0].numpy() > 0, expected)
    assert band[0, 0, 32, 32] == 0 and band[0, 0, 0, 0] == 0 and band[0, 0, 32, 52] == 1


def test_soc_terms_vanish_when_the_predictions_agree():
    semantic = torch.full((2, 1, 4, 4), 0.6)
    alpha = torch.full((2, 1, 64, 64), 0.6)
    outputs = {"pred_alpha": alpha, "pred_semantic": semantic, "pred_detail": alpha}
    soc_loss = SOCLoss()
    terms = soc_loss(outputs, {"pred_alpha": alpha, "pred_detail": alpha})
    assert terms["loss"].item() == pytest.approx(0.0, abs=1e-10)
    # Disagreeing with the backup inside the band costs L1 averaged over the band.
    edge = alpha.clone()
    edge[..., 32:] = 0.0
    terms = soc_loss({**outputs, "pred_alpha": edge, "pred_detail": edge},
                     {"pred_alpha": edge, "pred_detail": torch.where(edge > 0, 0.4, 0.0)})
    assert 0 < terms["detail"].item() < 0.2
