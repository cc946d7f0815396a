"""ttconv's document model -> cues, shared by the TTML, SCC and EBU-STL readers.

The model is walked here (one cue per <p>, in document order) instead of going through ttconv's WebVTT writer,
because that writer re-cuts the timeline into ISD intervals: overlapping cues get split and merged, so cue numbers
would no longer point at the vendor's file, and overlap QC would be impossible. ttconv reports most problems through
logging and carries on: `_ttconv_log` captures them so they reach the QC report.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction

from mediaflow.captions.model import (
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


def _pct(v: float) -> str:
    return f"{round(v, 2):g}%"


class _LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def _ttconv_log() -> Iterator[list[logging.LogRecord]]:
    """ttconv reports most problems through logging and carries on; capture them so they reach the QC report."""
    logger = logging.getLogger("ttconv")
    handler = _LogCapture()
    old_level = logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.WARNING:
        logger.setLevel(logging.WARNING)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def _log_warnings(records: list[logging.LogRecord], file: str, skip: re.Pattern[str] | None = None) -> list[Finding]:
    out = []
    seen = set()
    for r in records:
        msg = r.getMessage()
        if (skip and skip.search(msg)) or msg in seen:
            continue
        seen.add(msg)
        out.append(_warning("parse", file, f"ttconv: {msg}"))
    return out


@dataclass
class _ModelCue:
    ordinal: int
    start: Fraction | None
    end: Fraction | None
    text: str
    settings: str


def _abs(
    begin: Fraction | None, end: Fraction | None, pb: Fraction, pe: Fraction | None
) -> tuple[Fraction, Fraction | None]:
    """Same rule as ttconv.isd (par time containers): offsets relative to the parent's begin, clipped by its end."""
    b = pb + (begin or 0)
    e = pb + end if end is not None else pe
    if e is not None and pe is not None:
        e = min(e, pe)
    return b, e


# long: one pass turning each format's cues into the common model, format by format
def _model_cues(doc) -> list[_ModelCue]:
    import ttconv.style_properties as sp
    from ttconv import model

    body = doc.get_body()
    out: list[_ModelCue] = []
    if body is None:
        return out

    def inherited(el, prop):
        while el is not None:
            if el.has_style(prop):
                return el.get_style(prop)
            el = el.parent()
        return None

    def region_of(el):
        while el is not None:
            if el.get_region() is not None:
                return el.get_region()
            el = el.parent()
        return None

    def p_cue(p, pb, pe) -> _ModelCue:
        starts: list[Fraction] = []
        ends: list[Fraction | None] = []
        lines: list[str] = [""]
        preserve = p.get_space() == model.WhiteSpaceHandling.PRESERVE
        region = region_of(p)

        def style(el, prop):  # inherited along the content tree, else from the region (TTML region styling)
            v = inherited(el, prop)
            return region.get_style(prop) if v is None and region is not None else v

        def walk(el, b, e):
            for child in el:
                if isinstance(child, model.Br):
                    lines.append("")
                elif isinstance(child, model.Text):
                    t = child.get_text()
                    if not t:
                        continue
                    if e is not None and e <= b:
                        continue
                    starts.append(b)
                    ends.append(e)
                    if not preserve:
                        t = re.sub(r"\s+", " ", t)
                    core = t.strip()
                    styled = core
                    if core:
                        fs = style(child.parent(), sp.StyleProperties.FontStyle)
                        fw = style(child.parent(), sp.StyleProperties.FontWeight)
                        td = style(child.parent(), sp.StyleProperties.TextDecoration)
                        if td is not None and td.underline:
                            styled = f"<u>{styled}</u>"
                        if fs in (sp.FontStyleType.italic, sp.FontStyleType.oblique):
                            styled = f"<i>{styled}</i>"
                        if fw == sp.FontWeightType.bold:
                            styled = f"<b>{styled}</b>"
                    # surrounding spaces stay outside the tags ("el <i>niño</i>")
                    styled = t[: len(t) - len(t.lstrip())] + styled + (t[len(t.rstrip()) :] if core else "")
                    parts = styled.split("\n") if preserve else [styled]
                    lines[-1] += parts[0]
                    lines.extend(parts[1:])
                elif isinstance(child, (model.Rt, model.Rp)):
                    continue
                else:
                    cb, ce = _abs(child.get_begin(), child.get_end(), b, e)
                    walk(child, cb, ce)

        inverted = pe is not None and pe <= pb
        walk(p, pb, None if inverted else pe)  # an inverted <p> is still read, so the error can quote it
        if inverted:
            starts[:] = [pb]
            ends[:] = [pe]
        text = "\n".join(lines)
        for tag in "ibu":
            text = text.replace(f"</{tag}><{tag}>", "")
        text = _balance_tags(_tidy_lines(re.sub(r"[ \t]+", " ", text)))
        start = min(starts) if starts else pb
        end = None if (not ends or any(x is None for x in ends)) else max(ends)  # type: ignore[type-var]
        if not starts:
            end = pe
        return _ModelCue(0, start, end, text, _settings_for(p, region, inherited))

    def visit(el, pb, pe):
        for child in el:
            if isinstance(child, model.P):
                b, e = _abs(child.get_begin(), child.get_end(), pb, pe)
                c = p_cue(child, b, e)
                c.ordinal = len(out) + 1
                out.append(c)
            elif isinstance(child, (model.Div, model.Body)):
                b, e = _abs(child.get_begin(), child.get_end(), pb, pe)
                visit(child, b, e)

    b, e = _abs(body.get_begin(), body.get_end(), Fraction(0), None)
    visit(body, b, e)
    return out


