"""Reading a caption sidecar in any of FORMATS: format detection (content first, the extension as fallback), the
size limit, and the dispatch to each format's reader.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from mediaflow.captions.encoding import _BOMS, decode_text
from mediaflow.captions.model import DEFAULT_MAX_CAPTION_BYTES, FORMATS, CaptionError, Cue, Finding, _error
from mediaflow.captions.scc import _parse_scc
from mediaflow.captions.srt_vtt import _parse_srt_vtt
from mediaflow.captions.stl import _parse_stl
from mediaflow.captions.ttml import _parse_ttml

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
