"""Run the example OP: ``python -m example``.

Serves with waitress when it is installed, else with Werkzeug's development
server, on ``127.0.0.1:$PYOP_EXAMPLE_PORT`` (default 5000). See
:mod:`example.app` for the ``PYOP_EXAMPLE_*`` variables.

``python -m example --hash-password`` prints a password hash for a users file.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from collections.abc import Sequence
from typing import Optional

from .app import DEFAULT_PORT, config_from_env, create_app
from .users import hash_password


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Start the server (or hash a password); returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m example",
        description="The pyop example OpenID Provider. Configured by the environment: "
                    "PYOP_EXAMPLE_PORT, PYOP_EXAMPLE_HOST, PYOP_EXAMPLE_ISSUER, "
                    "PYOP_EXAMPLE_DATA, PYOP_EXAMPLE_STORAGE, PYOP_EXAMPLE_KEY, "
                    "PYOP_EXAMPLE_USERS.")
    parser.add_argument("--hash-password", action="store_true",
                        help="read a password and print its hash for a users file")
    args = parser.parse_args(argv)
    if args.hash_password:
        password = getpass.getpass("Password: ") if sys.stdin.isatty() \
            else sys.stdin.readline().rstrip("\n")
        if not password:
            print("empty password", file=sys.stderr)
            return 1
        print(hash_password(password))
        return 0

    # the access log (example.access) and errors, on stderr; never query strings or headers
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    host = os.environ.get("PYOP_EXAMPLE_HOST") or "127.0.0.1"
    port = int(os.environ.get("PYOP_EXAMPLE_PORT") or DEFAULT_PORT)
    app = create_app(config_from_env())
    info = app.config["PYOP_EXAMPLE"]
    print(f"pyop example OP: issuer {info['issuer']}", flush=True)
    print(f"  listening on http://{host}:{port}", flush=True)
    print(f"  data directory: {info['data_dir']}", flush=True)
    print(f"  storage: {info['storage']}", flush=True)
    if info["demo"]:
        print("  demo mode: log in as alice / alice", flush=True)
    try:
        from waitress import serve
    except ImportError:
        from werkzeug.serving import WSGIRequestHandler, run_simple

        class RequestHandler(WSGIRequestHandler):
            """Werkzeug's request lines hold the query string (codes, states): the
            application's access log replaces them."""

            def log_request(self, code: object = "-", size: object = "-") -> None:
                pass

        run_simple(host, port, app, threaded=True, request_handler=RequestHandler)
    else:
        serve(app, host=host, port=port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
