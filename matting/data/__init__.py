"""Datasets and data modules."""

from matting.data.augment import Augment
from matting.data.base import MattingDataModule
from matting.data.datamodule import SyntheticDataModule
from matting.data.matte_datamodule import MatteDataModule
from matting.data.matte_dataset import MatteEvalDataset, MatteTrainDataset
from matting.data.synthetic.dataset import SyntheticMattingDataset

__all__ = ["Augment", "MatteDataModule", "MattingDataModule", "MatteEvalDataset", "MatteTrainDataset", "SyntheticDataModule", "SyntheticMattingDataset"]
