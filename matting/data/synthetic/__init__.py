"""The embedded procedural matting dataset: nothing to download, a pure function of (seed, split, index)."""
