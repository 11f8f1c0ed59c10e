"""The committed cross-validation folds (``datasets/alphamatting/folds.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from matting.io.errors import MattingInputError

__all__ = ["Folds", "read_folds"]


@dataclass(frozen=True)
class Folds:
    """``held_out[k]``: the photo names fold ``k`` scores; it trains on every other photo."""

    held_out: tuple[tuple[str, ...], ...]

    @property
    def names(self) -> list[str]:
        return sorted(n for fold in self.held_out for n in fold)

    def train(self, k: int) -> list[str]:
        return [n for n in self.names if n not in self.held_out[k]]

    def __len__(self) -> int:
        return len(self.held_out)


def read_folds(path: Path) -> Folds:
    """Read and check a folds file: a list of disjoint, non-empty lists of photo names."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise MattingInputError(f"{path}: cannot read the folds ({exc})") from exc
    folds = data.get("folds") if isinstance(data, dict) else None
    if not isinstance(folds, list) or len(folds) < 2 or not all(isinstance(f, list) and f for f in folds):
        raise MattingInputError(f"{path}: 'folds' must be a list of at least two non-empty lists of photo names")
    seen: dict[str, int] = {}
    for k, fold in enumerate(folds):
        for name in fold:
            if not isinstance(name, str):
                raise MattingInputError(f"{path}: fold {k}: {name!r} is not a photo name")
            if name in seen:
                raise MattingInputError(f"{path}: {name} is in fold {seen[name]} and fold {k}")
            seen[name] = k
    return Folds(tuple(tuple(sorted(f)) for f in folds))
