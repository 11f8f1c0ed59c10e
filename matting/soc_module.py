"""SOCModule: self-supervised adaptation of a trained two-decoder network to unlabeled photos.

Training follows MODNet's SOC recipe (the loss is in :mod:`matting.soc_loss`): a frozen backup
copy of the network is taken at the start of every epoch and anchors the detail predictions; every
normalisation layer keeps the statistics and affine parameters of the trained network (eval mode,
no gradients), because batches of one unlabeled photo would make poor statistics; Adam, lr 1e-5,
betas (0.9, 0.99). ``matting adapt`` runs it through the LightningCLI of ``matting fit``
(``configs/adapt.yaml``), so ``matting fit -c`` repeats an adaptation from its ``config.yaml``.

Checkpoints (written by LightningCLI) hold the network config as hyper-parameter ``net`` and the
weights under ``net.``, the layout of ``matting fit`` checkpoints, so
:func:`matting.inference.load_net` reads them (``matting predict --ckpt``, ``matting export``,
``--model.init_weights``). The backup copy is
not registered as a sub-module and never enters the checkpoint.
"""

from __future__ import annotations

import copy
import functools

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from matting.io.errors import MattingInputError
from matting.models import MattingNet
from matting.models.contract import require_contract
from matting.module import load_init_weights, lr_scale, scaled_optimizers
from matting.soc_loss import SOCLoss

