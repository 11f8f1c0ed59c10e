"""Shared test settings: offline, tiny models and checkpoints, the real-data location."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
TINY_ENCODERS = ["test_resnet", "test_convnext", "test_vit"]


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` (real photos with ground truth); skips when this checkout has none."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real evaluation data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def reader_defaults(monkeypatch):
    """The default pixel limit and alpha scale in every test, and again after it: a command run
    in-process sets them for the whole process (``matting.io.limits``), which must not reach the
    next test."""
    from matting.io.limits import ENV_ALPHA_SCALE, ENV_MAX_PIXELS

    monkeypatch.delenv(ENV_MAX_PIXELS, raising=False)
    monkeypatch.delenv(ENV_ALPHA_SCALE, raising=False)
    yield
    # monkeypatch restores only what it changed: a value a command set during the test would stay and
    # reach the next module's module-scoped fixtures, which are built before this fixture runs again.
    os.environ.pop(ENV_MAX_PIXELS, None)
    os.environ.pop(ENV_ALPHA_SCALE, None)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for a module of tiny-network tests: on a busy 2-core machine, two
    spinning OpenMP threads make tiny convolutions up to 100x slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_fit(tmp_path_factory):
    """``tiny_fit(*extra) -> Path``: the checkpoint of a tiny ``matting fit`` run of the smoke config
    (``tests/tiny_checkpoint.py``) with ``extra`` LightningCLI arguments, trained once per session."""
    import torch

    from tests.tiny_checkpoint import make_tiny_checkpoint

    made: dict[tuple[str, ...], Path] = {}

    def fit(*extra: str) -> Path:
        if extra not in made:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # as one_torch_thread: this fixture is made before any module's
            try:
                made[extra] = make_tiny_checkpoint(tmp_path_factory.mktemp("tiny_fit"), *extra)
            finally:
                torch.set_num_threads(threads)
        return made[extra]

    return fit


@pytest.fixture(scope="session")
def tiny_ckpt(tiny_fit) -> Path:
    """The smoke config's network trained 2 steps by ``matting fit``: a real Lightning checkpoint."""
    return tiny_fit()


@pytest.fixture(scope="session")
def tiny_modnet_ckpt(tiny_fit) -> Path:
    """As ``tiny_ckpt``, with the MODNet-sized heads (configs/nets/modnet_sized.yaml) on the smoke
    config's test encoder: dense blocks, detail branch to 1/2."""
    return tiny_fit(f"--model.net={REPO / 'configs' / 'nets' / 'modnet_sized.yaml'}",
                    "--model.net.init_args.encoder.init_args.name=test_resnet")


@pytest.fixture(scope="session")
def net_ckpt(tmp_path_factory):
    """``net_ckpt(seed=0, name="tiny") -> Path``: ``NAME.ckpt`` in the layout ``matting fit`` writes, holding
    ``tiny_net(seed)``'s random weights (``tests/tiny_checkpoint.py``), written once per session."""
    from tests.tiny_checkpoint import tiny_net, write_checkpoint

    made: dict[tuple[int, str], Path] = {}

    def write(seed: int = 0, name: str = "tiny") -> Path:
        if (seed, name) not in made:
            made[seed, name] = write_checkpoint(tmp_path_factory.mktemp("net_ckpt") / f"{name}.ckpt", tiny_net(seed))
        return made[seed, name]

    return write


# Set in a process by torch.distributed / Lightning; a child process that inherits them believes it
# is one rank of an existing job and waits for peers that never come.
DISTRIBUTED_ENV = ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK",
                   "LOCAL_WORLD_SIZE", "TORCHELASTIC_RUN_ID", "PL_GLOBAL_SEED", "PL_SEED_WORKERS")


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for a training subprocess: offline, one thread per op, no inherited rank settings."""
    env = {k: v for k, v in os.environ.items() if k not in DISTRIBUTED_ENV}
    return {**env, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1", **extra}


def run_matting(command: str, root: Path, config: Path, *extra: str) -> subprocess.CompletedProcess:
    """``python -m matting.cli COMMAND`` on default + smoke + ``config`` in a fresh process, logging to ``root``.

    The caller checks the return code (a test may expect a kill).
    """
    logger = {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(root), "name": "logs"}}
    cmd = [sys.executable, "-m", "matting.cli", command, "-c", str(REPO / "configs" / "default.yaml"),
           "-c", str(REPO / "configs" / "smoke.yaml"), "-c", str(config),
           f"--trainer.default_root_dir={root}", f"--trainer.logger={json.dumps(logger)}", *extra]
    return subprocess.run(cmd, cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=300)
