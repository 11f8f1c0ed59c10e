"""``matting.io.files``: the atomic writer, the staged output folder and the "may I write here" check."""

from __future__ import annotations

import errno
import os
import stat

import numpy as np
import pytest

from matting.data.manifest import FileEntry, ManifestInfo, Record, write_manifest
from matting.evaluation import write_report
from matting.io import files
from matting.io.errors import MattingInputError
from matting.io.files import (
    atomic_path,
    atomic_write,
    check_output,
    could_not_write,
    current_umask,
    make_run_folder,
    staged_folder,
)
from matting.io.images import write_png
from matting.runtime.checkpoint_io import atomic_write_bytes

UMASKS = [0o022, 0o077]


@pytest.fixture(params=UMASKS, ids=[f"umask{m:03o}" for m in UMASKS])
def umask(request):
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def listing(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------------------- permissions


def test_umask_is_read_without_changing_it(umask):
    assert current_umask() == umask
    assert current_umask() == umask


def test_written_files_get_the_permissions_of_any_new_file(umask, tmp_path):
    expected = 0o666 & ~umask
    record = atomic_write(tmp_path / "logs" / "run.json", '{"seed": 0}\n', fsync=True)  # as RunRecord writes it
    assert mode(record) == expected and record.read_text() == '{"seed": 0}\n'
    with atomic_path(tmp_path / "model.onnx") as tmp:  # as the exporters write through a library
        tmp.write_bytes(b"onnx")
    assert mode(tmp_path / "model.onnx") == expected
    atomic_write_bytes(tmp_path / "last.ckpt", b"checkpoint")
    assert mode(tmp_path / "last.ckpt") == expected
    assert mode(write_png(tmp_path / "alpha.png", np.zeros((4, 4), np.uint8))) == expected


def test_manifests_get_the_permissions_of_any_new_file(umask, tmp_path):
    record = Record("a", {"image": FileEntry("train/a.png", 4, 4)})
    write_manifest(tmp_path / "manifests", ManifestInfo("toy", {}), {"train": [record]})
    for name in ("dataset.json", "train.jsonl"):
        assert mode(tmp_path / "manifests" / name) == 0o666 & ~umask, name
    assert listing(tmp_path / "manifests") == ["dataset.json", "train.jsonl"]  # no temporary files


def test_report_folders_get_the_permissions_of_any_new_folder(umask, tmp_path):
    rows = [{"name": "a", "sad": 1.0, "mse": 0.01, "grad": 2.0, "conn": 1.0}]
    out = write_report(rows, tmp_path / "report", "modnet")
    assert mode(out) == 0o777 & ~umask
    assert all(mode(p) == 0o666 & ~umask for p in out.iterdir())
    write_report(rows, out, "modnet", overwrite=True)  # a replaced report too
    assert mode(out) == 0o777 & ~umask
    assert listing(tmp_path) == ["report"]


# ---------------------------------------------------------------------------- the atomic writer


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary_file(tmp_path):
    target = atomic_write(tmp_path / "run.json", "previous")

    def full_disk(handle):
        handle.write(b"half of it")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(OSError, match="No space left"):
        atomic_write(target, full_disk, fsync=True)
    assert target.read_text() == "previous" and listing(tmp_path) == ["run.json"]

    with pytest.raises(MattingInputError, match=r"run\.json: could not write it \(No space left on device\)"):
        atomic_write(target, full_disk, error=could_not_write)
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_bytes(b"half of it")
        raise KeyboardInterrupt
    assert target.read_text() == "previous" and listing(tmp_path) == ["run.json"]


def test_a_failed_rename_removes_the_temporary_file(tmp_path, monkeypatch):
    def no_rename(src, dst):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(files.os, "replace", no_rename)
    with pytest.raises(MattingInputError, match="could not write it"):
        atomic_write(tmp_path / "a.txt", "new", error=could_not_write)
    assert listing(tmp_path) == []


# ---------------------------------------------------------------------------- the staged folder


def test_a_failed_build_keeps_the_old_folder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError, match="interrupted"), staged_folder(out) as staging:
        (staging / "new.txt").write_text("new")
        raise RuntimeError("interrupted")
    assert listing(out) == ["old.txt"] and listing(tmp_path) == ["out"]


