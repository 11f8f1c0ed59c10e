"""A trained network as a product: rebuilt from a checkpoint, frozen for speed, run on photos, exported."""

from matting.inference.frozen import FrozenAlphaNet, prepare_for_inference
from matting.inference.loading import build_net, load_net, net_from_parts
from matting.inference.predict import predict_alpha, resize_image

__all__ = ["FrozenAlphaNet", "build_net", "load_net", "net_from_parts", "predict_alpha", "prepare_for_inference", "resize_image"]
