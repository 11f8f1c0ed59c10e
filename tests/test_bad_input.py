"""Bad input to every ``matting`` command: one clean error line, exit 2, no traceback, nothing lost.

Every case runs in-process through :func:`matting.cli.main` (what the ``matting`` command runs),
so what is checked is what a user sees on stderr. The contract, for each command and case:

- one ``matting: error: ...`` line (the last line on stderr) that names the offending file, key
  or value; exit status 2 (1 for ``matting predict``'s per-image problems, documented);
- no traceback, no half-written output, and whatever the user had at the output path unchanged.

Full-disk checkpoint writes are tested in test_checkpoint_io.py; here only the image and model
writers of ``make-data``, ``predict`` and ``export`` are made to fail like a full disk.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import torch

from matting.cli import main
from matting.io import files
from matting.models.segmentation import PatchClassifier

from .tiny_checkpoint import REPO, SMOKE, write_pairs

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.filterwarnings("ignore")]

GFM = REPO / "configs" / "model" / "gfm.yaml"
# `fit`, `validate` and `test` on the smoke config, writing only under the test's own folder.
QUIET = ["--trainer.logger=false", "--trainer.enable_progress_bar=false"]
LIGHTNING = ("fit", "validate", "test")
# Number of weights in the tiny network's and in the PatchClassifier's state_dict (set by the ckpts fixture).
KEYS: dict[str, int] = {}
PATCH_NET = {"class_path": "matting.models.segmentation.PatchClassifier", "init_args": {"patch": 5, "width": 4}}


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def ckpts(tiny_ckpt, tmp_path_factory) -> dict[str, Path]:
    """Checkpoints: a real tiny `matting fit` one, and bad ones of the same layout.

    - ``tiny``: the smoke config's MattingNet (test_resnet), trained 2 steps.
    - ``patch``: a consistent checkpoint of another architecture (a PatchClassifier).
    - ``mismatched``: the tiny network's config with the PatchClassifier's weights (what a
      checkpoint from an older code version, or a hand-edited one, looks like).
    - ``garbage``: bytes that are no checkpoint at all; ``missing``: no file.
    """
    root = tmp_path_factory.mktemp("ckpts")
    tiny = tiny_ckpt
    torch.manual_seed(0)
    patch_state = {f"net.{k}": v for k, v in PatchClassifier(5, width=4).state_dict().items()}
    full = torch.load(tiny, map_location="cpu", weights_only=False)
    torch.save({**full, "hyper_parameters": {**full["hyper_parameters"], "net": PATCH_NET}, "state_dict": patch_state},
               root / "patch.ckpt")
    torch.save({**full, "state_dict": patch_state}, root / "mismatched.ckpt")
    (root / "garbage.ckpt").write_bytes(bytes(range(256)) * 8)
    KEYS.update(own=len(full["state_dict"]), patch=len(patch_state))
    return {"tiny": tiny, "patch": root / "patch.ckpt", "mismatched": root / "mismatched.ckpt",
            "garbage": root / "garbage.ckpt", "missing": root / "missing.ckpt"}


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    """``image/`` and ``alpha/`` (and fg/, bg/) with 3 synthetic 64 px pairs."""
    return write_pairs(tmp_path_factory.mktemp("data") / "pairs", count=3, size=64)


@pytest.fixture
def a_file(tmp_path) -> Path:
    """A file of the user's, where a command is told to put an output folder."""
    path = tmp_path / "notes.txt"
    path.write_text("the user's notes")
    return path


def run(capsys, *args) -> tuple[int, str]:
    """``matting ARGS`` in-process: (exit status, stderr)."""
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def assert_clean_error(code: int, err: str, *names, status: int = 2, one_line: bool = True) -> str:
    """Exit ``status``, no traceback, and the error line (the last on stderr) naming every one of ``names``."""
    assert code == status, err
    assert "Traceback" not in err and "usage:" not in err, err
    lines = err.rstrip().splitlines()
    assert lines, "nothing on stderr"
    first = next((i for i, line in enumerate(lines) if line.startswith("matting: error:")), None)
    assert first is not None, err
    message = "\n".join(lines[first:])
    if one_line:
        assert first == len(lines) - 1, f"more than one line: {message}"
    for name in names:
        assert str(name) in message, f"{name!r} not in {message!r}"
    return message


