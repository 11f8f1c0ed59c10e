"""LightningModule: training, validation and test steps for a MattingNet."""

from __future__ import annotations

import random

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    BinaryJaccardIndex,
    BinaryPrecision,
    BinaryRecall,
)

from matting.data.trimap import (
    random_band_radius,
    transition_band,
    trimap_band,
    trimap_from_band,
    trimap_to_float,
)
from matting.io.errors import MattingInputError
from matting.losses import MattingLoss
from matting.metrics import MattingMetrics
from matting.models.contract import require_contract

BAND_SOURCES = ("random", "pipeline")  # where the training band comes from (MattingModule(band=...))


class MattingModule(L.LightningModule):
    """Trains and evaluates a :class:`MattingNet`.

    Batches are dicts with ``image`` (B, 3, H, W) and ``alpha`` (B, 1, H, W) in [0, 1], and
    optionally ``fg``/``bg`` (B, 3, H, W) for the composition loss. Logged keys:
    ``train/loss`` and ``train/loss_<term>``, ``val/<metric>`` and ``test/<metric>`` (whole-image
    metrics; units in :mod:`matting.metrics`), and ``val/iou``, ``val/precision``,
    ``val/recall`` of the mask ``alpha > 0.5``.

    Args:
        net: the network: a :class:`MattingNet`, or any module mapping an image (B, 3, H, W) to a
            dict with ``pred_alpha`` (the segmentation baselines).
        loss: loss terms and weights (defaults: MODNet's).
        optimizer: optimizer factory, e.g. ``torch.optim.AdamW``.
        scheduler: optional LR scheduler factory, stepped every optimizer step.
        channels_last: run convolutions in NHWC, faster on CPU and on tensor cores.
        lr_scales: learning-rate multipliers by parameter-name prefix, longest prefix wins, e.g.
            ``{"net.encoder": 0.1, "net.refiner": 1.0}``; 0 freezes those parameters (two-stage
            training: freeze or slow the base while the refiner learns).
        init_weights: checkpoint (``.ckpt`` written by ``matting fit``, or ``.safetensors``) whose
            network weights initialise this one before training; keys missing on either side are
            listed (a refiner added in stage 2 starts from scratch). Loaded without unpickling objects.
        band: the transition band the loss weights in training. ``random``: made from the ground
            truth each step (:func:`matting.data.trimap.transition_band`, MODNet's size-relative
            window of random size); ``pipeline``: the unknown region of the batch's ``trimap``,
            the one the data configs choose (``augment.trimap: gfm | modnet | dim``); a
            trimap-based network then also sees that trimap in training.
    """

    def __init__(
        self,
        net: nn.Module,
        loss: MattingLoss | None = None,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        scheduler: LRSchedulerCallable | None = None,
        channels_last: bool = True,
        lr_scales: dict[str, float] | None = None,
        init_weights: str | None = None,
        band: str = "random",
    ):
        super().__init__()
        if band not in BAND_SOURCES:
            raise MattingInputError(f"model.band must be one of {', '.join(BAND_SOURCES)}, got '{band}'")
        # Keep every init argument (LightningCLI stores them as config) so load_from_checkpoint rebuilds the net.
        self.save_hyperparameters()
        self.net = net
        self.loss = loss or MattingLoss()
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.channels_last = channels_last
        self._trimap_input_net = require_contract(net, "model.net").trimap_input
        self.metrics = nn.ModuleDict({stage: MattingMetrics(protocol="whole") for stage in ("val", "test")})
        self.seg_metrics = nn.ModuleDict({stage: MetricCollection({"iou": BinaryJaccardIndex(), "precision": BinaryPrecision(),
                                                                   "recall": BinaryRecall()}) for stage in ("val", "test")})
        # Trimap-based variant at evaluation without a dataset trimap: the GT band of this radius.
        self.eval_band_radius = 10
        self._band_rng = random.Random(0)
        self.band = band
        self.lr_scales = dict(lr_scales or {})
        if init_weights:
            self._load_init_weights(init_weights)
        for name, param in self.named_parameters():
            if self._lr_scale(name) == 0:
                param.requires_grad_(False)
        if channels_last:
            self.net.to(memory_format=torch.channels_last)
        # Lightning keeps each layer's mode as it finds it at fit start: put frozen BatchNorm in eval now.
        self.train()

    def train(self, mode: bool = True):
        """Frozen parts (lr scale 0) stay in eval mode: their BatchNorm statistics must not drift."""
        super().train(mode)
        if mode:
            for m in self.net.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(p.requires_grad for p in m.parameters()):
                    m.eval()
        return self

    def forward(self, image: torch.Tensor, trimap: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if self.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        return self.net(image, trimap=trimap) if self._trimap_input_net else self.net(image)

    @staticmethod
    def _trimap_input(batch: dict, band: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) in {0, 0.5, 1}: the batch's trimap (0/128/255) when it has one, else the
        ground truth's band (unknown) and its sides (known), for the trimap-based variant."""
        if batch.get("trimap") is not None:
            return trimap_to_float(batch["trimap"])
        return trimap_from_band(band, batch["alpha"])

    def _training_band(self, batch: dict) -> torch.Tensor:
        """(B, 1, H, W) float in {0, 1}: the band of ``self.band`` (see the class docstring)."""
        if self.band == "pipeline":
            if batch.get("trimap") is None:
                raise MattingInputError(
                    "model.band is 'pipeline' but the training batches carry no 'trimap' (the synthetic data "
                    "makes none); use model.band=random, or data whose augmentation makes trimaps"
                )
            return trimap_band(batch["trimap"]).to(batch["alpha"].dtype)
        radius = random_band_radius(min(batch["alpha"].shape[-2:]), self._band_rng)
        return transition_band(batch["alpha"], radius)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        band = self._training_band(batch)
        # With the random band, the trimap-based variant sees that band, not the pipeline's trimap.
        trimap_batch = batch if self.band == "pipeline" else {**batch, "trimap": None}
        trimap = self._trimap_input(trimap_batch, band) if self._trimap_input_net else None
        outputs = self(batch["image"], trimap)
        terms = self.loss(outputs, batch, band, mode=self.net.fusion_mode)
        # One check of all terms: each bool() of a CUDA tensor waits for the GPU to finish the step so far.
        if not torch.isfinite(torch.stack([v.detach().float() for v in terms.values()])).all():
            name, value = next((k, v) for k, v in terms.items() if not torch.isfinite(v))
            raise FloatingPointError(f"non-finite loss term {name!r}={value.item()} at global step {self.global_step}")
        self.log_dict({f"train/loss_{k}" if k != "loss" else "train/loss": v.detach() for k, v in terms.items()},
                      prog_bar=False, batch_size=batch["image"].shape[0])
        self.log("loss", terms["loss"].detach(), prog_bar=True, logger=False, batch_size=batch["image"].shape[0])
        return terms["loss"]

    def _eval_step(self, batch: dict, stage: str) -> dict[str, torch.Tensor]:
        trimap = None
        if self._trimap_input_net:
            trimap = self._trimap_input(batch, transition_band(batch["alpha"], self.eval_band_radius))
        outputs = self(batch["image"], trimap)
        pred, gt = outputs["pred_alpha"].float(), batch["alpha"].float()
        self.metrics[stage].update(pred, gt, batch.get("trimap"))
        # Segmentation view of the matte (alpha > 0.5), reported next to the matting metrics.
        self.seg_metrics[stage].update(pred.flatten(), (gt > 0.5).flatten().long())
        return outputs

    def _log_epoch(self, stage: str, prog_bar: bool) -> None:
        values = {**self.metrics[stage].compute(), **self.seg_metrics[stage].compute()}
        self.log_dict({f"{stage}/{k}": v for k, v in values.items()}, prog_bar=prog_bar)
        self.metrics[stage].reset()
        self.seg_metrics[stage].reset()

    def on_validation_start(self) -> None:
        _warn_if_padded(self.trainer, self.trainer.val_dataloaders, "validation")

    def on_test_start(self) -> None:
        _warn_if_padded(self.trainer, self.trainer.test_dataloaders, "test")

    def validation_step(self, batch: dict, batch_idx: int) -> dict[str, torch.Tensor]:
        # The outputs reach callbacks' on_validation_batch_end (RunRecord draws prediction grids from them).
        return self._eval_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val", prog_bar=True)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test", prog_bar=False)

    def predict_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        trimap = None
        if self._trimap_input_net:
            trimap = self._trimap_input(batch, transition_band(batch["alpha"], self.eval_band_radius))
        return self(batch["image"], trimap)["pred_alpha"]

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # The training step's own random draws, so a resumed run continues the same sequence.
        checkpoint["band_rng_state"] = self._band_rng.getstate()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "band_rng_state" in checkpoint:
            state = checkpoint["band_rng_state"]
            self._band_rng.setstate((state[0], tuple(state[1]), state[2]))

    def _load_init_weights(self, path: str) -> None:
        load_init_weights(self.net, path)

    def _lr_scale(self, name: str) -> float:
        return lr_scale(name, self.lr_scales)

    def configure_optimizers(self):
        return scaled_optimizers(self, self.lr_scales, self.optimizer_factory, self.scheduler_factory)


