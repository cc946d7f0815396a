"""EBU-STL -> cues, with ttconv.stl.reader (GSI/TTI blocks, ISO 6937 and teletext control codes). The TTI timecodes
are checked first: ttconv drops a subtitle whose timecodes are invalid, which would silently lose it.
"""

from __future__ import annotations

import io
import math
import re
import struct
from fractions import Fraction

from mediaflow.captions.model import CaptionError, Cue, Finding, _error, _warning
from mediaflow.captions.ttconv_cues import _cues_from_model, _log_warnings, _model_cues, _ttconv_log

_GSI = struct.Struct("3s8sc2s2s32s32s32s32s32s32s16s6s6s2s5s5s3s2s2s1s8s8s1s1s3s32s32s32s75x576s")  # as ttconv
_TTI = struct.Struct("<BHBBBBBBBBBBBBB112s")
_DFC_FPS = {
    b"STL23.01": Fraction(24000, 1001),
    b"STL24.01": Fraction(24),
    b"STL25.01": Fraction(25),
    b"STL30.01": Fraction(30000, 1001),
    b"STL50.01": Fraction(50),
}


def _parse_stl(data: bytes, file: str) -> tuple[list[Cue], list[Finding]]:
    from ttconv.stl import reader as stl_reader
    from ttconv.stl.config import STLReaderConfiguration
    from ttconv.time_code import SmpteTimeCode

    if len(data) < 1024:
        detail = f"EBU-STL file is {len(data)} bytes, shorter than its 1024-byte GSI block"
        raise CaptionError([_error("parse", file, detail)])
    gsi = _GSI.unpack(data[:1024])
    cpn, dfc, tcp = gsi[0], gsi[1], gsi[21]
    fps = _DFC_FPS.get(dfc)
    if not cpn.isdigit() or fps is None:
        raise CaptionError([_error("parse", file, f"not an EBU-STL GSI block (code page {cpn!r}, DFC {dfc!r})")])
    body = data[1024:]
    warnings: list[Finding] = []
    if len(body) % 128:
        detail = f"truncated EBU-STL: {len(body) % 128} stray bytes after TTI block {len(body) // 128}"
        raise CaptionError([_error("parse", file, detail)])

    def tc(h: int, m: int, s: int, f: int) -> Fraction | None:
        if h > 23 or m > 59 or s > 59 or f >= math.ceil(fps):
            return None
        return SmpteTimeCode(h, m, s, f, fps).to_temporal_offset()

    # Light check of the TTI blocks: ttconv logs and *drops* a subtitle whose timecodes are invalid or whose TCO is
    # not after its TCI, so the error would otherwise vanish. Also numbers the subtitles like ttconv's <p>s.
    errors: list[Finding] = []
    ordinal = 0
    first_tci: Fraction | None = None
    for blk in range(len(body) // 128):
        tti = _TTI.unpack(body[blk * 128 : (blk + 1) * 128])
        sgn, sn, ebn, cs = tti[0:4]
        if ebn != 0xFF:
            continue  # user data (0xF0-0xFE) and extension blocks: the subtitle's last block (0xFF) has the timing
        if cs in (0, 1):
            ordinal += 1
        tci_raw, tco_raw = tti[4:8], tti[8:12]
        tci, tco = tc(*tci_raw), tc(*tco_raw)
        label = f"subtitle SN {sn}, TTI block {blk + 1}"
        fmt_tc = lambda t: "{:02d}:{:02d}:{:02d}:{:02d}".format(*t)  # noqa: E731
        if tci is None or tco is None:
            bad = fmt_tc(tci_raw) if tci is None else fmt_tc(tco_raw)
            errors.append(_error("timing", file, f"{label}: impossible timecode {bad} at {fps} fps", ordinal))
            continue
        if tco <= tci:
            detail = f"{label}: time out {fmt_tc(tco_raw)} is not after time in {fmt_tc(tci_raw)}"
            errors.append(_error("timing", file, detail, ordinal))
            continue
        if first_tci is None:
            first_tci = tci
    if errors:
        raise CaptionError(errors)

    # Broadcast STL often starts the programme at 10:00:00:00 (GSI TCP); subtitles are then relative to it.
    config = None
    tcp_match = re.fullmatch(rb"(\d{2})(\d{2})(\d{2})(\d{2})", tcp)
    if tcp_match:
        start = tc(*(int(x) for x in tcp_match.groups()))
        if start and first_tci is not None and first_tci >= start:
            config = STLReaderConfiguration(program_start_tc="TCP")
            detail = f"subtitle times taken relative to the programme start (GSI TCP {tcp.decode()})"
            warnings.append(_warning("parse", file, detail))

    with _ttconv_log() as records:
        try:
            doc = stl_reader.to_model(io.BytesIO(data), config)
        except Exception as e:
            raise CaptionError(
                [_error("parse", file, f"ttconv could not read the EBU-STL: {type(e).__name__}: {e}")]
            ) from e
    cues, _ = _cues_from_model(_model_cues(doc), file, None, lambda mc: f"subtitle {mc.ordinal}: ")
    return cues, warnings + _log_warnings(records, file)
