"""The ``pyop`` operator command (also ``python -m pyop``).

``pyop keys generate|show|rotate``, ``pyop clients list|show|add|delete|rotate-secret``
and ``pyop check ISSUER_URL``; see :doc:`cli`. Exit status: 0 success, 1 errors found
or not found or refused, 2 usage error, 3 storage or network failure.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Optional

from ..exceptions import StorageError
from .output import EXIT_FAILURE as EXIT_FAILURE
from .output import EXIT_FINDINGS as EXIT_FINDINGS
from .output import EXIT_OK as EXIT_OK
from .output import EXIT_USAGE as EXIT_USAGE
from .output import CommandError

__all__ = ["main", "build_parser"]


def build_parser(prog: str = "pyop") -> argparse.ArgumentParser:
    """The argument parser of the ``pyop`` command and its sub-commands."""
    from . import check, clients, keys

    parser = argparse.ArgumentParser(
        prog=prog,
        description="Operate a pyop OpenID Connect Provider: signing keys, client "
                    "registrations, and a check of a deployed provider's discovery.",
        epilog="Exit status: 0 success; 1 errors found, not found or refused; "
               "2 usage error; 3 storage or network failure.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    keys.add_parser(commands)
    clients.add_parser(commands)
    check.add_parser(commands)
    return parser


def main(argv: Optional[Sequence[str]] = None, prog: str = "pyop") -> int:
    """Run the ``pyop`` command with ``argv`` (default ``sys.argv[1:]``); returns the exit
    status. Usage errors exit with status 2 through :class:`SystemExit`, as argparse does."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        status: int = args.func(args)
    except CommandError as e:
        print(f"{prog}: {e.message}", file=sys.stderr)
        return e.status
    except StorageError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    return status
