"""A test HTTP server served from a daemon thread for the body of a ``with``."""

from __future__ import annotations

import contextlib
import socketserver
import threading
from collections.abc import Iterator

__all__ = ["serving"]


@contextlib.contextmanager
def serving(server: socketserver.TCPServer, scheme: str = "http") -> Iterator[str]:
    """Serve ``server`` (bound to 127.0.0.1) in a daemon thread; yields its base URL
    (``scheme://127.0.0.1:port``); shut down and closed on exit."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()
