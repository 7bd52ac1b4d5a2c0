"""``python -m pyop``: the ``pyop`` operator command (see :mod:`pyop.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(prog="python -m pyop"))
