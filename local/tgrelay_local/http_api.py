"""The webhook endpoint on loopback: each POST becomes an API Gateway HTTP API (payload
2.0) event for the real WebhookFunction handler, and its answer the HTTP response.
Like HTTP API, a path or method with no route gets 404 without calling the function."""

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tgrelay_local.lambda_events import http_api_event

# How often a loopback server (this one, the fakes) looks whether stop() was called: stop() waits
# up to this long. socketserver's default, 0.5 s, cost every engine stop about 1.5 s.
SHUTDOWN_POLL_SECONDS = 0.05


class HttpApi:
    def __init__(self, route_path: str, route_method: str, invoke: Callable[[dict], dict], port: int = 0):
        self.route_path, self.route_method = route_path, route_method.upper()
        self.invoke = invoke
        self.server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, args=(SHUTDOWN_POLL_SECONDS,), name="http-api", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{self.route_path}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def event(self, method: str, path: str, headers: dict[str, str], body: bytes) -> dict:
        """The HTTP API payload 2.0 event API Gateway would pass to the function."""
        return http_api_event(
            body, method=method, path=path, route_key=f"{self.route_method} {self.route_path}", headers=headers
        )

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?")[0]
                if path != api.route_path or self.command != api.route_method:
                    status, headers, payload = 404, {"content-type": "application/json"}, b'{"message":"Not Found"}'
                else:
                    answer = api.invoke(api.event(self.command, path, dict(self.headers.items()), body))
                    status, headers = answer.get("statusCode", 200), answer.get("headers", {})
                    raw = answer.get("body", "")
                    payload = raw.encode() if isinstance(raw, str) else json.dumps(raw).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_POST = do_GET = do_PUT = do_DELETE = do_PATCH = _serve

        return Handler
