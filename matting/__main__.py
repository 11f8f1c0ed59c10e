"""``python -m matting COMMAND ...`` is the ``matting`` command."""

import sys

from matting.cli import main

sys.exit(main())
