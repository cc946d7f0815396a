"""A TCP gate in front of the S3 API, so tests can take storage down and bring it back (moto keeps its objects in
memory: stopping it would lose them, and a real outage keeps the data anyway).

Down means what a dead endpoint looks like to a client: new connections are refused (the listening socket is
closed) and connections in flight are cut. `down_when(pattern, seconds)` arms an outage that starts at the first
request whose bytes contain `pattern` (that request is cut, not forwarded), so a test can hit one exact step, such
as the first write to the distribution bucket, without racing it. Written by hand: toxiproxy is a Go service with
no Debian or PyPI package here.
"""

from __future__ import annotations

import socket
import threading
import time


class FaultGate:
    def __init__(self, upstream_port: int, host: str = "127.0.0.1"):
        self.host, self.upstream_port = host, upstream_port
        with socket.socket() as s:
            s.bind((host, 0))
            self.port = s.getsockname()[1]
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._armed: tuple[bytes, float] | None = None
        self.outages: list[dict] = []  # {"why", "down_at", "up_at"} in time.time()
        self.cut_requests = 0
        self.up()

    # ------------------------------------------------------------ control
    def up(self) -> None:
        with self._lock:
            if self._listener is not None:
                return
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((self.host, self.port))
            s.listen(128)
            self._listener = s
            if self.outages and self.outages[-1]["up_at"] is None:
                self.outages[-1]["up_at"] = time.time()
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def down(self, why: str = "down()") -> None:
        with self._lock:
            if self._listener is None:
                return
            listener, self._listener = self._listener, None
            conns, self._conns = list(self._conns), set()
            self.outages.append({"why": why, "down_at": time.time(), "up_at": None})
        _close(listener)
        for c in conns:
            _close(c)

    def down_for(self, seconds: float, why: str = "down_for()") -> None:
        self.down(why)
        threading.Timer(seconds, self.up).start()

    def down_when(self, pattern: bytes, seconds: float) -> None:
        """Arm one outage of `seconds` that starts at the first request whose bytes contain `pattern`."""
        with self._lock:
            self._armed = (pattern, seconds)

    @property
    def is_up(self) -> bool:
        return self._listener is not None

    def wait_outage_over(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.outages and self.outages[-1]["up_at"] is not None and self._armed is None:
                return self.outages[-1]
            time.sleep(0.2)
        raise AssertionError(
            f"no finished outage within {timeout:.0f}s (armed: {self._armed}, outages: {self.outages})"
        )

    # ------------------------------------------------------------ plumbing
    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by down()
            try:
                upstream = socket.create_connection((self.host, self.upstream_port), timeout=10)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self._lock:
                if self._listener is not listener:  # went down meanwhile
                    _close(client), _close(upstream)
                    return
                self._conns |= {client, upstream}
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, from_client: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if from_client and self._armed is not None and self._armed[0] in data:
                    with self._lock:
                        armed, self._armed = self._armed, None
                    if armed is not None:
                        self.cut_requests += 1
                        self.down_for(armed[1], why=f"first request with {armed[0]!r}")
                        break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._conns -= {src, dst}
            _close(src)
            _close(dst)


def _close(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        s.close()
    except OSError:
        pass