def listing(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too) with its content."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def lightning(command: str, root: Path, *extra) -> list:
    return [command, *SMOKE, f"--trainer.default_root_dir={root}", *QUIET, *extra]


# ---------------------------------------------------------------------------- 1. missing config file


@pytest.mark.slow
@pytest.mark.parametrize("command", [*LIGHTNING, "finetune", "demo"])
def test_missing_config_file_is_named(command, ckpts, pairs, tmp_path, capsys):
    missing = tmp_path / "missing.yaml"
    out = tmp_path / "out"
    if command in LIGHTNING:
        args = [command, "-c", missing, f"--trainer.default_root_dir={out}"]
    elif command == "finetune":
        args = [command, ckpts["tiny"], "--data", pairs, "-c", missing, "--out", out]
    else:
        args = [command, "-c", missing, "--run-dir", out]
    assert_clean_error(*run(capsys, *args), missing)
    assert not out.exists()


# ---------------------------------------------------------------------------- 2. wrong types


@pytest.mark.slow
@pytest.mark.parametrize("extra, key", [
    (["--trainer.max_steps=abc"], "trainer.max_steps"),
    (["--data.init_args.batch_size=-3"], "data.init_args.batch_size"),
    (["--data.init_args.num_workers=-1"], "data.init_args.num_workers"),
    (["--model.net.init_args.base_scale=abc"], "base_scale"),
], ids=["max_steps", "batch_size", "num_workers", "nested"])
def test_wrong_value_for_a_key_names_it(extra, key, tmp_path, capsys):
    out = tmp_path / "run"
    message = assert_clean_error(*run(capsys, *lightning("fit", out, *extra)), key)
    assert extra[0].split("=")[1] in message  # and the value
    assert not out.exists()


