"""Studies: arms (YAML deltas) trained under one budget and scored the same way.

- ``folds``: the committed cross-validation folds over the real photos;
- ``cv_data``: the data root a fold trains on (estimated foregrounds, backgrounds, held-out photos);
- ``jobs``: the one process pool that trains arms side by side, recording each run's CPU time;
- ``cv``: the real-photo cross-validation stage (train per fold, predict and evaluate as a user does);
- ``cv_report``: its tables and grid.

``tools/study.py`` is the command line.
"""
