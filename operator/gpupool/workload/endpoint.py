"""The HTTP endpoint gpupool's `httpPost` checkpoint hook calls.

gpupool POSTs to `http://<podIP>:<port><path>` of every worker and waits, up to the
hook's timeout, for `{"checkpoint": "<location>"}`. The endpoint calls the save
function, reports the location to the termination message as well (so the pod's
final status carries it too) and replies with it; a failing save answers HTTP 500.

    checkpointer = Checkpointer(save, defer=True).install()
    serve_checkpoint_endpoint(8080, "/checkpoint", checkpointer.request)
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from gpupool.workload.checkpointer import report

# gpupool's request body is a few hundred bytes; anything much larger is not gpupool.
_MAX_BODY = 64 * 1024


class CheckpointEndpoint:
    """A running endpoint (daemon thread); `close()` stops it."""

    def __init__(self, server: ThreadingHTTPServer, thread: threading.Thread) -> None:
        self.server = server
        self.thread = thread

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        port: int = self.server.server_address[1]
        return port

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def _handler(path: str, save: Callable[[], str]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: int, document: dict[str, Any]) -> None:
            body = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            if self.path.split("?", 1)[0] != path:
                self._reply(404, {"error": f"not found; POST {path}"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > _MAX_BODY:
                self._reply(413, {"error": "request body too large"})
                return
            self.rfile.read(length)
            try:
                location = save()
                report(location)
            except Exception as error:
                self._reply(500, {"error": f"checkpoint failed: {error!r}"})
                return
            self._reply(200, {"checkpoint": location})

        def do_GET(self) -> None:
            self._reply(405, {"error": f"POST {path} to checkpoint"})

        def log_message(self, format: str, *args: Any) -> None:
            print(f"gpupool checkpoint endpoint: {format % args}", file=sys.stderr)

    return Handler


def serve_checkpoint_endpoint(
    port: int,
    path: str,
    save: Callable[[], str],
    *,
    host: str = "0.0.0.0",
) -> CheckpointEndpoint:
    """Serve `POST <path>` on `host:port` from a daemon thread; returns at once.

    `host` defaults to every interface because gpupool calls the pod IP.
    """
    server = ThreadingHTTPServer((host, port), _handler(path, save))
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, name="gpupool-checkpoint-endpoint", daemon=True
    )
    thread.start()
    return CheckpointEndpoint(server, thread)
