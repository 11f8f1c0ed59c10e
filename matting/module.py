"""LightningModule: training, validation and test steps for a MattingNet."""

from __future__ import annotations

import random

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable

from .losses import MattingLoss, random_band_radius, transition_band
from .metrics import MattingMetrics
from .models import MattingNet


class MattingModule(L.LightningModule):
    """Trains and evaluates a :class:`MattingNet`.

    Batches are dicts with ``image`` (B, 3, H, W) and ``alpha`` (B, 1, H, W) in [0, 1], and
    optionally ``fg``/``bg`` (B, 3, H, W) for the composition loss. Logged keys:
    ``train/loss`` and ``train/loss_<term>``, ``val/<metric>`` and ``test/<metric>`` (whole-image
    metrics; units in :mod:`matting.metrics`).

    Args:
        net: the network.
        loss: loss terms and weights (defaults: MODNet's).
        optimizer: optimizer factory, e.g. ``torch.optim.AdamW``.
        scheduler: optional LR scheduler factory, stepped every optimizer step.
        channels_last: run convolutions in NHWC, faster on CPU and on tensor cores.
    """

    def __init__(
        self,
        net: MattingNet,
        loss: MattingLoss | None = None,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        scheduler: LRSchedulerCallable | None = None,
        channels_last: bool = True,
    ):
        super().__init__()
        # Keep every init argument (LightningCLI stores them as config) so load_from_checkpoint rebuilds the net.
        self.save_hyperparameters()
        self.net = net
        self.loss = loss or MattingLoss()
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.channels_last = channels_last
        self.val_metrics = MattingMetrics(protocol="whole")
        self.test_metrics = MattingMetrics(protocol="whole")
        self._band_rng = random.Random(0)
        if channels_last:
            self.net.to(memory_format=torch.channels_last)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        return self.net(image)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        outputs = self(batch["image"])
        radius = random_band_radius(min(batch["alpha"].shape[-2:]), self._band_rng)
        band = transition_band(batch["alpha"], radius)
        terms = self.loss(outputs, batch, band, mode=self.net.collaborative_mode)
        for name, value in terms.items():
            if not torch.isfinite(value):
                raise FloatingPointError(f"non-finite loss term {name!r}={value.item()} at global step {self.global_step}")
        self.log_dict({f"train/loss_{k}" if k != "loss" else "train/loss": v.detach() for k, v in terms.items()},
                      prog_bar=False, batch_size=batch["image"].shape[0])
        self.log("loss", terms["loss"].detach(), prog_bar=True, logger=False, batch_size=batch["image"].shape[0])
        return terms["loss"]

    def _eval_step(self, batch: dict, metrics: MattingMetrics) -> dict[str, torch.Tensor]:
        outputs = self(batch["image"])
        metrics.update(outputs["pred_alpha"].float(), batch["alpha"].float(), batch.get("trimap"))
        return outputs

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, self.val_metrics)

    def on_validation_epoch_end(self) -> None:
        self.log_dict({f"val/{k}": v for k, v in self.val_metrics.compute().items()}, prog_bar=True)
        self.val_metrics.reset()

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, self.test_metrics)

    def on_test_epoch_end(self) -> None:
        self.log_dict({f"test/{k}": v for k, v in self.test_metrics.compute().items()})
        self.test_metrics.reset()

    def predict_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self(batch["image"])["pred_alpha"]

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
