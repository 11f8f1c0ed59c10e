"""Studies: arms (YAML deltas) trained under one budget and scored the same way.

- ``folds``: the committed cross-validation folds over the real photos;
- ``cv_data``: the data root a fold trains on (estimated foregrounds, backgrounds, held-out photos);
- ``jobs``: the one process pool that trains arms side by side, recording each run's CPU time;
- ``cv_spec``: a study's ``cv.yaml``, read and checked into arms;
- ``cv``: the real-photo cross-validation stage (train per fold, predict and evaluate as a user does);
- ``cv_score``: predict and evaluate a run as a user does (held-out photos, the generator's test split);
- ``cv_report``: its tables and grid.

``tools/study.py`` is the command line.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

__all__ = ["inputs_digest"]


def inputs_digest(files: list[Path], payload: dict) -> str:
    """16 hex digits of SHA-256 over the bytes of ``files`` (in order) and ``payload`` as sorted JSON:
    the identity of a run's (or a measurement's) inputs."""
    h = hashlib.sha256()
    for f in files:
        h.update(Path(f).read_bytes())
    h.update(json.dumps(payload, sort_keys=True).encode())
    return h.hexdigest()[:16]
