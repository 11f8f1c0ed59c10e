"""The default network's cost target, the network specs in configs/nets/, and the studies pinned to
the network they were run on (so a new configs/default.yaml cannot change a study's arms)."""

import pytest
import yaml

from matting.study import config_stacks
from matting.bench import flops as count_flops

from .conftest import REPO

DEFAULT = REPO / "configs" / "default.yaml"
NETS = sorted((REPO / "configs" / "nets").glob("*.yaml"))
MODNET_SIZED = REPO / "configs" / "nets" / "modnet_sized.yaml"
# The studies whose results were measured on the MODNet-sized network (their base.yaml pins it).
PINNED_STUDIES = ["decoder_heads", "efficiency"]


def resolved_net(*args) -> dict:
    """``model.net`` as ``matting fit ARGS --print_config`` resolves it."""
    files = [a for a in args if not str(a).startswith("--")]
    return yaml.safe_load(config_stacks.resolved_config(files, [a for a in args if str(a).startswith("--")]))["model"]["net"]


@pytest.mark.slow
def test_default_heads_cost_no_more_than_the_encoder():
    cost = count_flops.count(count_flops.build_net(["-c", str(DEFAULT)]), 512)
    heads = sum(v for k, v in cost["by_part"].items() if k != "encoder")
    assert heads <= cost["by_part"]["encoder"]
    reference = count_flops.count(count_flops.build_net(["-c", str(DEFAULT), f"--model.net={MODNET_SIZED}"]), 512)
    assert cost["flops"] <= 0.2 * reference["flops"]


@pytest.mark.slow
def test_modnet_sized_spec_builds_the_network_the_studies_measured():
    # 6,110,483 parameters and 28.68 GFLOP at 512 px: experiments/efficiency/cost.md, arm reference.
    cost = count_flops.count(count_flops.build_net(["-c", str(DEFAULT), f"--model.net={MODNET_SIZED}"]), 512)
    assert cost["params"] == 6_110_483
    assert abs(cost["flops"] - 28.68e9) < 0.01e9


@pytest.mark.parametrize("spec", NETS, ids=lambda p: p.name)
def test_every_network_spec_is_a_whole_mattingnet(spec):
    """A spec spells out the class, the encoder and every key that shapes a head (widths, block,
    the detail branch's stride), so none is taken from whatever configs/default.yaml says."""
    data = yaml.safe_load(spec.read_text())["init_args"]
    assert set(data) >= {"encoder", "semantic_head", "detail_head", "fusion"}
    assert "name" in data["encoder"]["init_args"]
    assert {"hidden_s16", "hidden_s8", "block"} <= set(data["semantic_head"]["init_args"])
    assert {"hidden", "block", "stride"} <= set(data["detail_head"]["init_args"])
    assert {"hidden", "block"} <= set(data["fusion"]["init_args"])


@pytest.mark.parametrize("study", PINNED_STUDIES)
def test_study_base_pins_the_modnet_sized_network(study):
    base = REPO / "experiments" / study / "base.yaml"
    net = resolved_net(DEFAULT, base)
    assert net == resolved_net(DEFAULT, f"--model.net={MODNET_SIZED}")
    # The values that differ from today's default: MODNet's sizes, dense blocks, detail branch to 1/2.
    parts = {k: v["init_args"] for k, v in net["init_args"].items() if isinstance(v, dict)}
    assert parts["encoder"]["name"] == "mobilenetv3_large_100"
    assert (parts["semantic_head"]["hidden_s16"], parts["detail_head"]["hidden"], parts["fusion"]["hidden"]) == (96, 32, 16)
    assert {parts[h]["block"] for h in ("semantic_head", "detail_head", "fusion")} == {"conv"}
    assert parts["detail_head"]["stride"] == 2


def test_config_stacks_cover_every_arm_and_config():
    stacks = config_stacks.config_stacks()
    for arm in (REPO / "experiments" / "efficiency" / "arms").glob("*.yaml"):
        assert stacks[f"experiments/efficiency/arms/{arm.name}"][-1] == arm
    assert "configs/recipes/modnet.yaml" in stacks
    assert not any(name.startswith("configs/nets/") for name in stacks)  # specs are not -c files


@pytest.mark.slow
def test_config_stacks_writes_one_file_per_stack_and_refuses_an_existing_folder(tmp_path, capsys):
    out = tmp_path / "stacks"
    assert config_stacks.main(["--out", str(out), "--only", "efficiency/arms/reference", "configs/default"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["configs__default.yaml", "experiments__efficiency__arms__reference.yaml"]
    reference = yaml.safe_load((out / names[1]).read_text())
    assert reference["model"]["net"]["init_args"]["encoder"]["init_args"]["name"] == "mobilenetv3_large_100"
    assert config_stacks.main(["--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == names  # nothing replaced
