"""Automated QC: black frames, frozen picture and silence, found in ONE ffmpeg decode.

ffmpeg's blackdetect, freezedetect and silencedetect filters log the ranges they find; this module builds the
command, parses the log into ranges (seconds) and turns them into findings a person can act on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mediaflow.media import MediaError, run_tool

KINDS = ("black", "freeze", "silence")
_LABEL = {"black": "black frames", "freeze": "frozen picture", "silence": "silence"}
_NUM = r"(-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)"
# blackdetect prints one line per range at its end: black_start:3 black_end:5.52 black_duration:2.52
_BLACK = re.compile(r"black_start:\s*" + _NUM + r"\s+black_end:\s*" + _NUM)
_BLACK_START_ONLY = re.compile(r"black_start:\s*" + _NUM + r"(?![\d.e])(?!\s+black_end)")
_EVENT = {
    "freeze": re.compile(r"freeze_(start|end):\s*" + _NUM),
    "silence": re.compile(r"silence_(start|end):\s*" + _NUM),
}


@dataclass(frozen=True)
class Thresholds:
    black_min_s: float = 2.0  # shortest black range reported
    black_pixel_th: float = 0.10  # a pixel is black at or below this fraction of the luma range
    freeze_min_s: float = 2.0
    freeze_noise_db: float = -60.0  # frames closer than this (mean abs difference) are the same picture
    silence_min_s: float = 2.0
    silence_db: float = -60.0  # audio below this level is silence


def detect_argv(path: str | Path, *, has_video: bool, has_audio: bool, thresholds: Thresholds = Thresholds()) -> list[str]:
    """ONE ffmpeg pass over the first video and audio stream with all three detectors, output discarded."""
    if not (has_video or has_audio):
        raise ValueError(f"{Path(path).name}: nothing to check (no video and no audio)")
    t = thresholds
    argv = ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-loglevel", "info", "-i", str(path)]
    if has_video:
        argv += [
            "-map", "0:v:0",
            "-vf", f"blackdetect=d={t.black_min_s:g}:pix_th={t.black_pixel_th:g},"
                   f"freezedetect=n={t.freeze_noise_db:g}dB:d={t.freeze_min_s:g}",
        ]  # fmt: skip
    if has_audio:
        argv += ["-map", "0:a:0", "-af", f"silencedetect=n={t.silence_db:g}dB:d={t.silence_min_s:g}"]
    return argv + ["-f", "null", "-"]


def _range(start: float, end: float | None) -> dict:
    start = max(0.0, float(start))
    if end is None:
        return {"start": round(start, 3), "end": None, "duration": None}
    end = max(start, float(end))
    return {"start": round(start, 3), "end": round(end, 3), "duration": round(end - start, 3)}


def parse_detections(log: str, *, duration_s: float | None = None) -> dict:
    """Ranges found by the detectors: {'black': [...], 'freeze': [...], 'silence': [...]}, each range
    {'start', 'end', 'duration'} in seconds, by start. A range still open at the end of the log (freeze
    or silence up to the end of the file) is closed at `duration_s` (left open, end None, without it)."""
    found: dict[str, list[dict]] = {kind: [] for kind in KINDS}
    for m in _BLACK.finditer(log):
        found["black"].append(_range(float(m.group(1)), float(m.group(2))))
    for m in _BLACK_START_ONLY.finditer(log):  # not printed by ffmpeg 5.1, but be safe
        found["black"].append(_range(float(m.group(1)), duration_s))
    for kind, pattern in _EVENT.items():
        start = None
        for m in pattern.finditer(log):
            edge, value = m.group(1), float(m.group(2))
            if edge == "start":
                if start is None:
                    start = value
            elif start is not None:
                found[kind].append(_range(start, value))
                start = None
        if start is not None:
            found[kind].append(_range(start, duration_s))
    for ranges in found.values():
        ranges.sort(key=lambda r: r["start"])
    return found


def detect(path: str | Path, *, duration_s: float, has_video: bool, has_audio: bool,
           thresholds: Thresholds = Thresholds()) -> dict:  # fmt: skip
    """Run the detectors over a file; MediaError naming the file when ffmpeg cannot decode it."""
    argv = detect_argv(path, has_video=has_video, has_audio=has_audio, thresholds=thresholds)
    proc = run_tool(argv)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no detail"]
        raise MediaError(f"{Path(path).name}: QC decode failed: {tail[0][-300:]}")
    return parse_detections(proc.stderr, duration_s=duration_s)


def _seconds(value: float) -> str:
    return f"{value:.1f}s"


def findings(detections: dict, *, name: str) -> list[str]:
    """One line per range, e.g. 'feature.mp4: black frames 3.0-5.5s (2.5s)'."""
    lines = []
    for kind in KINDS:
        for r in detections.get(kind, []):
            if r["end"] is None:
                lines.append(f"{name}: {_LABEL[kind]} from {_seconds(r['start'])} to the end")
            else:
                lines.append(f"{name}: {_LABEL[kind]} {r['start']:.1f}-{_seconds(r['end'])} ({_seconds(r['duration'])})")
    return lines
