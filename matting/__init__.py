"""Two-stage, trimap-free image matting."""

__version__ = "0.1.0"
