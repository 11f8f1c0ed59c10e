"""A GPU node with no network: the wheelhouse tool's commands, and training without the logging packages.

The full trial (a wheelhouse built here, installed offline into a virtual environment holding only
torch and torchvision, then ``matting --help`` and a smoke fit) is recorded in docs/gpu.md.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from types import SimpleNamespace

import pytest

from tools import wheelhouse

from .conftest import REPO, subprocess_env

LOGGING_ONLY = ("wandb", "tensorboard")


def test_the_wheelhouse_leaves_torch_to_the_node_and_brings_the_rest():
    reqs = wheelhouse.requirements(("test",))
    names = {wheelhouse._name(r) for r in reqs}
    assert not names & {"torch", "torchvision"}
    assert {"jsonargparse", "kornia", "timm", "lightning", "opencv-python-headless", "pytest", "onnxruntime", "setuptools"} <= names
    assert "jsonargparse[signatures]>=4.35" in reqs  # with the extras that LightningCLI's signatures need
    assert not names & set(LOGGING_ONLY)
    assert set(LOGGING_ONLY) <= {wheelhouse._name(r) for r in wheelhouse.requirements(("loggers",))}
    with pytest.raises(SystemExit, match="no extra"):
        wheelhouse.requirements(("nonesuch",))


def test_the_download_command_asks_for_binary_wheels_of_the_target(tmp_path):
    command = wheelhouse.download_command(tmp_path / "w", tmp_path / "s", tmp_path / "c.txt", ["kornia>=0.7"], "3.12", "x86_64", "2.28")
    assert command[command.index("--python-version") + 1] == "3.12" and "cp312" in command and "--only-binary=:all:" in command
    platforms = [command[i + 1] for i, arg in enumerate(command) if arg == "--platform"]
    assert platforms[0] == "manylinux_2_28_x86_64" and "manylinux_2_17_x86_64" in platforms and "manylinux2014_x86_64" in platforms
    assert "manylinux_2_29_x86_64" not in platforms and command[-1] == "kornia>=0.7"


def test_the_stand_in_wheel_has_metadata_and_no_files(tmp_path):
    path = wheelhouse.stub_wheel(tmp_path, "torch", "2.14.1")
    assert path.name == "torch-2.14.1+stub-py3-none-any.whl"
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        assert all(n.startswith("torch-2.14.1+stub.dist-info/") for n in names)
        assert "Version: 2.14.1+stub" in archive.read("torch-2.14.1+stub.dist-info/METADATA").decode()


def test_the_install_command_is_offline_and_pins_the_node_torch(tmp_path):
    command = wheelhouse.install_command(tmp_path / "w", tmp_path / "pins.txt", "test")
    assert "--no-index" in command and command[command.index("--constraint") + 1] == str(tmp_path / "pins.txt")
    assert command[-2:] == ["-e", f"{REPO}[test]"]


def test_install_refuses_an_empty_wheelhouse(tmp_path):
    with pytest.raises(SystemExit, match="no wheels"):
        wheelhouse.install(SimpleNamespace(wheelhouse=str(tmp_path), extras="test", no_editable=False))


@pytest.mark.slow
def test_pip_takes_the_stand_in_for_torch(tmp_path):
    """pip resolves a package needing torch against the stand-in alone (no index): nothing of torch is fetched."""
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    wheelhouse.stub_wheel(stubs, "torch", "2.14.1")
    result = subprocess.run([sys.executable, "-m", "pip", "download", "--no-index", "--find-links", str(stubs), "--dest",
                             str(tmp_path / "out"), "torch==2.14.1+stub"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["torch-2.14.1+stub-py3-none-any.whl"]


def test_the_package_never_imports_the_logging_packages():
    """Lightning imports wandb / tensorboard only for a logger a config asks for; the package itself never does."""
    found = []
    for path in (REPO / "matting").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            found += [f"{path.relative_to(REPO)}:{node.lineno} {n}" for n in names if n.split(".")[0] in LOGGING_ONLY]
    assert not found, found


# A process in which `import wandb` / `import tensorboard` fail, as on a node without them.
WITHOUT_LOGGERS = """
import sys
for name in {names!r}:
    sys.modules[name] = None
from matting.runtime.lightning_cli import build_cli
cli = build_cli({args!r}, run=False)
cli.trainer.fit(cli.model, datamodule=cli.datamodule)
assert cli.trainer.global_step == 2, cli.trainer.global_step
import matting.commands.predict, matting.commands.export, matting.runtime.run_record  # noqa: E401
print("trained without", {names!r})
"""


@pytest.mark.slow
def test_a_node_without_wandb_or_tensorboard_still_trains(tmp_path):
    args = ["-c", str(REPO / "configs" / "default.yaml"), "-c", str(REPO / "configs" / "smoke.yaml"),
            f"--trainer.default_root_dir={tmp_path}",
            '--trainer.logger={"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": "%s"}}' % tmp_path]
    result = subprocess.run([sys.executable, "-c", WITHOUT_LOGGERS.format(names=LOGGING_ONLY, args=args)], cwd=REPO,
                            env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "trained without" in result.stdout
    assert list(tmp_path.rglob("*.ckpt"))
