"""A content-aware ladder: a quick complexity probe of the source, and each rung's bitrate from it.

Opt-in per stream (spec `ladder_mode: content_aware`, `target_vmaf`); the fixed ladder stays the default.

The probe encodes a few short windows of the source, spread over the title, once per rung, at a fixed CRF with the
ladder's own encoder settings and picture chain (mediaflow.ladder.transcode_argv's: bwdif when interlaced, fps,
bicubic scale, square pixels, 4:2:0, x264 at the ladder's preset and GOP), and reads the bits each took. At a fixed
CRF, x264 spends what the picture needs: flat, slow pictures take few bits, grain and motion take many. The bits
are turned into the bitrate that reaches the stream's VMAF target by a relation calibrated with real VMAF
measurements (CALIBRATION, docs/performance.md "Content-aware ladder"), then held between a floor (MIN_BPP,
MIN_KBPS) and the spec's own rung bitrate: a content-aware rung never gets more bits than the fixed ladder's.
A rung whose bitrate is not meaningfully above the next kept rung down (less than MIN_STEP times it) is dropped:
a player gains nothing from two rungs that cost the same.

Building the probe's argv is a pure function; running it is the caller's `run_ffmpeg` (as flow.transcode runs the
ladder), and the bits are the sizes of the raw H.264 files it writes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from mediaflow import graphs, ladder
from mediaflow.ladder import Rendition
from mediaflow.spec import CONTENT_AWARE

PROBE_CRF = 24
WINDOW_S = 3.0  # one window: a keyframe then P/B frames, as the ladder's GOPs
WINDOW_EVERY_S = 60.0  # one window per started minute (5 % of a 60-s title, 9.8 % of a 61-s one, 0.4 % of 98 min)
MAX_WINDOWS = 8  # ... at most this many (a 98-minute title: 8 windows, 24 s probed)
MIN_STEP = 1.25  # a rung must need >= 25 % more bits than the kept rung below it, else it is a near-duplicate
MIN_BPP = 0.012  # floor: bits per pixel per frame (1080p25: 622 kb/s, 360p25: 69 kb/s) ...
MIN_KBPS = 150  # ... and never below this
CAP_OVER = 2.0  # the probe's rate cap: this many times the probe figure that already means "the fixed bitrate"


@dataclass(frozen=True)
class Calibration:
    """needed_bpp = exp(a) * probe_bpp ** b for one VMAF target: probe_bpp is bits per pixel per frame at PROBE_CRF
    (the probe's figure), needed_bpp what the ladder's encode (ABR under VBV) needs to reach the target."""

    vmaf: float
    a: float
    b: float


# fitted on measured points (docs/performance.md "Content-aware ladder"): 4 pictures (testsrc2; testsrc2 under light
# and heavy grain; mandelbrot) x 4 rung heights, 3-s windows encoded at CRF 19/24/29/34 as the probe does and scored
# with VMAF (vmaf_v0.6.1) against the source scaled the same way; for each target, the bitrate reaching it
# (log-interpolated between the CRFs around it) fitted against the CRF-24 bits by least squares in log-log.
# rms of the fit (natural log): 85: 0.66, 90: 0.53, 93: 0.18, 95: 0.21, 97: 0.54
CALIBRATION = (
    Calibration(85.0, -1.027, 0.970),
    Calibration(90.0, -0.415, 1.067),
    Calibration(93.0, 0.171, 1.157),
    Calibration(95.0, 0.510, 1.124),
    Calibration(97.0, 0.943, 1.071),
)
# the ladder's encode (ABR under VBV: maxrate 1.1x, bufsize 2x) needs more bits than CRF for the same VMAF: a fitted
# bitrate gave VMAF 91.8 instead of 93 on the 480p rung of the easy bench sample; 1.2x is what closes that gap
ABR_MARGIN = 1.2


def windows(duration_s: float) -> list[tuple[float, float]]:
    """(start, length) of each probe window: one per WINDOW_EVERY_S of the title (at most MAX_WINDOWS), each
    WINDOW_S long and centred in its equal share of the title, so the windows see its beginning, middle and end.
    A title shorter than a window is probed whole."""
    if duration_s <= WINDOW_S:
        return [(0.0, round(max(duration_s, 0.04), 3))]
    n = max(1, min(MAX_WINDOWS, math.ceil(duration_s / WINDOW_EVERY_S)))
    share = duration_s / n
    return [(round(min(max(share * (i + 0.5) - WINDOW_S / 2, 0.0), duration_s - WINDOW_S), 3), WINDOW_S)
            for i in range(n)]  # fmt: skip


def probe_argv(src: str | Path, out_dir: str | Path, renditions: list[Rendition], *, start: float, length: float,
               fps: float, interlaced: bool, preset: str = "veryfast", caps: dict[str, int] | None = None) -> list[str]:  # fmt: skip
    """One window of the source, every rung encoded at PROBE_CRF into <out_dir>/<rung>.h264 (raw H.264: its size is
    the bits). The ladder's chain and encoder settings (transcode_argv), one decode split once per rung."""
    rate = ladder.output_fps(fps)
    video = graphs.source(src, ss=f"{start:.3f}", t=f"{length:.3f}")["v:0"]
    if interlaced:
        video = video.filter("bwdif", mode="send_frame", deint="all")
    split = video.filter("fps", ladder.fps_expr(rate)).filter_multi_output("split")
    gop = str(max(1, round(rate * ladder.SEGMENT_S)))
    outputs = []
    for i, r in enumerate(renditions):
        rung = (
            split[i].filter("scale", r.width, r.height, flags="bicubic").filter("setsar", 1).filter("format", "yuv420p")
        )
        outputs.append(rung.output(str(Path(out_dir) / f"{r.name}.h264"), **{
            "an": None, "c:v": "libx264", "preset": preset, "profile:v": "high", "crf": str(PROBE_CRF),
            "x264-params": "sliced-threads=1", "g": gop, "keyint_min": gop, "sc_threshold": "0", "format": "h264",
            **({"maxrate": f"{caps[r.name]}k", "bufsize": f"{caps[r.name]}k"} if caps else {})}))  # fmt: skip
    return graphs.command(*outputs, global_args=(*graphs.QUIET, "-y"))


def _calibration(target_vmaf: float) -> tuple[float, float]:
    """(a, b) for a target, linear between the two calibrated targets around it."""
    points = sorted(CALIBRATION, key=lambda c: c.vmaf)
    t = min(max(target_vmaf, points[0].vmaf), points[-1].vmaf)
    for lo, hi in zip(points, points[1:], strict=False):
        if lo.vmaf <= t <= hi.vmaf:
            w = (t - lo.vmaf) / (hi.vmaf - lo.vmaf) if hi.vmaf > lo.vmaf else 0.0
            return lo.a + w * (hi.a - lo.a), lo.b + w * (hi.b - lo.b)
    return points[0].a, points[0].b


def _bpp(kbps: float, r: Rendition, fps: float) -> float:
    return kbps * 1000.0 / (r.width * r.height * ladder.output_fps(fps))


def needed_kbps(probe_kbps: float, r: Rendition, *, fps: float, target_vmaf: float) -> float:
    """The bitrate the ladder's encode of rung `r` needs to reach `target_vmaf`, from the probe's kb/s at PROBE_CRF."""
    a, b = _calibration(target_vmaf)
    x = max(_bpp(probe_kbps, r, fps), 1e-6)
    return math.exp(a) * x**b * ABR_MARGIN * r.width * r.height * ladder.output_fps(fps) / 1000.0


def probe_cap_kbps(r: Rendition, *, fps: float, target_vmaf: float) -> int:
    """The probe's rate cap for rung `r`: CAP_OVER times the probe figure at which the target needs the fixed
    rung's whole bitrate. Past it the rung gets the fixed bitrate whatever the picture, so x264 need not spend
    (and entropy-code) the 50 Mb/s heavy grain takes at CRF 24."""
    a, b = _calibration(target_vmaf)
    px = r.width * r.height * ladder.output_fps(fps)
    at_fixed = (r.video_kbps * 1000.0 / px / (math.exp(a) * ABR_MARGIN)) ** (1.0 / b) * px / 1000.0
    return int(math.ceil(CAP_OVER * at_fixed))


def floor_kbps(r: Rendition, fps: float) -> int:
    """The least a rung gets, whatever the probe says (a probe can land on a quiet stretch)."""
    return max(MIN_KBPS, round(MIN_BPP * r.width * r.height * ladder.output_fps(fps) / 1000.0))


@dataclass(frozen=True)
class RungChoice:
    """One rung's figures: the fixed ladder's bitrate, the probe's kb/s at PROBE_CRF per window, the bitrate the
    target needs, the one chosen (needed, held between the floor and the fixed bitrate), and whether it is kept."""

    rung: str
    width: int
    height: int
    fixed_kbps: int
    probe_kbps: list[int]
    needed_kbps: int
    chosen_kbps: int
    kept: bool
    why: str


def choose(renditions: list[Rendition], probe_kbps: dict[str, list[float]], *, fps: float,
           target_vmaf: float) -> list[RungChoice]:  # fmt: skip
    """Each rung's bitrate from the probe (the hardest window decides: the ladder's VBV lets a rung borrow little),
    then the near-duplicates dropped from the bottom up. The top rung is always kept (the title's full picture):
    when it is too close to the kept rung below, that one goes instead."""
    picks = []
    for r in renditions:
        seen = probe_kbps[r.name]
        need = needed_kbps(max(seen), r, fps=fps, target_vmaf=target_vmaf)
        low = floor_kbps(r, fps)
        chosen = int(round(min(max(need, low), r.video_kbps)))
        why = ("the fixed ladder's bitrate (the target needs at least that)" if chosen == r.video_kbps
               else "the floor" if chosen == low else f"reaches VMAF {target_vmaf:g}")  # fmt: skip
        picks.append(RungChoice(r.name, r.width, r.height, r.video_kbps, [round(k) for k in seen], round(need),
                                chosen, True, why))  # fmt: skip
    kept: list[int] = []  # indices, bottom up
    for i in reversed(range(len(picks))):
        if kept and picks[i].chosen_kbps < MIN_STEP * picks[kept[-1]].chosen_kbps:
            if i != 0:
                picks[i] = replace(picks[i], kept=False, why=f"dropped: under {MIN_STEP:g}x {picks[kept[-1]].rung}")
                continue
            while kept and picks[i].chosen_kbps < MIN_STEP * picks[kept[-1]].chosen_kbps:
                below = kept.pop()
                picks[below] = replace(
                    picks[below], kept=False, why=f"dropped: {picks[i].rung} is under {MIN_STEP:g}x it"
                )
        kept.append(i)
    return picks


@dataclass(frozen=True)
class Fitted:
    """The content-aware ladder: the renditions to encode and the figures behind them (for the transcode result)."""

    renditions: list[Rendition]
    choices: list[RungChoice]
    target_vmaf: float
    windows: list[tuple[float, float]]

    def figures(self) -> dict:
        return {"mode": CONTENT_AWARE, "target_vmaf": self.target_vmaf, "probe_crf": PROBE_CRF,
                "windows": [{"start_s": s, "length_s": n} for s, n in self.windows],
                "rungs": [asdict(c) for c in self.choices]}  # fmt: skip


def fit(src: str | Path, renditions: list[Rendition], *, fps: float, interlaced: bool, duration_s: float,
        target_vmaf: float, run_ffmpeg, workdir: str | Path) -> Fitted:  # fmt: skip
    """Probe the source (one ffmpeg per window, through `run_ffmpeg`) and fit the ladder to it: the renditions of
    the kept rungs at their chosen bitrates, highest first."""
    spans = windows(duration_s)
    seen: dict[str, list[float]] = {r.name: [] for r in renditions}
    caps = {r.name: probe_cap_kbps(r, fps=fps, target_vmaf=target_vmaf) for r in renditions}
    for k, (start, length) in enumerate(spans):
        out = Path(workdir) / f"w{k}"
        out.mkdir(parents=True, exist_ok=True)
        run_ffmpeg(probe_argv(src, out, renditions, start=start, length=length, fps=fps, interlaced=interlaced,
                              caps=caps))  # fmt: skip
        for r in renditions:
            seen[r.name].append((out / f"{r.name}.h264").stat().st_size * 8 / 1000.0 / length)
    choices = choose(renditions, seen, fps=fps, target_vmaf=target_vmaf)
    fitted = [replace(r, video_kbps=c.chosen_kbps) for r, c in zip(renditions, choices, strict=True) if c.kept]
    return Fitted(fitted, choices, target_vmaf, spans)
