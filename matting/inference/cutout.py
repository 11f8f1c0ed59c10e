"""What ``matting predict`` makes of a photo and its matte: the 8-bit matte, the RGBA cutout, the composite.

Background colours (``white``, ``'#00ff00'``, ``0,255,0``) and images are parsed and fitted here;
the composite is :func:`matting.data.composite.composite`, the one training composites with.
Nothing here imports torch: a photo predicted from an exported graph passes through it too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from matting.data.composite import composite
from matting.io.errors import MattingInputError
from matting.io.images import from_uint8, read_image, resize_image, to_uint8

__all__ = ["CUTOUT_CLEAR_BELOW", "NAMED_COLOURS", "OUTPUT_KINDS", "cutout_rgba", "fit_background", "load_background",
           "parse_colour", "photo_outputs"]

OUTPUT_KINDS = ("alpha", "cutout", "composite")

NAMED_COLOURS = {
    "white": (255, 255, 255),
    "black": (0, 0, 0),
    "gray": (128, 128, 128),
    "grey": (128, 128, 128),
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
}


def parse_colour(text: str) -> np.ndarray | None:
    """'white' / '#RRGGBB' / '#RGB' / 'R,G,B' (0..255) -> float32 (3,) in [0, 1]; None when not a colour."""
    value = text.strip().lower()
    rgb: tuple[int, ...] | None = None
    if value in NAMED_COLOURS:
        rgb = NAMED_COLOURS[value]
    elif value.startswith("#") and len(value) in (4, 7):
        digits = value[1:] if len(value) == 7 else "".join(c * 2 for c in value[1:])
        try:
            rgb = tuple(int(digits[i:i + 2], 16) for i in (0, 2, 4))
        except ValueError:
            return None
    elif value.count(",") == 2:
        try:
            rgb = tuple(int(v) for v in value.split(","))
        except ValueError:
            return None
        if not all(0 <= v <= 255 for v in rgb):
            return None
    return None if rgb is None else np.asarray(rgb, np.float32) / np.float32(255)


def load_background(text: str) -> np.ndarray:
    """A background: float32 (3,) colour or (H, W, 3) image; MattingInputError when it is neither."""
    if Path(text).is_file():
        return read_image(text)
    colour = parse_colour(text)
    if colour is None:
        raise MattingInputError(
            f"--background {text!r}: neither an image file nor a colour (white, black, gray, red, green, blue, "
            "'#RRGGBB' or R,G,B with 0..255)"
        )
    return colour


def fit_background(background: np.ndarray, height: int, width: int) -> np.ndarray:
    """Colour or image -> (H, W, 3): an image is scaled to cover (H, W) and centre-cropped."""
    if background.ndim == 1:
        return np.broadcast_to(background, (height, width, 3))
    bh, bw = background.shape[:2]
    scale = max(height / bh, width / bw)
    sh, sw = max(height, int(np.ceil(bh * scale))), max(width, int(np.ceil(bw * scale)))
    scaled = resize_image(background, sh, sw)
    top, left = (sh - height) // 2, (sw - width) // 2
    return scaled[top:top + height, left:left + width]


# A cutout's alpha below this many 8-bit levels is written as 0. A network's background seldom reaches
# exactly 0 (3-4 levels is common), and a cutout pasted anywhere would carry a faint copy of the old
# background. Only the cutout: alpha/ keeps every level, since it is what the metrics score.
CUTOUT_CLEAR_BELOW = 8


def cutout_rgba(foreground: np.ndarray, alpha8: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 4): estimated foreground colours, A = the 8-bit matte with levels below
    ``CUTOUT_CLEAR_BELOW`` set to 0; colour 0 where A is 0."""
    alpha8 = np.where(alpha8 < CUTOUT_CLEAR_BELOW, 0, alpha8).astype(np.uint8)
    rgb = to_uint8(foreground)
    rgb[alpha8 == 0] = 0
    return np.dstack([rgb, alpha8])


def photo_outputs(image: np.ndarray, alpha: np.ndarray, kinds: list[str], background: np.ndarray | None) -> dict[str, np.ndarray]:
    """The outputs of one photo, by kind: ``alpha`` uint8 (H, W); ``cutout`` uint8 (H, W, 4);
    ``composite`` float32 (H, W, 3) over ``background`` (a (3,) colour or an image).

    image: float32 (H, W, 3) RGB in [0, 1]; alpha: float32 (H, W) in [0, 1]. Cutout and composite
    use the foreground colours estimated from the 8-bit matte as it is saved.
    """
    alpha8 = to_uint8(alpha)
    quantised = from_uint8(alpha8)
    foreground = None
    if "cutout" in kinds or "composite" in kinds:
        from matting.foreground import estimate_foreground

        foreground = estimate_foreground(image, quantised)
    outputs = {}
    for kind in kinds:
        if kind == "alpha":
            outputs[kind] = alpha8
        elif kind == "cutout":
            outputs[kind] = cutout_rgba(foreground, alpha8)
        else:
            outputs[kind] = composite(foreground, quantised, fit_background(background, *alpha.shape))
    return outputs
