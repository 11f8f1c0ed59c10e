"""An exported graph (``matting export --onnx``) run by onnxruntime: full-size photo in, full-size alpha out.

This module needs numpy and onnxruntime only (no torch, timm, Lightning or jsonargparse), so a
command given a graph starts in about a second: see ``docs/speed.md``. The graph carries the
whole of ``predict_alpha`` (the resize to the base size, the network, the resize back), so the
runner only adds the batch axis and the check for non-finite output.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from matting.io.errors import MattingInputError, NonFiniteOutput

__all__ = ["GRAPH_SUFFIXES", "AlphaGraph", "is_graph"]

# Files that ``--ckpt`` takes as an exported graph rather than a checkpoint (chosen by suffix).
GRAPH_SUFFIXES = (".onnx",)
# Metadata of a graph that takes the full-size photo (every graph `matting export` writes now).
CONTRACT_KEY, FULL_SIZE = "contract", "full-size photo in, full-size alpha out"


def is_graph(path: str | os.PathLike) -> bool:
    """True when ``path`` names an exported graph (by its suffix), False for a checkpoint."""
    return Path(path).suffix.lower() in GRAPH_SUFFIXES


class AlphaGraph:
    """An exported graph as a function of one photo.

    Args:
        path: the ``.onnx`` file written by ``matting export``.
        threads: onnxruntime intra-op threads (None: onnxruntime's choice, one per core).

    Attributes:
        base_size, base_side: the base pass the graph was exported with (``matting predict``'s
            ``--base-size`` and ``--base-side``), from its metadata.
        parameters: the network's parameter count, from its metadata (0 when not recorded).
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise MattingInputError(f"{self.path}: no such file")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3  # onnxruntime's own warnings are not the user's concern
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for a truncated or foreign file
            raise MattingInputError(f"{self.path}: not an ONNX graph onnxruntime can load ({type(exc).__name__}: "
                                    f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''})") from exc
        meta = self.session.get_modelmeta().custom_metadata_map
        # Refiner graphs always took the full-size photo and record base_size; others say so in CONTRACT_KEY.
        if meta.get(CONTRACT_KEY) != FULL_SIZE and "base_size" not in meta:
            raise MattingInputError(f"{self.path}: this graph expects a photo already resized to the base size "
                                    "(an older export); export the checkpoint again with `matting export`")
        inputs = self.session.get_inputs()
        if [i.name for i in inputs] != ["image"] or [o.name for o in self.session.get_outputs()] != ["alpha"]:
            raise MattingInputError(f"{self.path}: not a matting graph (expected one input 'image' and one output 'alpha')")
        self.base_size = int(meta.get("base_size", 512))
        self.base_side = meta.get("base_side", "long")
        self.parameters = int(meta.get("parameters", "0") or 0)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) float RGB in [0, 1] -> alpha float32 (H, W) in [0, 1], at the photo's resolution.

        Raises ``NonFiniteOutput`` when the alpha holds NaN or infinite values."""
        image = np.asarray(image, dtype=np.float32)
        if image.ndim != 3 or image.shape[2] != 3:
            raise MattingInputError(f"expected an (H, W, 3) image, got shape {image.shape}")
        (alpha,) = self.session.run(["alpha"], {"image": np.ascontiguousarray(image.transpose(2, 0, 1)[None])})
        alpha = alpha[0, 0]
        if not np.isfinite(alpha).all():
            raise NonFiniteOutput(f"{self.path}: the graph's alpha matte holds NaN or infinite values; nothing is "
                                  "written from it")
        return np.clip(alpha, 0.0, 1.0).astype(np.float32, copy=False)
