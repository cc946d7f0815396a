"""Automated QC: black frames, frozen picture and silence, found in ONE ffmpeg decode, judged with broadcast allowances.

ffmpeg's blackdetect, freezedetect and silencedetect filters mark the frames where a range starts and ends with frame
metadata (lavfi.black_start, lavfi.freezedetect.freeze_end, lavfi.silence_start, ...). This module builds the
command, has ffmpeg's metadata/ametadata filters print that metadata as key=value lines to files, reads those into
ranges (seconds), and judges each range where it lies, the way broadcast QC tools do:

- at the head (it starts with the programme) or the tail (it runs to the end): a cold open's silence, a fade to black,
  a frozen end card. Within the allowance (`head_allowance_s`, `tail_allowance_s`) it is a warning; longer, an error.
- mid-programme: an error from `<kind>_mid_min_s` on, a warning when shorter (a short black between scenes).

Only errors send a title to a person; warnings are listed in the summary.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from mediaflow import ffrun, graphs, names
from mediaflow.media import MediaError

KINDS = ("black", "freeze", "silence")
SEVERITIES = ("warning", "error")
EDGE_S = 0.5  # a range starting this close to 0 is at the head; ending this close to the end, at the tail
SLACK_S = 0.1  # a range may exceed an allowance or fall short of a limit by this much (detector granularity)
# the frame metadata keys of each detector (ffmpeg 5.1): start and end of a range, in seconds of the output timeline
_KEYS = {
    "lavfi.black_start": ("black", "start"), "lavfi.black_end": ("black", "end"),
    "lavfi.freezedetect.freeze_start": ("freeze", "start"), "lavfi.freezedetect.freeze_end": ("freeze", "end"),
    "lavfi.silence_start": ("silence", "start"), "lavfi.silence_end": ("silence", "end"),
}  # fmt: skip
VIDEO_METADATA, AUDIO_METADATA = "video.meta", "audio.meta"


@dataclass(frozen=True)
class Thresholds:
    black_min_s: float = 1.0  # shortest black range reported
    black_pixel_th: float = 0.10  # a pixel is black at or below this fraction of the luma range
    freeze_min_s: float = 2.0
    freeze_noise_db: float = -60.0  # frames closer than this (mean abs difference) are the same picture
    silence_min_s: float = 1.0
    silence_db: float = -60.0  # audio below this level is silence
    head_allowance_s: float = 3.0  # black/freeze/silence from the start up to this long: a warning (a cold open)
    tail_allowance_s: float = (
        5.0  # ... running to the end, starting at most this long before it: a warning (a fade out)
    )
    black_mid_min_s: float = 2.0  # mid-programme black this long or longer: an error (shorter: a warning)
    freeze_mid_min_s: float = 2.0
    silence_mid_min_s: float = 2.0


def detect_argv(path: str | Path, *, has_video: bool, has_audio: bool, metadata_dir: str | Path,
                thresholds: Thresholds = Thresholds(), video_index: int | None = None,
                audio_index: int | None = None) -> list[str]:  # fmt: skip
    """ONE ffmpeg pass over the video and audio stream (the source's picked ones, by index; else the first of each)
    with all three detectors; their frame metadata printed as key=value lines to files in `metadata_dir`, the
    decoded output discarded. The graph is built with ffmpeg-python, which escapes the metadata files' paths for
    the filtergraph."""
    if not (has_video or has_audio):
        raise ValueError(f"{Path(path).name}: nothing to check (no video and no audio)")
    t, out = thresholds, Path(metadata_dir)
    inp = graphs.source(path)
    streams = []
    if has_video:
        video = inp[str(video_index) if video_index is not None else "v:0"]
        streams.append(
            video.filter("blackdetect", d=f"{t.black_min_s:g}", pix_th=f"{t.black_pixel_th:g}")
            .filter("freezedetect", n=f"{t.freeze_noise_db:g}dB", d=f"{t.freeze_min_s:g}")
            .filter("metadata", mode="print", file=str(out / VIDEO_METADATA))
        )
    if has_audio:
        audio = inp[str(audio_index) if audio_index is not None else "a:0"]
        streams.append(
            audio.filter("silencedetect", n=f"{t.silence_db:g}dB", d=f"{t.silence_min_s:g}").filter(
                "ametadata", mode="print", file=str(out / AUDIO_METADATA)
            )
        )
    return graphs.command(graphs.null_output(*streams), global_args=graphs.QUIET)


def _range(start: float, end: float | None) -> dict:
    start = max(0.0, float(start))
    if end is None:
        return {"start": round(start, 3), "end": None, "duration": None}
    end = max(start, float(end))
    return {"start": round(start, 3), "end": round(end, 3), "duration": round(end - start, 3)}


def parse_metadata(text: str, *, duration_s: float | None = None) -> dict:
    """Ranges from the metadata filters' key=value output: {'black': [...], 'freeze': [...], 'silence': [...]},
    each range {'start', 'end', 'duration'} in seconds, by start. A range still open at the end (it runs to the end
    of the file: the detectors only log those, with no frame left to mark) is closed at `duration_s` (left open, end
    None, without it)."""
    found: dict[str, list[dict]] = {kind: [] for kind in KINDS}
    open_at: dict[str, float | None] = {kind: None for kind in KINDS}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if not sep or key not in _KEYS:
            continue  # 'frame:N pts:... pts_time:...' headers and the *_duration keys
        kind, edge = _KEYS[key]
        try:
            seconds = float(value)
        except ValueError:
            continue
        if edge == "start":
            if open_at[kind] is None:
                open_at[kind] = seconds
        elif open_at[kind] is not None:
            found[kind].append(_range(open_at[kind], seconds))
            open_at[kind] = None
    for kind, start in open_at.items():
        if start is not None:
            found[kind].append(_range(start, duration_s))
    for ranges in found.values():
        ranges.sort(key=lambda r: r["start"])
    return found


def detect(path: str | Path, *, duration_s: float, has_video: bool, has_audio: bool,
           thresholds: Thresholds = Thresholds(), video_index: int | None = None,
           audio_index: int | None = None) -> dict:  # fmt: skip
    """Run the detectors over a file; MediaError naming the file when ffmpeg cannot decode it."""
    with tempfile.TemporaryDirectory(prefix="mediaflow-qcmeta-") as meta:
        argv = detect_argv(path, has_video=has_video, has_audio=has_audio, metadata_dir=meta, thresholds=thresholds,
                           video_index=video_index, audio_index=audio_index)  # fmt: skip
        proc = ffrun.run(argv, purpose="QC detectors", timeout=ffrun.budget_s(duration_s))
        if proc.returncode != 0:
            tail = proc.stderr.strip().splitlines()[-1:] or ["no detail"]
            raise MediaError(f"{Path(path).name}: QC decode failed: {tail[0][-300:]}")
        text = "\n".join(p.read_text(errors="replace") for p in sorted(Path(meta).iterdir()))
    return parse_metadata(text, duration_s=duration_s)


def _s(value: float) -> str:
    return f"{value:.1f} s"


def _limit(value: float) -> str:
    return f"{value:g} s"


def judge(detections: dict, *, duration_s: float, thresholds: Thresholds = Thresholds(), name: str) -> list[dict]:
    """Every detected range as a finding: {check, kind, start, end, duration, where (head | tail | mid |
    whole), severity (warning | error), limit_s, message}, by start. The message names the file, the check, the
    range and the limit, e.g. 'feature.mp4: black 51.6-55.1 s (3.5 s) mid-programme, limit 2 s'."""
    t = thresholds
    out = []
    for kind in KINDS:
        mid_min = getattr(t, f"{kind}_mid_min_s")
        for r in detections.get(kind, []):
            start = r["start"]
            end = r["end"] if r["end"] is not None else duration_s
            length = max(0.0, end - start)
            head = start <= EDGE_S
            tail = end >= duration_s - EDGE_S
            span = f"{kind} {start:.1f}-{_s(end)}"
            if head and tail:
                where, limit, bad = "whole", 0.0, True
                text = f"{span}, the whole programme"
            elif head:
                where, limit, bad = "head", t.head_allowance_s, end > t.head_allowance_s + SLACK_S
                text = f"{span} at the head, " + (f"allowance {_limit(limit)}" if bad else
                                                  f"within the {_limit(limit)} allowance")  # fmt: skip
            elif tail:
                where, limit, bad = "tail", t.tail_allowance_s, duration_s - start > t.tail_allowance_s + SLACK_S
                text = f"{span} at the tail ({_s(length)}), " + (f"allowance {_limit(limit)}" if bad else
                                                                 f"within the {_limit(limit)} allowance")  # fmt: skip
            else:
                where, limit, bad = "mid", mid_min, length >= mid_min - SLACK_S
                text = f"{span} ({_s(length)}) mid-programme, " + (f"limit {_limit(limit)}" if bad else
                                                                   f"shorter than the {_limit(limit)} limit")  # fmt: skip
            out.append({"check": names.TECHNICAL_QC, "kind": kind, "start": start, "end": round(end, 3),
                        "duration": round(length, 3), "where": where, "severity": "error" if bad else "warning",
                        "limit_s": limit, "message": f"{name}: {text}"})  # fmt: skip
    return sorted(out, key=lambda f: (f["start"], KINDS.index(f["kind"])))


def findings(detections: dict, *, name: str, duration_s: float, thresholds: Thresholds = Thresholds()) -> list[str]:
    """The errors' messages (what sends a title to a person)."""
    return [f["message"] for f in judge(detections, duration_s=duration_s, thresholds=thresholds, name=name)
            if f["severity"] == "error"]  # fmt: skip
