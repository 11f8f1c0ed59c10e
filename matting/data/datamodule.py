"""Old home of :class:`matting.data.synthetic.datamodule.SyntheticDataModule`: configs and
checkpoints that name ``matting.data.datamodule.SyntheticDataModule`` keep loading."""

from matting.data.synthetic.datamodule import SyntheticDataModule

__all__ = ["SyntheticDataModule"]
