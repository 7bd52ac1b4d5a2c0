"""Helpers of the browser tests: a WSGI server thread and failure screenshots."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

__all__ = ["ServerThread", "Screenshots"]


class ServerThread:
    """A WSGI app on a free loopback port, served by Werkzeug in a thread.

    The port is bound before the app is built, so the app can know its own URL.
    """

    def __init__(self, app_factory: Callable[[str], Any]) -> None:
        from werkzeug.serving import WSGIRequestHandler, make_server

        class QuietHandler(WSGIRequestHandler):
            def log_request(self, code: Any = "-", size: Any = "-") -> None:
                pass  # errors are still logged

        self._app: Any = None
        #: (method, path, query string) of every request served, for assertions.
        self.requests: list[tuple[str, str, str]] = []
        self.server = make_server("127.0.0.1", 0, self._wsgi, threaded=True,
                                  request_handler=QuietHandler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        try:
            self.app = app_factory(self.url)
        except BaseException:
            self.server.server_close()
            raise
        self._app = self.app
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _wsgi(self, environ: Any, start_response: Any) -> Any:
        self.requests.append((environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""),
                              environ.get("QUERY_STRING", "")))
        return self._app(environ, start_response)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


class Screenshots:
    """Screenshots taken along a test, written to ``test-artifacts/`` only if it fails."""

    def __init__(self) -> None:
        self.taken: list[tuple[str, bytes]] = []
        self.page: Any = None

    def take(self, page: Any, label: str) -> None:
        self.page = page
        self.taken.append((label, page.screenshot()))

    def save(self, directory: Path, test_name: str) -> list[Path]:
        directory.mkdir(parents=True, exist_ok=True)
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)
        saved = []
        shots = list(self.taken)
        if self.page is not None:
            try:
                shots.append(("final", self.page.screenshot(full_page=True)))
                (directory / f"{stem}-final.html").write_text(self.page.content(),
                                                               encoding="utf-8")
            except Exception:  # noqa: S110 - the page may be gone; keep what we have
                pass
        for label, data in shots:
            path = directory / f"{stem}-{label}.png"
            path.write_bytes(data)
            saved.append(path)
        return saved


#: Each test's reports by phase, for the screenshots fixture to see whether the test failed.
_reports = pytest.StashKey[dict[str, pytest.TestReport]]()


def record_report(item: pytest.Item, report: pytest.TestReport) -> None:
    """Keep ``report`` on its test item (called from ``pytest_runtest_makereport``)."""
    item.stash.setdefault(_reports, {})[report.when] = report


def screenshots_fixture(request: pytest.FixtureRequest, page: Any) -> Iterator[Screenshots]:
    """The ``screenshots`` fixture of the browser and relying party tests: on a failed test
    the pages it passed are saved in ``test-artifacts/``."""
    shots = Screenshots()
    shots.page = page
    yield shots
    report = request.node.stash.get(_reports, {}).get("call")
    if report is not None and report.failed:
        directory = Path(request.config.rootpath) / "test-artifacts"
        saved = shots.save(directory, request.node.name)
        print("screenshots saved: " + ", ".join(str(p) for p in saved))
