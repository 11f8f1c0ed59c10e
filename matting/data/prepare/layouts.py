"""The raw folder layout of each public matting dataset, and how to list its samples.

Each :class:`Layout` knows the folders of one dataset as its authors distribute it (described,
with sources and licences, in ``datasets/<name>/README.md``), which splits it has, and whether it
ships true foreground colours or trimaps. ``scan`` lists every sample of every split and checks
that the tree is complete: a missing folder, a listed file that is absent, an image without its
alpha matte (or the reverse) are all collected and raised together in one
:class:`IncompleteTreeError` that names each missing path.

A scanned sample is a name and its files by role (``image``, ``alpha``, ``fg``, ``bg``,
``trimap``, ``trimap2``), as paths relative to the dataset folder, or prefixed with another
dataset's name (``voc:JPEGImages/...``) for the Composition-1k test backgrounds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from matting.io.errors import MattingInputError
from matting.io.images import IMAGE_EXTENSIONS, list_images
from matting.io.pairing import group_by_stem

__all__ = ["LAYOUTS", "IncompleteTreeError", "Layout", "RawSample", "ScanOptions", "get_layout"]

COMP1K_BGS_PER_FG = 20  # the official test set composites each foreground over 20 VOC images


class IncompleteTreeError(MattingInputError):
    """The raw tree lacks files or folders; ``missing`` lists each one (relative to the root)."""

    def __init__(self, dataset: str, root: Path, missing: list[str]):
        self.missing = missing
        shown = "\n  ".join(missing[:50]) + (f"\n  ... and {len(missing) - 50} more" if len(missing) > 50 else "")
        super().__init__(f"{root}: incomplete {dataset} tree, {len(missing)} missing:\n  {shown}")


@dataclass
class RawSample:
    """One sample found in a raw tree: files by role (stored paths) and extra record keys."""

    name: str
    files: dict[str, str]
    extra: dict = field(default_factory=dict)


@dataclass
class ScanOptions:
    """Other trees a layout may need: VOC (Composition-1k / Distinctions-646 test backgrounds)."""

    voc: Path | None = None
    seed: int = 0


@dataclass(frozen=True)
class Layout:
    """One dataset's raw layout.

    Attributes:
        name: registry name (``am2k``), also the default folder name under the data root.
        title: the dataset's published name.
        kind: ``matte`` (images or foregrounds with alpha) or ``backgrounds``.
        train_splits / eval_splits: splits used for training / evaluation.
        true_fg: the dataset ships true foreground colours (composited training).
        expected: official sample counts per split (a tree with other counts only warns).
        scan: ``(root, options, check) -> {split: [RawSample]}``.
    """

    name: str
    title: str
    kind: str
    train_splits: tuple[str, ...]
    eval_splits: tuple[str, ...]
    true_fg: bool
    expected: dict[str, int]
    scan_fn: Callable

    def scan(self, root: Path, options: ScanOptions | None = None) -> tuple[dict[str, list[RawSample]], list[str]]:
        """List every split's samples. Returns (splits, notes); raises IncompleteTreeError."""
        root = Path(root)
        if not root.is_dir():
            raise MattingInputError(f"{root}: {self.title} folder not found")
        check = _Check(root)
        splits = self.scan_fn(root, options or ScanOptions(), check)
        if check.missing:
            raise IncompleteTreeError(self.name, root, check.missing)
        return splits, check.notes


# ---------------------------------------------------------------------------- checking helpers


