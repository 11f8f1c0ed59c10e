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
    """``image/`` and ``alpha/`` (and fg/, bg/) with 3 synthetic 64 px pairs; ``pred/``: a copy of
    ``alpha/`` to score as predictions (evaluate refuses one folder given as both)."""
    import shutil

    root = write_pairs(tmp_path_factory.mktemp("data") / "pairs", count=3, size=64)
    shutil.copytree(root / "alpha", root / "pred")
    return root


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
        "evaluate": ["--pred", pairs / "pred", "--gt", pairs / "alpha", "--out", out],
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
        "evaluate": ["evaluate", "--pred", pairs / "pred", "--gt", pairs / "alpha", "--out", target, "--no-progress", "--workers", "1"],
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


# ---- evaluate
@pytest.mark.slow
def test_evaluate_no_force_outside_comp1k_is_an_error(tmp_path):
    import numpy as np

    from matting.commands.evaluate import main as evaluate_main
    from matting.io.errors import MattingInputError
    from matting.io.images import write_png

    for folder in ("pred", "gt"):
        write_png(tmp_path / folder / "a.png", np.zeros((8, 8), np.float32))
    args = ["--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--no-progress", "--no-force"]
    with pytest.raises(MattingInputError, match="--no-force applies to --protocol comp1k only; 'whole'"):
        evaluate_main(args)
    assert not (tmp_path / "pred_eval_whole").exists()


# ---- readers
def _readers_copy(pairs: Path, folder: Path) -> Path:
    """A private copy of the ``pairs`` folder (image/ and alpha/ only), to spoil."""
    import shutil

    for role in ("image", "alpha"):
        shutil.copytree(pairs / role, folder / role)
    return folder


def _readers_binary(source: Path, target: Path, high: int) -> Path:
    """``source`` matte thresholded at 0.5 and stored as 0 / ``high`` (8 bit)."""
    import numpy as np

    from matting.io.images import read_alpha, write_png

    target.parent.mkdir(parents=True, exist_ok=True)
    return write_png(target, (read_alpha(source) > 0.5).astype(np.uint8) * np.uint8(high), overwrite=True)


def _readers_dangling(folder: Path) -> tuple[Path, Path]:
    """``folder/train_00002.png`` replaced by a link to a file that is not there: (link, target)."""
    link, target = folder / "train_00002.png", folder.parent / "elsewhere" / "train_00002.png"
    link.unlink()
    link.symlink_to(target)
    return link, target


@pytest.mark.slow
def test_predict_refuses_images_over_the_pixel_limit_from_their_header(ckpts, pairs, tmp_path, capsys):
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    # 1 kB that claims 20000 x 20000 pixels: refused from the header, never decoded (no 10 GB, no decode error).
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 1000)))
    photo = pairs / "image" / "train_00000.png"
    out = tmp_path / "out"
    common = ["predict", "--ckpt", ckpts["tiny"], "--out", out, "--base-size", "32", "--no-progress", "--no-cutout"]
    code, err = run(capsys, *common, bomb, photo)
    assert code == 1 and "Traceback" not in err
    assert (f"{bomb}: 20000x20000 pixels (400 MP) is over the limit of 200 MP; pass --max-pixels 400000000" in err), err
    assert (out / "alpha" / "train_00000.png").is_file()  # the other input is still done
    code, err = run(capsys, *common, "--overwrite", "--max-pixels", "4095", photo)
    assert code == 1 and f"{photo}: 64x64 pixels (0.0041 MP) is over the limit of" in err and "pass --max-pixels 4096" in err
    assert run(capsys, *common, "--overwrite", "--max-pixels", "4096", photo)[0] == 0


