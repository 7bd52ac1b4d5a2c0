"""``python -m benchmarks``: see :mod:`benchmarks.flows`."""

import sys

from .flows import main

sys.exit(main())
