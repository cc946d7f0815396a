"""Segmented WebVTT for an HLS subtitle rendition: the media playlist and its segments, timed against the MPEG-TS
clock of the video and audio renditions (X-TIMESTAMP-MAP).
"""

from __future__ import annotations

import math

from mediaflow.captions.model import Cue
from mediaflow.captions.write import _cue_block, _ordered

# HLS: ladder.py packages video/audio as MPEG-TS with ffmpeg's HLS muxer, and ffmpeg's mpegts muxer starts the
# timeline at 1.4 s (a fixed offset that comes from its mux-delay defaults): PTS 126000 on the 90 kHz MPEG-TS clock.
# (Checked with ffprobe on an ffmpeg HLS segment: video start_pts 133200 = 1.4 s + 2 frames of B-frame delay, audio
# 1.4 s + AAC priming.) A WebVTT segment's X-TIMESTAMP-MAP tells the player which PTS is cue time 00:00:00.000; with
# MPEGTS:126000 cue times stay plain programme time and line up with the video. If the packager changes (fMP4,
# -output_ts_offset, -muxdelay), this constant must change with it.
HLS_MPEGTS_OFFSET = 126000

SUBTITLE_SEGMENT_PATTERN = "sub_{:05d}.vtt"


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
