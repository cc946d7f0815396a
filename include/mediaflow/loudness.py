"""Loudness (ITU-R BS.1770 / EBU R128): measure with ffmpeg's ebur128 filter, normalise in passes, check.

Measurement: integrated loudness (LUFS), loudness range (LU) and true peak (dBTP, 4x oversampled) of one audio
stream, read from the ebur128 filter's frame metadata (`metadata=1`, printed by `ametadata` as `key=value` lines
on stdout), never from ffmpeg's log text. ebur128 weights the channels by the stream's layout (5.1: surrounds
+1.5 dB, LFE left out).

Normalisation (the published audio is stereo AAC): the source is measured after the one defined downmix
(DOWNMIX, ITU-R BS.775: centre and surrounds at -3 dB, LFE dropped), then
- `linear`: one gain (`volume`) when the source's true peak plus that gain stays TP_MARGIN_DB under the ceiling;
- `dynamic`: otherwise, loudnorm's dynamic mode given the source's figures (integrated, range, true peak and the
  relative-gate threshold, computed from ebur128's 400 ms blocks), the peak aimed TP_MARGIN_DB under the ceiling;
- `none`: nothing to normalise (digital silence: no gain reaches a target).
The *encoded* rendition is measured after each pass (AAC adds overs; a dynamic pass lands off target) and the
next pass corrects by what was measured, up to MAX_PASSES encodes; which mode and passes were used is recorded.

Reference points (tested): a 1 kHz sine at -20 dBFS in one mono channel reads -23.0 LUFS; the same sine in
both channels of a stereo signal reads -20.0 LUFS (channel powers add).
"""

from __future__ import annotations

import logging
import math
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from mediaflow import ffrun, graphs
from mediaflow.media import MediaError

log = logging.getLogger(__name__)

ABS_GATE_LUFS = -70.0  # BS.1770's absolute gate: ebur128 reports exactly this when nothing is above it
TP_MARGIN_DB = 1.0  # the normaliser aims the true peak this far under the ceiling (AAC overs, decoders differ)
TP_GUARD_DB = 0.5  # an encoded pass whose true peak is within this of the ceiling gets another pass
AIM_LU = 0.5  # an encoded pass this close to the target is kept; further off, the next pass corrects
MAX_PASSES = 4  # encodes per rendition, the first included
TOLERANCE_LU = 1.0  # the check's tolerance around the target (EBU R128: +-1 LU for programmes)
# the defined downmix to the published stereo: channels a layout lacks count as silent (stereo passes through,
# mono goes to both sides at -3 dB, which keeps its loudness); float first, so the sums never clip
DOWNMIX = ("aformat=sample_fmts=fltp,"
           "pan=stereo|FL=FL+0.7071*FC+0.7071*BL+0.7071*SL|FR=FR+0.7071*FC+0.7071*BR+0.7071*SR")  # fmt: skip
# ebur128's measurement as frame metadata, printed on stdout one `key=value` line at a time (direct: unbuffered,
# so lines stay whole next to ffmpeg's -progress output on the same pipe)
METER = "ebur128=peak=true:framelog=verbose:metadata=1,ametadata=mode=print:file=-:direct=1"
_KEY = "lavfi.r128."
FULL_BLOCK = 3  # ebur128's first momentary values come before its 400 ms window is full: not gating blocks


def measure_argv(path: str | Path, *, stream: str = "a:0", chain: str | None = None) -> list[str]:
    """One decode of `stream` (through `chain` first, e.g. DOWNMIX) into ebur128; the figures come on stdout.
    Built with ffmpeg-python (mediaflow.graphs)."""
    audio = graphs.source(path)[stream]
    audio = graphs.apply_chain(audio, f"{chain},{METER}" if chain else METER)
    return graphs.command(graphs.null_output(audio), global_args=graphs.QUIET)


def _db(linear: float | None) -> float | None:
    return round(20 * math.log10(linear), 2) if linear and linear > 0 else None


