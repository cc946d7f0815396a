"""Progress inside a long stage, reported through a callback: the share of the source an ffmpeg command has encoded
(read from ffmpeg's own machine-readable progress, never from its log text) and the objects a step has moved.

A report is one dict, `Progress`: {"stage": "transcode", "phase": None, "done": 3100.0, "total": 7200.0, "unit": "s"}
(seconds of the source encoded) or {"stage": "publish", "phase": None, "done": 1200, "total": 4100, "unit": "objects"}.
The Airflow side logs it and keeps the latest as the task's XCom `progress` (mediaflow.names.PROGRESS_KEY), where `make run` reads it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypedDict

FFMPEG_PERIOD_S = 2.0  # ffmpeg writes a progress block this often (-stats_period)


class Progress(TypedDict, total=False):
    stage: str
    phase: str | None  # a step inside the stage ("upload"); None: the stage's main work
    done: float
    total: float
    unit: str  # "s" (seconds of the source) or "objects"
    updated_at: str  # set by whoever keeps it (the operator): when it last moved


Report = Callable[[Progress], None]


def progress(*, stage: str, done: float, total: float, unit: str, phase: str | None = None) -> Progress:
    """The one constructor of a report."""
    return {"stage": stage, "phase": phase, "done": done, "total": total, "unit": unit}


# ---------------------------------------------------------------- ffmpeg's -progress output


def with_progress(argv: list[str], path: str | Path, *, period_s: float = FFMPEG_PERIOD_S) -> list[str]:
    """An ffmpeg argv that also writes machine-readable progress to `path` every `period_s` seconds (global options,
    placed right after the program name)."""
    return [argv[0], "-progress", str(path), "-stats_period", f"{period_s:g}", *argv[1:]]


def parse_blocks(text: str) -> tuple[list[dict[str, str]], str]:
    """ffmpeg -progress output: key=value lines, each block ending with `progress=continue` (or `=end`, the last).
    Returns the complete blocks and the rest (a block still being written)."""
    blocks, current = [], {}
    lines = text.split("\n")
    rest = lines.pop()  # after the last newline: an unfinished line
    consumed = 0
    for i, line in enumerate(lines):
        key, sep, value = line.strip().partition("=")
        if sep:
            current[key] = value.strip()
        if key == "progress":
            blocks.append(current)
            current = {}
            consumed = i + 1
    rest = "\n".join(lines[consumed:] + [rest])
    return blocks, rest


def out_time_s(block: dict[str, str]) -> float | None:
    """Seconds of output written, from a block (None before the first frame: ffmpeg says N/A)."""
    try:
        return max(0.0, int(block["out_time_us"]) / 1e6)
    except (KeyError, ValueError):
        pass
    try:
        h, m, s = block["out_time"].split(":")
        return max(0.0, int(h) * 3600 + int(m) * 60 + float(s))
    except (KeyError, ValueError):
        return None


class FFmpegProgress:
    """Reads an ffmpeg -progress file while ffmpeg runs (a thread of its own) and reports the seconds encoded of
    `total_s`: monotonic, never past the total, and the total itself when ffmpeg says `progress=end`.

        with FFmpegProgress(path, total_s=..., report=..., stage="transcode") as watched:
            run_ffmpeg(with_progress(argv, watched.path))

    ffmpeg 5.x writes its first block only once every output has started: an output that waits for a picture (the
    poster candidates wait for the first scene cut, which a title without cuts never has) holds every figure back
    until the end. Until ffmpeg's first block, `fallback()` (seconds, or None) gives the figure: the transcode
    counts the HLS segments its outputs have started.
    """

    def __init__(self, path: str | Path, *, total_s: float, report: Report, stage: str, phase: str | None = None,
                 poll_s: float = 0.5, fallback: Callable[[], float | None] | None = None) -> None:  # fmt: skip
        self.path = Path(path)
        self.total_s = float(total_s)
        self.report, self.stage, self.phase, self.poll_s = report, stage, phase, poll_s
        self.fallback = fallback
        self.done_s = 0.0
        self.ended = False
        self.blocks = 0  # ffmpeg's own blocks read
        self._sent = False
        self._offset, self._rest = 0, ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"ffmpeg-progress-{stage}", daemon=True)

    def __enter__(self) -> FFmpegProgress:
        self.path.unlink(missing_ok=True)  # a second run in the same folder starts from nothing
        self._send(0.0)
        self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stop.set()
        self._thread.join()
        if exc_type is None:
            self._read()  # the last blocks, written as ffmpeg ended

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_s):
            self._read()

    def _read(self) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:  # ffmpeg has not opened it yet
            chunk = b""
        self._offset += len(chunk)
        blocks, self._rest = parse_blocks(self._rest + chunk.decode("utf-8", errors="replace"))
        self.blocks += len(blocks)
        if not self.blocks and self.fallback is not None:
            seconds = self.fallback()
            if seconds is not None:
                self._send(min(seconds, self.total_s))
        for block in blocks:
            if block.get("progress") == "end":
                self.ended = True
                self._send(self.total_s)
                continue
            seconds = out_time_s(block)
            if seconds is not None:
                self._send(min(seconds, self.total_s))

    def _send(self, seconds: float) -> None:
        if self._sent and seconds <= self.done_s:
            return  # monotonic; unchanged is not news
        self.done_s, self._sent = seconds, True
        self.report(progress(stage=self.stage, phase=self.phase, done=round(seconds, 3), total=self.total_s, unit="s"))


class Slowest:
    """Several ffmpeg commands working through the same source at once (the ladder's groups), reported as one: the
    seconds the slowest of them has encoded (so the figure never runs ahead of a rung still being written).

        slowest = Slowest(report, parts=2)
        with FFmpegProgress(path0, report=slowest.part(0), ...), FFmpegProgress(path1, report=slowest.part(1), ...):
    """

    def __init__(self, report: Report, *, parts: int) -> None:
        self.report = report
        self._done: list[float | None] = [None] * parts
        self._last: Progress | None = None
        self._lock = threading.Lock()

    def part(self, i: int) -> Report:
        def heard(p: Progress) -> None:
            with self._lock:
                self._done[i] = p.get("done") or 0.0
                if any(d is None for d in self._done):
                    return  # a part not heard from yet: nothing to say about the slowest
                slowest = {**p, "done": min(self._done)}
                if self._last is not None and slowest["done"] <= self._last["done"]:
                    return
                self._last = slowest
            self.report(slowest)

        return heard


# ---------------------------------------------------------------- objects moved


class Count:
    """Objects done of a total, reported as each ends; safe to call from every transfer thread at once.

    count = Count(report, stage="publish", total=len(copies))
    each(count.wrap(copy_one), copies)
    """

    def __init__(self, report: Report, *, stage: str, total: int, phase: str | None = None) -> None:
        self.report, self.stage, self.phase, self.total = report, stage, phase, total
        self.done = 0
        self._lock = threading.Lock()
        self._send()

    def _send(self) -> None:
        self.report(progress(stage=self.stage, phase=self.phase, done=self.done, total=self.total, unit="objects"))

    def add(self, n: int = 1) -> None:
        with self._lock:
            self.done += n
            self._send()

    def wrap(self, call: Callable) -> Callable:
        def counted(item):
            result = call(item)
            self.add()
            return result

        return counted


def ignore(_: Progress) -> None:
    """The callback when nobody listens."""


# ---------------------------------------------------------------- words


def clock(seconds: float) -> str:
    """51:36, or 2:00:00 from an hour up."""
    s = int(seconds)
    h, m, s = s // 3600, s % 3600 // 60, s % 60
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def describe(p: Progress) -> str:
    """One report in words: 'transcode 43 % (51:36 of 2:00:00)', 'publish 1200/4100 objects',
    'transcode upload 300/1250 objects'."""
    label = " ".join(x for x in (p.get("stage"), p.get("phase")) if x)
    done, total = p.get("done") or 0, p.get("total") or 0
    if p.get("unit") == "s":
        pct = int(100 * done / total) if total else 0
        return f"{label} {pct} % ({clock(done)} of {clock(total)})"
    return f"{label} {int(done)}/{int(total)} {p.get('unit') or 'objects'}"
