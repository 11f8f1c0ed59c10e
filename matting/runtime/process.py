"""Process-level settings that make CPU training fast and runs quiet."""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import warnings

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def cpu_model_and_flags() -> tuple[str, str]:
    """(the CPU's model name, its ``flags`` line) from ``/proc/cpuinfo``; the platform's processor
    name and no flags where that file is not there."""
    import platform

    model, flags = platform.processor() or platform.machine() or "unknown CPU", ""
    try:
        for line in open("/proc/cpuinfo").read().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = line
    except OSError:
        pass
    return model, flags


def tune_malloc() -> None:
    """Stop glibc from returning large activation buffers to the OS after every step.

    With default settings each big tensor is an mmap that is unmapped on free, so every forward
    page-faults its activations in again; on a 2-core CPU this halves the training step time.
    Only the main process is affected; harmless on non-glibc systems.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_MAX, 0)
        libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)
    except (OSError, AttributeError):
        pass


class ConsoleFilter(logging.Filter):
    """Lightning's console, cleaned: no advertising tip, and each hardware line once per process
    (a fit followed by a test, or several trainers in one run, would print them again)."""

    PROMOTIONAL = ("litlogger", "Lightning Experiments platform")
    ONCE = ("GPU available:", "TPU available:", "HPU available:", "Using bfloat16 Automatic Mixed Precision",
            "Using 16bit Automatic Mixed Precision")

    def __init__(self):
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(word in message for word in self.PROMOTIONAL):
            return False
        if message.startswith(self.ONCE):
            if message in self.seen:
                return False
            self.seen.add(message)
        return True


def quiet_console() -> None:
    """Install :class:`ConsoleFilter` on Lightning's rank-zero logger (once per process)."""
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, ConsoleFilter) for f in logger.filters):
        logger.addFilter(ConsoleFilter())


def quiet_defaults() -> None:
    """Silence known-harmless warnings, and Lightning's advertising and repeated hardware lines.

    The model hub is left alone: nothing contacts it unless a config asks for published weights
    (``encoder.init_args.pretrained: true``), which fails in one line within seconds when offline.
    ``HF_HUB_OFFLINE=1`` (as the tests and ``make`` set it) forbids even that.
    """
    # Lightning 2.6 still calls jsonargparse APIs deprecated in 4.49; nothing for users to act on.
    os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")
    quiet_console()
    for pattern in (
        ".*does not have many workers.*",
        ".*GPU available but not used.*",
        ".*The number of training batches.*",
        ".*srun.*",
        ".*LeafSpec.*",
        ".*args parameter is intended to run from within Python.*",
        ".*was deprecated in v4.*",
        # MattingModule keeps net/loss in its hyperparameters on purpose: load_from_checkpoint rebuilds them.
        ".*is an instance of `nn.Module` and is already saved during checkpointing.*",
    ):
        warnings.filterwarnings("ignore", message=pattern)
