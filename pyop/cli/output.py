"""Output of the ``pyop`` command: tables for people, JSON for scripts, exit codes,
and a progress indicator on standard error."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any, Optional, TextIO

__all__ = ["EXIT_OK", "EXIT_FINDINGS", "EXIT_USAGE", "EXIT_FAILURE", "CommandError",
           "print_json", "print_table", "format_time", "Progress"]

#: Success.
EXIT_OK = 0
#: ``pyop check`` found errors; a client, key or file was not found; an operation was
#: refused (existing file, invalid client metadata).
EXIT_FINDINGS = 1
#: Usage error: unknown command or option, invalid argument (argparse's own status).
EXIT_USAGE = 2
#: The storage or the network failed (unreachable server, storage error, timeout).
EXIT_FAILURE = 3


class CommandError(Exception):
    """A command failed: ``message`` goes to standard error, ``status`` is the exit status."""

    def __init__(self, message: str, status: int = EXIT_FINDINGS) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def print_json(value: Any, file: Optional[TextIO] = None) -> None:
    """Print ``value`` as indented JSON (keys in their order) on ``file`` (stdout)."""
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str),
          file=file or sys.stdout)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return " ".join(_cell(v) for v in value)
    return str(value).replace("\n", " ")


def print_table(rows: Iterable[Sequence[Any]], headers: Sequence[str],
                file: Optional[TextIO] = None) -> None:
    """Print rows as a plain text table with a header line, columns padded to fit."""
    out = file or sys.stdout
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths)).rstrip()

    print(line(headers), file=out)
    print(line(["-" * w for w in widths]), file=out)
    for row in cells:
        print(line(row), file=out)


def format_time(timestamp: Any) -> str:
    """A UNIX time as ``YYYY-MM-DD HH:MM:SSZ`` (UTC); ``never`` for 0, ``""`` for none."""
    if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float)):
        return ""
    if timestamp == 0:
        return "never"
    try:
        return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(timestamp))
    except (OverflowError, OSError, ValueError):
        return str(timestamp)


class Progress:
    """A progress bar on standard error, drawn only when it is a terminal.

    Hand-written rather than a dependency: ``[#####.....] 512/1024 clients``,
    redrawn at most ten times a second, erased by :meth:`close`.
    """

    def __init__(self, total: Optional[int], label: str, stream: Optional[TextIO] = None,
                 width: int = 30) -> None:
        self.stream = stream or sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.total = total
        self.label = label
        self.width = width
        self.count = 0
        self._last = 0.0

    def update(self, step: int = 1) -> None:
        """Count ``step`` more items and redraw (rate-limited)."""
        self.count += step
        now = time.monotonic()
        if self.enabled and (now - self._last >= 0.1 or self.count == self.total):
            self._last = now
            self._draw()

    def _draw(self) -> None:
        if self.total:
            done = min(self.width, self.width * self.count // self.total)
            bar = "[" + "#" * done + "." * (self.width - done) + "] "
            text = f"{bar}{self.count}/{self.total} {self.label}"
        else:
            text = f"{self.count} {self.label}"
        self.stream.write("\r" + text)
        self.stream.flush()

    def close(self) -> None:
        """Erase the bar."""
        if self.enabled and self._last:
            self.stream.write("\r\033[K")
            self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
