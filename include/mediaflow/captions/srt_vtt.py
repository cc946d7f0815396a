"""SRT and WebVTT -> cues, with pysubs2 (timestamps, cue text, <i>/<b>/<u> tags).

A light line scanner runs first so that a broken timing line becomes an error naming the cue and the line (pysubs2
silently turns such a line into text of the previous cue), and so WebVTT cue settings, which pysubs2 drops, are kept.
SRT positioning in the ASS style ({\\an8}) becomes WebVTT cue settings.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from mediaflow.captions.model import (
    _TAG_RE,
    CaptionError,
    Cue,
    Finding,
    _balance_tags,
    _error,
    _tidy_lines,
    _warning,
    format_timestamp,
    visible_text,
)

# ASCII digits only (re.A): the other readers refuse digits like '٠', so the check here must too
_SRT_TS = re.compile(r"(\d{1,2}):(\d{1,2}):(\d{1,2})[,.](\d{1,3})", re.A)  # the grammar pysubs2 accepts for SRT
_VTT_TS = re.compile(r"(?:(\d{2,4}):)?(\d{2}):(\d{2})\.(\d{3})", re.A)  # WebVTT: hours optional (at most 4 digits here)
_VTT_SETTING = re.compile(r"(vertical|line|position|size|align|region):\S+")

# SRT positioning in the ASS style ({\an8} = top centre), as many vendors deliver it.
_AN_SETTINGS = {
    "1": "line:90%,end align:start",
    "2": "",
    "3": "line:90%,end align:end",
    "4": "line:50%,center align:start",
    "5": "line:50%,center",
    "6": "line:50%,center align:end",
    "7": "line:10% align:start",
    "8": "line:10%",
    "9": "line:10% align:end",
}


@dataclass
class _ScannedCue:
    index: int
    line: int  # 1-based line number of the timing line
    timing: str
    settings: str
    text_lines: list[str]
    start_ms: int = 0
    end_ms: int = 0


def _ts_ms(m: re.Match[str]) -> int:
    h, mi, s, frac = m.groups()
    return ((int(h or 0) * 60 + int(mi)) * 60 + int(s)) * 1000 + int(frac) * 10 ** (3 - len(frac))


# long: a line-by-line scanner: one state machine reads best in one place
def _scan_srt_vtt(text: str, fmt: str, file: str) -> tuple[list[_ScannedCue], list[Finding], list[Finding]]:
    """Light structure check (not a parser of cue text): find each cue's timing line, validate its timestamps, keep
    WebVTT settings, skip NOTE/STYLE/REGION blocks. Returns (cues, errors, warnings)."""
    ts_re = _SRT_TS if fmt == "srt" else _VTT_TS
    example = "HH:MM:SS,mmm --> HH:MM:SS,mmm" if fmt == "srt" else "[HH:]MM:SS.mmm --> [HH:]MM:SS.mmm"
    lines = text.split("\n")
    errors: list[Finding] = []
    warnings: list[Finding] = []
    start = 0
    if fmt == "vtt":
        if not re.match(r"WEBVTT(?:[ \t]|$)", lines[0]):
            raise CaptionError([_error("parse", file, "first line must be 'WEBVTT'", line=1)])
        while start < len(lines) and lines[start].strip() and "-->" not in lines[start]:  # header block
            start += 1

    blocks: list[tuple[int, list[str]]] = []  # (first line number, lines)
    cur: list[str] = []
    for n in range(start, len(lines)):
        if lines[n].strip():
            if not cur:
                first = n + 1
            cur.append(lines[n])
        elif cur:
            blocks.append((first, cur))
            cur = []
    if cur:
        blocks.append((first, cur))

    cues: list[_ScannedCue] = []
    index = 0
    for first, blines in blocks:
        arrows = [k for k, ln in enumerate(blines) if "-->" in ln]
        if not arrows:
            head = blines[0].strip()
            if fmt == "vtt" and re.match(r"(NOTE|STYLE|REGION)(\s|$)", head):
                continue
            if fmt == "srt" and head.isdigit():
                index += 1
                detail = f"no timing line after cue number {head} (expected '{example}')"
                errors.append(_error("timing", file, detail, index, first + 1))
                continue
            warnings.append(_warning("parse", file, f"text without a timing line ignored: {head[:40]!r}", line=first))
            continue
        if arrows[0] > 1 or (fmt == "srt" and arrows[0] == 1 and not blines[0].strip().isdigit()):
            detail = f"unexpected text before the timing line ignored: {blines[0].strip()[:40]!r}"
            warnings.append(_warning("parse", file, detail, line=first))
        for j, k in enumerate(arrows):
            index += 1
            end_k = arrows[j + 1] if j + 1 < len(arrows) else len(blines)
            body = blines[k + 1 : end_k]
            if fmt == "srt" and j + 1 < len(arrows) and body and body[-1].strip().isdigit():
                body = body[:-1]  # the next cue's number (cues not separated by a blank line)
            lineno = first + k
            raw = blines[k].strip()
            left, _, right = raw.partition("-->")
            left = left.strip()
            right_parts = right.split()
            right_ts = right_parts[0] if right_parts else ""
            m1 = ts_re.fullmatch(left)
            m2 = ts_re.fullmatch(right_ts)
            bad = [t for t, m in ((left, m1), (right_ts, m2)) if m is None]
            if bad:
                shown = " and ".join(f"'{t}'" for t in bad) if any(bad) else "nothing"
                detail = f"unparseable timestamp {shown} in '{raw}' (expected '{example}')"
                errors.append(_error("timing", file, detail, index, lineno))
                continue
            out_of_range = [t for t, m in ((left, m1), (right_ts, m2)) if int(m[2]) > 59 or int(m[3]) > 59]
            if out_of_range:
                detail = f"impossible timestamp '{out_of_range[0]}' (minutes/seconds above 59)"
                errors.append(_error("timing", file, detail, index, lineno))
                continue
            s_ms, e_ms = _ts_ms(m1), _ts_ms(m2)
            if e_ms <= s_ms:
                what = "is before" if e_ms < s_ms else "equals"
                detail = f"end {format_timestamp(e_ms / 1000)} {what} start {format_timestamp(s_ms / 1000)}"
                errors.append(_error("timing", file, detail, index, lineno))
                continue
            settings = ""
            if fmt == "vtt":
                kept = []
                for tok in right_parts[1:]:
                    if _VTT_SETTING.fullmatch(tok) and not tok.startswith("region:"):
                        kept.append(tok)
                    else:
                        warnings.append(_warning("parse", file, f"cue setting {tok!r} dropped", index, lineno))
                settings = " ".join(kept)
            cues.append(_ScannedCue(index, lineno, f"{left} --> {right_ts}", settings, body, s_ms, e_ms))
    return cues, errors, warnings


def _from_ssa_text(ssa: str, fmt: str) -> tuple[str, str]:
    """pysubs2 event text (SubStation override tags) -> (cue text with <i>/<b>/<u>, WebVTT settings from {\\anN})."""
    settings = ""
    # override blocks never nest: [^{}] keeps these scans linear on hostile text like "{{{{..."
    for block in re.finditer(r"\{[^{}]*\}", ssa):
        an = re.search(r"\\an([1-9])", block[0])
        if an:
            settings = _AN_SETTINGS[an[1]]
            break
    s = ssa.replace("\\N", "\n").replace("\\n", "\n").replace("\\h", "\u00a0")
    for tag in "ibu":
        s = s.replace(f"{{\\{tag}1}}", f"<{tag}>").replace(f"{{\\{tag}0}}", f"</{tag}>")
    s = re.sub(r"\{\\[^{}]*\}", "", s)  # other override blocks ({\s1}, {\an8}, {\pos(..)}, ...)
    if fmt == "vtt":  # WebVTT character references; SRT has none
        s = "".join(p if _TAG_RE.fullmatch(p) else html.unescape(p) for p in re.split(r"(</?[ibu]>)", s))
    return _balance_tags(_tidy_lines(s)), settings


def _parse_srt_vtt(text: str, fmt: str, file: str) -> tuple[list[Cue], list[Finding]]:
    import pysubs2

    scanned, errors, warnings = _scan_srt_vtt(text, fmt, file)
    if errors:
        raise CaptionError(errors)
    # pysubs2 gets the checked cues only: identifiers, NOTE/STYLE/REGION blocks and stray text would otherwise be
    # glued onto the previous cue's text.
    parts = ["WEBVTT\n"] if fmt == "vtt" else []
    for c in scanned:
        parts.append((f"{c.index}\n" if fmt == "srt" else "") + c.timing + "\n" + "\n".join(c.text_lines) + "\n")
    try:
        subs = pysubs2.SSAFile.from_string("\n".join(parts), format_=fmt)
    except Exception as e:  # pysubs2 raises its own exception types; report them as a parse failure of this file
        raise CaptionError([_error("parse", file, f"pysubs2 could not parse the file: {e}")]) from e
    events = list(subs)
    if len(events) != len(scanned):
        detail = f"pysubs2 found {len(events)} cues where the file has {len(scanned)}"
        raise CaptionError([_error("parse", file, detail)])
    cues = []
    for c, ev in zip(scanned, events, strict=False):
        if (ev.start, ev.end) != (c.start_ms, c.end_ms):  # both read the same timing line; never expected to differ
            raise CaptionError(
                [_error("parse", file, f"pysubs2 read the timing as {ev.start}-{ev.end} ms", c.index, c.line)]
            )
        txt, an_settings = _from_ssa_text(ev.text, fmt)
        raw_last = c.text_lines[-1].strip() if c.text_lines else ""
        if raw_last.isdigit() and not visible_text(txt).endswith(raw_last):
            txt = f"{txt}\n{raw_last}" if txt else raw_last  # pysubs2 drops a last line that is only a number
        cues.append(Cue(c.index, ev.start / 1000, ev.end / 1000, txt, c.settings or an_settings, line=c.line))
    return cues, warnings
