"""A study's ``cv.yaml`` (see :mod:`matting.study.cv`): read, checked, and turned into arms."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from matting.io.errors import MattingInputError
from matting.study.folds import Folds, read_folds

__all__ = ["BASELINES", "DATA_KINDS", "CvArm", "CvSpec", "read_cv_spec"]

DATA_KINDS = ("folds", "none")
BASELINES = ("color_threshold",)
@dataclass
class CvArm:
    name: str
    configs: list[Path] = field(default_factory=list)
    options: list[str] = field(default_factory=list)
    data: str = "folds"
    steps: int | None = None
    constant: float | None = None
    adapt: str | None = None
    epochs: int | None = None
    cpu_minutes: float | None = None  # the budget, when the steps are calibrated (matting.study.calibrate)
    cpu_of: str | None = None  # or: the CPU time of that arm's steps, both measured on the machine that runs them
    baseline: str | None = None  # a non-learned method (BASELINES), fitted on each fold's training photos


@dataclass
class CvSpec:
    study: Path
    folds: Folds
    folds_file: Path
    base: list[Path]
    real_data: Path
    seeds: list[int]
    budget: str
    arms: dict[str, CvArm]


def _path(study: Path, value, where: str) -> Path:
    if not isinstance(value, str):
        raise MattingInputError(f"{where}: expected a path, got {value!r}")
    path = (study / value).resolve()
    if not path.is_file():
        raise MattingInputError(f"{where}: {path} not found")
    return path


def read_cv_spec(study: Path) -> CvSpec:
    """Read and check ``<study>/cv.yaml``; every error names the file and the key."""
    study = Path(study)
    path = study / "cv.yaml"
    if not path.is_file():
        raise MattingInputError(f"{study} has no cv.yaml: it has no real-photo stage")
    spec = yaml.safe_load(path.read_text()) or {}
    where = str(path)
    folds_file = _path(study, spec.get("folds"), f"{where}: folds")
    base = [_path(study, p, f"{where}: base") for p in spec.get("base") or []]
    real_data = _path(study, spec.get("real_data"), f"{where}: real_data")
    seeds = spec.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise MattingInputError(f"{where}: seeds must be a list of integers")
    arms = {}
    for name, entry in (spec.get("arms") or {}).items():
        at = f"{where}: arms.{name}"
        if not isinstance(entry, dict):
            raise MattingInputError(f"{at}: expected a mapping")
        unknown = set(entry) - {"configs", "options", "data", "steps", "constant", "adapt", "epochs", "cpu_minutes", "cpu_of", "baseline"}
        if unknown:
            raise MattingInputError(f"{at}: unknown keys {sorted(unknown)}")
        if "constant" in entry:
            arms[name] = CvArm(name, constant=float(entry["constant"]), data="none")
            continue
        if "baseline" in entry:
            if entry["baseline"] not in BASELINES:
                raise MattingInputError(f"{at}.baseline: {entry['baseline']!r}; choose one of {', '.join(BASELINES)}")
            arms[name] = CvArm(name, data="none", baseline=entry["baseline"])
            continue
        if "adapt" in entry:
            source, epochs = entry["adapt"], entry.get("epochs")
            if source not in arms or arms[source].data != "folds" or arms[source].adapt is not None:
                raise MattingInputError(f"{at}.adapt: {source!r} is not a trained fold arm listed before it")
            if not isinstance(epochs, int) or epochs < 1:
                raise MattingInputError(f"{at}.epochs: a positive integer is required (passes over the unlabeled pool)")
            arms[name] = CvArm(name, data="folds", adapt=source, epochs=epochs)
            continue
        data = entry.get("data", "folds")
        if data not in DATA_KINDS:
            raise MattingInputError(f"{at}.data: {data!r}; choose one of {', '.join(DATA_KINDS)}")
        steps, cpu_minutes, cpu_of = entry.get("steps"), entry.get("cpu_minutes"), entry.get("cpu_of")
        if sum(v is not None for v in (steps, cpu_minutes, cpu_of)) != 1:
            raise MattingInputError(f"{at}: give steps (a step count), cpu_minutes (a CPU budget the steps are "
                                    "calibrated to) or cpu_of (another arm's training CPU time), one of them")
        if cpu_of is not None and (cpu_of not in arms or arms[cpu_of].steps is None):
            raise MattingInputError(f"{at}.cpu_of: {cpu_of!r} is not an arm with steps listed before it")
        if steps is not None and (not isinstance(steps, int) or steps < 1):
            raise MattingInputError(f"{at}.steps: a positive integer is required (the arm's training budget)")
        if cpu_minutes is not None and (not isinstance(cpu_minutes, (int, float)) or cpu_minutes <= 0):
            raise MattingInputError(f"{at}.cpu_minutes: a positive number is required (the arm's CPU budget per run)")
        options = entry.get("options") or []
        if not all(isinstance(o, str) and o.startswith("--") for o in options):
            raise MattingInputError(f"{at}.options: LightningCLI options look like --trainer.max_steps=10")
        arms[name] = CvArm(name, [_path(study, c, f"{at}.configs") for c in entry.get("configs") or []],
                           list(options), data, steps, cpu_minutes=None if cpu_minutes is None else float(cpu_minutes),
                           cpu_of=cpu_of)
    if not arms:
        raise MattingInputError(f"{where}: no arms")
    return CvSpec(study, read_folds(folds_file), folds_file, base, real_data, list(seeds), str(spec.get("budget", "")), arms)
