"""A tiny stand-in for Prometheus's /api/v1/query on 127.0.0.1, for unit tests only."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

# answer(query) -> list of (labels, value) | an int HTTP error status.
Answer = Callable[[str], "list[tuple[dict[str, str], str]] | int"]


class FakePrometheus:
    def __init__(self, answer: Answer):
        self.answer = answer
        self.queries: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                query = parse_qs(urlparse(self.path).query).get("query", [""])[0]
                fake.queries.append(query)
                result = fake.answer(query)
                if isinstance(result, int):
                    body = {"status": "error", "errorType": "bad_data", "error": "parse error at char 5"}
                    self._send(result, body)
                    return
                vector = [{"metric": labels, "value": [1700000000.0, value]} for labels, value in result]
                self._send(200, {"status": "success", "data": {"resultType": "vector", "result": vector}})

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakePrometheus:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