def load_init_weights(net: nn.Module, path: str) -> None:
    """Copy the network weights of checkpoint ``path`` into ``net`` where names and shapes fit.

    Keys missing on either side are listed (a refiner added in stage 2 starts from scratch); a
    file of which nothing fits is refused. Loaded without unpickling objects.
    """
    from matting.io.checkpoints import check_state_fits, read_checkpoint

    state = read_checkpoint(path, f"model.init_weights {path}").net_state()  # the message says where the path came from
    # Another architecture entirely is refused: training would silently start from scratch.
    fit = check_state_fits(net.state_dict(), state, path, partial=True,
                           hint="model.init_weights would load nothing; pick a checkpoint of the configured network")
    net.load_state_dict({k: state[k] for k in fit.fitting}, strict=False)
    fresh = fit.missing + fit.reshaped
    print(f"init_weights {path}: loaded {len(fit.fitting)} tensors; "
          f"{len(fresh)} start fresh ({', '.join(sorted({k.split('.')[0] for k in fresh})) or 'none'}); "
          f"{len(fit.unexpected) + len(fit.reshaped)} in the file unused")


def lr_scale(name: str, lr_scales: dict[str, float]) -> float:
    """Learning-rate multiplier of parameter ``name``: the longest matching prefix of ``lr_scales``, else 1."""
    matches = [p for p in lr_scales if name == p or name.startswith(p + ".")]
    return lr_scales[max(matches, key=len)] if matches else 1.0


