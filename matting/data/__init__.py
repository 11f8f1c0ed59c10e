"""Datasets and data modules.

The names below are imported on first use, so that ``matting.data.prepare`` and
``matting.data.synthetic`` (used by ``matting prepare-data`` and ``matting make-data``) load
without torch or Lightning.
"""

import importlib

_WHERE = {
    "Augment": "matting.data.augment",
    "MattingDataModule": "matting.data.base",
    "ManifestDataModule": "matting.data.manifest_datamodule",
    "SyntheticDataModule": "matting.data.synthetic.datamodule",
    "MatteEvalDataset": "matting.data.matte_dataset",
    "MatteTrainDataset": "matting.data.matte_dataset",
    "SyntheticMattingDataset": "matting.data.synthetic.dataset",
    "FolderDataModule": "matting.data.folder",
    "UnlabeledImageDataModule": "matting.data.unlabeled",
    # Old names of ManifestDataModule, for configs and checkpoints that name them.
    "MatteDataModule": "matting.data.matte_datamodule",
    "MixedDataModule": "matting.data.mixed",
}

__all__ = ["Augment", "FolderDataModule", "ManifestDataModule", "MatteDataModule", "MatteEvalDataset", "MatteTrainDataset", "MattingDataModule",
           "MixedDataModule", "SyntheticDataModule", "SyntheticMattingDataset", "UnlabeledImageDataModule"]


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'matting.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value
