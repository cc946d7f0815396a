"""Loudness compliance (ITU-R BS.1770 / EBU R128) measured with ffmpeg's ebur128 filter.

Integrated loudness (LUFS), loudness range (LU) and true peak (dBTP, 4x oversampled) of one audio stream,
and the check of a measurement against a stream spec's target and ceiling.

Reference points (tested): a 1 kHz sine at -20 dBFS in one mono channel reads -23.0 LUFS; the same sine in
both channels of a stereo signal reads -20.0 LUFS (channel powers add).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from mediaflow.media import MediaError, run_tool

_PREFIX = re.compile(r"^(\[[^\]]*\]\s*)+")
_NUMBER = r"(-?inf|nan|-?\d+(?:\.\d+)?)"
_INTEGRATED = re.compile(r"Integrated loudness:\s*\n\s*I:\s*" + _NUMBER + r"\s*LUFS")
_RANGE = re.compile(r"Loudness range:\s*\n\s*LRA:\s*" + _NUMBER + r"\s*LU\b")
_TRUE_PEAK = re.compile(r"True peak:\s*\n\s*Peak:\s*" + _NUMBER + r"\s*dB(?:FS|TP)")


def measure_argv(path: str | Path, *, stream: str = "a:0") -> list[str]:
    """One decode of `stream` through ebur128 (true peak on); per-frame lines are logged at 'verbose', so at
    the 'info' level only the summary prints."""
    return [
        "ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-loglevel", "info",
        "-i", str(path), "-map", f"0:{stream}",
        "-filter:a", "ebur128=peak=true:framelog=verbose",
        "-f", "null", "-",
    ]  # fmt: skip


def _value(match: re.Match | None) -> float | None:
    if not match:
        return None
    value = float(match.group(1))
    return value if math.isfinite(value) else None


def parse_ebur128(log: str) -> dict:
    """The last ebur128 summary in an ffmpeg log: integrated_lufs, lra_lu, true_peak_dbtp (-inf -> None).

    All three are None when the log holds no summary.
    """
    text = "\n".join(_PREFIX.sub("", line) for line in log.splitlines())
    at = text.rfind("Summary:")
    summary = text[at:] if at >= 0 else ""
    return {
        "integrated_lufs": _value(_INTEGRATED.search(summary)),
        "lra_lu": _value(_RANGE.search(summary)),
        "true_peak_dbtp": _value(_TRUE_PEAK.search(summary)),
    }


def measure(path: str | Path, *, stream: str = "a:0", name: str | None = None) -> dict:
    """Measure one audio stream; MediaError (a ValueError) naming the file when it has no such stream or
    ffmpeg cannot decode it."""
    name = name or Path(path).name
    proc = run_tool(measure_argv(path, stream=stream))
    if proc.returncode != 0:
        if "matches no streams" in proc.stderr:
            raise MediaError(f"{name}: no audio stream {stream!r} to measure loudness on")
        tail = proc.stderr.strip().splitlines()[-1:] or ["no detail"]
        raise MediaError(f"{name}: ffmpeg could not measure loudness: {tail[0][-300:]}")
    if "Summary:" not in proc.stderr:
        raise MediaError(f"{name}: ffmpeg printed no loudness summary (no audio decoded?)")
    return parse_ebur128(proc.stderr)


def gain_to_target_db(measured: dict, *, target_lufs: float) -> float:
    """The linear gain (dB) that brings the measured integrated loudness to the target."""
    if measured.get("integrated_lufs") is None:
        raise ValueError("integrated loudness was not measured (silence?): no gain reaches a target")
    return target_lufs - measured["integrated_lufs"]


def check(measured: dict, *, target_lufs: float, true_peak_dbtp: float, tolerance_lu: float = 1.0, name: str) -> list[str]:
    """Problems with a measurement against a target (+- tolerance) and a true-peak ceiling; each names `name`."""
    problems = []
    integrated = measured.get("integrated_lufs")
    if integrated is None:
        problems.append(
            f"{name}: integrated loudness could not be measured (silent?); target is {target_lufs:g} LUFS"
        )
    elif round(abs(integrated - target_lufs), 6) > tolerance_lu:
        problems.append(
            f"{name}: integrated loudness {integrated:.1f} LUFS is outside {target_lufs:g} +-{tolerance_lu:g} LU"
        )
    peak = measured.get("true_peak_dbtp")
    if peak is not None and round(peak - true_peak_dbtp, 6) > 0:
        problems.append(f"{name}: true peak {peak:.1f} dBTP is above the {true_peak_dbtp:g} dBTP ceiling")
    return problems