@pytest.mark.slow
@pytest.mark.parametrize("command", ["evaluate", "gallery", "finetune", "adapt"])
def test_every_command_that_reads_images_takes_max_pixels(command, ckpts, pairs, tmp_path, capsys):
    data = _readers_copy(pairs, tmp_path / "data")
    out = tmp_path / "out"
    args = {
        # two worker processes: the limit reaches them
        "evaluate": ["--pred", pairs / "pred", "--gt", data / "alpha", "--out", out, "--workers", "2", "--no-progress"],
        "gallery": ["--ckpt", ckpts["tiny"], "--images", data / "image", "--alpha", data / "alpha", "--out", out,
                    "--base-size", "32", "--size", "16", "--no-progress"],
        "finetune": [ckpts["tiny"], "--data", data, "--out", out],
        "adapt": [ckpts["tiny"], "--images", data / "image", "--out", out],
    }[command]
    code, err = run(capsys, command, *args, "--max-pixels", "1000")
    message = assert_clean_error(code, err, "train_00000.png: 64x64 pixels", "pass --max-pixels 4096",
                                 one_line=command == "gallery")
    assert "Traceback" not in message and not out.exists()


@pytest.mark.slow
def test_evaluate_refuses_0_1_mattes_unless_told_their_scale(pairs, tmp_path, capsys):
    import json

    stems = [p.stem for p in sorted((pairs / "alpha").iterdir())]
    for stem in stems:
        source = pairs / "alpha" / f"{stem}.png"
        _readers_binary(source, tmp_path / "gt01" / f"{stem}.png", 1)
        _readers_binary(source, tmp_path / "gt255" / f"{stem}.png", 255)
        _readers_binary(source, tmp_path / "pred" / f"{stem}.png", 255)
    gt01, first = tmp_path / "gt01", tmp_path / "gt01" / f"{stems[0]}.png"
    base = ["evaluate", "--pred", tmp_path / "pred", "--no-progress", "--workers", "1"]
    code, err = run(capsys, *base, "--gt", gt01, "--out", tmp_path / "refused")
    message = assert_clean_error(code, err, f"{first}: alpha matte holds only the values 0 and 1", "--alpha-scale 1",
                                 one_line=False)
    assert all(stem in message for stem in stems) and not (tmp_path / "refused").exists()
    # As prediction too.
    code, err = run(capsys, "evaluate", "--pred", gt01, "--gt", tmp_path / "gt255", "--out", tmp_path / "r2", "--no-progress")
    assert_clean_error(code, err, f"{first}: alpha matte holds only", one_line=False)
    assert run(capsys, *base, "--gt", gt01, "--out", tmp_path / "scaled", "--alpha-scale", "1")[0] == 0
    assert run(capsys, *base, "--gt", tmp_path / "gt255", "--out", tmp_path / "full")[0] == 0
    scaled, full = (json.loads((tmp_path / name / "summary.json").read_text()) for name in ("scaled", "full"))
    assert scaled["metrics"] == full["metrics"] and full["metrics"]["sad"]["mean"] == 0
    # An empty matte (all zero) is still a matte.
    import numpy as np

    from matting.io.images import write_png

    for folder in ("empty_pred", "empty_gt"):
        write_png(tmp_path / folder / "a.png", np.zeros((8, 8), np.uint8))
    assert run(capsys, "evaluate", "--pred", tmp_path / "empty_pred", "--gt", tmp_path / "empty_gt", "--out",
               tmp_path / "empty", "--no-progress")[0] == 0


