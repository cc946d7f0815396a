"""SCC -> cues, with ttconv.scc.reader (CEA-608 decoding: pop-on, roll-up, paint-on). The timecode lines are checked
first: ttconv skips any line it does not recognise, which would silently lose a caption.
"""

from __future__ import annotations

import bisect
import re
from fractions import Fraction

from mediaflow.captions.model import CaptionError, Cue, Finding, _error
from mediaflow.captions.ttconv_cues import _cues_from_model, _log_warnings, _model_cues, _ttconv_log

_SCC_LINE = re.compile(
    r"(\d{2})[:;.,](\d{2})[:;.,](\d{2})[:;.,](\d{2})\t((?:[0-9A-Fa-f]{4})(?: +[0-9A-Fa-f]{4})*)?\s*", re.A
)


def _parse_scc(text: str, file: str) -> tuple[list[Cue], list[Finding]]:
    from ttconv.scc import reader as scc_reader
    from ttconv.time_code import FPS_29_97, SmpteTimeCode

    lines = text.split("\n")
    if lines[0].strip() != "Scenarist_SCC V1.0":
        raise CaptionError([_error("parse", file, "first line must be 'Scenarist_SCC V1.0'", line=1)])
    # ttconv skips any line it does not recognise, so a broken timecode would silently lose a caption: check first.
    errors: list[Finding] = []
    line_times: list[tuple[Fraction, int]] = []
    for n, ln in enumerate(lines[1:], start=2):
        if not ln.strip():
            continue
        m = _SCC_LINE.fullmatch(ln)
        if not m:
            tc = ln.split("\t", 1)[0].strip()
            errors.append(
                _error(
                    "timing" if "\t" in ln else "parse",
                    file,
                    f"malformed SCC line (expected 'HH:MM:SS:FF<tab>hhhh hhhh ...'): {tc[:40]!r}",
                    line=n,
                )
            )
            continue
        h, mi, s, f = (int(x) for x in m.groups()[:4])
        if mi > 59 or s > 59 or f > 29:
            errors.append(_error("timing", file, f"impossible timecode {ln.split(chr(9))[0]!r}", line=n))
            continue
        line_times.append((SmpteTimeCode.parse(ln.split("\t")[0], FPS_29_97).to_temporal_offset(), n))
    if errors:
        raise CaptionError(errors)
    for (t0, n0), (t1, n1) in zip(line_times, line_times[1:], strict=False):
        if t1 < t0:
            errors.append(_error("timing", file, f"timecode goes backwards (line {n0} is later)", line=n1))
    if errors:
        raise CaptionError(errors)

    with _ttconv_log() as records:
        try:
            doc = scc_reader.to_model(text)
        except Exception as e:
            raise CaptionError(
                [_error("parse", file, f"ttconv could not read the SCC: {type(e).__name__}: {e}")]
            ) from e
    mcues = _model_cues(doc)

    # a caption's line: the last timecode line at or before its start (ttconv keeps no line numbers)
    times = [t for t, _n in line_times]

    def line_of(t: Fraction | None) -> int | None:
        k = bisect.bisect_right(times, t) if t is not None else 0
        return line_times[k - 1][1] if k else None

    lines_by_cue = [line_of(mc.start) for mc in mcues]
    cues, _ = _cues_from_model(mcues, file, lines_by_cue, lambda mc: "")
    return cues, _log_warnings(records, file)
