"""Datasets and data modules."""

from .datamodule import SyntheticDataModule
from .synthetic import SyntheticMattingDataset

__all__ = ["SyntheticDataModule", "SyntheticMattingDataset"]