def scaled_optimizers(module: nn.Module, lr_scales: dict[str, float], optimizer_factory, scheduler_factory=None):
    """``configure_optimizers`` of a module trained with ``lr_scales``: one parameter group per scale
    (trainable parameters only), the scheduler stepped every optimizer step."""
    groups: dict[float, list] = {}
    for name, param in module.named_parameters():
        if param.requires_grad:
            groups.setdefault(lr_scale(name, lr_scales), []).append(param)
    optimizer = optimizer_factory([{"params": p, "lr_scale": s} for s, p in groups.items()])
    for group in optimizer.param_groups:
        group["lr"] *= group["lr_scale"]
    if scheduler_factory is None:
        return optimizer
    scheduler = scheduler_factory(optimizer)
    for group in optimizer.param_groups:
        # Schedulers that set the lr from their own arguments (OneCycleLR's max_lr) get the scale here.
        if "max_lr" in group and group["lr_scale"] != 1:
            for key in ("lr", "initial_lr", "max_lr", "min_lr"):
                group[key] *= group["lr_scale"]
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def _warn_if_padded(trainer, loaders, split: str) -> None:
    """Under DDP the distributed sampler repeats samples to fill the last round: they count twice."""
    world = trainer.world_size
    if world <= 1 or loaders is None:
        return
    for loader in loaders if isinstance(loaders, (list, tuple)) else [loaders]:
        size = len(getattr(loader, "dataset", ()) or ())
        if size % world:
            rank_zero_warn(f"the {split} split has {size} samples, not a multiple of the {world} processes: "
                           f"{world - size % world} of them are scored twice; report benchmark numbers from "
                           "one device (matting test --trainer.devices=1)")