@pytest.mark.slow
def test_wrong_type_in_a_config_file_names_the_key(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer:\n  max_steps: many\n")
    out = tmp_path / "run"
    assert_clean_error(*run(capsys, *lightning("fit", out, "-c", bad)), "trainer.max_steps", "many")
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.parametrize("command, option", [
    ("predict", "--base-size"), ("evaluate", "--workers"), ("gallery", "--size"), ("finetune", "--steps"),
    ("adapt", "--epochs"), ("make-data", "--length"), ("export", "--opset"), ("demo", "--grid-images"),
    ("prepare-data", "--jobs"),
])
def test_tool_option_of_the_wrong_type_is_one_line(command, option, ckpts, pairs, tmp_path, capsys):
    out = tmp_path / "out"
    required = {
        "predict": ["--ckpt", ckpts["tiny"], pairs / "image", "--out", out],
        "evaluate": ["--pred", pairs / "alpha", "--gt", pairs / "alpha", "--out", out],
        "gallery": ["--ckpt", ckpts["tiny"], "--images", pairs / "image", "--out", out],
        "finetune": [ckpts["tiny"], "--data", pairs, "--out", out],
        "adapt": [ckpts["tiny"], "--images", pairs / "image", "--out", out],
        "make-data": ["--out", out],
        "export": ["--ckpt", ckpts["tiny"], "--onnx", out],
        "demo": ["--run-dir", out],
        "prepare-data": ["am2k", "--root", pairs, "--out", out],
    }[command]
    assert_clean_error(*run(capsys, command, *required, option, "x"), option, "'x'", f"matting {command} --help")
    assert not out.exists()


@pytest.mark.slow
def test_tool_missing_required_option_is_one_line(tmp_path, capsys):
    assert_clean_error(*run(capsys, "predict", tmp_path / "x.png"), "--ckpt", "--out")


# ---------------------------------------------------------------------------- 3. checkpoints that do not fit


@pytest.mark.slow
@pytest.mark.parametrize("command", LIGHTNING)
@pytest.mark.parametrize("kind, expected", [
    ("mismatched", "does not fit this network: {own} missing / {patch} unexpected keys, e.g. missing net."),
    ("patch", "does not fit this network: it was trained with another model.net"),
    ("garbage", "not a"),
    ("missing", "checkpoint not found"),
], ids=["mismatched", "patch", "garbage", "missing"])
def test_ckpt_path_that_does_not_fit_is_one_line(command, kind, expected, ckpts, tmp_path, capsys):
    out = tmp_path / "run"
    expected = expected.format(**KEYS)
    message = assert_clean_error(*run(capsys, *lightning(command, out, f"--ckpt_path={ckpts[kind]}")), ckpts[kind], expected)
    if kind == "patch":
        assert "model.net.class_path: checkpoint matting.models.segmentation.PatchClassifier" in message
    assert not (out / "config.yaml").exists()  # stopped before the run began


@pytest.mark.slow
@pytest.mark.parametrize("command", LIGHTNING)
def test_ckpt_path_of_another_architecture_than_configured_is_refused(command, ckpts, tmp_path, capsys):
    """LightningCLI would silently replace the configured GFM heads by the checkpoint's MODNet heads."""
    out = tmp_path / "run"
    assert_clean_error(*run(capsys, *lightning(command, out, "-c", GFM, f"--ckpt_path={ckpts['tiny']}")),
                       ckpts["tiny"], "model.net.init_args.semantic_head.class_path", "GlanceHead")
    assert not (out / "config.yaml").exists()


@pytest.mark.slow
def test_ckpt_path_that_fits_still_validates(ckpts, tmp_path, capsys):
    """The checks above refuse only what does not fit: the checkpoint of the configured network loads."""
    out = tmp_path / "run"
    code, err = run(capsys, *lightning("validate", out, f"--ckpt_path={ckpts['tiny']}"))
    assert code == 0, err
    assert (out / "config.yaml").is_file()


@pytest.mark.slow
def test_init_weights_that_match_nothing_is_an_error(ckpts, tmp_path, capsys):
    out = tmp_path / "run"
    assert_clean_error(*run(capsys, *lightning("fit", out, f"--model.init_weights={ckpts['patch']}")),
                       ckpts["patch"], f"none of its {KEYS['patch']} network tensors fits", "model.init_weights")
    assert not out.exists()


def _tool_args(command: str, ckpt: Path, pairs: Path, out: Path) -> list:
    return {
        "predict": ["predict", "--ckpt", ckpt, pairs / "image", "--out", out, "--base-size", "32", "--no-progress"],
        "export": ["export", "--ckpt", ckpt, "--safetensors", out / "model.safetensors"],
        "gallery": ["gallery", "--ckpt", ckpt, "--images", pairs / "image", "--out", out, "--base-size", "32", "--no-progress"],
        "finetune": ["finetune", ckpt, "--data", pairs, "--out", out, "--size", "64", "--batch-size", "2",
                     "--data.init_args.num_workers=0"],
        "adapt": ["adapt", ckpt, "--images", pairs / "image", "--out", out, "--num-workers", "0", "--size", "64"],
    }[command]


TOOLS_WITH_CKPT = ("predict", "export", "gallery", "finetune", "adapt")


@pytest.mark.slow
@pytest.mark.parametrize("command", TOOLS_WITH_CKPT)
@pytest.mark.parametrize("kind, expected", [
    ("mismatched", "weights do not fit the network config"),
    ("garbage", "not a"),
    ("missing", "not found"),
], ids=["mismatched", "garbage", "missing"])
def test_tool_checkpoint_that_does_not_load_is_one_line(command, kind, expected, ckpts, pairs, tmp_path, capsys):
    out = tmp_path / "out"
    assert_clean_error(*run(capsys, *_tool_args(command, ckpts[kind], pairs, out)), ckpts[kind], expected)
    assert not out.exists() and not out.with_name("out.partial").exists()


@pytest.mark.slow
def test_finetune_with_a_conflicting_network_config(ckpts, pairs, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = run(capsys, *_tool_args("finetune", ckpts["tiny"], pairs, out), "-c", GFM)
    # The differences are listed one per line under the error line (a list, like evaluate's file problems).
    message = assert_clean_error(code, err, ckpts["tiny"].resolve(), "not the checkpoint's", one_line=False)
    assert "model.net.init_args.semantic_head.class_path" in message
    assert not out.exists()


# ---------------------------------------------------------------------------- 4. an output folder that is a file


def _output_args(command: str, target: Path, ckpts, pairs) -> list:
    """``command`` told to write its output folder (or, for export, its file's folder) at ``target``."""
    if command in LIGHTNING:
        return lightning(command, target)
    return {
        "predict": ["predict", "--ckpt", ckpts["tiny"], pairs / "image", "--out", target, "--base-size", "32", "--no-progress"],
        "evaluate": ["evaluate", "--pred", pairs / "alpha", "--gt", pairs / "alpha", "--out", target, "--no-progress", "--workers", "1"],
        "export-onnx": ["export", "--ckpt", ckpts["tiny"], "--onnx", target / "model.onnx"],
        "export-safetensors": ["export", "--ckpt", ckpts["tiny"], "--safetensors", target / "model.safetensors"],
        "gallery": ["gallery", "--ckpt", ckpts["tiny"], "--images", pairs / "image", "--out", target, "--base-size", "32", "--no-progress"],
        "make-data": ["make-data", "--out", target, "--length", "1", "--size", "32"],
        "demo": ["demo", *SMOKE, "--run-dir", target],
        "finetune": _tool_args("finetune", ckpts["tiny"], pairs, target),
        "adapt": _tool_args("adapt", ckpts["tiny"], pairs, target),
    }[command]


OUTPUT_COMMANDS = ("predict", "evaluate", "export-onnx", "export-safetensors", "gallery", "make-data", "demo",
                   "finetune", "adapt", *LIGHTNING)


# The output folder is the user's file, or lies inside it. (export writes a file: that one existing is case 5.)
@pytest.mark.slow
@pytest.mark.parametrize("command, below", [
    pytest.param(command, below, id=f"{command}-{'inside-a-file' if below else 'is-a-file'}")
    for command in OUTPUT_COMMANDS for below in (False, True) if below or not command.startswith("export")
])
def test_output_folder_that_is_a_file(command, below, a_file, ckpts, pairs, capsys):
    target = a_file / "sub" if below else a_file
    assert_clean_error(*run(capsys, *_output_args(command, target, ckpts, pairs)), a_file)
    assert a_file.read_text() == "the user's notes"
    assert sorted(p.name for p in a_file.parent.iterdir()) == ["notes.txt"]  # no .partial or temporary sibling


@pytest.mark.slow
def test_evaluate_overwrite_never_deletes_a_file(a_file, ckpts, pairs, capsys):
    """--overwrite replaces an old report folder; a file at --out was deleted before."""
    args = _output_args("evaluate", a_file, ckpts, pairs) + ["--overwrite"]
    assert_clean_error(*run(capsys, *args), a_file, "is a file")
    assert a_file.read_text() == "the user's notes"


# ---------------------------------------------------------------------------- 5. existing outputs


@pytest.mark.slow
@pytest.mark.parametrize("command", ["evaluate", "gallery", "make-data", "demo", "finetune", "adapt"])
def test_existing_output_folder_is_refused_and_kept(command, ckpts, pairs, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.txt").write_text("earlier results")
    before = listing(tmp_path)
    assert_clean_error(*run(capsys, *_output_args(command, out, ckpts, pairs)), out, "--overwrite")
    assert listing(tmp_path) == before


@pytest.mark.slow
@pytest.mark.parametrize("command", ["gallery", "finetune", "adapt"])
def test_overwrite_replaces_only_the_tools_own_folders(command, ckpts, pairs, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.txt").write_text("earlier results")
    before = listing(tmp_path)
    assert_clean_error(*run(capsys, *_output_args(command, out, ckpts, pairs), "--overwrite"), out)
    assert listing(tmp_path) == before


@pytest.mark.slow
@pytest.mark.parametrize("flag", ["--onnx", "--safetensors"])
def test_export_existing_file_is_refused_and_kept(flag, ckpts, tmp_path, capsys):
    target = tmp_path / "model.out"
    target.write_bytes(b"an earlier export")
    assert_clean_error(*run(capsys, "export", "--ckpt", ckpts["tiny"], flag, target), target, "--overwrite")
    assert target.read_bytes() == b"an earlier export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.out"]


@pytest.mark.slow
def test_predict_existing_output_is_kept(ckpts, pairs, tmp_path, capsys):
    out = tmp_path / "out"
    mine = out / "alpha" / "train_00000.png"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"the user's edited matte")
    args = ["predict", "--ckpt", ckpts["tiny"], pairs / "image" / "train_00000.png", "--out", out, "--base-size", "32",
            "--no-progress"]
    code, err = run(capsys, *args)
    assert code == 1 and "Traceback" not in err  # a per-image problem: 1, the others would still be written
    assert f"{mine}: exists already" in err
    assert mine.read_bytes() == b"the user's edited matte"
    assert listing(out) == {"alpha/train_00000.png": b"the user's edited matte"}


@pytest.mark.slow
@pytest.mark.parametrize("command", LIGHTNING)
def test_lightning_run_into_an_earlier_run_folder_is_refused(command, tmp_path, capsys):
    """Without a logger the run folder is default_root_dir itself: a second run there would replace config.yaml."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text("# the earlier run's config\n")
    before = listing(tmp_path)
    assert_clean_error(*run(capsys, *lightning(command, out)), out / "config.yaml", "exists already")
    assert listing(tmp_path) == before


# ---------------------------------------------------------------------------- 6. a full disk


ENOSPC = os.strerror(errno.ENOSPC)


def _full_disk_error(*args, **kwargs):
    raise OSError(errno.ENOSPC, ENOSPC)


@pytest.mark.slow
def test_make_data_on_a_full_disk(tmp_path, monkeypatch, capsys):
    from matting.data.synthetic import dataset as synthetic

    real_imwrite, calls = synthetic.cv2.imwrite, []

    def imwrite(path, image, *args):
        calls.append(path)
        return real_imwrite(path, image, *args) if len(calls) < 3 else False  # OpenCV's way of failing

    monkeypatch.setattr(synthetic.cv2, "imwrite", imwrite)
    out = tmp_path / "data"
    assert_clean_error(*run(capsys, "make-data", "--out", out, "--length", "2", "--size", "32"), "could not write")
    assert len(calls) == 3 and os.listdir(tmp_path) == []  # no half-written split, no temporary folder


class _HalfWritten:
    """A file whose first write stops halfway with ENOSPC, like a full disk."""

    def __init__(self, handle):
        self.handle = handle

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()

    def write(self, data):
        self.handle.write(bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, ENOSPC)


class _FullDiskOs:
    """``os`` as seen by matting.io.files, whose files fail like a full disk (the rest is the real module)."""

    def __getattr__(self, name):
        return getattr(os, name)

    @staticmethod
    def fdopen(fd, *args, **kwargs):
        return _HalfWritten(os.fdopen(fd, *args, **kwargs))


@pytest.mark.slow
def test_predict_on_a_full_disk(ckpts, pairs, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(files, "os", _FullDiskOs())
    out = tmp_path / "out"
    code, err = run(capsys, "predict", "--ckpt", ckpts["tiny"], pairs / "image", "--out", out, "--base-size", "32",
                    "--no-progress")
    assert code == 1 and "Traceback" not in err  # every image reported, as predict reports per-image problems
    assert f"{out / 'alpha' / 'train_00000.png'}: could not write it ({ENOSPC})" in err
    assert err.count(ENOSPC) == 3
    assert listing(out) == {}  # no partial PNG, no temporary file


@pytest.mark.slow
@pytest.mark.parametrize("flag", ["--safetensors", "--onnx"])
def test_export_on_a_full_disk(flag, ckpts, tmp_path, monkeypatch, capsys):
    def half_then_full(_, path, *args, **kwargs):
        Path(path).write_bytes(b"half a model")
        _full_disk_error()

    if flag == "--safetensors":
        import safetensors.torch

        monkeypatch.setattr(safetensors.torch, "save_file", lambda state, path, **kw: half_then_full(state, path))
    else:
        import onnx

        monkeypatch.setattr(onnx, "save", half_then_full)
    target = tmp_path / "model.out"
    assert_clean_error(*run(capsys, "export", "--ckpt", ckpts["tiny"], flag, target, "--no-verify"), target, ENOSPC)
    assert os.listdir(tmp_path) == []
