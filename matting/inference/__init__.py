"""A trained network as a product: rebuilt from a checkpoint, run on photos, exported.

Names are resolved on first use, so that ``matting.inference.graph`` (an exported graph run by
onnxruntime) is imported without torch.
"""

import importlib

_HOMES = {
    "FrozenAlphaNet": "matting.inference.frozen",
    "prepare_for_inference": "matting.inference.frozen",
    "build_net": "matting.inference.loading",
    "load_net": "matting.inference.loading",
    "net_from_parts": "matting.inference.loading",
    "predict_alpha": "matting.inference.predict",
    "resize_image": "matting.inference.predict",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'matting.inference' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
