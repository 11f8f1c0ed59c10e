"""The exceptions that the ``matting`` command turns into one clean line."""

import argparse
import re


class MattingInputError(Exception):
    """Bad user input: a missing or unreadable file, a size mismatch, a wrong key or value.

    The message names the offending file, key or value. The CLI prints it on one line and
    exits non-zero, without a traceback.
    """


class WrongContent(MattingInputError):
    """A file that decodes but holds what it cannot be (a label-encoded trimap): ``kind`` says what, for
    reports that group problems (``matting evaluate``), instead of calling it unreadable."""

    def __init__(self, message: str, kind: str = "wrong values"):
        super().__init__(message)
        self.kind = kind


class NonFiniteOutput(MattingInputError):
    """A network's output holds NaN or infinite values: every later input would fail the same way,
    so a command stops at the first instead of reporting each one."""


class StoppedBySignal(Exception):
    """A run stopped by a signal (SIGTERM) after saving what it could; the message says what and where."""

    status = 143  # 128 + SIGTERM, what a shell reports for a process the signal ended


class ToolArgumentParser(argparse.ArgumentParser):
    """argparse for the ``matting`` tools: a bad option raises MattingInputError naming it.

    Plain argparse prints its usage text and exits; here ``--steps x`` is reported like every
    other bad input, as one ``matting: error: ...`` line with exit status 2.
    """

    def error(self, message: str):
        raise MattingInputError(f"{message} (see {self.prog} --help)")


class CheckpointWriteError(OSError):
    """A checkpoint could not be written; the previous file at that path is unchanged."""


def positive_int(text: str) -> int:
    """argparse ``type=`` for a count of at least 1 (``--threads 4``); a bad value fails naming the option."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


# Largest --base-size: the base pass of a 4096 px long side already takes several GB on a CPU, and the
# matte is upsampled to the photo's full resolution anyway (40000 on a 400 px photo took over 8 GB).
MAX_BASE_SIZE = 4096


def check_base_size(value: int, option: str = "--base-size") -> None:
    """Refuse a base-pass size outside 32..MAX_BASE_SIZE, naming the option and the value."""
    if value < 32:
        raise MattingInputError(f"{option} must be at least 32, got {value}")
    if value > MAX_BASE_SIZE:
        raise MattingInputError(f"{option} must be at most {MAX_BASE_SIZE} (the network's pass; the matte is "
                                f"upsampled to the photo's full size), got {value}")


def yaml_error(name: object, exc: Exception) -> MattingInputError:
    """The one-line error for a YAML file that does not parse: ``NAME: not valid YAML at line L, column C: ...``.

    ``exc`` is a ``yaml.YAMLError``; its marks count lines and columns from 0, the message from 1.
    """
    def at(mark) -> str:
        return f"line {mark.line + 1}, column {mark.column + 1}"

    problem, mark = getattr(exc, "problem", None), getattr(exc, "problem_mark", None)
    tag = re.search(r"could not determine a constructor for the tag '([^']+)'", problem or "")
    if tag:  # safe_load refuses tags that build Python objects: say so, not "not accessible" or "invalid"
        where = f" at {at(mark)}" if mark is not None else ""
        return MattingInputError(f"{name}: unsafe YAML tag {tag.group(1).replace('tag:yaml.org,2002:', '!!')!r}{where}; "
                                 "configs are read as plain YAML, and tags that build Python objects are refused")
    if not problem:
        return MattingInputError(f"{name}: not valid YAML ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})")
    context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    where = f" at {at(mark)}" if mark is not None else ""
    started = f" ({context}, which starts at {at(context_mark)})" if context and context_mark is not None else ""
    return MattingInputError(f"{name}: not valid YAML{where}: {problem}{started}")


def one_line(text: str) -> str:
    """jsonargparse's nested message chain as one line naming the dotted key and the classes it went through.

    ``Parser key "model.net":`` / ``Problem with given class_path 'matting.models.MattingNet':`` /
    ``Parser key "detail_head":`` / ``... Option 'hiddenx' is not accepted`` becomes
    ``key "model.net.init_args.detail_head" (in matting.models.MattingNet, matting.models.DetailHead):
    Option 'hiddenx' is not accepted``. Messages listing several real alternatives (``- ...`` lines of
    a Union) keep their lines.
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    keys: list[str] = []
    classes: list[str] = []
    reasons: list[str] = []
    alternatives = 0
    nested = False  # a class_path was given: the next key is one of its init_args
    for line in lines:
        content = line[2:] if line.startswith("- ") else line
        key = re.fullmatch(r'Parser key "([^"]+)":(.*)', content)
        given = re.fullmatch(r"Problem with given class_path '([^']+)':(.*)", content)
        if key:
            keys += ["init_args", key.group(1)] if nested else [key.group(1)]
            nested = False
        elif given:
            classes.append(given.group(1))
            nested = True
        if key or given:
            content = (key or given).group(2).strip()
        elif line.startswith("- "):
            if content == "Expected a <class 'NoneType'>":  # the None of an Optional: never the point
                continue
            alternatives += 1
        if content and not content.startswith(("Given value", "Subtypes:", "Errors:", "Does not validate against any")):
            reasons.append(content)
    if alternatives > 1 or not keys:
        return text if any(line.startswith("- ") for line in lines) else " ".join(lines)
    # The inner reasons repeat the type hint and the value given: keep what went wrong, and a short value.
    reason = re.sub(r"^Type .+? expects a function or a callable class: ", "", " ".join(reasons))
    value = re.search(r"\.* Got value: (.*)$", reason)
    if value:
        classes += [c for c in re.findall(r"class_path='([^']+)'", value.group(1)) if c not in classes]
        shown = f". Got value: {value.group(1)}" if len(value.group(1)) <= 60 else "."
        reason = reason[:value.start()] + shown
    where = f" (in {', '.join(classes)})" if classes else ""
    return f'key "{".".join(keys)}"{where}' + (f": {reason}" if reason else "")
