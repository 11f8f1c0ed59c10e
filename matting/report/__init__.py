"""Reports of results: markdown tables, picture grids of mattes, and the gallery page.

- ``matting.report.tables``: methods-by-metrics markdown tables.
- ``matting.report.grid``: the one renderer of input / ground truth / prediction / error grids
  (training prediction grids, the demo's report grid, the gallery's error maps).
- ``matting.report.gallery_page``: the rows, metrics and HTML of ``matting gallery``.
"""

from matting.report.grid import prediction_grid, save_grid
from matting.report.tables import method_table

__all__ = ["method_table", "prediction_grid", "save_grid"]