def parse_metadata(text: str) -> dict | None:
    """The ebur128 figures at the end of the programme from ametadata's `key=value` lines (other lines, such as
    ffmpeg's -progress output, are ignored): integrated_lufs, lra_lu, true_peak_dbtp and threshold_lufs (the
    relative gate, which ebur128 does not export: computed from its momentary values). Integrated loudness and
    threshold are None when nothing was above the -70 LUFS absolute gate (silence), the true peak None for
    digital silence. None when the text holds no ebur128 figures at all (no audio decoded)."""
    last: dict[str, str] = {}
    blocks = []  # momentary loudness every 100 ms: the 400 ms gating blocks of the integrated loudness
    for line in text.splitlines():
        if line.startswith(_KEY):
            key, _, value = line[len(_KEY) :].partition("=")
            last[key] = value.strip()
            if key == "M":
                blocks.append(value)
    if "I" not in last:
        return None

    def number(key: str) -> float | None:
        try:
            value = float(last[key])
        except (KeyError, ValueError):
            return None
        return value if math.isfinite(value) else None

    integrated = number("I")
    return {
        "integrated_lufs": round(integrated, 2) if integrated is not None and integrated > ABS_GATE_LUFS else None,
        "lra_lu": number("LRA"),
        "true_peak_dbtp": _db(number("true_peak")),
        "threshold_lufs": _relative_gate(blocks[FULL_BLOCK:]),
    }


def _relative_gate(blocks: list[str]) -> float | None:
    """BS.1770's relative gate (what loudnorm calls the threshold): 10 LU under the power mean of the blocks above
    the absolute gate. None when no block is above it."""
    powers = []
    for text in blocks:
        try:
            value = float(text)
        except ValueError:
            continue
        if math.isfinite(value) and value > ABS_GATE_LUFS:
            powers.append(10 ** (value / 10))
    return round(10 * math.log10(sum(powers) / len(powers)) - 10, 2) if powers else None


def measure(
    path: str | Path,
    *,
    stream: str = "a:0",
    chain: str | None = None,
    name: str | None = None,
    duration_s: float | None = None,
) -> dict:
    """Measure one audio stream (after `chain`, e.g. DOWNMIX); MediaError (a ValueError) naming the file when it
    has no such stream or ffmpeg cannot decode it."""
    name = name or Path(path).name
    proc = ffrun.run(measure_argv(path, stream=stream, chain=chain), purpose="loudness measurement",
                     timeout=ffrun.budget_s(duration_s))  # fmt: skip
    if proc.returncode != 0:
        if "matches no streams" in proc.stderr:
            raise MediaError(f"{name}: no audio stream {stream!r} to measure loudness on")
        tail = proc.stderr.strip().splitlines()[-1:] or ["no detail"]
        raise MediaError(f"{name}: ffmpeg could not measure loudness: {tail[0][-300:]}")
    measured = parse_metadata(proc.stdout)
    if measured is None:
        raise MediaError(f"{name}: ffmpeg gave no loudness measurement (no audio decoded?)")
    return measured


def gain_to_target_db(measured: dict, *, target_lufs: float) -> float:
    """The linear gain (dB) that brings the measured integrated loudness to the target."""
    if measured.get("integrated_lufs") is None:
        raise ValueError("integrated loudness was not measured (silence?): no gain reaches a target")
    return target_lufs - measured["integrated_lufs"]


# ---------------------------------------------------------------- normalisation


@dataclass(frozen=True)
class Pass:
    """One normalisation pass: `linear` (gain_db through `volume`), `dynamic` (loudnorm aiming peak_dbtp, gain_db
    its offset) or `none`."""

    mode: str
    gain_db: float = 0.0
    peak_dbtp: float | None = None
    lra_lu: float | None = None  # dynamic: loudnorm's range target (the source's own range, 1..50)
    measured: tuple[float, float, float, float] | None = None  # dynamic: the source's I, LRA, TP, threshold


