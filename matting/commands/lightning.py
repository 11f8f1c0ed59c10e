"""``matting fit|validate|test``: LightningCLI on the matting module, configured by YAML (``-c configs/...``)."""

from __future__ import annotations

from matting.runtime.lightning_cli import build_cli


def main(argv: list[str]) -> int:
    """``argv`` starts with the subcommand (``fit``, ``validate`` or ``test``)."""
    build_cli(argv)
    return 0
