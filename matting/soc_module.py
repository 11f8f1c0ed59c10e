"""SOCModule: self-supervised adaptation of a trained two-decoder network to unlabeled photos.

Training follows MODNet's SOC recipe (the loss is in :mod:`matting.soc_loss`): a frozen backup
copy of the network is taken at the start of every epoch and anchors the detail predictions; every
normalisation layer keeps the statistics and affine parameters of the trained network (eval mode,
no gradients), because batches of one unlabeled photo would make poor statistics; Adam, lr 1e-5,
betas (0.9, 0.99).

Checkpoints hold the network config as hyper-parameter ``net`` and the weights under ``net.``,
the layout of ``matting fit`` checkpoints, so :func:`matting.inference.load_net` reads them
(``matting predict --ckpt``, ``matting export``, ``--model.init_weights``). The backup copy is
not registered as a sub-module and never enters the checkpoint.
"""

from __future__ import annotations

import copy

import lightning as L
import torch
from torch import nn

from matting.io.errors import MattingInputError
from matting.soc_loss import BAND_FRACTION, soc_losses

REQUIRED_OUTPUTS = ("pred_alpha", "pred_semantic", "pred_detail")
NORM_TYPES: tuple[type, ...] = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm,
                                nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm) + ((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ())


def norm_layers(net: nn.Module) -> list[nn.Module]:
    """Every normalisation layer of ``net`` (BatchNorm, InstanceNorm, GroupNorm, LayerNorm and their
    timm subclasses)."""
    return [m for m in net.modules() if isinstance(m, NORM_TYPES)]


@torch.no_grad()
def check_soc_outputs(net: nn.Module, where: str = "the network") -> None:
    """Raise MattingInputError unless ``net`` maps an image to ``pred_alpha``, ``pred_semantic`` and ``pred_detail``."""
    if getattr(net, "trimap_input", False):
        raise MattingInputError(f"{where}: SOC adapts trimap-free networks; this one takes a trimap as input")
    was_training = net.training
    stride = int(getattr(net, "stride", 32))
    try:
        outputs = net.eval()(torch.zeros(1, 3, 2 * stride, 2 * stride, device=next(net.parameters()).device))
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

    Args:
        net: the trained network; must output ``pred_alpha`` (B, 1, H, W), ``pred_semantic``
            (B, 1, H/16, W/16) and ``pred_detail`` (B, 1, H, W), all in [0, 1].
        net_config: its ``{class_path, init_args}`` config (stored in checkpoints as ``net``).
        lr: Adam learning rate.
        betas: Adam betas.
        semantic_weight, detail_weight: weights of the two SOC terms.
        band_fraction: side of the detail band's window as a share of the mean image side.
        source_checkpoint: where ``net`` came from (recorded in the hyper-parameters).

    Attributes:
        backup_refreshes: how many times the backup copy was taken (once per training epoch).
    """

    def __init__(
        self,
        net: nn.Module,
        net_config: dict,
        lr: float = 1e-5,
        betas: tuple[float, float] = (0.9, 0.99),
        semantic_weight: float = 100.0,
        detail_weight: float = 1.0,
        band_fraction: float = BAND_FRACTION,
        source_checkpoint: str | None = None,
    ):
        super().__init__()
        check_soc_outputs(net, source_checkpoint or "the network")
        self.save_hyperparameters({"net": net_config, "lr": lr, "betas": [float(b) for b in betas],
                                   "semantic_weight": semantic_weight, "detail_weight": detail_weight,
                                   "band_fraction": band_fraction, "source_checkpoint": source_checkpoint})
        self.net = net
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
            backup = self.backup_net(image)
        hp = self.hparams
        terms = soc_losses(outputs, backup, hp.semantic_weight, hp.detail_weight, hp.band_fraction)
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
        params = [p for p in self.net.parameters() if p.requires_grad]
        return torch.optim.Adam(params, lr=self.hparams.lr, betas=tuple(self.hparams.betas))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["soc"] = {"backup_refreshes": self.backup_refreshes}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.backup_refreshes = int(checkpoint.get("soc", {}).get("backup_refreshes", 0))
