"""``matting prepare-data``: turn a downloaded dataset tree into manifests.

    matting prepare-data DATASET --root RAW_DIR [--out MANIFEST_DIR] [--voc VOC2012_DIR]
                         [--annotations instances_train2017.json ...] [--classes GROUPS.yaml] [--foreground]
                         [--estimator ours|pymatting] [--skip-bad] [--strict] [--no-hash] [--quick] [--jobs N]

DATASET is one of comp1k, d646, am2k, p3m10k, ppm100, aim500, bg20k, coco, voc, alphamatting
(``datasets/<name>/README.md`` gives each one's source, licence and raw layout).

Steps:

1. Scan the raw tree in its published layout. A missing folder, a file named in a list but
   absent, an image without its alpha (or the reverse) stops here, every missing path listed.
2. Describe every file: pixel size from its header (EXIF rotation applied), SHA-256 of its bytes.
3. Check every sample: its files have the same size; its alpha matte (and trimap) decode under
   the project's reading rules and the alpha is not zero everywhere (``--quick`` skips the
   decoding). Problems are listed together, each naming its file, and nothing is written;
   ``--skip-bad`` instead leaves those samples out and records them in ``dataset.json``.
4. Write ``<out>/<split>.jsonl`` and ``<out>/dataset.json`` (default out: ``RAW_DIR/manifests``).
5. ``--foreground``: for the training splits of datasets that ship only photos and alphas (AM-2k,
   P3M-10k, PPM-100, AIM-500, alphamatting, COCO people), estimate the foreground and
   background colours (``matting.foreground``, multi-level method of Germer et al.) and cache
   them beside the manifest (``foreground/<split>/<name>.png``, ``background/<split>/<name>.png``);
   existing cache files are kept unless ``--refresh``. Records gain ``fg_est`` / ``bg_est``.
   COCO's ``--annotations`` make coarse-mask splits of people, or of the subject classes that
   ``--classes`` lists (``datasets/coco/things_vs_stuff.yaml``; ``matting.data.prepare.coco_people``).
   ``--estimator pymatting`` uses pymatting's ``estimate_foreground_ml`` instead (same method).

Sample counts that differ from the official release are reported (an error with ``--strict``).
Exit status: 0 written, 2 refused (nothing written).
"""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from matting.data.manifest import (
    MANIFEST_PREFIX,
    ManifestInfo,
    Record,
    Resolver,
    describe_file,
    read_info,
    read_split,
    verify_hashes,
    write_manifest,
)
from matting.data.prepare.layouts import RawSample, ScanOptions, get_layout
from matting.io.errors import MattingInputError
from matting.io.images import read_alpha, read_image, read_trimap, write_png

__all__ = ["describe_sample", "estimate_split_foregrounds", "main", "prepare"]


CONTENT_ROLES = ("alpha", "trimap", "trimap2")


FOREGROUND_PARAMS = {"regularization": 1e-5, "n_small_iterations": 10, "n_big_iterations": 2, "small_size": 32}


ESTIMATORS = ("ours", "pymatting")


def _is_foreign(path: str) -> bool:
    """A path into another dataset (``voc:...``): its size is not the sample's."""
    head, sep, _ = path.partition(":")
    return bool(sep) and "/" not in head and not path.startswith(MANIFEST_PREFIX)


def describe_sample(sample: RawSample, resolve: Resolver, with_hash: bool, check_content: bool) -> tuple[Record | None, list[str]]:
    """Record of one scanned sample, or None and the problems found (each naming its file)."""
    files, problems = {}, []
    for role, stored in sample.files.items():
        path = resolve(stored)
        try:
            files[role] = describe_file(path, stored, with_hash)
        except (MattingInputError, OSError) as exc:
            problems.append(str(exc))
    if problems:
        return None, problems
    local = {role: entry for role, entry in files.items() if not _is_foreign(entry.path)}
    sizes = {(e.width, e.height) for e in local.values()}
    if len(sizes) > 1:
        listed = ", ".join(f"{role} {resolve(e.path)} is {e.width}x{e.height}" for role, e in local.items())
        problems.append(f"size mismatch in sample '{sample.name}': {listed}")
    if check_content and not problems:
        for role in CONTENT_ROLES:
            if role not in files:
                continue
            path = resolve(files[role].path)
            try:
                if role == "alpha":
                    if not read_alpha(path).any():
                        problems.append(f"{path}: alpha matte is zero everywhere (no foreground)")
                else:
                    read_trimap(path)
            except MattingInputError as exc:
                problems.append(str(exc))
    if problems:
        return None, problems
    return Record(sample.name, files, dict(sample.extra)), []


