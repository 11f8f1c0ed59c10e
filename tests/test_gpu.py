"""Training and inference on a CUDA device: ``pytest -m gpu`` (skipped, with the reason, without one).

What a CPU cannot show: tensors left on the CPU, float16 overflow in the losses, cuDNN with
channels_last and depthwise convolutions, SyncBatchNorm under NCCL, export of a network loaded on
CUDA. tools/gpu_check.py runs these first, then measures (docs/gpu.md).

float32 on CUDA means IEEE float32 here, as ``matting predict`` runs it (:func:`ieee_float32`): cuDNN's
default TF32 convolutions keep a 10-bit mantissa and differ from the CPU by ~1e-3.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tests.tiny_checkpoint import NET_CONFIG, write_checkpoint

from .conftest import REPO, run_matting

CUDA = torch.cuda.is_available()
pytestmark = [pytest.mark.gpu, pytest.mark.slow,
              pytest.mark.skipif(not CUDA, reason="needs a CUDA device: torch.cuda.is_available() is False")]

CONFIGS = REPO / "configs"
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")
# Each member of the family: (configs between default.yaml and the smoke config, overrides after it).
# The smoke config's synthetic batches swap in a test encoder, so each member names its own; they make
# no trimap, so the recipes' pipeline bands become random ones.
MEMBERS = {
    "default": ([], ["--model.net.init_args.encoder.init_args.name=mobilenetv3_small_100"]),
    "modnet": (["recipes/modnet.yaml"], ["--model.band=random", "--model.net.init_args.encoder.init_args.name=mobilenetv2_100"]),
    "gfm_r34_tt": (["recipes/gfm_r34_tt.yaml"], ["--model.band=random", "--model.net.init_args.encoder.init_args.name=resnet34"]),
    "guided": (["refiner/guided.yaml"], []),
    "patch": (["refiner/patch.yaml"], []),
    "patch_residual": (["refiner/patch.yaml", "refiner/patch_residual.yaml"], []),
    "patch_stage2": (["refiner/patch.yaml", "refiner/stage2.yaml"], []),
    "trimap_based": (["model/trimap_based.yaml"], []),
}
TRAIN_STEPS = 3  # a 16-mixed step whose gradients overflow is skipped by the scaler; three leave room for one


def fit_cli(tmp_path: Path, member: str, precision: str, *extra: str):
    from matting.runtime.lightning_cli import build_cli

    configs, overrides = MEMBERS[member]
    stack = [arg for name in ["default.yaml", *configs, "smoke.yaml"] for arg in ("-c", str(CONFIGS / name))]
    return build_cli([*stack, *overrides, "--trainer.accelerator=gpu", "--trainer.devices=1", f"--trainer.precision={precision}",
                      f"--trainer.max_steps={TRAIN_STEPS}", "--trainer.max_epochs=-1", "--trainer.limit_val_batches=1", "--trainer.logger=false",
                      "--trainer.enable_checkpointing=false", "--trainer.callbacks=[]", f"--trainer.default_root_dir={tmp_path}",
                      "--data.init_args.size=128", "--data.init_args.batch_size=4", "--data.init_args.train_length=16",
                      "--run_record.enabled=false", *extra], run=False)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("member", list(MEMBERS))
def test_one_training_step_of_each_member(member, precision, tmp_path):
    if precision == "bf16-mixed" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16")
    cli = fit_cli(tmp_path, member, precision)
    before = {k: v.detach().clone() for k, v in cli.model.net.named_parameters()}
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.trainer.global_step == TRAIN_STEPS
    assert torch.isfinite(cli.trainer.callback_metrics["train/loss"])
    net = cli.model.net
    assert all(p.is_cuda and torch.isfinite(p).all() for p in net.parameters())
    for part, module in net.named_children():  # every trained part moved, refiner and heads included
        moved = [not torch.equal(before[f"{part}.{k}"], p) for k, p in module.named_parameters() if p.requires_grad]
        assert not moved or any(moved), f"{member} {precision}: no parameter of net.{part} changed"
    batch = {k: v.cuda() for k, v in next(iter(cli.datamodule.train_dataloader())).items() if isinstance(v, torch.Tensor)}
    with torch.autocast("cuda", dtype=torch.float16 if precision == "16-mixed" else torch.bfloat16, enabled=precision != "32-true"):
        band = cli.model._training_band(batch)
        trimap = cli.model._trimap_input({**batch, "trimap": None}, band) if cli.model.net.trimap_input else None
        outputs = cli.model.train()(batch["image"], trimap)
        terms = cli.model.loss(outputs, batch, band, mode=net.fusion_mode)
    assert all(v.is_cuda for v in outputs.values() if isinstance(v, torch.Tensor))
    assert all(v.is_cuda and torch.isfinite(v) for v in terms.values())


def test_the_loss_terms_in_float16_stay_finite_and_near_float32():
    """The Laplacian, gradient and composition terms through float16 autocast on hard mattes."""
    from matting.losses import MattingLoss, transition_band

    torch.manual_seed(0)
    alpha = (torch.rand(4, 1, 256, 256, device="cuda") > 0.5).float()
    batch = {"image": torch.rand(4, 3, 256, 256, device="cuda"), "alpha": alpha,
             "fg": torch.rand(4, 3, 256, 256, device="cuda"), "bg": torch.rand(4, 3, 256, 256, device="cuda")}
    pred = torch.rand(4, 1, 256, 256, device="cuda")
    loss = MattingLoss(laplacian=1.0, gradient=1.0)
    exact = loss({"pred_alpha": pred}, batch, transition_band(alpha, 8))
    with torch.autocast("cuda", dtype=torch.float16):
        half = loss({"pred_alpha": pred.half()}, batch, transition_band(alpha, 8))
    for key, value in exact.items():
        assert torch.isfinite(half[key]) and abs(half[key].item() - value.item()) <= 1e-2 * abs(value.item()) + 1e-4, key


def test_metrics_on_cuda_tensors_equal_the_cpu_ones():
    from torchmetrics.classification import BinaryJaccardIndex

    from matting.metrics import MattingMetrics

    gen = torch.Generator().manual_seed(0)
    pred, gt = torch.rand(3, 1, 64, 64, generator=gen), torch.rand(3, 1, 64, 64, generator=gen).round()
    trimap = (torch.rand(3, 1, 64, 64, generator=gen) * 3).floor().mul(127.5).to(torch.uint8)
    values = []
    for device in ("cpu", "cuda"):
        metric, iou = MattingMetrics("whole").to(device), BinaryJaccardIndex().to(device)
        metric.update(pred.to(device), gt.to(device), trimap.to(device))
        iou.update(pred.to(device).flatten(), (gt > 0.5).long().to(device).flatten())
        values.append({**{k: v.item() for k, v in metric.compute().items()}, "iou": iou.compute().item()})
    assert values[0] == values[1]


# --- fit, resume, DDP ------------------------------------------------------------------------------

RUN_CONFIG = """
trainer:
  accelerator: gpu
  devices: 1
  max_epochs: -1
  callbacks:
    - class_path: lightning.pytorch.callbacks.ModelCheckpoint
      init_args: {save_last: true, save_top_k: 0}
    - class_path: tests.fault_probe.RecordPlacement
      init_args: {folder: PROBE}
