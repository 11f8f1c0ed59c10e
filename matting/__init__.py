"""Two-stage, trimap-free image matting.

The package is a house of floors; a module imports only from its own floor or the floors below
(``tests/test_layout.py`` holds the table of floors and enforces it):

4. ``matting.cli`` (and ``python -m matting``): the dispatcher. It maps a command name to its
   module and turns bad input into one ``matting: error: ...`` line. Nothing imports it.
3. ``matting.commands``: one module per command (``evaluate``, ``predict``, ``finetune``, ...),
   each with ``main(argv) -> int``. Only the dispatcher imports them, and they never import each other.
2. ``matting.runtime``: the training runtime: the LightningCLI subclass, run records, atomic
   checkpoint writing, process tuning; ``matting.study``: studies, arms trained under one budget and
   scored on the synthetic split and by cross-validation on real photos (``tools/study.py``);
   ``matting.bench``: the benchmarks behind every speed figure (``tools/benchmark.py``).
1. The science and the product it makes: ``models`` (the network), ``losses``, ``module`` (the
   LightningModule), ``metrics``, ``data`` (what training reads; ``data.prepare`` for downloaded
   datasets; ``data.synthetic`` for the procedural generator), ``soc_*`` (self-supervised
   adaptation), ``foreground``, ``baselines``, ``inference`` (a trained network run on photos and
   exported), ``evaluation`` (scoring folders of mattes) and ``report`` (tables and image grids).
0. ``matting.io``: images, files and folders (one atomic writer, one staged output folder, one
   "may I write here" check), checkpoints (one safe reader, one fit check, one config diff),
   pairing files by stem, and the errors everything raises.

A paper's idea lives on floor 1; a change of how the product reads, writes or runs lives on 0, 2 or 3.
"""

import os as _os

__version__ = "0.1.0"

# OpenCV's own pixel cap, a second guard behind the header check of ``matting.io.limits``: OpenCV
# reads it once, when cv2 is loaded, which is after this package is imported (``opencv_cap``).
if "OPENCV_IO_MAX_IMAGE_PIXELS" not in _os.environ:
    _limit = _os.environ.get("MATTING_MAX_PIXELS", "").strip()
    _limit = int(_limit) if _limit.isdigit() else 200_000_000
    if _limit:
        _os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] = str(max(_limit, 200_000_000))
