"""The one exception type that the command-line tools turn into a clean message."""


class MattingInputError(Exception):
    """Bad user input: a missing or unreadable file, a size mismatch, a wrong key or value.

    The message names the offending file, key or value. The CLI prints it on one line and
    exits non-zero, without a traceback.
    """