REQUIRED_OUTPUTS = ("pred_alpha", "pred_semantic", "pred_detail")
NORM_TYPES: tuple[type, ...] = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm,
                                nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm) + ((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ())


def norm_layers(net: nn.Module) -> list[nn.Module]:
    """Every normalisation layer of ``net`` (BatchNorm, InstanceNorm, GroupNorm, LayerNorm and their
    timm subclasses)."""
    return [m for m in net.modules() if isinstance(m, NORM_TYPES)]


def every_output(net: nn.Module, image: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every prediction of ``net`` on ``image``, in eval mode too (where a MattingNet computes only
    what its alpha needs): SOC reads the coarse and detail predictions of a frozen copy."""
    return net(image, outputs="all") if isinstance(net, MattingNet) else net(image)


@torch.no_grad()
def check_soc_outputs(net: nn.Module, where: str = "the network") -> None:
    """Raise MattingInputError unless ``net`` maps an image to ``pred_alpha``, ``pred_semantic`` and ``pred_detail``."""
    net = require_contract(net, where)
    if net.trimap_input:
        raise MattingInputError(f"{where}: SOC adapts trimap-free networks; this one takes a trimap as input")
    was_training = net.training
    stride = net.pad_multiple
    try:
        outputs = every_output(net.eval(), torch.zeros(1, 3, 2 * stride, 2 * stride, device=next(net.parameters()).device))
    finally:
        net.train(was_training)
    missing = [key for key in REQUIRED_OUTPUTS if key not in outputs]
    if missing:
        raise MattingInputError(
            f"{where}: SOC needs both a semantic head (pred_semantic, the 1/16 coarse alpha of SemanticHead) and a "
            f"detail head (pred_detail); this network outputs {', '.join(sorted(outputs))}, without {', '.join(missing)}")


class SOCModule(L.LightningModule):
    """Adapts a trained :class:`matting.models.MattingNet` with SOC on batches of unlabeled photos.

    Batches are dicts with ``image`` (B, 3, H, W) float RGB in [0, 1]. Logged every step:
    ``train/soc_loss`` and its weighted terms ``train/soc_semantic`` and ``train/soc_detail``;
    every epoch: ``train/soc_loss_epoch``, the mean of ``train/soc_loss`` over the epoch.
    The arguments follow :class:`matting.module.MattingModule`.

    Args:
        net: the network; must output ``pred_alpha`` (B, 1, H, W), ``pred_semantic``
            (B, 1, H/16, W/16) and ``pred_detail`` (B, 1, H, W), all in [0, 1]. SOC only refines
            what a network trained on labeled data can do: start it from ``init_weights``.
        loss: the SOC terms and their weights (defaults: MODNet's).
        optimizer: optimizer factory; None is MODNet's Adam with lr 1e-5 and betas (0.9, 0.99).
        scheduler: optional LR scheduler factory, stepped every optimizer step.
        lr_scales: learning-rate multipliers by parameter-name prefix, longest prefix wins; 0
            freezes those parameters. Normalisation layers are frozen whatever the scales.
        init_weights: checkpoint (``.ckpt`` written by ``matting fit``, or ``.safetensors``) whose
            network weights start the adaptation.

    Attributes:
        backup_refreshes: how many times the backup copy was taken (once per training epoch).
    """

    def __init__(
        self,
        net: nn.Module,
        loss: SOCLoss | None = None,
        optimizer: OptimizerCallable | None = None,
        scheduler: LRSchedulerCallable | None = None,
        lr_scales: dict[str, float] | None = None,
        init_weights: str | None = None,
    ):
        super().__init__()
        # Every init argument is kept (LightningCLI stores them as config): checkpoints hold ``net``'s config.
        self.save_hyperparameters()
        check_soc_outputs(net, init_weights or "the network")
        self.net = net
        self.loss = loss or SOCLoss()
        self.optimizer_factory = optimizer or functools.partial(torch.optim.Adam, lr=1e-5, betas=(0.9, 0.99))
        self.scheduler_factory = scheduler
        self.lr_scales = dict(lr_scales or {})
        if init_weights:
            load_init_weights(self.net, init_weights)
        for name, param in self.named_parameters():
            if lr_scale(name, self.lr_scales) == 0:
                param.requires_grad_(False)
        self.norm_modules = norm_layers(net)  # a plain list: not registered twice
        for module in self.norm_modules:
            module.requires_grad_(False)
        self._backup: tuple[nn.Module, ...] = ()  # in a tuple so that it is not a registered sub-module
        self.backup_refreshes = 0

    @property
    def backup_net(self) -> nn.Module | None:
        """The frozen copy of ``net`` taken at the start of the current epoch (None before training)."""
        return self._backup[0] if self._backup else None

    def train(self, mode: bool = True):
        """Normalisation layers stay in eval mode: their running statistics must not move."""
        super().train(mode)
        for module in self.norm_modules:
            module.eval()
        return self

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.net(image)

    def refresh_backup(self) -> None:
        """Take a frozen copy of the current network as the detail anchor."""
        backup = copy.deepcopy(self.net).eval()
        backup.requires_grad_(False)
        self._backup = (backup,)
        self.backup_refreshes += 1

    def on_train_epoch_start(self) -> None:
        self.train()  # Lightning does not call train() itself; this is what keeps the norms in eval mode
        self.refresh_backup()

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        image = batch["image"]
        outputs = self.net(image)
        with torch.no_grad():
            backup = every_output(self.backup_net, image)
        terms = self.loss(outputs, backup)
        if not torch.isfinite(terms["loss"]):
            raise FloatingPointError(f"non-finite SOC loss {terms['loss'].item()} at global step {self.global_step}")
        logged = {"train/soc_loss": terms["loss"], "train/soc_semantic": terms["semantic"], "train/soc_detail": terms["detail"]}
        batch_size = image.shape[0]
        self.log_dict({k: v.detach() for k, v in logged.items()}, on_step=True, on_epoch=False, batch_size=batch_size)
        # The epoch mean as well: single steps on single photos are noisy.
        self.log("train/soc_loss_epoch", terms["loss"].detach(), on_step=False, on_epoch=True, batch_size=batch_size)
        self.log("soc", terms["loss"].detach(), prog_bar=True, logger=False, batch_size=batch_size)
        return terms["loss"]

    def configure_optimizers(self):
        return scaled_optimizers(self, self.lr_scales, self.optimizer_factory, self.scheduler_factory)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["soc"] = {"backup_refreshes": self.backup_refreshes}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.backup_refreshes = int(checkpoint.get("soc", {}).get("backup_refreshes", 0))