def _describe_task(args):
    sample, folder, manifest_dir, voc, with_hash, check_content = args
    resolve = Resolver(folder, manifest_dir, other=_other_roots(voc))
    return describe_sample(sample, resolve, with_hash, check_content)


def _other_roots(voc: Path | None):
    def lookup(name: str) -> Path:
        if name == "voc" and voc is not None:
            return Path(voc)
        raise MattingInputError(f"paths into dataset '{name}' need its folder (e.g. --voc)")

    return lookup


def verify_manifests(root: Path, manifest_dir: Path | None = None, voc: Path | None = None) -> tuple[int, list[str]]:
    """Check every stored sha256 of the manifests in ``manifest_dir`` (default ``root/manifests``).

    Returns:
        (records checked, one line per file that is missing or changed, naming the manifest line).
    """
    manifest_dir = Path(manifest_dir) if manifest_dir else Path(root) / "manifests"
    info = read_info(manifest_dir)
    resolve = Resolver(Path(root), manifest_dir, other=_other_roots(voc))
    checked, problems = 0, []
    for split in info.splits:
        records = read_split(manifest_dir, split)
        checked += len(records)
        problems += verify_hashes(records, resolve)
    return checked, problems


def _map(function, tasks: list, jobs: int):
    if jobs <= 1 or len(tasks) < 8:
        return [function(task) for task in tasks]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(function, tasks, chunksize=max(1, len(tasks) // (jobs * 8))))


def _estimator(name: str):
    """(image, alpha) -> (fg, bg) with the multi-level method: the project's code or pymatting's."""
    if name == "pymatting":
        try:
            from pymatting import estimate_foreground_ml
        except ImportError as exc:
            raise MattingInputError("--estimator pymatting needs pymatting: pip install pymatting") from exc

        def run(image, alpha):
            fg, bg = estimate_foreground_ml(image.astype("float64"), alpha.astype("float64"), return_background=True,
                                            **FOREGROUND_PARAMS)
            return fg.clip(0, 1), bg.clip(0, 1)

        return run
    from matting.foreground import estimate_foreground

    return lambda image, alpha: estimate_foreground(image, alpha, return_background=True, **FOREGROUND_PARAMS)


def _foreground_task(args):
    record, folder, manifest_dir, split, with_hash, refresh, estimator = args
    resolve = Resolver(folder, manifest_dir)
    fg_rel, bg_rel = f"foreground/{split}/{record.name}.png", f"background/{split}/{record.name}.png"
    fg_path, bg_path = Path(manifest_dir) / fg_rel, Path(manifest_dir) / bg_rel
    if refresh or not (fg_path.is_file() and bg_path.is_file()):
        image = read_image(resolve(record.files["image"].path))
        alpha = read_alpha(resolve(record.files["alpha"].path))
        fg, bg = _estimator(estimator)(image, alpha)
        write_png(fg_path, fg, overwrite=True)
        write_png(bg_path, bg, overwrite=True)
    return (describe_file(fg_path, MANIFEST_PREFIX + fg_rel, with_hash),
            describe_file(bg_path, MANIFEST_PREFIX + bg_rel, with_hash))


def estimate_split_foregrounds(records: list[Record], folder: Path, manifest_dir: Path, split: str,
                               with_hash: bool = True, refresh: bool = False, jobs: int = 1,
                               estimator: str = "ours") -> int:
    """Add ``fg_est`` / ``bg_est`` to records that have a photo but no true foreground; returns how many.

    ``estimator``: ``ours`` (``matting.foreground``) or ``pymatting`` (``estimate_foreground_ml``).
    """
    if estimator not in ESTIMATORS:
        raise MattingInputError(f"unknown estimator '{estimator}'; choose one of {', '.join(ESTIMATORS)}")
    todo = [r for r in records if "image" in r.files and "fg" not in r.files]
    tasks = [(r, folder, manifest_dir, split, with_hash, refresh, estimator) for r in todo]
    for record, (fg_entry, bg_entry) in zip(todo, _map(_foreground_task, tasks, jobs)):
        record.files["fg_est"], record.files["bg_est"] = fg_entry, bg_entry
    return len(todo)


def prepare(dataset: str, root: Path, out: Path | None = None, voc: Path | None = None,
            annotations: list[Path] | None = None, classes: Path | None = None, foreground: bool = False, skip_bad: bool = False,
            strict: bool = False, with_hash: bool = True, check_content: bool = True, refresh: bool = False,
            jobs: int = 1, estimator: str = "ours", log=print) -> ManifestInfo:
    """Scan, check and write the manifests of one dataset; raises MattingInputError when refused.

    ``annotations`` (coco): COCO annotation files; each image folder's files together make one
    coarse-mask split, of people or of the subject classes of the ``classes`` YAML file.
    """
    layout = get_layout(dataset)
    root = Path(root).expanduser()
    out = Path(out).expanduser() if out is not None else root / "manifests"
    if (annotations and dataset != "coco") or (voc is not None and dataset not in ("comp1k", "d646")):
        raise MattingInputError("--annotations is for coco only, --voc for comp1k and d646 only")
    if classes is not None and not annotations:
        raise MattingInputError("--classes groups the classes of --annotations files: give those too")
    started = time.perf_counter()
    splits, notes = layout.scan(root, ScanOptions(voc=Path(voc).expanduser() if voc else None))
    mask_splits: set[str] = set()
    if annotations:
        from matting.data.prepare.coco_people import (
            ClassGroups,
            image_folder_for,
            read_class_groups,
            subject_split,
        )

        groups = read_class_groups(classes) if classes is not None else ClassGroups()
        by_folder: dict[str, list[Path]] = {}
        for annotation_file in annotations:
            annotation_file = Path(annotation_file).expanduser()
            by_folder.setdefault(image_folder_for(annotation_file), []).append(annotation_file)
        for files in by_folder.values():
            split, samples = subject_split(root, files, out, groups)
            splits[split] = samples
            mask_splits.add(split)
    info = ManifestInfo(dataset=dataset, splits={}, hash="sha256" if with_hash else None, notes=list(notes))
    written: dict[str, list[Record]] = {}
    problems: list[str] = []
    count_problems: list[str] = []
    for split, samples in splits.items():
        tasks = [(s, root, out, voc, with_hash, check_content) for s in samples]
        records = []
        for sample, (record, sample_problems) in zip(samples, _map(_describe_task, tasks, jobs)):
            if record is None:
                problems.extend(sample_problems)
                info.excluded.append({"split": split, "name": sample.name, "problems": sample_problems})
            else:
                records.append(record)
        written[split] = records
        expected = layout.expected.get(split)
        if expected is not None and len(samples) != expected:
            message = f"{dataset}/{split}: {len(samples)} samples, the official release has {expected}"
            (count_problems if strict else info.notes).append(message)
    if problems and not skip_bad:
        shown = "\n  ".join(problems[:100]) + (f"\n  ... and {len(problems) - 100} more" if len(problems) > 100 else "")
        raise MattingInputError(f"{root}: {len(problems)} problems, nothing written "
                                f"(--skip-bad leaves the bad samples out):\n  {shown}")
    if count_problems:
        raise MattingInputError(f"{root}: incomplete release (--strict), nothing written:\n  " + "\n  ".join(count_problems))
    if foreground:
        for split, records in written.items():
            if split in layout.train_splits or split in mask_splits:
                count = estimate_split_foregrounds(records, root, out, split, with_hash, refresh, jobs, estimator)
                if count:
                    log(f"{dataset}/{split}: foreground colours estimated for {count} samples")
        method = ("pymatting.estimate_foreground_ml" if estimator == "pymatting" else "matting.foreground.estimate_foreground")
        info.foreground = {"method": f"{method} (multi-level, Germer et al. 2020)", "params": FOREGROUND_PARAMS}
    write_manifest(out, info, written)
    for note in info.notes:
        log(f"note: {note}")
    for item in info.excluded:
        log(f"excluded {item['split']}/{item['name']}: {'; '.join(item['problems'])}")
    summary = ", ".join(f"{split} {count}" for split, count in info.splits.items())
    log(f"{dataset}: wrote {out} ({summary}) in {time.perf_counter() - started:.1f} s")
    return info