class _Check:
    """Collects what a tree lacks, so that one error lists everything."""

    def __init__(self, root: Path):
        self.root = root
        self.missing: list[str] = []
        self.notes: list[str] = []

    def folder(self, rel: str, required: bool = True) -> dict[str, Path] | None:
        """stem -> path of the images in ``root/rel``; None (and recorded if required) when absent."""
        path = self.root / rel
        if not path.is_dir():
            if required:
                self.missing.append(f"{rel}/ (folder)")
            return None
        try:
            return list_images(path)
        except MattingInputError as exc:
            self.missing.append(str(exc))
            return None

    def file(self, rel: str, why: str = "") -> Path | None:
        path = self.root / rel
        if not path.is_file():
            self.missing.append(rel + (f" ({why})" if why else ""))
            return None
        return path

    def lines(self, rel: str) -> list[str] | None:
        path = self.file(rel, "list of file names")
        if path is None:
            return None
        return [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()


def _pairs(check: _Check, folders: dict[str, str], optional: dict[str, str] | None = None) -> list[RawSample]:
    """Samples matched by file stem across role folders; every stem must be in every folder.

    ``optional`` folders are used when present, and must then be complete as well.
    """
    listings = {role: check.folder(rel) for role, rel in folders.items()}
    for role, rel in (optional or {}).items():
        listing = check.folder(rel, required=False)
        if listing is not None:
            listings[role] = listing
            folders = {**folders, role: rel}
    if any(v is None for v in listings.values()):
        return []
    samples = []
    for group in group_by_stem(listings):
        if group.missing:
            have = ", ".join(check.rel(p) for p in group.files.values())
            for role in group.missing:
                check.missing.append(f"{folders[role]}/{group.stem}.* ({role} of {have})")
            continue
        samples.append(RawSample(group.stem, {role: check.rel(path) for role, path in group.files.items()}))
    return samples


def _flat(check: _Check, rel: str) -> list[RawSample]:
    listing = check.folder(rel)
    if listing is None:
        return []
    if not listing:
        check.missing.append(f"{rel}/* (the folder has no images)")
    return [RawSample(name, {"image": check.rel(path)}) for name, path in listing.items()]


def _voc_pairing(check: _Check, options: ScanOptions, names_file: str | None, count: int) -> list[str] | None:
    """Background file names for ``count`` test composites: the official list when the dataset ships
    one, else a seeded draw (without replacement) from VOC's JPEGImages, recorded in the manifest."""
    if names_file is not None and (check.root / names_file).is_file():
        names = check.lines(names_file)
        if names is not None and len(names) != count:
            check.missing.append(f"{names_file}: {len(names)} background names, {count} needed")
            return None
        return names
    if options.voc is None:
        return None
    pool = sorted(p.name for p in (Path(options.voc) / "JPEGImages").glob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if len(pool) < count:
        check.missing.append(f"{options.voc}/JPEGImages: {len(pool)} images, {count} needed for the test backgrounds")
        return None
    rng = np.random.default_rng(options.seed)
    return [pool[i] for i in rng.choice(len(pool), size=count, replace=False)]


def _test_composites(check: _Check, options: ScanOptions, fgs: list[RawSample], bg_names: list[str] | None,
                     trimap_dir: str | None, dataset: str) -> list[RawSample]:
    """The DIM-style test set: each foreground over ``COMP1K_BGS_PER_FG`` VOC backgrounds, named ``<fg>_<k>``."""
    if bg_names is None or options.voc is None:
        if not check.missing:
            check.notes.append(f"{dataset}: test split skipped, it needs the VOC backgrounds (--voc VOC2012_DIR)")
        return []
    voc = Path(options.voc)
    samples = []
    for i, fg in enumerate(fgs):
        for k in range(COMP1K_BGS_PER_FG):
            bg_name = bg_names[i * COMP1K_BGS_PER_FG + k]
            if not (voc / "JPEGImages" / bg_name).is_file():
                check.missing.append(f"{voc}/JPEGImages/{bg_name} (VOC background {k} of {fg.name})")
                continue
            files = dict(fg.files, bg=f"voc:JPEGImages/{bg_name}")
            if trimap_dir is not None:
                trimap = check.file(f"{trimap_dir}/{fg.name}_{k}.png", f"trimap of test composite {fg.name}_{k}")
                if trimap is None:
                    continue
                files["trimap"] = check.rel(trimap)
            samples.append(RawSample(f"{fg.name}_{k}", files, {"compose": "comp1k"}))
    return samples


# ---------------------------------------------------------------------------- layouts


def _scan_comp1k(root: Path, options: ScanOptions, check: _Check) -> dict[str, list[RawSample]]:
    def listed(names_file: str, groups: list[str]) -> list[RawSample]:
        names = check.lines(names_file)
        if names is None:
            return []
        samples = []
        for file_name in names:
            group = next((g for g in groups if (root / g / "fg" / file_name).is_file()), None)
            if group is None:
                where = " or ".join(f"{g}/fg/{file_name}" for g in groups)
                check.missing.append(f"{where} (listed in {names_file})")
                continue
            alpha = check.file(f"{group}/alpha/{file_name}", f"alpha of {group}/fg/{file_name}")
            if alpha is not None:
                samples.append(RawSample(Path(file_name).stem, {"fg": f"{group}/fg/{file_name}", "alpha": check.rel(alpha)}))
        return samples

    train = listed("Training_set/training_fg_names.txt", ["Training_set/Adobe-licensed images", "Training_set/Other"])
    test_fgs = listed("Test_set/test_fg_names.txt", ["Test_set/Adobe-licensed images"])
    bg_names = check.lines("Test_set/test_bg_names.txt")
    if bg_names is not None and len(bg_names) != COMP1K_BGS_PER_FG * len(test_fgs) and not check.missing:
        check.missing.append(
            f"Test_set/test_bg_names.txt: {len(bg_names)} names, {COMP1K_BGS_PER_FG} per test foreground "
            f"({COMP1K_BGS_PER_FG * len(test_fgs)}) needed"
        )
        bg_names = None
    test = _test_composites(check, options, test_fgs, bg_names, "Test_set/Adobe-licensed images/trimaps", "comp1k")
    return {"train": train, "test": test} if test else {"train": train}


def _scan_d646(root: Path, options: ScanOptions, check: _Check) -> dict[str, list[RawSample]]:
    train = _pairs(check, {"fg": "Train/FG", "alpha": "Train/GT"})
    test_fgs = _pairs(check, {"fg": "Test/FG", "alpha": "Test/GT"})
    bg_names = _voc_pairing(check, options, "Test/test_bg_names.txt", COMP1K_BGS_PER_FG * len(test_fgs))
    test = _test_composites(check, options, test_fgs, bg_names, None, "d646")
    return {"train": train, "test": test} if test else {"train": train}


def _scan_am2k(root: Path, options: ScanOptions, check: _Check) -> dict[str, list[RawSample]]:
    # train/fg and train/bg (closed-form estimates some users generate) are used when present.
    train = _pairs(check, {"image": "train/original", "alpha": "train/mask"}, {"fg": "train/fg", "bg": "train/bg"})
    val = _pairs(check, {"image": "validation/original", "alpha": "validation/mask", "trimap": "validation/trimap"})
    return {"train": train, "validation": val}


def _scan_p3m(root: Path, options: ScanOptions, check: _Check) -> dict[str, list[RawSample]]:
    train = _pairs(check, {"image": "train/blurred_image", "alpha": "train/mask"}, {"fg": "train/fg", "bg": "train/bg"})
    p = _pairs(check, {"image": "validation/P3M-500-P/blurred_image", "alpha": "validation/P3M-500-P/mask",
                       "trimap": "validation/P3M-500-P/trimap"})
    np_ = _pairs(check, {"image": "validation/P3M-500-NP/original_image", "alpha": "validation/P3M-500-NP/mask",
                         "trimap": "validation/P3M-500-NP/trimap"})
    return {"train": train, "p3m500p": p, "p3m500np": np_}


def _scan_ppm100(root: Path, options: ScanOptions, check: _Check) -> dict[str, list[RawSample]]:
    return {"test": _pairs(check, {"image": "image", "alpha": "matte"})}


def _scan_aim500(root: Path, options: ScanOptions, check: _Check) -> dict[str, list[RawSample]]:
    return {"test": _pairs(check, {"image": "original", "alpha": "mask", "trimap": "trimap"})}


def _scan_bg20k(root: Path, options: ScanOptions, check: _Check) -> dict[str, list[RawSample]]:
    return {"train": _flat(check, "train"), "testval": _flat(check, "testval")}


COCO_IMAGE_FOLDERS = ("train2014", "val2014", "train2017", "val2017", "train")


def _scan_coco(root: Path, options: ScanOptions, check: _Check) -> dict[str, list[RawSample]]:
    present = [name for name in COCO_IMAGE_FOLDERS if (root / name).is_dir()]
    if not present:
        check.missing.append(f"one of {', '.join(n + '/' for n in COCO_IMAGE_FOLDERS)} (COCO image folder)")
        return {}
    return {name: _flat(check, name) for name in present}


def _scan_voc(root: Path, options: ScanOptions, check: _Check) -> dict[str, list[RawSample]]:
    return {"all": _flat(check, "JPEGImages")}


def _scan_alphamatting(root: Path, options: ScanOptions, check: _Check) -> dict[str, list[RawSample]]:
    if (root / "input_training_lowres").is_dir() or not (root / "image").is_dir():
        # As downloaded: input_training_lowres/, gt_training_lowres/, trimap_training_lowres/Trimap1|2/.
        splits = {}
        for res in ("lowres", "highres"):
            if res == "highres" and not (root / "input_training_highres").is_dir():
                continue
            splits[res] = _pairs(check, {"image": f"input_training_{res}", "alpha": f"gt_training_{res}",
                                         "trimap": f"trimap_training_{res}/Trimap1"},
                                 {"trimap2": f"trimap_training_{res}/Trimap2"})
        return splits
    # Flattened copy: image/, alpha/, trimap/ (Trimap1) and optionally trimap2/.
    return {"lowres": _pairs(check, {"image": "image", "alpha": "alpha", "trimap": "trimap"}, {"trimap2": "trimap2"})}


LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        Layout("comp1k", "Composition-1k (Adobe Deep Image Matting)", "matte", ("train",), ("test",), True,
               {"train": 431, "test": 1000}, _scan_comp1k),
        Layout("d646", "Distinctions-646", "matte", ("train",), ("test",), True, {"train": 596, "test": 1000}, _scan_d646),
        Layout("am2k", "AM-2k", "matte", ("train",), ("validation",), False, {"train": 1800, "validation": 200}, _scan_am2k),
        Layout("p3m10k", "P3M-10k", "matte", ("train",), ("p3m500p", "p3m500np"), False,
               {"train": 9421, "p3m500p": 500, "p3m500np": 500}, _scan_p3m),
        Layout("ppm100", "PPM-100", "matte", (), ("test",), False, {"test": 100}, _scan_ppm100),
        Layout("aim500", "AIM-500", "matte", (), ("test",), False, {"test": 500}, _scan_aim500),
        Layout("bg20k", "BG-20k", "backgrounds", ("train",), ("testval",), False, {"train": 15000, "testval": 5000},
               _scan_bg20k),
        Layout("coco", "MS COCO images", "backgrounds", ("train2014", "train2017"), (), False,
               {"train2014": 82783, "train2017": 118287, "val2014": 40504, "val2017": 5000}, _scan_coco),
        Layout("voc", "PASCAL VOC 2012 images", "backgrounds", ("all",), (), False, {"all": 17125}, _scan_voc),
        Layout("alphamatting", "alphamatting.com training set", "matte", (), ("lowres", "highres"), False,
               {"lowres": 27, "highres": 27}, _scan_alphamatting),
    )
}


def get_layout(name: str) -> Layout:
    """The layout called ``name``; raises listing the known ones."""
    try:
        return LAYOUTS[name]
    except KeyError:
        raise MattingInputError(f"unknown dataset '{name}'; known: {', '.join(LAYOUTS)}") from None
