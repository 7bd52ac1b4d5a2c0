"""Local servers for the tests of requests to client URLs (tests/security/test_outbound_fetch.py,
test_aio_outbound.py): they record every connection they accept, so "refused" means "never
contacted". Their fixtures are in conftest.py."""

from __future__ import annotations

import http.server
import json
import socket
import ssl
import threading
import time
from typing import Any, Callable, Optional

LOOPBACK = ["127.0.0.0/8"]

Route = Callable[[http.server.BaseHTTPRequestHandler], None]


def send(handler: http.server.BaseHTTPRequestHandler, status: int, body: bytes = b"",
         headers: Optional[dict[str, str]] = None) -> None:
    handler.send_response(status)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    try:
        handler.wfile.write(body)
    except OSError:
        pass  # the fetcher gave up (size cap, deadline)


class Server:
    """A local HTTP(S) server counting the connections it accepts and the requests it gets."""

    def __init__(self, tls: Optional[ssl.SSLContext] = None) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, str, bytes]] = []
        self.connections = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                owner.requests.append((self.command, self.path, body))
                owner.routes.get(self.path, lambda h: send(h, 404))(self)

            do_GET = do_POST = _handle  # noqa: N815 - http.server API

            def log_message(self, *args: Any) -> None:
                pass

        class Counting(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def process_request(self, request: Any, client_address: Any) -> None:
                owner.connections += 1
                super().process_request(request, client_address)

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # the fetcher hung up: expected in these tests

        self.httpd = Counting(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True,
                                                do_handshake_on_connect=False)
        self.port = self.httpd.server_address[1]
        self.scheme = "https" if tls is not None else "http"
        threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True).start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Listener:
    """A TCP listener that only counts connections (a would-be proxy or internal service)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


class ConnectProxy:
    """A forward proxy answering CONNECT: records each request line, then relays (or
    answers ``refuse`` when set, e.g. 403)."""

    def __init__(self, refuse: Optional[int] = None) -> None:
        self.refuse = refuse
        self.lines: list[str] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(4096)
            if not chunk:
                client.close()
                return
            head += chunk
        line = head.split(b"\r\n", 1)[0].decode()
        self.lines.append(line)
        if self.refuse is not None:
            client.sendall(b"HTTP/1.1 %d Refused\r\nContent-Length: 0\r\n\r\n" % self.refuse)
            client.close()
            return
        method, target, _ = line.split(" ", 2)
        host, _, port = target.rpartition(":")
        upstream = socket.create_connection((host.strip("[]"), int(port)))
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")

        def pump(source: socket.socket, sink: socket.socket) -> None:
            try:
                while data := source.recv(65536):
                    sink.sendall(data)
            except OSError:
                pass
            finally:
                for s in (source, sink):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        threading.Thread(target=pump, args=(upstream, client), daemon=True).start()
        pump(client, upstream)

    def close(self) -> None:
        self.sock.close()


def json_route(document: Any) -> Route:
    body = json.dumps(document).encode()
    return lambda h: send(h, 200, body, {"Content-Type": "application/json"})


def drip(handler: http.server.BaseHTTPRequestHandler, *, in_headers: bool) -> None:
    """One byte every 0.2 s for 30 s: each read is quick, the whole never ends."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 150\r\n\r\n"
    try:
        if not in_headers:
            handler.wfile.write(head)
            head = b""
        for index in range(150):
            handler.wfile.write(head[index:index + 1] if index < len(head) else b"a")
            handler.wfile.flush()
            time.sleep(0.2)
    except OSError:
        pass
