"""Network parts. These explicit imports are the whole registry: configs name ``matting.models.X``."""

from .detail import DetailHead, FocusHead
from .encoder import FeatureSpec, TimmEncoder
from .fusion import CollaborativeFusion, LearnedFusion, ModnetFusion
from .net import MattingNet
from .refiner import GuidedFilterRefiner, PatchRefiner
from .segmentation import FCDenseNet, PatchClassifier
from .semantic import GlanceHead, SemanticHead

__all__ = [
    "FeatureSpec",
    "TimmEncoder",
    "SemanticHead",
    "GlanceHead",
    "DetailHead",
    "FocusHead",
    "ModnetFusion",
    "CollaborativeFusion",
    "LearnedFusion",
    "PatchRefiner",
    "GuidedFilterRefiner",
    "MattingNet",
    "PatchClassifier",
    "FCDenseNet",
]
