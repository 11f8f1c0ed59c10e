"""The exceptions that the ``matting`` command turns into one clean line."""

import argparse


class MattingInputError(Exception):
    """Bad user input: a missing or unreadable file, a size mismatch, a wrong key or value.

    The message names the offending file, key or value. The CLI prints it on one line and
    exits non-zero, without a traceback.
    """


class ToolArgumentParser(argparse.ArgumentParser):
    """argparse for the ``matting`` tools: a bad option raises MattingInputError naming it.

    Plain argparse prints its usage text and exits; here ``--steps x`` is reported like every
    other bad input, as one ``matting: error: ...`` line with exit status 2.
    """

    def error(self, message: str):
        raise MattingInputError(f"{message} (see {self.prog} --help)")


class CheckpointWriteError(OSError):
    """A checkpoint could not be written; the previous file at that path is unchanged."""
