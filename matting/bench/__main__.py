"""``python -m matting.bench TASK``: what ``tools/benchmark.py`` runs (and what tasks re-run as children)."""

import sys

from matting.bench import main

sys.exit(main())
