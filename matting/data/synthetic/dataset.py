"""Procedural matting dataset: composites with true soft alpha, generated in code.

Each sample is a foreground subject layered over a procedural background::

    image = alpha * fg + (1 - alpha) * bg        (float32, computed exactly in that form)

The subject is one large object (sometimes two overlapping ones, or a head-and-shoulders
silhouette) covering roughly 15-60% of the frame (often cut by its bottom edge), its parts
smooth, finely textured or patterned, with hair or fur strands of partial coverage, optional
holes, semi-transparent veil or glass parts (alpha 0.2-0.8) and, on some samples, motion blur.
Backgrounds are smooth to fine multi-octave noise, gradients, stripes and clutter (half of it
textured), in focus or defocused. About 30% of samples draw the
foreground and background colours from the same hue family with small luminance
differences, so that colour alone cannot separate subject from background.

Samples are pure functions of ``(seed, split, index)``: nothing depends on worker, order
or process, and the three splits use disjoint random streams.

Texture says nothing about the role: subjects and their parts are smooth, fine or patterned, and
backgrounds smooth or busy, in focus or not (``texture_cue=True`` gives the first generator, in which
every subject was finely textured and most backgrounds defocused; see ``texture.py``).

The generator is ``scene.py`` (:func:`generate_sample`: palettes, background, layering),
``subject.py`` (outlines, strands, holes) and ``texture.py`` (surfaces, backgrounds without the
texture cue) over the drawing primitives of ``procedural.py``. It
has no version number: its files (:data:`GENERATOR_SOURCES`, this one included) stand for it
in the data fingerprint of a run.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from matting.data.synthetic.scene import HARD_FRACTION, HOLES, generate_sample
from matting.io.errors import MattingInputError
from matting.io.files import check_output, staged_folder
from matting.io.images import to_uint8

__all__ = ["GENERATOR_SOURCES", "HARD_FRACTION", "SPLIT_IDS", "SyntheticMattingDataset", "generate_sample", "generator_files",
           "write_split"]

SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
# The files whose code decides the samples, relative to this folder.
GENERATOR_SOURCES = ("dataset.py", "scene.py", "subject.py", "texture.py", "procedural.py")

_CV2_LIMITED_IN_PID: int | None = None


def generator_files() -> dict[str, Path]:
    """``"matting/data/synthetic/<file>"`` -> its path, for each of :data:`GENERATOR_SOURCES`."""
    here = Path(__file__).resolve().parent
    return {f"matting/data/synthetic/{name}": here / name for name in GENERATOR_SOURCES}


# --------------------------------------------------------------------------- dataset


class SyntheticMattingDataset:
    """On-the-fly procedural matting samples (a map-style dataset for ``torch.utils.data.DataLoader``).

    Item ``i`` is a dict of torch float32 tensors in [0,1] - ``image`` (3,H,W), ``alpha``
    (1,H,W), ``fg`` (3,H,W), ``bg`` (3,H,W) - and ``name`` (str, e.g. ``"test_00012"``).
    It depends only on (seed, split, i), never on worker, order or process.

    The first item (or ``arrays``) fetched in a process pins OpenCV to one thread in that process: the
    generator makes many small cv2 calls, for which thread hand-off costs more than it
    saves (about 9 ms instead of 14 ms per 256 px sample on two cores), and data-loader
    workers each spawning a cv2 thread pool would oversubscribe the CPU.

    torch is imported by ``__getitem__`` only: ``name`` and ``arrays`` (what ``matting make-data``
    writes) need numpy and OpenCV alone.
    """

    def __init__(self, split: str = "train", length: int = 1000, size: int = 256, seed: int = 0,
                 texture_cue: bool = False, hair: float = 0.8, zoom: float = 1.0, holes: float = HOLES,
                 markings: float = 0.0):
        if split not in SPLIT_IDS:
            raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLIT_IDS)}")
        if length < 0:
            raise ValueError(f"length must be >= 0, got {length}")
        if size < 16:
            raise ValueError(f"size must be >= 16, got {size}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.split, self.length, self.size, self.seed = split, int(length), int(size), int(seed)
        self.texture_cue = bool(texture_cue)
        if not 0.0 <= hair <= 1.0:
            raise ValueError(f"hair is a probability in [0, 1], got {hair}")
        self.hair = float(hair)
        if not zoom >= 1.0:
            raise ValueError(f"zoom is the largest enlargement of a subject, >= 1.0 (1.0: none), got {zoom}")
        self.zoom = float(zoom)
        for name, p in (("holes", holes), ("markings", markings)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} is a probability in [0, 1], got {p}")
        self.holes, self.markings = float(holes), float(markings)

    def __len__(self) -> int:
        return self.length

    def _index(self, i: int) -> int:
        i = int(i)
        if i < 0:
            i += self.length
        if not 0 <= i < self.length:
            raise IndexError(f"index {i} out of range for {self.split} split of length {self.length}")
        return i

    def name(self, i: int) -> str:
        return f"{self.split}_{self._index(i):05d}"

    def arrays(self, i: int) -> dict:
        """Sample ``i`` as numpy float32 (H,W,C) / (H,W) arrays, as from ``generate_sample``."""
        global _CV2_LIMITED_IN_PID
        if _CV2_LIMITED_IN_PID != os.getpid():
            cv2.setNumThreads(1)
            _CV2_LIMITED_IN_PID = os.getpid()
        i = self._index(i)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, SPLIT_IDS[self.split], i]))
        return generate_sample(rng, self.size, self.texture_cue, self.hair, self.zoom, self.holes, self.markings)

    def __getitem__(self, i: int) -> dict:
        import torch

        d = self.arrays(i)
        out = {k: torch.from_numpy(np.ascontiguousarray(d[k].transpose(2, 0, 1)))
               for k in ("image", "fg", "bg")}
        out["alpha"] = torch.from_numpy(d["alpha"][None].copy())
        out["name"] = self.name(i)
        return out


def _to_u8(x, channels_first: bool = True) -> np.ndarray:
    """Tensor or array (C,H,W) (or (H,W,C) when not ``channels_first``) or (H,W) in [0,1] -> uint8 (H,W[,C]), OpenCV order."""
    a = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
    if channels_first and a.ndim == 3 and a.shape[0] in (1, 3):
        a = a.transpose(1, 2, 0)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    u = to_uint8(a)
    return u[..., ::-1].copy() if u.ndim == 3 else u  # RGB -> BGR for cv2


def write_split(dataset, out_dir, overwrite: bool = False) -> Path:
    """Write every item of ``dataset`` to ``out_dir/{image,alpha,fg,bg}/<name>.png``.

    8-bit PNGs; alpha is single-channel, the others RGB. The split is written into a
    temporary sibling directory and renamed into place at the end, so a crash never leaves
    a half-written split behind. Raises ``MattingInputError`` if ``out_dir`` exists and is
    not empty (or is a file), unless ``overwrite`` is set. Returns ``out_dir`` as a Path.
    """
    out = Path(out_dir)
    check_output(out, overwrite=overwrite, empty_ok=True, messages={
        "is_file": "output path exists and is not a directory: {path}",
        "exists": "output directory is not empty: {path} (pass overwrite=True to replace it)",
    })
    with staged_folder(out) as staging:
        for sub in ("image", "alpha", "fg", "bg"):
            (staging / sub).mkdir()
        # A dataset with ``arrays`` (SyntheticMattingDataset) gives (H,W,C) numpy: no tensors, no torch.
        as_arrays = hasattr(dataset, "arrays") and hasattr(dataset, "name")
        for i in range(len(dataset)):
            item = {**dataset.arrays(i), "name": dataset.name(i)} if as_arrays else dataset[i]
            name = item["name"]
            for key in ("image", "alpha", "fg", "bg"):
                path = staging / key / f"{name}.png"
                if not cv2.imwrite(str(path), _to_u8(item[key], channels_first=not as_arrays)):
                    raise MattingInputError(f"could not write {path}")
    return out
