"""SMTP sink for the embedded stack: every message received is written to <dir>/<n>.eml.

Usage: python -m mediaflow_dev.smtp_sink --host 127.0.0.1 --port 1025 --dir out/mail
"""

from __future__ import annotations

import argparse
import asyncio
import re
import threading
from pathlib import Path

from aiosmtpd.controller import Controller


class EmlWriter:
    """aiosmtpd handler: numbered .eml files, numbering continuing after what the folder already holds."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        taken = [int(m.group(1)) for p in self.dir.glob("*.eml") if (m := re.fullmatch(r"(\d+)\.eml", p.name))]
        self._next = max(taken, default=0) + 1

    async def handle_DATA(self, server, session, envelope):
        with self._lock:
            n, self._next = self._next, self._next + 1
        path = self.dir / f"{n}.eml"
        tmp = path.with_suffix(".part")
        tmp.write_bytes(envelope.original_content or envelope.content)
        tmp.rename(path)  # a reader never sees half a message
        return "250 Message accepted for delivery"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=1025)
    ap.add_argument("--dir", default="out/mail")
    args = ap.parse_args()
    controller = Controller(EmlWriter(Path(args.dir)), hostname=args.host, port=args.port)
    controller.start()
    print(f"SMTP sink on {args.host}:{args.port} writing {args.dir}/<n>.eml", flush=True)
    try:
        asyncio.run(asyncio.Event().wait())
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