@pytest.mark.slow
@pytest.mark.parametrize("command", ["finetune", "gallery"])
def test_finetune_and_gallery_refuse_0_1_mattes(command, ckpts, pairs, tmp_path, capsys):
    data = _readers_copy(pairs, tmp_path / "data")
    spoiled = _readers_binary(data / "alpha" / "train_00001.png", data / "alpha" / "train_00001.png", 1)
    out = tmp_path / "out"
    args = {"finetune": [ckpts["tiny"], "--data", data, "--out", out],
            "gallery": ["--ckpt", ckpts["tiny"], "--images", data / "image", "--alpha", data / "alpha", "--out", out,
                        "--base-size", "32", "--size", "16", "--no-progress"]}[command]
    code, err = run(capsys, command, *args)
    assert_clean_error(code, err, f"{spoiled}: alpha matte holds only the values 0 and 1", "--alpha-scale 1",
                       one_line=command == "gallery")
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.parametrize("command", ["predict", "evaluate", "gallery", "finetune", "adapt"])
def test_dangling_link_in_an_input_folder_is_reported(command, ckpts, pairs, tmp_path, capsys):
    data = _readers_copy(pairs, tmp_path / "data")
    folder = data / ("alpha" if command == "evaluate" else "image")
    link, target = _readers_dangling(folder)
    out = tmp_path / "out"
    args = {
        "predict": ["--ckpt", ckpts["tiny"], folder, "--out", out, "--base-size", "32", "--no-progress", "--no-cutout"],
        "evaluate": ["--pred", folder, "--gt", pairs / "alpha", "--out", out, "--no-progress"],
        "gallery": ["--ckpt", ckpts["tiny"], "--images", folder, "--out", out, "--base-size", "32", "--size", "16",
                    "--no-progress"],
        "finetune": [ckpts["tiny"], "--data", data, "--out", out],
        "adapt": [ckpts["tiny"], "--images", folder, "--out", out],
    }[command]
    code, err = run(capsys, command, *args)
    expected = f"{link}: dangling symbolic link to {target}"
    if command == "predict":  # a per-input problem: the others are written, exit 1
        assert code == 1 and expected in err and "Traceback" not in err, err
        assert sorted(p.name for p in (out / "alpha").iterdir()) == ["train_00000.png", "train_00001.png"]
    else:
        assert_clean_error(code, err, expected, one_line=command == "gallery")
        assert not out.exists()


