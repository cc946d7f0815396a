"""Captions for the localize stage: read vendor sidecars (SRT, WebVTT, TTML/DFXP, SCC, EBU-STL), QC every cue,
write WebVTT (whole file, and segmented WebVTT for an HLS subtitle rendition).

Who parses what:
  * SRT, WebVTT  -> pysubs2 (timestamps, cue text, <i>/<b>/<u> tags). A light line scanner runs first so that a
                    broken timing line becomes an error naming the cue and the line (pysubs2 silently turns such a
                    line into text of the previous cue), and so WebVTT cue settings, which pysubs2 drops, are kept.
  * TTML / DFXP  -> ttconv.imsc.reader (legacy DFXP namespaces are mapped onto the TTML namespace first).
  * SCC          -> ttconv.scc.reader (CEA-608 decoding: pop-on, roll-up, paint-on).
  * EBU-STL      -> ttconv.stl.reader (GSI/TTI blocks, ISO 6937 and teletext control codes).
  * encodings    -> BOM sniffing, strict UTF-8, else charset-normalizer.
ttconv's document model is walked here (one cue per <p>, in document order) instead of going through ttconv's
WebVTT writer, because that writer re-cuts the timeline into ISD intervals: overlapping cues get split and merged,
so cue numbers would no longer point at the vendor's file, and overlap QC would be impossible.

The WebVTT *writer* is ours: neither pysubs2 (drops cue settings) nor ttconv (ISD re-timing, as above) keeps cues
one-to-one with their settings, and WebVTT output is a few lines of text.

No Airflow imports here.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

from mediaflow.captions.checks import qc
from mediaflow.captions.encoding import _BOMS, decode_text, language_hint
from mediaflow.captions.model import (
    _TAG_RE,
    DEFAULT_MAX_CAPTION_BYTES,
    DURATION_TOLERANCE_S,
    FORMATS,
    MAX_CUE_CHARS,
    MAX_CUES_ON_SCREEN,
    MAX_DETAIL_CHARS,
    MAX_MESSAGE_FINDINGS,
    CaptionError,
    Cue,
    Finding,
    _balance_tags,
    _error,
    format_timestamp,
    visible_text,
)
from mediaflow.captions.scc import _parse_scc
from mediaflow.captions.srt_vtt import _parse_srt_vtt
from mediaflow.captions.stl import _parse_stl
from mediaflow.captions.ttml import _parse_ttml

__all__ = [
    "CaptionError",
    "Cue",
    "DEFAULT_MAX_CAPTION_BYTES",
    "DURATION_TOLERANCE_S",
    "FORMATS",
    "Finding",
    "MAX_CUES_ON_SCREEN",
    "MAX_CUE_CHARS",
    "MAX_DETAIL_CHARS",
    "MAX_MESSAGE_FINDINGS",
    "decode_text",
    "format_timestamp",
    "language_hint",
    "qc",
    "visible_text",
]  # re-exported from the submodules


# HLS: ladder.py packages video/audio as MPEG-TS with ffmpeg's HLS muxer, and ffmpeg's mpegts muxer starts the
# timeline at 1.4 s (a fixed offset that comes from its mux-delay defaults): PTS 126000 on the 90 kHz MPEG-TS clock.
# (Checked with ffprobe on an ffmpeg HLS segment: video start_pts 133200 = 1.4 s + 2 frames of B-frame delay, audio
# 1.4 s + AAC priming.) A WebVTT segment's X-TIMESTAMP-MAP tells the player which PTS is cue time 00:00:00.000; with
# MPEGTS:126000 cue times stay plain programme time and line up with the video. If the packager changes (fMP4,
# -output_ts_offset, -muxdelay), this constant must change with it.
HLS_MPEGTS_OFFSET = 126000

SUBTITLE_SEGMENT_PATTERN = "sub_{:05d}.vtt"


# ----------------------------------------------------------------------------------------------- format detection


def _sniff_text(data: bytes) -> str:
    """Cheap, lossy decode for format sniffing only (the markers are ASCII): BOM codec, else UTF-8 with replacement."""
    text = next((data[len(bom) :].decode(enc, errors="replace") for bom, enc in _BOMS if data.startswith(bom)), None)
    if text is None:
        text = data.decode("utf-8", errors="replace")
    return text.replace("\r\n", "\n").replace("\r", "\n")


_STL_SIGNATURE = re.compile(rb"^\d{3}STL(23|24|25|30|50)\.01")
_TT_ROOT = re.compile(r"<(?:[A-Za-z_][\w.-]*:)?tt[\s>/]")
_SRT_CUE = re.compile(r"(?m)^[ \t]*\d+[ \t]*\n[^\n]*-->")
_EXTENSIONS = {
    ".srt": "srt",
    ".vtt": "vtt",
    ".webvtt": "vtt",
    ".ttml": "ttml",
    ".dfxp": "ttml",
    ".xml": "ttml",
    ".scc": "scc",
    ".stl": "stl",
}


def detect_format(filename: str, data: bytes) -> str:
    """One of FORMATS: by content first, by extension as fallback; CaptionError(parse) if neither tells."""
    name = Path(filename).name
    if _STL_SIGNATURE.match(data[:11]):
        return "stl"
    head = _sniff_text(data[:8192])
    stripped = head.lstrip()
    if re.match(r"WEBVTT(?:[ \t\n]|$)", stripped):
        return "vtt"
    if stripped.startswith("Scenarist_SCC V1.0"):
        return "scc"
    if _TT_ROOT.search(head) and (stripped.startswith("<")):
        return "ttml"
    if _SRT_CUE.search(head):
        return "srt"
    ext = Path(name).suffix.lower()
    if ext in _EXTENSIONS:
        return _EXTENSIONS[ext]
    raise CaptionError([_error("parse", name, f"unknown caption format (expected one of {', '.join(FORMATS)})")])


# ----------------------------------------------------------------------------------------------- reading


def max_caption_bytes() -> int:
    return int(os.environ.get("MEDIAFLOW_MAX_CAPTION_BYTES") or DEFAULT_MAX_CAPTION_BYTES)


def _check_size(size: int, name: str) -> None:
    limit = max_caption_bytes()
    if size > limit:
        detail = (
            f"file is {size:,} bytes, above the {limit:,}-byte limit for caption files (MEDIAFLOW_MAX_CAPTION_BYTES)"
        )
        raise CaptionError([_error("size", name, detail)])


def read_captions(path: str | Path) -> list[Cue]:
    """Parse any of FORMATS into cues. Unusable file or impossible timings -> CaptionError."""
    cues, _warnings = load_captions(path)
    return cues


def load_captions(path: str | Path) -> tuple[list[Cue], list[Finding]]:
    """Like read_captions, plus the non-fatal parse warnings (stray text, ttconv's repairs) for the QC report."""
    path = Path(path)
    _check_size(path.stat().st_size, path.name)  # before reading it into memory
    return parse_captions(path.read_bytes(), path.name)


def parse_captions(data: bytes, filename: str) -> tuple[list[Cue], list[Finding]]:
    """Bytes of a sidecar (e.g. straight from the object store) -> (cues, parse warnings). Raises CaptionError."""
    name = Path(filename).name
    if not data:
        raise CaptionError([_error("empty", name, "file is empty (0 bytes)")])
    _check_size(len(data), name)
    if _STL_SIGNATURE.match(data[:11]):
        fmt = "stl"
    else:
        try:
            text = decode_text(data, name).lstrip("\ufeff")
        except CaptionError:
            if Path(name).suffix.lower() != ".stl":
                raise
            fmt = "stl"  # binary and named .stl: let the STL reader say what is wrong with it
        else:
            if not text.strip():
                raise CaptionError([_error("empty", name, "file is empty (whitespace only)")])
            fmt = detect_format(name, data)
    if fmt == "stl":
        cues, warnings = _parse_stl(data, name)
    else:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        if fmt in ("srt", "vtt"):
            cues, warnings = _parse_srt_vtt(text, fmt, name)
        elif fmt == "scc":
            cues, warnings = _parse_scc(text, name)
        else:
            cues, warnings = _parse_ttml(data, name)
    if not cues:
        raise CaptionError([_error("empty", name, f"no cues found in this {fmt.upper()} file")])
    return cues, warnings


# ----------------------------------------------------------------------------------------------- WebVTT output


def _escape_cue_text(text: str) -> str:
    """Literal &, <, > escaped; <i>/<b>/<u> kept; no blank lines (a blank line would end the cue)."""
    parts = re.split(r"(</?[ibu]>)", _balance_tags(text))
    esc = "".join(
        p if _TAG_RE.fullmatch(p) else p.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") for p in parts
    )
    return "\n".join(ln for ln in esc.split("\n") if ln.strip())


def _cue_block(c: Cue) -> str:
    timing = f"{format_timestamp(c.start_s)} --> {format_timestamp(c.end_s)}"
    if c.settings:
        timing += " " + c.settings
    return f"{timing}\n{_escape_cue_text(c.text)}\n"


def _ordered(cues: list[Cue]) -> list[Cue]:
    # WebVTT requires cues in start-time order; stable sort keeps the source order otherwise.
    return sorted((c for c in cues if visible_text(c.text).strip()), key=lambda c: (c.start_s, c.end_s))


def to_webvtt(cues: list[Cue]) -> str:
    """A whole WebVTT file: header, then one block per cue (cue settings kept)."""
    return "WEBVTT\n\n" + "\n".join(_cue_block(c) for c in _ordered(cues))


def segment_webvtt(
    cues: list[Cue], *, segment_s: float, duration_s: float, mpegts_offset: int = HLS_MPEGTS_OFFSET
) -> tuple[str, list[tuple[str, str]]]:
    """HLS subtitle rendition: (media playlist, [(segment file name, WebVTT text), ...]).

    ceil(duration_s / segment_s) segments of segment_s (the last one shorter); each holds every cue that overlaps
    its time range, so a cue spanning a boundary is in both segments (players de-duplicate identical cues).
    Cue times stay programme time; X-TIMESTAMP-MAP maps them onto the MPEG-TS clock (see HLS_MPEGTS_OFFSET)."""
    if segment_s <= 0 or duration_s <= 0:
        raise ValueError(f"segment_s and duration_s must be positive (got {segment_s}, {duration_s})")
    count = max(1, math.ceil(duration_s / segment_s - 1e-9))
    ordered = _ordered(cues)
    header = f"WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:{mpegts_offset},LOCAL:00:00:00.000\n\n"
    segments: list[tuple[str, str]] = []
    playlist = [
        "#EXTM3U",
        "#EXT-X-VERSION:6",
        f"#EXT-X-TARGETDURATION:{math.ceil(segment_s)}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:VOD",
    ]
    per_segment: list[list[str]] = [[] for _ in range(count)]
    for c in ordered:  # each cue goes to every segment whose [start, end) it overlaps
        if c.end_s <= 0 or c.start_s >= duration_s:
            continue
        first = max(0, int(c.start_s // segment_s))
        last = min(count - 1, math.ceil(c.end_s / segment_s) - 1)
        block = _cue_block(c)
        for i in range(first, last + 1):
            if c.start_s < min((i + 1) * segment_s, duration_s) and c.end_s > i * segment_s:
                per_segment[i].append(block)
    for i in range(count):
        seg_start = i * segment_s
        seg_end = min((i + 1) * segment_s, duration_s)
        name = SUBTITLE_SEGMENT_PATTERN.format(i)
        segments.append((name, header + "\n".join(per_segment[i])))
        playlist += [f"#EXTINF:{seg_end - seg_start:.3f},", name]
    playlist.append("#EXT-X-ENDLIST")
    return "\n".join(playlist) + "\n", segments
