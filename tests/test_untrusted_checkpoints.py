"""Checkpoints from strangers: they never make a command contact the network or open a file."""

from __future__ import annotations

import copy
from pathlib import Path

import lightning.pytorch  # noqa: F401  (its log handler binds to the real stderr, not to one test's capture)
import pytest
import torch

from .test_bad_input import TOOLS_WITH_CKPT, _tool_args, assert_clean_error, lightning, run
from .tiny_checkpoint import NET_CONFIG, write_checkpoint, write_pairs

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.filterwarnings("ignore")]

HUB_NAME = "hf-hub:someone/repo"


@pytest.fixture
def no_hub(monkeypatch):
    """Fail the test if timm asks the model hub for anything."""
    import timm.models._factory as factory
    import timm.models._hub as hub

    def contacted(*args, **kwargs):
        raise AssertionError(f"the model hub was contacted: {args}")

    for module, name in ((hub, "hf_hub_download"), (factory, "load_model_config_from_hf")):
        if hasattr(module, name):
            monkeypatch.setattr(module, name, contacted)


def _hub_checkpoint(path: Path, name: str = HUB_NAME) -> Path:
    config = copy.deepcopy(NET_CONFIG)
    config["init_args"]["encoder"]["init_args"]["name"] = name
    return write_checkpoint(path, config=config)


@pytest.mark.parametrize("name", [HUB_NAME, "hf_hub:someone/repo", "local-dir:/etc", "https://example.com/x"])
def test_build_net_refuses_a_stored_name_fetched_from_outside(name, tmp_path, no_hub):
    from matting.inference.loading import load_net
    from matting.io.errors import MattingInputError

    ckpt = _hub_checkpoint(tmp_path / "hub.ckpt", name)
    with pytest.raises(MattingInputError) as info:
        load_net(ckpt)
    assert str(info.value) == (
        f"{ckpt}: refusing net.encoder.name={name!r}: a network rebuilt from a checkpoint is built offline, and this "
        "name would make timm contact the model hub or read a path; give the network in a config of your own (-c)")


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    return write_pairs(tmp_path_factory.mktemp("data") / "pairs", count=3, size=64)


@pytest.mark.parametrize("command", TOOLS_WITH_CKPT)
def test_commands_refuse_a_checkpoint_naming_the_hub(command, pairs, tmp_path, capsys, no_hub):
    ckpt = _hub_checkpoint(tmp_path / "hub.ckpt")
    out = tmp_path / "out"
    assert_clean_error(*run(capsys, *_tool_args(command, ckpt, pairs, out)), ckpt, "net.encoder.name", HUB_NAME)
    assert not out.exists() and not out.with_name("out.partial").exists()


def _with_hparams(source: Path, path: Path, **changes) -> Path:
    full = torch.load(source, map_location="cpu", weights_only=False)
    torch.save({**full, "hyper_parameters": {**full["hyper_parameters"], **changes}}, path)
    return path


@pytest.mark.slow
def test_ckpt_path_never_follows_a_stored_init_weights(tiny_ckpt, tmp_path):
    from matting.runtime.lightning_cli import stored_hyper_parameters

    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0")
    ckpt = _with_hparams(tiny_ckpt, tmp_path / "stored.ckpt", init_weights=str(secret))
    hparams = stored_hyper_parameters(ckpt)
    assert "init_weights" not in hparams and hparams["net"]["class_path"] == "matting.models.MattingNet"


@pytest.mark.slow
def test_ckpt_path_refuses_a_stored_hub_name(tiny_ckpt, tmp_path):
    from matting.io.errors import MattingInputError
    from matting.runtime.lightning_cli import stored_hyper_parameters

    full = torch.load(tiny_ckpt, map_location="cpu", weights_only=False)
    net = copy.deepcopy(full["hyper_parameters"]["net"])
    net["init_args"]["encoder"]["init_args"]["name"] = HUB_NAME
    ckpt = _with_hparams(tiny_ckpt, tmp_path / "hub.ckpt", net=net)
    with pytest.raises(MattingInputError, match=f"--ckpt_path {ckpt}: refusing model.net.encoder.name='{HUB_NAME}'"):
        stored_hyper_parameters(ckpt)


@pytest.mark.slow
def test_matting_test_with_a_stored_init_weights_opens_nothing(tiny_ckpt, tmp_path, capsys):
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0")
    ckpt = _with_hparams(tiny_ckpt, tmp_path / "stored.ckpt", init_weights=str(secret))
    code, err = run(capsys, *lightning("test", tmp_path / "run", f"--ckpt_path={ckpt}"))
    assert code == 0, err
    assert str(secret) not in err


@pytest.mark.slow
def test_init_weights_errors_say_where_the_path_came_from(tmp_path, capsys):
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0")
    out = tmp_path / "run"
    assert_clean_error(*run(capsys, *lightning("fit", out, f"--model.init_weights={secret}")),
                       f"model.init_weights {secret}: not a")
