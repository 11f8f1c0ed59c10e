"""One module per ``matting`` command, each with ``main(argv) -> int``; only ``matting.cli`` imports them."""
