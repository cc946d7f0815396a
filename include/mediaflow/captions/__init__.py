"""Captions for the localize stage: read vendor sidecars (SRT, WebVTT, TTML/DFXP, SCC, EBU-STL), QC every cue,
write WebVTT (whole file, and segmented WebVTT for an HLS subtitle rendition).

This package's public API is what this module re-exports; callers write `from mediaflow import captions` and
`captions.read_captions(...)`. A module per concern:
  * model.py        -> Cue, Finding, CaptionError, the limits, timestamps and the <i>/<b>/<u> text helpers
  * read.py         -> format detection (content first, extension as fallback), the size limit, the dispatch below
  * encoding.py     -> BOM sniffing, strict UTF-8, else charset-normalizer (the file name's language breaks ties)
  * srt_vtt.py      -> SRT, WebVTT via pysubs2 (timestamps, cue text, <i>/<b>/<u> tags). A light line scanner runs
                       first so that a broken timing line becomes an error naming the cue and the line (pysubs2
                       silently turns such a line into text of the previous cue), and so WebVTT cue settings, which
                       pysubs2 drops, are kept.
  * ttml.py         -> TTML / DFXP via ttconv.imsc.reader (legacy DFXP namespaces mapped onto the TTML namespace first)
  * scc.py          -> SCC via ttconv.scc.reader (CEA-608 decoding: pop-on, roll-up, paint-on)
  * stl.py          -> EBU-STL via ttconv.stl.reader (GSI/TTI blocks, ISO 6937 and teletext control codes)
  * ttconv_cues.py  -> ttconv's document model -> cues, for the three ttconv readers: the model is walked (one cue
                       per <p>, in document order) instead of going through ttconv's WebVTT writer, because that
                       writer re-cuts the timeline into ISD intervals: overlapping cues get split and merged, so cue
                       numbers would no longer point at the vendor's file, and overlap QC would be impossible.
  * checks.py       -> qc: timing, duration, overlap, reading speed, line and cue length, crowding
  * write.py        -> the WebVTT writer. It is ours: neither pysubs2 (drops cue settings) nor ttconv (ISD re-timing,
                       as above) keeps cues one-to-one with their settings, and WebVTT output is a few lines of text.
  * segment.py      -> segmented WebVTT and the media playlist of an HLS subtitle rendition

No Airflow imports in this package.
"""

from __future__ import annotations

from mediaflow.captions.checks import qc
from mediaflow.captions.encoding import decode_text, language_hint
from mediaflow.captions.model import (
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
    format_timestamp,
    visible_text,
)
from mediaflow.captions.read import detect_format, load_captions, max_caption_bytes, parse_captions, read_captions
from mediaflow.captions.segment import HLS_MPEGTS_OFFSET, SUBTITLE_SEGMENT_PATTERN, segment_webvtt
from mediaflow.captions.write import to_webvtt

__all__ = [
    "CaptionError",
    "Cue",
    "DEFAULT_MAX_CAPTION_BYTES",
    "DURATION_TOLERANCE_S",
    "FORMATS",
    "Finding",
    "HLS_MPEGTS_OFFSET",
    "MAX_CUES_ON_SCREEN",
    "MAX_CUE_CHARS",
    "MAX_DETAIL_CHARS",
    "MAX_MESSAGE_FINDINGS",
    "SUBTITLE_SEGMENT_PATTERN",
    "decode_text",
    "detect_format",
    "format_timestamp",
    "language_hint",
    "load_captions",
    "max_caption_bytes",
    "parse_captions",
    "qc",
    "read_captions",
    "segment_webvtt",
    "to_webvtt",
    "visible_text",
]