def _dynamic(source: dict | None, *, aim_dbtp: float, gain_db: float = 0.0) -> Pass:
    """loudnorm's dynamic mode given the source's figures (without the threshold, it would squeeze a wide
    programme's range to a few LU)."""
    source = source or {}
    figures = tuple(source.get(k) for k in ("integrated_lufs", "lra_lu", "true_peak_dbtp", "threshold_lufs"))
    measured = figures if None not in figures else None
    lra = min(max(source.get("lra_lu") or 7.0, 1.0), 50.0)
    return Pass("dynamic", round(gain_db, 2), round(max(aim_dbtp, -9.0), 2), round(lra, 1), measured)


def first_pass(source: dict | None, *, target_lufs: float, true_peak_dbtp: float) -> Pass:
    """The pass a source measured after DOWNMIX starts with (None: not measured, e.g. the benchmark: dynamic)."""
    aim = true_peak_dbtp - TP_MARGIN_DB
    if source is None:
        return _dynamic(None, aim_dbtp=aim)
    if source.get("integrated_lufs") is None:
        return Pass("none")
    gain = target_lufs - source["integrated_lufs"]
    peak = source.get("true_peak_dbtp")
    if peak is None or peak + gain <= aim:
        return Pass("linear", round(gain, 2))
    return _dynamic(source, aim_dbtp=aim)


def next_pass(done: Pass, encoded: dict, *, source: dict | None, target_lufs: float,
              true_peak_dbtp: float) -> Pass | None:  # fmt: skip
    """The pass that corrects `done` by what its encoded output measured; None when it landed (within AIM_LU of
    the target, the true peak TP_GUARD_DB under the ceiling) or when no gain can help (silence)."""
    loud, peak = encoded.get("integrated_lufs"), encoded.get("true_peak_dbtp")
    if done.mode == "none" or loud is None:
        return None
    off = target_lufs - loud
    peak_ok = peak is None or peak <= true_peak_dbtp - TP_GUARD_DB
    if abs(off) <= AIM_LU and peak_ok:
        return None
    aim = true_peak_dbtp - TP_MARGIN_DB
    if done.mode == "linear":
        if peak is None or peak + off <= aim:
            return Pass("linear", round(done.gain_db + off, 2))
        return _dynamic(source, aim_dbtp=aim, gain_db=0.0)
    over = 0.0 if peak_ok else peak - aim  # the encode went over by this much: aim lower
    return _dynamic(source, aim_dbtp=(done.peak_dbtp or aim) - over, gain_db=done.gain_db + off)


def audio_filter(p: Pass, *, target_lufs: float) -> str:
    """The filter chain of a pass: DOWNMIX, the normaliser, 48 kHz (loudnorm works at 192 kHz inside)."""
    if p.mode == "linear":
        normaliser = f"volume={p.gain_db:.2f}dB"
    elif p.mode == "dynamic":
        normaliser = f"loudnorm=I={target_lufs:g}:TP={p.peak_dbtp:g}:LRA={p.lra_lu:g}:offset={p.gain_db:.2f}"
        if p.measured:
            i, lra, tp, thresh = p.measured
            normaliser += (f":measured_I={max(i, -99):.2f}:measured_LRA={min(lra, 99):.2f}"
                           f":measured_TP={min(max(tp, -99), 99):.2f}:measured_thresh={max(thresh, -99):.2f}")  # fmt: skip
        normaliser += ":linear=false"
    else:
        normaliser = "anull"
    return f"{DOWNMIX},{normaliser},aresample=48000"


