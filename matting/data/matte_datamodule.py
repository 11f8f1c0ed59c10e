"""Old name of :mod:`matting.data.manifest_datamodule`: configs and checkpoints that name
``matting.data.matte_datamodule.MatteDataModule`` keep loading."""

from matting.data.manifest_datamodule import ManifestDataModule as MatteDataModule
from matting.data.manifest_datamodule import parse_split

__all__ = ["MatteDataModule", "parse_split"]
