"""Datasets and data modules."""

from .augment import Augment
from .datamodule import SyntheticDataModule
from .matte_datamodule import MatteDataModule
from .matte_dataset import MatteEvalDataset, MatteTrainDataset
from .synthetic import SyntheticMattingDataset

__all__ = ["Augment", "MatteDataModule", "MatteEvalDataset", "MatteTrainDataset", "SyntheticDataModule", "SyntheticMattingDataset"]
