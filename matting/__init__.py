"""Two-stage, trimap-free image matting.

The package is a house of floors; a module imports only from its own floor or the floors below
(``tests/test_layout.py`` enforces it):

4. ``matting.cli`` (and ``python -m matting``): the dispatcher. It maps a command name to its
   module and turns bad input into one ``matting: error: ...`` line. Nothing imports it.
3. ``matting.commands``: one module per command (``evaluate``, ``predict``, ``finetune``, ...),
   each with ``main(argv) -> int``. Only the dispatcher imports them, and they never import each other.
2. ``matting.runtime``: the training runtime: the LightningCLI subclass, run records, atomic
   checkpoint writing, process tuning; ``matting.study``: studies, arms trained under one budget and
   scored on the synthetic split and by cross-validation on real photos (``tools/study.py``).
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

__version__ = "0.1.0"

# Floor of each top-level part of the package; ``floor_of`` resolves a module name against it.
FLOORS = {
    "matting.cli": 4,
    "matting.__main__": 4,
    "matting.commands": 3,
    "matting.runtime": 2,
    "matting.study": 2,
    "matting.models": 1,
    "matting.losses": 1,
    "matting.module": 1,
    "matting.metrics": 1,
    "matting.data": 1,
    "matting.soc_loss": 1,
    "matting.soc_module": 1,
    "matting.foreground": 1,
    "matting.baselines": 1,
    "matting.inference": 1,
    "matting.evaluation": 1,
    "matting.report": 1,
    "matting.io": 0,
    "matting": 0,
}


def floor_of(module: str) -> int | None:
    """The floor of a ``matting`` module (``matting.io.images`` -> 0), or None for a module outside the package."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        floor = FLOORS.get(".".join(parts[:end]))
        if floor is not None:
            return floor
    return None
