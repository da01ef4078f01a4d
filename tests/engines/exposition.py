"""A Prometheus text exposition served on 127.0.0.1 from a thread (a scrape target for tests).

    with Exposition("demo_value 1\\n") as target:      # or Exposition(lambda: text)
        target.set("demo_value 2\\n")
        target.address  # "127.0.0.1:PORT", for static_configs; target.url for /metrics
        target.hits     # how many scrapes were served
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from tests.engines import HOST

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Exposition:
    def __init__(self, body: str | Callable[[], str] = "", path: str = "/metrics"):
        self._body = body
        self.path = path
        self.hits = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def set(self, body: str | Callable[[], str]) -> None:
        with self._lock:
            self._body = body

    def render(self) -> str:
        with self._lock:
            body = self._body
        return body() if callable(body) else body

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return self._server.server_address[1]

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}{self.path}"

    def start(self) -> "Exposition":
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path.split("?")[0] != outer.path:
                    self.send_error(404)
                    return
                data = outer.render().encode()
                with outer._lock:
                    outer.hits += 1
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="exposition",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)  # type: ignore[union-attr]
            self._server = None

    def __enter__(self) -> "Exposition":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
