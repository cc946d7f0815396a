"""The common caption model: a cue, a QC finding, the error that carries findings, the limits against hostile
sidecars, and the small text helpers every format shares (timestamps, visible text, balanced <i>/<b>/<u> tags).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

FORMATS = ("srt", "vtt", "ttml", "scc", "stl")

DURATION_TOLERANCE_S = 0.5

# Limits against hostile or broken sidecars (a real feature's captions are a few hundred KB, two or three cues on
# screen at once, a hundred-odd characters a cue). The byte limit is configurable: MEDIAFLOW_MAX_CAPTION_BYTES.
DEFAULT_MAX_CAPTION_BYTES = 10 * 1024 * 1024
MAX_CUES_ON_SCREEN = 10  # more would repeat every one of them in each HLS segment they span
MAX_CUE_CHARS = 1000
MAX_MESSAGE_FINDINGS = 20  # an error message lists this many findings, then counts the rest
MAX_DETAIL_CHARS = 300


@dataclass(frozen=True)
class Cue:
    index: int  # 1-based position in the source file
    start_s: float
    end_s: float
    text: str  # lines joined with "\n"; plain text, only <i>/<b>/<u> tags kept (WebVTT-safe); & and < are literal
    settings: str = ""  # WebVTT cue settings to keep (e.g. "line:10% align:start") when the source had positioning
    # Extension: the source line of the cue's timing (text formats), so QC findings can point at it.
    # Not part of equality: a cue read back from our own WebVTT is the same cue.
    line: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Finding:
    level: str  # "error" | "warning"
    file: str
    cue: int | None
    line: int | None
    # "timing", "overlap", "reading_speed", "line_length", "cue_length", "duration", "parse", "empty", "size"
    check: str
    message: str  # always names the file and the cue number or line


class CaptionError(ValueError):
    """A caption file that cannot be used; `findings` are the errors."""

    def __init__(self, findings: list[Finding]):
        self.findings = list(findings)
        lines = [f.message for f in self.findings[:MAX_MESSAGE_FINDINGS]]
        if len(self.findings) > MAX_MESSAGE_FINDINGS:
            lines.append(f"{self.findings[0].file}: ... and {len(self.findings) - MAX_MESSAGE_FINDINGS} more errors")
        super().__init__("\n".join(lines))


# ----------------------------------------------------------------------------------------------- small helpers


def _where(file: str, cue: int | None = None, line: int | None = None) -> str:
    if cue is not None and line is not None:
        return f"{file}: cue {cue} (line {line})"
    if cue is not None:
        return f"{file}: cue {cue}"
    if line is not None:
        return f"{file}: line {line}"
    return file


def _finding(
    level: str, check: str, file: str, detail: str, cue: int | None = None, line: int | None = None
) -> Finding:
    if len(detail) > MAX_DETAIL_CHARS:  # a quoted line of a hostile file can be megabytes long
        detail = detail[: MAX_DETAIL_CHARS - 3] + "..."
    return Finding(level, file, cue, line, check, f"{_where(file, cue, line)}: {detail}")


def _error(check: str, file: str, detail: str, cue: int | None = None, line: int | None = None) -> Finding:
    return _finding("error", check, file, detail, cue, line)


def _warning(check: str, file: str, detail: str, cue: int | None = None, line: int | None = None) -> Finding:
    return _finding("warning", check, file, detail, cue, line)


def format_timestamp(seconds: float) -> str:
    """WebVTT timestamp HH:MM:SS.mmm (hours grow past 99 if needed)."""
    ms = max(0, int(round(seconds * 1000)))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


_TAG_RE = re.compile(r"</?[ibu]>")


def visible_text(text: str) -> str:
    """Cue text as the viewer reads it: tags removed (newlines kept)."""
    return _TAG_RE.sub("", text)


def _balance_tags(text: str) -> str:
    """Close what was opened, drop stray closers, drop empty pairs: WebVTT needs properly nested <i>/<b>/<u>.
    One pass (deeply nested tags must not cost quadratic time)."""
    out: list[str] = []
    stack: list[tuple[str, int]] = []  # open tag, its position in out
    open_count = dict.fromkeys("ibu", 0)

    def close() -> None:
        tag, at = stack.pop()
        open_count[tag] -= 1
        if len(out) == at + 1:  # nothing inside: drop the pair
            out.pop()
        else:
            out.append(f"</{tag}>")

    for tok in re.split(r"(</?[ibu]>)", text):
        m = re.fullmatch(r"<(/?)([ibu])>", tok)
        if not m:
            if tok:
                out.append(tok)
        elif not m[1]:
            stack.append((m[2], len(out)))
            open_count[m[2]] += 1
            out.append(tok)
        elif open_count[m[2]]:
            while stack[-1][0] != m[2]:
                close()
            close()
    while stack:
        close()
    return "".join(out)


def _tidy_lines(text: str) -> str:
    """Strip each line and drop lines with nothing visible; their tags move to the neighbouring lines."""
    out: list[str] = []
    carry = ""
    for ln in text.replace("\r", "").split("\n"):
        ln = ln.strip()
        if visible_text(ln).strip():
            out.append(carry + ln)
            carry = ""
            continue
        tags = _TAG_RE.findall(ln)
        if out:
            out[-1] += "".join(t for t in tags if t.startswith("</"))
        carry += "".join(t for t in tags if not t.startswith("</"))
    return "\n".join(out)