"""


def _fit(tmp_path: Path, name: str, *extra: str) -> Path:
    config = tmp_path / f"{name}.yaml"
    config.write_text(RUN_CONFIG.replace("PROBE", str(tmp_path / name / "probe")))
    proc = run_matting("fit", tmp_path / name, config, *extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp_path / name


def _probe(root: Path, rank: int = 0) -> dict:
    return json.loads((root / "probe" / f"rank{rank}.json").read_text())


def test_matting_fit_on_the_gpu_saves_and_resumes(tmp_path):
    from matting.io.checkpoints import read_checkpoint

    root = _fit(tmp_path, "fit", "--trainer.max_steps=2")
    assert _probe(root)["model_device"].startswith("cuda") and _probe(root)["batch_devices"][0].startswith("cuda")
    (last,) = root.rglob("last.ckpt")
    assert read_checkpoint(last)["global_step"] == 2
    again = _fit(tmp_path, "fit", "--trainer.max_steps=4", f"--ckpt_path={last}")
    (resumed,) = sorted(again.rglob("last.ckpt"), key=lambda p: p.stat().st_mtime)[-1:]
    assert read_checkpoint(resumed)["global_step"] == 4


def test_ddp_over_nccl_with_syncbatchnorm_on_the_gpus_present(tmp_path):
    gpus = torch.cuda.device_count()
    precision = "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    root = _fit(tmp_path, "ddp", "-c", str(CONFIGS / "scale" / "ddp.yaml"), "--trainer.accelerator=gpu",
                f"--trainer.devices={gpus}", f"--trainer.precision={precision}", "--trainer.max_steps=2",
                "--data.init_args.batch_size=2", "--data.init_args.train_length=8")
    for rank in range(gpus):
        record = _probe(root, rank)
        assert record["backend"] == "nccl" and record["world_size"] == gpus and record["sync_batchnorm"], record
        assert record["model_device"] == f"cuda:{rank}"


# --- prediction and export -------------------------------------------------------------------------

def _with_refiner(refiner: dict | None) -> dict:
    return {**NET_CONFIG, "init_args": {**NET_CONFIG["init_args"], "refiner": refiner, "base_scale": 0.25}} if refiner else NET_CONFIG


NETS = {
    "base": NET_CONFIG,
    "default": yaml.safe_load((CONFIGS / "default.yaml").read_text())["model"]["net"],  # depthwise, channels_last on cuDNN
    "guided": _with_refiner({"class_path": "matting.models.GuidedFilterRefiner"}),
    "patch_full": _with_refiner({"class_path": "matting.models.PatchRefiner", "init_args": {"mode": "full"}}),
    "patch": _with_refiner({"class_path": "matting.models.PatchRefiner"}),
}
SIZES = {"512": (512, 512), "2048": (2048, 2048), "3840x2160": (2160, 3840)}
# Stated bounds of |alpha_cuda - alpha_cpu(float32)|: (max, mean). The patch refiner in sampling mode
# picks its cells by rank of a predicted error: in float32 rounding may swap cells at the cut, so it is
# held to the share of pixels that differ; in bf16 / fp16 the error map ranks them anew (5% of the
# pixels of a random-weight refiner moved by more than 0.25 under CPU bf16), so only its range is
# checked there. patch_full, every cell refined, has no cut and meets the bounds.
BOUNDS = {"fp32": (1e-4, 1e-5), "bf16": (0.25, 1e-2), "fp16": (0.05, 2e-3)}
PATCH_SWAPPED_SHARE = 1e-3


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    from matting.inference.loading import build_net

    folder = tmp_path_factory.mktemp("gpu_ckpt")
    made = {}
    for name, config in NETS.items():
        torch.manual_seed(0)
        net = build_net(config)
        for module in net.modules():  # non-trivial BatchNorm statistics, as tests/tiny_checkpoint.py does
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
        made[name] = write_checkpoint(folder / f"{name}.ckpt", net, config)
    return made


def _predict(ckpt: Path, image: np.ndarray, device: str, precision: str = "fp32") -> np.ndarray:
    """What ``matting predict`` computes: the checkpoint loaded on ``device``, prepared, run on ``image``."""
    from matting.inference.frozen import prepare_for_inference
    from matting.inference.loading import load_net
    from matting.inference.predict import predict_alpha

    net = prepare_for_inference(load_net(ckpt, device=device), jit=True)
    return predict_alpha(net, image, bf16=precision == "bf16", fp16=precision == "fp16")


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("name", list(NETS))
def test_predict_on_cuda_matches_the_cpu(checkpoints, name, size):
    height, width = SIZES[size]
    image = np.random.default_rng(0).random((height, width, 3), dtype=np.float32)
    reference = _predict(checkpoints[name], image, "cpu")
    for precision, (max_bound, mean_bound) in BOUNDS.items():
        if precision == "bf16" and not torch.cuda.is_bf16_supported():
            continue
        got = _predict(checkpoints[name], image, "cuda", precision)
        diff = np.abs(got - reference)
        if name == "patch" and precision != "fp32":  # a reduced-precision error map ranks the cells anew
            assert got.shape == reference.shape and np.isfinite(got).all() and 0 <= got.min() and got.max() <= 1
        elif name == "patch":
            assert (diff > max_bound).mean() <= PATCH_SWAPPED_SHARE, f"{name} {size} {precision}: {(diff > max_bound).mean():.2e}"
        else:
            assert diff.max() <= max_bound and diff.mean() <= mean_bound, f"{name} {size} {precision}: max {diff.max():.2e}, mean {diff.mean():.2e}"
    torch.cuda.empty_cache()


def test_the_predict_command_on_cuda_writes_the_cpu_mattes(checkpoints, tmp_path):
    from matting.commands import predict
    from matting.io.images import read_alpha, write_png

    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(1)
    for i, (h, w) in enumerate([(480, 640), (1080, 1920)]):
        write_png(photos / f"p{i}.png", (rng.random((h, w, 3)) * 255).astype(np.uint8))
    for name in ("base", "guided"):
        for device in ("cpu", "cuda"):
            assert predict.main([str(photos), "--ckpt", str(checkpoints[name]), "--out", str(tmp_path / name / device),
                                 "--device", device, "--no-cutout", "--no-progress"]) == 0
        for i in range(2):
            cpu, gpu = (read_alpha(tmp_path / name / d / "alpha" / f"p{i}.png") for d in ("cpu", "cuda"))
            assert np.abs(cpu - gpu).max() <= 1 / 255 + 1e-6  # 8-bit files: at most one level where rounding splits
    assert predict.main([str(photos), "--ckpt", str(checkpoints["guided"]), "--out", str(tmp_path / "fp16"),
                         "--device", "cuda", "--fp16", "--no-cutout", "--no-progress"]) == 0


@pytest.mark.parametrize("name", ["base", "default", "guided"])
def test_onnx_export_of_a_checkpoint_loaded_on_cuda(checkpoints, name, tmp_path):
    from matting.inference.export import export_onnx, refined_verify_shapes, verify_onnx, verify_shapes
    from matting.inference.loading import load_net
    from matting.inference.predict import ieee_float32

    net = load_net(checkpoints[name], device="cuda")
    target = tmp_path / f"{name}.onnx"
    export_onnx(net, target)
    assert next(net.parameters()).is_cuda  # exported where it was loaded, not moved
    shapes = refined_verify_shapes(512) if net.refiner is not None else verify_shapes(net.pad_multiple)
    with ieee_float32(torch.device("cuda")):
        errors = verify_onnx(net, target, shapes)
    assert all(error <= 1e-4 for _, error in errors), errors
