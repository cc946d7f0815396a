"""QC of cues: errors for impossible timing, a cue outside the media, too many cues at once, a cue too long to be a
caption; warnings for overlap, reading speed, line length and empty cues. Each finding names the file and the cue.
"""

from __future__ import annotations

import heapq

from mediaflow.captions.model import (
    DURATION_TOLERANCE_S,
    MAX_CUE_CHARS,
    MAX_CUES_ON_SCREEN,
    Cue,
    Finding,
    _error,
    _warning,
    format_timestamp,
    visible_text,
)


def qc(
    cues: list[Cue], *, file: str, media_duration_s: float | None, max_cps: float = 20.0, max_line_chars: int = 42
) -> list[Finding]:
    """Errors: impossible timing, cue outside the media, too many cues at once, a cue too long to be a caption.
    Warnings: overlap, reading speed, line length, empty cue."""
    out: list[Finding] = []
    prev: Cue | None = None
    for c in cues:
        ts, te = format_timestamp(c.start_s), format_timestamp(c.end_s)
        if c.end_s <= c.start_s or c.start_s < 0:
            detail = (
                f"end {te} is before start {ts}"
                if c.end_s < c.start_s
                else (f"end {te} equals start {ts}" if c.end_s == c.start_s else f"negative start {c.start_s:.3f} s")
            )
            out.append(_error("timing", file, detail, c.index, c.line))
        if media_duration_s is not None:
            md = format_timestamp(media_duration_s)
            if c.start_s >= media_duration_s:
                detail = f"starts at {ts}, at or after the end of the media ({md})"
                out.append(_error("duration", file, detail, c.index, c.line))
            elif c.end_s > media_duration_s + DURATION_TOLERANCE_S:
                out.append(
                    _error("duration", file, f"ends at {te}, after the end of the media ({md})", c.index, c.line)
                )
        if prev is not None and c.start_s < prev.end_s:
            detail = f"starts at {ts}, before cue {prev.index} ends ({format_timestamp(prev.end_s)})"
            out.append(_warning("overlap", file, detail, c.index, c.line))
        visible = visible_text(c.text)
        n_chars = len(visible.replace("\n", ""))
        if not visible.strip():
            out.append(_warning("empty", file, "cue has no text", c.index, c.line))
        if n_chars > MAX_CUE_CHARS:
            detail = f"cue has {n_chars:,} characters (max {MAX_CUE_CHARS:,}): too long to be a caption"
            out.append(_error("cue_length", file, detail, c.index, c.line))
            prev = c
            continue
        dur = c.end_s - c.start_s
        if dur > 0 and n_chars / dur > max_cps:
            detail = (
                f"reading speed {n_chars / dur:.1f} characters/s is above {max_cps:g} "
                f"({n_chars} characters in {dur:.3f} s)"
            )
            out.append(_warning("reading_speed", file, detail, c.index, c.line))
        for k, ln in enumerate(visible.split("\n"), start=1):
            if len(ln) > max_line_chars:
                detail = f"text line {k} has {len(ln)} characters (max {max_line_chars}): {ln[:30]!r}..."
                out.append(_warning("line_length", file, detail, c.index, c.line))
        prev = c
    return out + _crowding(cues, file)


def _crowding(cues: list[Cue], file: str) -> list[Finding]:
    """An error at the first moment more than MAX_CUES_ON_SCREEN cues show at once (one error, not one per cue)."""
    ends: list[float] = []  # end times of the cues on screen
    shown = (c for c in cues if c.end_s > c.start_s and visible_text(c.text).strip())
    for c in sorted(shown, key=lambda c: c.start_s):
        while ends and ends[0] <= c.start_s:
            heapq.heappop(ends)
        heapq.heappush(ends, c.end_s)
        if len(ends) > MAX_CUES_ON_SCREEN:
            detail = (
                f"{len(ends)} cues on screen at once at {format_timestamp(c.start_s)} (max {MAX_CUES_ON_SCREEN}; "
                "each would be repeated in every HLS segment it spans)"
            )
            return [_error("overlap", file, detail, c.index, c.line)]
    return []
