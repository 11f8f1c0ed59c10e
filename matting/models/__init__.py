"""Network parts. These explicit imports are the whole registry: configs name ``matting.models.X``."""

from matting.models.detail import DetailHead, FocusHead
from matting.models.encoder import FeatureSpec, TimmEncoder
from matting.models.fusion import CollaborativeFusion, LearnedFusion, ModnetFusion
from matting.models.gfm_unet import FocusUNetHead, GlanceUNetHead
from matting.models.net import MattingNet
from matting.models.refiner import GuidedFilterRefiner, PatchRefiner
from matting.models.segmentation import FCDenseNet, PatchClassifier
from matting.models.semantic import GlanceHead, SemanticHead

__all__ = [
    "FeatureSpec",
    "TimmEncoder",
    "SemanticHead",
    "GlanceHead",
    "GlanceUNetHead",
    "DetailHead",
    "FocusHead",
    "FocusUNetHead",
    "ModnetFusion",
    "CollaborativeFusion",
    "LearnedFusion",
    "PatchRefiner",
    "GuidedFilterRefiner",
    "MattingNet",
    "PatchClassifier",
    "FCDenseNet",
]
