"""An HTTP proxy in front of Airflow's REST API for the content batch's API connection (MEDIAFLOW_API_CLIENT_PORT),
so a test can make the API server refuse one exact request, such as the trigger of one delivery's run, the way an
overloaded or half-restarted API server does: the request is answered by the gate with the armed status (503 by
default) and never reaches Airflow. Everything else passes through unchanged. Written by hand for the same reason
as fault_gate.py (no toxiproxy here); plain http.server and http.client.
"""

from __future__ import annotations

import http.client
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer"}


@dataclass(frozen=True)
class Fault:
    method: str
    path_contains: str
    body_contains: bytes
    status: int
    detail: str


class HttpFaultGate:
    def __init__(self, upstream_port: int, host: str = "127.0.0.1"):
        self.host, self.upstream_port = host, upstream_port
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self.answered: list[dict] = []  # the requests the gate answered itself: {"method", "path", "status"}
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet: the test output is for the test
                pass

            def _any(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fault = gate._match(self.command, self.path, body)
                if fault is not None:
                    payload = json.dumps({"detail": fault.detail}).encode()
                    self.send_response(fault.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection(gate.host, gate.upstream_port, timeout=120)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                self.send_response(resp.status, resp.reason)
                for k, v in resp.getheaders():
                    if k.lower() not in HOP_BY_HOP and k.lower() != "content-length":
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _any

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def fail(self, *, path_contains: str, body_contains: bytes = b"", method: str = "POST", status: int = 503,
             detail: str = "Service Unavailable (http fault gate)") -> None:  # fmt: skip
        """From now on, answer every `method` request whose path and body contain these with `status`."""
        with self._lock:
            self._faults.append(Fault(method, path_contains, body_contains, status, detail))

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def _match(self, method: str, path: str, body: bytes) -> Fault | None:
        with self._lock:
            for f in self._faults:
                if f.method == method and f.path_contains in path and f.body_contains in body:
                    self.answered.append({"method": method, "path": path, "status": f.status})
                    return f
        return None

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