@pytest.mark.slow
def test_truncated_png_shows_only_our_line(ckpts, pairs, tmp_path, capfd):
    cut = tmp_path / "cut.png"
    data = (pairs / "image" / "train_00000.png").read_bytes()
    cut.write_bytes(data[:len(data) // 2])
    code = main(["predict", "--ckpt", str(ckpts["tiny"]), str(cut), "--out", str(tmp_path / "out"), "--base-size", "32",
                 "--no-progress"])
    err = capfd.readouterr().err
    assert code == 1 and f"{cut}: not a readable image (damaged or truncated PNG" in err
    assert "libpng" not in err and "WARN" not in err, err


# ---- messages


@pytest.mark.slow
@pytest.mark.parametrize("command", ["predict", "gallery"])
@pytest.mark.parametrize("threads", ["-3", "0"])
def test_threads_must_be_positive(command, threads, ckpts, pairs, tmp_path, capsys):
    out = tmp_path / "out"
    where = [pairs / "image"] if command == "predict" else ["--images", pairs / "image"]
    message = assert_clean_error(*run(capsys, command, "--ckpt", ckpts["tiny"], *where, "--out", out, "--threads", threads),
                                 "--threads", f"got {threads}")
    assert "must be at least 1" in message
    assert not out.exists()


BROKEN_YAML = "trainer:\n  max_steps: [1, 2\n"  # the flow sequence never closes


@pytest.mark.slow
@pytest.mark.parametrize("command", [*LIGHTNING, "finetune"])
def test_yaml_syntax_error_names_the_file_and_line(command, ckpts, pairs, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BROKEN_YAML)
    out = tmp_path / "out"
    if command in LIGHTNING:
        args = lightning(command, out, "-c", bad)
    else:
        args = [command, ckpts["tiny"], "--data", pairs, "-c", bad, "--out", out]
    message = assert_clean_error(*run(capsys, *args), bad, "not valid YAML at line 3, column 1")
    assert "starts at line 2, column 14" in message
    assert not out.exists()


def test_sidecar_yaml_syntax_error_names_the_file_and_line(tmp_path):
    from safetensors.torch import save_file

    from matting.io.checkpoints import read_checkpoint
    from matting.io.errors import MattingInputError

    weights = tmp_path / "net.safetensors"
    save_file({"w": torch.zeros(1)}, str(weights))
    (tmp_path / "net.yaml").write_text("net: {class_path: matting.models.MattingNet\n")
    with pytest.raises(MattingInputError, match=r"net\.yaml: not valid YAML at line 2, column 1: .*starts at line 1"):
        read_checkpoint(weights).net_config()


@pytest.mark.parametrize("content, expected", [
    (b"trainer:\n  max_steps: 2\n", "not a PyTorch checkpoint (a text file?)"),
    (b"# notes\nhello\n", "not a PyTorch checkpoint (a text file?)"),
    (b"", "not a PyTorch checkpoint (an empty file)"),
    (bytes(range(256)) * 8, "not a PyTorch checkpoint (neither a zip archive nor a pickle)"),
    (b"cos\nsystem\n(S'true'\ntR.", "not a safe checkpoint: it holds Python objects (os.system)"),  # protocol 0: ASCII
], ids=["yaml", "text", "empty", "binary", "protocol-0-pickle"])
def test_a_file_that_is_no_checkpoint_says_what_it_is(content, expected, tmp_path):
    from matting.io.checkpoints import read_checkpoint
    from matting.io.errors import MattingInputError

    path = tmp_path / "model.ckpt"
    path.write_bytes(content)
    with pytest.raises(MattingInputError) as info:
        read_checkpoint(path)
    assert str(info.value) == f"{path}: {expected}" or str(info.value).startswith(f"{path}: {expected}")


def test_truncated_checkpoint_message_ends_at_a_word(tmp_path):
    from matting.io.checkpoints import read_checkpoint
    from matting.io.errors import MattingInputError

    from .tiny_checkpoint import write_checkpoint

    whole = write_checkpoint(tmp_path / "whole.ckpt").read_bytes()
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(whole[:len(whole) // 2])
    with pytest.raises(MattingInputError) as info:
        read_checkpoint(cut)
    message = str(info.value)
    assert message.startswith(f"{cut}: not a readable PyTorch checkpoint: truncated or damaged (RuntimeError: "), message
    reason = message.split("(RuntimeError: ", 1)[1]
    assert reason.endswith(".)") or reason.endswith(" ...)"), message  # a sentence, or words, never half a word
    assert len(reason) < 140


def _stored_config_checkpoint(tmp_path: Path, name: str, change) -> Path:
    import copy

    from .tiny_checkpoint import NET_CONFIG, write_checkpoint

    config = copy.deepcopy(NET_CONFIG)
    change(config)
    return write_checkpoint(tmp_path / name, config=config)


@pytest.mark.slow
@pytest.mark.parametrize("where, forged", [
    ("net.class_path", "matting.runtime.run_record.subprocess.Popen"),
    ("net.fusion.class_path", "matting.io.images.os.system"),
], ids=["Popen", "os.system"])
def test_forged_class_paths_under_matting_are_refused(where, forged, pairs, tmp_path, capsys):
    def forge(config):
        if where == "net.class_path":
            config["class_path"] = forged
        else:
            config["init_args"]["fusion"] = {"class_path": forged, "init_args": {}}

    ckpt = _stored_config_checkpoint(tmp_path, "forged.ckpt", forge)
    out = tmp_path / "out"
    message = assert_clean_error(*run(capsys, "predict", "--ckpt", ckpt, pairs / "image", "--out", out),
                                 ckpt, f"refusing to build {where}={forged!r}")
    assert "not a class that the matting package defines" in message
    assert not out.exists()


@pytest.mark.slow  # (only by name: it lists subprocess.Popen among the refused paths)
def test_the_allow_list_holds_the_package_classes_and_torch_optimizers_only():
    from matting.inference.class_paths import is_allowed_class

    for path in ("matting.models.MattingNet", "matting.models.net.MattingNet", "matting.models.segmentation.PatchClassifier",
                 "matting.losses.MattingLoss", "matting.module.MattingModule", "matting.soc_module.SOCModule",
                 "matting.data.SyntheticDataModule", "torch.optim.AdamW", "torch.optim.lr_scheduler.OneCycleLR"):
        assert is_allowed_class(path), path
    for path in ("matting.io.images.os.system", "matting.runtime.run_record.subprocess.Popen", "matting.models.os.system",
                 "matting.models.net.nn.Module", "matting.models.net.torch.Tensor", "subprocess.Popen", "os.system",
                 "torch.nn.Module", "matting.models._private", "matting.__main__.main", "matting.cli.main",
                 "matting.baselines.ColorThresholdRemover"):  # a package class, but not a building block of a run
        assert not is_allowed_class(path), path
    # Derived, not listed: every network, loss and data module the package exports is allowed.
    import inspect

    import torch

    from matting import data, losses, models

    exported = [f"{m.__name__}.{n}" for m in (models, losses, data) for n in getattr(m, "__all__", dir(m))
                if inspect.isclass(getattr(m, n)) and (issubclass(getattr(m, n), torch.nn.Module) or n.endswith("DataModule"))]
    assert len(exported) > 15 and all(is_allowed_class(p) for p in exported), [p for p in exported if not is_allowed_class(p)]


@pytest.mark.slow
def test_a_stored_config_that_does_not_build_is_the_checkpoints_fault(pairs, tmp_path, capsys):
    ckpt = _stored_config_checkpoint(tmp_path, "odd.ckpt",
                                     lambda config: config["init_args"]["detail_head"]["init_args"].update(hiddenx=3))
    out = tmp_path / "out"
    message = assert_clean_error(*run(capsys, "predict", "--ckpt", ckpt, pairs / "image", "--out", out), ckpt,
                                 "the config stored in this file", 'key "net.init_args.detail_head"',
                                 "matting.models.DetailHead", "hiddenx")
    assert 'Parser key "net":' not in message
    assert not out.exists()


@pytest.mark.slow
def test_ckpt_path_whose_stored_config_does_not_parse_names_the_checkpoint(tmp_path, capsys):
    import yaml

    from .tiny_checkpoint import NET_CONFIG

    ckpt = _stored_config_checkpoint(tmp_path, "odd.ckpt",
                                     lambda config: config["init_args"]["detail_head"]["init_args"].update(hiddenx=3))
    same_net = tmp_path / "net.yaml"  # the network the checkpoint was trained with, as the user configures it
    same_net.write_text(yaml.safe_dump({"model": {"net": NET_CONFIG}}))
    out = tmp_path / "run"
    message = assert_clean_error(*run(capsys, *lightning("validate", out, "-c", same_net, f"--ckpt_path={ckpt}")),
                                 f"--ckpt_path {ckpt}: the model config stored in this checkpoint",
                                 'key "model.net.init_args.detail_head"', "hiddenx")
    assert not message.startswith("matting: error: Parser key")


@pytest.mark.slow
def test_a_refused_class_on_the_command_line_is_one_line_naming_key_and_class(tmp_path, capsys):
    out = tmp_path / "run"
    extra = "--model.net.init_args.fusion.class_path=subprocess.Popen"
    assert_clean_error(*run(capsys, *lightning("fit", out, extra)), 'key "model.net.init_args.fusion"', "subprocess.Popen")
    assert not out.exists()


def test_one_line_of_a_nested_parser_error():
    from matting.io.errors import one_line

    text = ('Parser key "data":\n  Does not validate against any of the Union subtypes\n  Subtypes: [A, NoneType]\n'
            "  Errors:\n    - Problem with given class_path 'matting.data.SyntheticDataModule':\n"
            '        Parser key "batch_size":\n          Expected a <class \'int\'>. Got value: x\n'
            "    - Expected a <class 'NoneType'>\n  Given value type: <class 'str'>\n  Given value: x")
    assert one_line(text) == ('key "data.init_args.batch_size" (in matting.data.SyntheticDataModule): '
                              "Expected a <class 'int'>. Got value: x")


@pytest.mark.slow
def test_default_root_dir_moves_the_whole_run(tmp_path, monkeypatch):
    from matting.runtime.lightning_cli import build_cli

    monkeypatch.chdir(tmp_path)  # a log folder left where configs/default.yaml points would show here
    root = tmp_path / "elsewhere"
    cli = build_cli(["fit", *SMOKE, f"--trainer.default_root_dir={root}", "--trainer.enable_progress_bar=false"])
    log_dir = Path(cli.trainer.log_dir)
    assert log_dir == root / "logs" / "version_0"
    for name in ("config.yaml", "run.json", "metrics.csv", "checkpoints/last.ckpt"):
        assert (log_dir / name).is_file(), name
    assert not (tmp_path / "runs").exists()


def test_the_disk_full_hint_names_the_key_that_moves_a_run(tmp_path):
    from matting.runtime.checkpoint_io import _checkpoint_error

    message = _checkpoint_error(tmp_path / "last.ckpt", OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))).strerror
    assert "--trainer.default_root_dir" in message and "point default_root_dir" not in message


@pytest.mark.slow
def test_the_smoke_config_validates_and_tests_one_batch(tmp_path):
    from .tiny_checkpoint import smoke_cli

    cli = smoke_cli(tmp_path)
    assert cli.trainer.limit_val_batches == 1 and isinstance(cli.trainer.limit_val_batches, int)
    assert cli.trainer.limit_test_batches == 1 and isinstance(cli.trainer.limit_test_batches, int)
    cli.trainer.validate(cli.model, datamodule=cli.datamodule, verbose=False)
    assert cli.trainer.num_val_batches == [1]
    fraction = smoke_cli(tmp_path / "fraction", "--trainer.limit_val_batches=0.5")
    assert fraction.trainer.limit_val_batches == 0.5


def test_demo_finds_its_configs_from_any_folder(tmp_path, monkeypatch):
    from matting.commands import demo

    monkeypatch.chdir(tmp_path)
    configs = [Path(c) for c in demo.default_configs()]
    assert [c.name for c in configs] == ["default.yaml", "demo.yaml"]
    assert all(c.is_absolute() and c.is_file() for c in configs)


@pytest.mark.slow
def test_a_size_mismatch_is_said_once(pairs, tmp_path, capsys):
    import numpy as np

    from matting.io.images import write_png

    pred = tmp_path / "pred"
    pred.mkdir()
    for path in sorted((pairs / "alpha").iterdir()):
        write_png(pred / path.name, np.zeros((10, 12), np.float32))
    message = assert_clean_error(*run(capsys, "evaluate", "--pred", pred, "--gt", pairs / "alpha", "--out", tmp_path / "out",
                                      "--no-progress"), pred, one_line=False)
    assert "size mismatch: prediction" in message and "size mismatch: size mismatch" not in message


# ---- speed
_IMPORTED = """
import sys
from matting.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("torch" in sys.modules, "lightning" in sys.modules, file=sys.stderr)
"""


@pytest.mark.slow
@pytest.mark.parametrize("argv", [["--help"], ["evaluate", "--help"], ["prepare-data", "--help"], ["make-data", "--help"],
                                  ["predict", "--help"], ["no-such-command"]])
def test_commands_that_need_no_network_load_neither_torch_nor_lightning(argv):
    import subprocess
    import sys

    from tests.conftest import subprocess_env

    done = subprocess.run([sys.executable, "-c", _IMPORTED, *argv], capture_output=True, text=True, env=subprocess_env(),
                          timeout=120)
    assert done.stderr.strip().splitlines()[-1] == "False False", done.stderr


@pytest.mark.slow
def test_make_data_writes_its_split_without_torch(tmp_path):
    import subprocess
    import sys

    from tests.conftest import subprocess_env

    done = subprocess.run([sys.executable, "-c", _IMPORTED, "make-data", "--out", str(tmp_path / "split"), "--length", "2",
                           "--size", "32"], capture_output=True, text=True, env=subprocess_env(), timeout=120)
    assert done.stderr.strip().splitlines()[-1] == "False False", done.stderr
    assert len(list((tmp_path / "split" / "image").glob("*.png"))) == 2


def _speed_photos(folder: Path, count: int) -> Path:
    import numpy as np

    from matting.io.images import write_png

    rng = np.random.default_rng(0)
    for i in range(count):
        write_png(folder / f"photo{i}.png", rng.random((40, 56, 3), dtype=np.float32))
    return folder


@pytest.mark.slow
def test_ctrl_c_during_predict_says_what_was_written_in_one_line(tmp_path, capsys, monkeypatch, net_ckpt):
    from matting.commands import predict

    photos, out = _speed_photos(tmp_path / "in", 4), tmp_path / "out"
    real, calls = predict.process_image, []

    def interrupted_after_the_first(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(predict, "process_image", interrupted_after_the_first)
    code, err = run(capsys, "predict", "--ckpt", net_ckpt(), photos, "--out", out, "--base-size", "32", "--no-progress")
    assert code == 130
    assert err.strip().splitlines() == [  # what is loaded (said first, before a slow start), then one line
        f"matting predict: loading {net_ckpt()} (checkpoint, PyTorch)",
        f"matting predict: interrupted: wrote 1 of 4 images to {out}; the rest can be added with --skip-existing"]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "alpha/photo0.png", "cutout/photo0.png"]  # the first image whole, no temporary files
    monkeypatch.setattr(predict, "process_image", real)
    code, err = run(capsys, "predict", "--ckpt", net_ckpt(), photos, "--out", out, "--base-size", "32", "--no-progress",
                    "--skip-existing")
    assert code == 0 and len(list((out / "alpha").iterdir())) == 4, err


@pytest.mark.slow
def test_ctrl_c_in_any_command_is_one_line_and_status_130(capsys, monkeypatch):
    from matting.commands import make_data

    def interrupted(argv):
        raise KeyboardInterrupt

    monkeypatch.setattr(make_data, "main", interrupted)
    code, err = run(capsys, "make-data", "--out", "x")
    assert code == 130 and err.strip().splitlines() == ["matting make-data: interrupted"]


@pytest.mark.slow
def test_a_predict_run_that_writes_nothing_leaves_no_empty_folders(tmp_path, capsys, net_ckpt):
    photos = tmp_path / "in"
    photos.mkdir()
    for name in ("a.png", "b.jpg"):
        (photos / name).write_bytes(b"not an image")
    out = tmp_path / "new" / "out"
    code, err = run(capsys, "predict", "--ckpt", net_ckpt(), photos, "--out", out, "--base-size", "32", "--no-progress",
                    "--background", "white")
    assert code == 1 and "a.png" in err and "b.jpg" in err
    assert not (tmp_path / "new").exists()  # neither out/ nor the folder above it, which this run made
    kept = tmp_path / "kept"
    (kept / "alpha").mkdir(parents=True)
    code, _ = run(capsys, "predict", "--ckpt", net_ckpt(), photos, "--out", kept, "--base-size", "32", "--no-progress")
    assert code == 1 and sorted(p.name for p in kept.iterdir()) == ["alpha"]  # folders that were there stay


def test_one_frozen_graph_serves_every_shape_once_a_shape_repeats():
    import numpy as np

    from matting.inference.frozen import prepare_for_inference
    from matting.inference.predict import predict_alpha
    from tests.tiny_checkpoint import tiny_net

    net, fast = tiny_net(), prepare_for_inference(tiny_net(), min_repeats=2)
    rng = np.random.default_rng(0)
    shapes = [(96, 128), (128, 96), (128, 128), (64, 128), (128, 64), (32, 128)] * 2  # six base shapes: over cache_size
    for i, shape in enumerate(shapes):
        image = rng.random((*shape, 3), dtype=np.float32)
        assert np.abs(predict_alpha(fast, image, base_size=128) - predict_alpha(net, image, base_size=128)).max() < 1e-5
        if i < len(shapes) // 2:
            assert not fast._graphs  # each shape seen once: eager, nothing traced
    graphs = {id(g) for g in fast._graphs.values()}
    assert len(fast._graphs) == 6 and len(graphs) == 1 and None not in fast._graphs.values()
