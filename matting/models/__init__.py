"""Network parts. These explicit imports are the whole registry: configs name ``matting.models.X``."""

from .encoder import FeatureSpec, TimmEncoder
from .heads import DetailHead, ModnetFusion, SemanticHead
from .net import MattingNet

__all__ = ["FeatureSpec", "TimmEncoder", "SemanticHead", "DetailHead", "ModnetFusion", "MattingNet"]