def _settings_for(p, region, inherited) -> str:
    """Region geometry (percent units) -> WebVTT line / position / size / align settings."""
    import ttconv.style_properties as sp

    settings: list[str] = []
    if region is not None:
        origin = region.get_style(sp.StyleProperties.Origin)
        extent = region.get_style(sp.StyleProperties.Extent)
        position = region.get_style(sp.StyleProperties.Position)
        pct = sp.LengthType.Units.pct
        x = y = w = h = None
        if origin is not None and origin.x.units is pct and origin.y.units is pct:
            x, y = origin.x.value, origin.y.value
        elif position is not None and position.h_offset.units is pct and position.v_offset.units is pct:
            x, y = position.h_offset.value, position.v_offset.value
        if extent is not None and extent.width.units is pct and extent.height.units is pct:
            w, h = extent.width.value, extent.height.value
        if x is not None and w is not None:
            da = region.get_style(sp.StyleProperties.DisplayAlign) or sp.DisplayAlignType.before
            if da == sp.DisplayAlignType.after:
                settings.append(f"line:{_pct(min(100.0, y + h))},end")
            elif da == sp.DisplayAlignType.center:
                settings.append(f"line:{_pct(y + h / 2)},center")
            else:
                settings.append(f"line:{_pct(y)}")
            if abs(x + w / 2 - 50) > 1:  # box not centred: say where it is
                settings.append(f"position:{_pct(x)},line-left size:{_pct(w)}")
    ta = inherited(p, sp.StyleProperties.TextAlign)
    if ta is None and region is not None:
        ta = region.get_style(sp.StyleProperties.TextAlign)
    if ta is not None and ta.value in ("start", "end", "left", "right"):
        settings.append(f"align:{ta.value}")
    return " ".join(settings)


def _cues_from_model(
    mcues: list[_ModelCue], file: str, lines: list[int | None] | None, label
) -> tuple[list[Cue], list[Finding]]:
    """Model cues -> Cue list; impossible timings are errors naming the cue (and line)."""
    cues: list[Cue] = []
    errors: list[Finding] = []
    for mc in mcues:
        line = lines[mc.ordinal - 1] if lines and mc.ordinal - 1 < len(lines) else None
        if not visible_text(mc.text).strip():
            continue
        where = label(mc)
        if mc.end is None:
            detail = f"{where}has no end time (never cleared / no end or dur)"
            errors.append(_error("timing", file, detail, mc.ordinal, line))
            continue
        if mc.end <= mc.start:
            what = "is before" if mc.end < mc.start else "equals"
            detail = f"{where}end {format_timestamp(float(mc.end))} {what} start {format_timestamp(float(mc.start))}"
            errors.append(_error("timing", file, detail, mc.ordinal, line))
            continue
        cues.append(
            Cue(mc.ordinal, round(float(mc.start), 3), round(float(mc.end), 3), mc.text, mc.settings, line=line)
        )
    if errors:
        raise CaptionError(errors)
    return cues, []
