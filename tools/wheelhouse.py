"""Installing the package on a GPU node with no network: fill a wheelhouse where there is one, install from it there.

    # on a connected machine: the wheels a CUDA image with PyTorch lacks, for the node's Python and platform
    python tools/wheelhouse.py download WHEELHOUSE [--python-version 3.11] [--arch x86_64] [--glibc 2.28]
                                        [--torch 2.14.1] [--torchvision 0.29.1] [--extras test,loggers]
    # on the node, with the Python that holds its torch: offline, the node's torch and torchvision kept
    python tools/wheelhouse.py install WHEELHOUSE [--extras test]

``download`` resolves the package's dependencies with pip's own resolver for the target Python and
platform, every one as a binary wheel, and leaves torch and torchvision out: stand-in wheels of the
node's torch and torchvision versions (no files, no dependencies) satisfy every ``torch>=...`` and
``torchvision`` requirement (kornia, timm, lightning, torchmetrics), so neither the multi-GB CUDA
build nor its nvidia-* libraries are fetched, and they are removed from the wheelhouse afterwards.
setuptools comes too: the editable install builds the package offline from it.

``install`` runs ``pip install --no-index --find-links WHEELHOUSE -e .[EXTRAS]`` with a constraint file
that pins the torch and torchvision already installed: pip can then only keep them, and refuses
rather than replace them; their versions are checked again afterwards. docs/gpu.md has a trial.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NODE_PACKAGES = ("torch", "torchvision")  # what the CUDA image brings; never downloaded nor replaced
STUB_LABEL = "stub"
DEFAULT_EXTRAS = ("test",)  # pytest, onnx and onnxruntime: what `make gpu-check` runs


def _toml(path: Path) -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        from pip._vendor import tomli as tomllib
    return tomllib.loads(path.read_text())


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~;\s]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def requirements(extras: tuple[str, ...] = DEFAULT_EXTRAS, pyproject: Path = REPO / "pyproject.toml") -> list[str]:
    """The package's dependencies and those of ``extras``, without torch and torchvision, plus setuptools
    (the editable install's build backend, from the build-system table)."""
    project = _toml(pyproject)
    listed = list(project["project"]["dependencies"])
    optional = project["project"].get("optional-dependencies", {})
    for extra in extras:
        if extra not in optional:
            raise SystemExit(f"wheelhouse: no extra {extra!r} in pyproject.toml (there are: {', '.join(optional)})")
        listed += optional[extra]
    listed += project["build-system"]["requires"]
    return [r for r in dict.fromkeys(listed) if _name(r) not in NODE_PACKAGES]


def stub_wheel(folder: Path, name: str, version: str) -> Path:
    """A wheel ``name==version+stub`` with no files and no dependencies: it satisfies the resolver only."""
    dist = f"{name}-{version}+{STUB_LABEL}"
    path = folder / f"{dist}-py3-none-any.whl"
    info = f"{dist}.dist-info"
    files = {
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}+{STUB_LABEL}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tools/wheelhouse.py\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{f},,\n" for f in [*files, f"{info}/RECORD"])
    with zipfile.ZipFile(path, "w") as archive:
        for file, text in files.items():
            archive.writestr(file, text)
    return path


def platform_tags(arch: str, glibc: str) -> list[str]:
    """manylinux tags a node with glibc ``glibc`` (e.g. 2.28) accepts, newest first, and the legacy aliases."""
    major, minor = (int(p) for p in glibc.split("."))
    tags = [f"manylinux_{major}_{m}_{arch}" for m in range(minor, 4, -1)]
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    return tags + [f"{alias}_{arch}" for m, alias in legacy.items() if m <= minor] + [f"linux_{arch}"]


def download_command(wheelhouse: Path, stubs: Path, constraints: Path, reqs: list[str], python_version: str,
                     arch: str, glibc: str) -> list[str]:
    """``pip download`` of ``reqs`` as binary wheels for CPython ``python_version`` on manylinux ``arch``."""
    abi = "cp" + python_version.replace(".", "")
    command = [sys.executable, "-m", "pip", "download", "--dest", str(wheelhouse), "--only-binary=:all:",
               "--python-version", python_version, "--implementation", "cp", "--abi", abi, "--abi", "abi3",
               "--abi", "none", "--find-links", str(stubs), "--constraint", str(constraints)]
    for tag in platform_tags(arch, glibc):
        command += ["--platform", tag]
    return command + reqs


def download(args) -> int:
    wheelhouse = Path(args.wheelhouse).resolve()
    wheelhouse.mkdir(parents=True, exist_ok=True)
    reqs = requirements(tuple(e for e in args.extras.split(",") if e))
    with tempfile.TemporaryDirectory() as tmp:
        stubs = Path(tmp)
        versions = {"torch": args.torch, "torchvision": args.torchvision}
        for name, version in versions.items():
            stub_wheel(stubs, name, version)
        constraints = stubs / "constraints.txt"
        constraints.write_text("".join(f"{n}=={v}+{STUB_LABEL}\n" for n, v in versions.items()))
        command = download_command(wheelhouse, stubs, constraints, reqs, args.python_version, args.arch, args.glibc)
        print("+ " + " ".join(command), flush=True)
        code = subprocess.run(command).returncode
    for stub in wheelhouse.glob(f"*+{STUB_LABEL}-py3-none-any.whl"):
        stub.unlink()
    if code:
        return code
    wheels = sorted(p.name for p in wheelhouse.glob("*.whl"))
    (wheelhouse / "wheelhouse.json").write_text(json.dumps(
        {"python_version": args.python_version, "arch": args.arch, "glibc": args.glibc, "for_torch": args.torch,
         "for_torchvision": args.torchvision, "extras": args.extras, "requirements": reqs, "wheels": wheels}, indent=1) + "\n")
    print(f"wheelhouse {wheelhouse}: {len(wheels)} wheels for CPython {args.python_version} on manylinux {args.arch} "
          f"(glibc >= {args.glibc}); torch and torchvision left to the node")
    return 0


def installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def install_command(wheelhouse: Path, constraints: Path, extras: str, editable: bool = True) -> list[str]:
    """``pip install`` of this checkout from ``wheelhouse`` alone, the node's torch pinned by ``constraints``."""
    target = f"{REPO}[{extras}]" if extras else str(REPO)
    return [sys.executable, "-m", "pip", "install", "--no-index", "--find-links", str(wheelhouse),
            "--constraint", str(constraints), *(["-e"] if editable else []), target]


def install(args) -> int:
    wheelhouse = Path(args.wheelhouse).resolve()
    if not any(wheelhouse.glob("*.whl")):
        raise SystemExit(f"wheelhouse: {wheelhouse} holds no wheels; fill it with `tools/wheelhouse.py download` first")
    before = {name: installed(name) for name in NODE_PACKAGES}
    missing = [name for name, version in before.items() if version is None]
    if missing:
        raise SystemExit(f"wheelhouse: {', '.join(missing)} not installed in {sys.executable}; the node's PyTorch is "
                         "kept as it is, not installed from the wheelhouse")
    with tempfile.TemporaryDirectory() as tmp:
        constraints = Path(tmp) / "node.txt"
        constraints.write_text("".join(f"{name}=={version}\n" for name, version in before.items()))
        command = install_command(wheelhouse, constraints, args.extras, editable=not args.no_editable)
        print("+ " + " ".join(command), flush=True)
        code = subprocess.run(command).returncode
    after = {name: installed(name) for name in NODE_PACKAGES}
    if after != before:
        print(f"wheelhouse: the install changed {before} into {after}", file=sys.stderr)
        return 1
    if not code:
        print(f"installed matting from {wheelhouse}; kept " + ", ".join(f"{n} {v}" for n, v in before.items()))
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    get = commands.add_parser("download", help="fill WHEELHOUSE (needs the network)")
    get.add_argument("wheelhouse")
    get.add_argument("--python-version", default="{}.{}".format(*sys.version_info[:2]), help="the node's Python (default: this one)")
    get.add_argument("--arch", default=platform.machine() or "x86_64", help="x86_64 or aarch64 (default: this machine's)")
    get.add_argument("--glibc", default="2.28", help="the node's glibc, for the manylinux tags (default 2.28)")
    get.add_argument("--torch", default=(installed("torch") or "2.14.1").split("+")[0], help="the node's torch version")
    get.add_argument("--torchvision", default=(installed("torchvision") or "0.29.1").split("+")[0], help="the node's torchvision version")
    get.add_argument("--extras", default=",".join(DEFAULT_EXTRAS), help="extras of pyproject.toml, comma-separated "
                     "(default test; add loggers for TensorBoard and wandb)")
    put = commands.add_parser("install", help="install this checkout from WHEELHOUSE, offline")
    put.add_argument("wheelhouse")
    put.add_argument("--extras", default=",".join(DEFAULT_EXTRAS), help="extras to install (default test)")
    put.add_argument("--no-editable", action="store_true", help="a regular install instead of an editable one")
    args = parser.parse_args(argv)
    return download(args) if args.command == "download" else install(args)


if __name__ == "__main__":
    sys.exit(main())