def normalise(first: Pass, *, source: dict | None, target_lufs: float, true_peak_dbtp: float,
              encode: Callable[[Pass], None], measure_encoded: Callable[[], dict],
              first_encoded: bool = False) -> dict:  # fmt: skip
    """Encode with `first`, measure the encoded output, correct, up to MAX_PASSES encodes (the first one already
    done by the caller when first_encoded). Returns the record of what was done: mode (of the kept pass),
    passes [{mode, gain_db, peak_dbtp, lra_lu, output}], source (as measured after DOWNMIX), output (the encoded
    rendition's figures), reason (why it could not be brought into spec, or None)."""
    p, passes = first, []
    while True:
        if passes or not first_encoded:
            encode(p)
        encoded = measure_encoded()
        passes.append({**asdict(p), "output": encoded})
        nxt = next_pass(p, encoded, source=source, target_lufs=target_lufs, true_peak_dbtp=true_peak_dbtp)
        if nxt is None or len(passes) >= MAX_PASSES:
            break
        p = nxt
    problems = check(encoded, target_lufs=target_lufs, true_peak_dbtp=true_peak_dbtp, name="normalised audio")
    reason = None
    if p.mode == "none":
        reason = (f"source audio is digital silence (nothing above the {ABS_GATE_LUFS:g} LUFS absolute gate): "
                  f"no gain reaches {target_lufs:g} LUFS")  # fmt: skip
    elif problems:
        reason = f"not in spec after {len(passes)} passes: " + "; ".join(problems)
    return {"mode": p.mode, "target_lufs": target_lufs, "true_peak_dbtp": true_peak_dbtp,
            "aim_true_peak_dbtp": true_peak_dbtp - TP_MARGIN_DB, "source": source, "output": encoded,
            "passes": passes, "reason": reason}  # fmt: skip


def normalise_rendition(out_dir: Path, *, first: Pass, source: dict | None, target_lufs: float,
                        true_peak_dbtp: float, run_ffmpeg: Callable[[list[str]], None],
                        make_argv: Callable[[Path, str], list[str]], first_encoded: bool = False) -> dict:  # fmt: skip
    """normalise() for an HLS audio rendition in out_dir: each pass encodes it afresh with make_argv(out_dir, chain)
    (its earlier segments removed first), then its playlist is measured. Returns normalise's record."""

    def encode(p: Pass) -> None:
        shutil.rmtree(out_dir, ignore_errors=True)  # no segment of an earlier pass may stay behind
        out_dir.mkdir(parents=True)
        run_ffmpeg(make_argv(out_dir, audio_filter(p, target_lufs=target_lufs)))

    def measure_encoded() -> dict:
        return measure(out_dir / "index.m3u8", name=f"{out_dir.name}/index.m3u8")

    record = normalise(first, source=source, target_lufs=target_lufs, true_peak_dbtp=true_peak_dbtp, encode=encode,
                       measure_encoded=measure_encoded, first_encoded=first_encoded)  # fmt: skip
    log.info("%s: loudness %s in %d pass(es): source %s -> %s%s", out_dir.name, record["mode"], len(record["passes"]),
             source, record["output"], f" ({record['reason']})" if record["reason"] else "")  # fmt: skip
    return record


# ---------------------------------------------------------------- the check


def _figure(value: float, inside: Callable[[float], bool]) -> str:
    """One decimal, or two when one would round a figure that fails onto the limit's side."""
    shown = f"{value:.1f}"
    return f"{value:.2f}" if inside(float(shown)) else shown


def check(measured: dict, *, target_lufs: float, true_peak_dbtp: float, tolerance_lu: float = TOLERANCE_LU,
          name: str) -> list[str]:  # fmt: skip
    """Problems with a measurement against a target (+- tolerance) and a true-peak ceiling; each names `name`,
    the check, the figure and the limit."""
    problems = []
    integrated = measured.get("integrated_lufs")
    within = lambda x: round(abs(x - target_lufs), 6) <= tolerance_lu  # noqa: E731
    if integrated is None:
        problems.append(f"{name}: loudness not measurable: nothing above the {ABS_GATE_LUFS:g} LUFS absolute gate "
                        f"(digital silence), target {target_lufs:g} ± {tolerance_lu:g} LU")  # fmt: skip
    elif not within(integrated):
        problems.append(
            f"{name}: loudness {_figure(integrated, within)} LUFS, target {target_lufs:g} ± {tolerance_lu:g} LU"
        )
    peak = measured.get("true_peak_dbtp")
    below = lambda x: round(x - true_peak_dbtp, 6) <= 0  # noqa: E731
    if peak is not None and not below(peak):
        problems.append(f"{name}: true peak {_figure(peak, below)} dBTP above the {true_peak_dbtp:g} dBTP ceiling")
    return problems
