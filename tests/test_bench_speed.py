"""tools/benchmark.py infer times the network `matting fit` would build from the same configs and options."""

import pytest
import torch
import yaml

from matting.bench import infer as bench_speed

from .conftest import REPO

CONFIGS = REPO / "configs"


def test_options_keep_their_order_for_lightningcli():
    cli_args = ["-c", "a.yaml", "--model.net.init_args.detail_head=null", "--config", "b.yaml", "--config=c.yaml"]
    args = bench_speed.parse_args([*cli_args, "--sizes", "64", "--modes", "fp32"])
    assert args.cli_args == cli_args and args.config == ["a.yaml", "b.yaml", "c.yaml"]
    assert args.sizes == [64] and args.modes == ["fp32"]
    with pytest.raises(SystemExit):  # no config: nothing to build
        bench_speed.parse_args(["--sizes", "64"])


@pytest.mark.slow
def test_the_network_is_the_one_matting_fit_builds(capsys):
    from matting.inference.loading import build_net
    from matting.runtime.lightning_cli import build_cli

    # A head class changed by a later file, then one of its values overridden on the command line.
    cli_args = ["-c", str(CONFIGS / "default.yaml"), "-c", str(CONFIGS / "smoke.yaml"),
                "-c", str(CONFIGS / "model" / "gfm.yaml"), "--model.net.init_args.detail_head.init_args.hidden=16"]
    net = bench_speed.build_network(bench_speed.parse_args(cli_args))

    with pytest.raises(SystemExit):
        build_cli(["fit", *cli_args, "--print_config"])  # prints the config `matting fit` resolves
    fit_net = yaml.safe_load(capsys.readouterr().out)["model"]["net"]
    assert fit_net["init_args"]["detail_head"]["init_args"]["hidden"] == 16
    torch.manual_seed(0)
    reference = build_net(fit_net)

    assert [type(m) for m in net.modules()] == [type(m) for m in reference.modules()]
    ours, theirs = net.state_dict(), reference.state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}


def test_out_page_keeps_the_sections_after_the_marker(tmp_path):
    page = tmp_path / "speed.md"
    bench_speed.write_page(page, ["# Inference speed on CPU", "", "first table"])
    assert page.read_text() == "# Inference speed on CPU\n\nfirst table\n"
    page.write_text(page.read_text() + f"\n{bench_speed.KEEP_MARKER}\n\n## End to end\n\nwritten by hand\n")
    bench_speed.write_page(page, ["# Inference speed on CPU", "", "second table"])
    text = page.read_text()
    assert "second table" in text and "first table" not in text
    assert text.endswith(f"{bench_speed.KEEP_MARKER}\n\n## End to end\n\nwritten by hand\n")
