"""WebVTT output: a whole file, one block per cue, cue settings kept.

The writer is ours: neither pysubs2 (drops cue settings) nor ttconv (re-cuts the timeline into ISD intervals) keeps
cues one-to-one with their settings, and WebVTT output is a few lines of text.
"""

from __future__ import annotations

import re

from mediaflow.captions.model import _TAG_RE, Cue, _balance_tags, format_timestamp, visible_text


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