def test_the_old_folder_is_replaced_only_when_the_new_one_is_complete(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with staged_folder(out, marker=".mine", marker_text="ours\n") as staging:
        assert staging.parent == tmp_path and staging.name.startswith(".out.")
        (staging / "new.txt").write_text("new")
        assert listing(out) == ["old.txt"]  # still there while the new one is built
    assert listing(out) == [".mine", "new.txt"] and listing(tmp_path) == ["out"]


def test_a_failed_swap_puts_the_old_folder_back(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    real_replace = os.replace

    def replace(src, dst):
        if str(src).endswith(".partial"):  # the swap of the new folder into place
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", replace)
    with pytest.raises(OSError, match="Input/output error"), staged_folder(out, staging=tmp_path / "out.partial") as staging:
        (staging / "new.txt").write_text("new")
    assert listing(out) == ["old.txt"] and listing(tmp_path) == ["out"]


def test_a_named_staging_folder_another_live_process_builds_is_refused_not_emptied(tmp_path):
    out, partial = tmp_path / "out", tmp_path / "out.partial"
    partial.mkdir()
    (partial / "theirs.txt").write_text("half-built by another run")
    (partial / files.OWNER_FILE).write_text(f"{os.getppid()}\n")  # a live process that is not this one
    with pytest.raises(MattingInputError, match=rf"--run-dir {out}: {partial} is in use by process {os.getppid()}"):
        files.open_staging(out, staging=partial, label="--run-dir")
    assert listing(partial) == sorted([files.OWNER_FILE, "theirs.txt"])
    (partial / files.OWNER_FILE).write_text(f"{2**22 + 1}\n")  # above Linux's largest pid_max: never alive
    assert files.open_staging(out, staging=partial) == partial  # a dead run's leftover: replaced
    assert listing(partial) == [files.OWNER_FILE] and (partial / files.OWNER_FILE).read_text() == f"{os.getpid()}\n"
    (partial / "new.txt").write_text("new")
    files.publish(partial, out)
    assert listing(out) == ["new.txt"]  # the owner record is not part of the outputs


# ---------------------------------------------------------------------------- "may I write here"


def test_a_file_in_the_way_is_refused(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("the user's notes")
    with pytest.raises(MattingInputError, match=r"--out .*notes\.txt is a file, not a folder"):
        check_output(notes, label="--out", overwrite=True)
    with pytest.raises(MattingInputError, match=r"--out .*notes\.txt/sub/run: .*notes\.txt is a file, not a folder"):
        check_output(notes / "sub" / "run", label="--out", overwrite=True)
    with pytest.raises(MattingInputError, match=r"notes\.txt is a file, not a folder"):
        check_output(notes / "model.onnx", label="--onnx", kind="file")
    assert notes.read_text() == "the user's notes"


def test_existing_outputs_need_overwrite_and_foreign_folders_are_never_replaced(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    check_output(out, empty_ok=True)  # an empty folder is free where the tool says so
    with pytest.raises(MattingInputError, match="exists already; pass --overwrite to replace it, or choose another --out"):
        check_output(out, label="--out")
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(MattingInputError, match="exists already"):
        check_output(out, empty_ok=True)
    with pytest.raises(MattingInputError, match="holds no .run, so it is not a run of this command"):
        make_run_folder(out, overwrite=True, marker=".run")
    assert listing(out) == ["precious.txt"]
    check_output(out, overwrite=True)  # without a marker, --overwrite is enough
    with pytest.raises(MattingInputError, match=r"--onnx .*: is a folder, expected a file name"):
        check_output(out, label="--onnx", kind="file", overwrite=True)
    with pytest.raises(MattingInputError, match=r"out/precious\.txt: exists and is not empty"):
        check_output(out / "precious.txt", kind="file", messages={"exists": "{where}: exists and is not empty"})


def test_a_run_folder_with_its_marker_is_replaced_by_an_empty_one(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".run").write_text("ours")
    (out / "old.ckpt").write_bytes(b"old")
    assert make_run_folder(out, overwrite=True, marker=".run") == out
    assert listing(out) == []


def test_write_keeping_tail_keeps_what_follows_the_marker(tmp_path):
    from matting.io.files import write_keeping_tail

    page, marker = tmp_path / "results.md", "<!-- kept -->"
    write_keeping_tail(page, "table 1\n\n", marker, new_tail=marker + "\n")
    assert page.read_text() == f"table 1\n\n{marker}\n"
    page.write_text(page.read_text() + "analysis by hand\n")
    write_keeping_tail(page, "table 2\n\n", marker, new_tail=marker + "\n")
    assert page.read_text() == f"table 2\n\n{marker}\nanalysis by hand\n"
    write_keeping_tail(page, "table 3\n", marker, gap="\n")
    assert page.read_text() == f"table 3\n\n{marker}\nanalysis by hand\n"
    assert [p.name for p in tmp_path.iterdir()] == ["results.md"]  # no temporary file left
