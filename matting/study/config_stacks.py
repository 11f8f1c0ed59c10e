"""Write the resolved config of every config stack the repository defines, one YAML file per stack.

    python tools/study.py configs --out DIR [--only SUBSTRING ...]

A stack is the ``-c`` files one command composes: each YAML under ``configs/`` on top of
``configs/default.yaml`` (as ``matting fit -c configs/default.yaml -c FILE`` composes it), every
arm of every study folder under ``experiments/`` (``configs/default.yaml``, the study's
``base.yaml``, ``arms/<arm>.yaml``, as ``tools/study.py run`` composes it) and every arm of every
study's real-photo stage (its ``cv.yaml``, as ``tools/study.py cv`` composes it). Each file holds what ``matting fit ...
--print_config`` prints for the stack; nothing is instantiated, trained or downloaded.

Run it on two checkouts and ``diff -r`` the folders to see which configs a change of
``configs/default.yaml`` (or of any shared file) moves, key by key.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from pathlib import Path

from matting.study.synthetic import REPO, shown, study_arms

DEFAULT = REPO / "configs" / "default.yaml"
NETS = REPO / "configs" / "nets"  # network specs, values of model.net, not -c files


def config_stacks() -> dict[str, list[Path]]:
    """Stack name -> its ``-c`` files in order, for every stack the repository defines."""
    stacks = {"configs/default.yaml": [DEFAULT]}
    for path in sorted((REPO / "configs").rglob("*.yaml")):
        if path != DEFAULT and NETS not in path.parents:
            stacks[shown(path)] = [DEFAULT, path]
    for base in sorted((REPO / "experiments").glob("*/base.yaml")):
        for arm in study_arms(base.parent).values():
            if arm is not None:  # the colour-threshold arm has no config of its own
                stacks[shown(arm)] = [DEFAULT, base, arm]
    for study in sorted(p.parent for p in (REPO / "experiments").glob("*/cv.yaml")):
        from matting.study.cv import read_cv_spec

        spec = read_cv_spec(study)
        for arm in spec.arms.values():
            if arm.constant is None:  # real-photo stage: base, the real recipe for fold arms, the arm's files
                stacks[f"{shown(study)}/cv.yaml:{arm.name}"] = (
                    spec.base + ([spec.real_data] if arm.data == "folds" else []) + arm.configs)
    return stacks


def resolved_config(files: list[Path], options: list[str] = ()) -> str:
    """What ``matting fit -c F1 -c F2 ... [OPTIONS] --print_config`` prints for ``files``."""
    from matting.runtime.lightning_cli import build_cli

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            build_cli([a for f in files for a in ("-c", str(f))] + list(options) + ["--print_config"], run=False)
        except SystemExit as exit_:
            if exit_.code not in (0, None):
                raise
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python tools/study.py configs", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="new folder for one <stack>.yaml per stack (written whole or not at all)")
    p.add_argument("--only", nargs="+", default=[], help="keep the stacks whose name contains one of these")
    args = p.parse_args(argv)
    from matting.io.errors import MattingInputError
    from matting.io.files import check_output, staged_folder

    try:
        check_output(args.out, label="--out")
    except MattingInputError as exc:
        print(f"config_stacks: error: {exc}", file=sys.stderr)
        return 2

    stacks = {k: v for k, v in config_stacks().items() if not args.only or any(s in k for s in args.only)}
    with staged_folder(args.out) as folder:
        for name, files in stacks.items():
            text = f"# {' + '.join(shown(f) for f in files)}\n" + resolved_config(files)
            (folder / (name.removesuffix(".yaml").replace("/", "__").replace(":", "__") + ".yaml")).write_text(text)
            print(f"{name}: {len(files)} files", flush=True)
    print(f"config_stacks: {len(stacks)} stacks written to {args.out}")
    return 0

