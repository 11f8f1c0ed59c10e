"""Non-learned reference methods, evaluated by the same pipeline as the networks."""

from matting.baselines.color_threshold import ColorThresholdRemover, tune_threshold
from matting.baselines.constant import ConstantAlpha, best_constant

__all__ = ["ColorThresholdRemover", "tune_threshold", "ConstantAlpha", "best_constant"]
