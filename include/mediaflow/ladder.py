"""Adaptive-bitrate ladder: rung selection, the single-decode ffmpeg graph, and the HLS master playlist.

One ffmpeg process decodes the source once and encodes several rungs (filter_complex split): decoding a
mezzanine is a share of the work, so doing it once per group of rungs instead of once per rung saves it.
The same graph writes the default poster and picks the poster candidates (scene cuts) for A/B tests.
ffmpeg 5.1 and 6.0 run every encoder of a command in its one main thread, so on several cores the ladder is
split over one such process per core (plan_groups, group_argvs: rungs balanced by their work, the audio and the
posters in one of them); the groups write the same files with the same bytes as the one command.
Building the argv is a pure function (the graph built with ffmpeg-python, mediaflow.graphs); running it is
mediaflow.ffrun's job.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from mediaflow import graphs
from mediaflow import loudness as loudness_passes
from mediaflow.spec import Loudness, Rung

SEGMENT_S = 4
AUDIO_KBPS = 128
AUDIO_DIR = "audio"
MASTER = "master.m3u8"
POSTER = "poster.jpg"
MAX_FPS = 60
# Poster candidates for A/B tests: posters/p1.jpg..p3.jpg in time order, each the first frame of a shot
# (ffmpeg's scene score), spaced over the title; frames at even spacing fill in when a title has fewer cuts.
POSTERS_DIR = "posters"
POSTER_CANDIDATES = 3
SCENE_THRESHOLD = 0.3  # scene score (0..1, the frame's difference from the one before) that starts a shot
SCENE_SKIP_S = 1.0  # no candidate from the first second: a cut onto the first picture, a fade in
# the graph's scene picks in POSTERS_DIR, named by their frame number on the output grid (-frame_pts), so a
# pick's time is in its name and no path has to go into the filtergraph; renamed to p<i> once all are known
SCENE_FRAME = "scene_%d.jpg"
SEEK_PREROLL_S = 5.0  # a spacing candidate's input seek lands this far before its frame (a GOP or more)
# x264's threading: sliced threads give the same bytes from one run to the next more often than frame threads
# (which under VBV never do); docs/performance.md has the speed of each
X264_PARAMS = "sliced-threads=1"


@dataclass(frozen=True)
class Rendition:
    """One video rung as encoded: the spec's rung fitted to the source's shape."""

    name: str  # folder name, e.g. v720
    width: int
    height: int
    video_kbps: int


def _even(x: float, cap: int) -> int:
    """Nearest even size, never above cap rounded down to even (H.264 4:2:0 needs even sizes; no upscaling)."""
    return max(2, min(int(round(x / 2.0)) * 2, cap // 2 * 2))


def select_renditions(ladder: tuple[Rung, ...] | list[Rung], width: int, height: int) -> list[Rendition]:
    """The spec's ladder minus rungs above the source, each scaled keeping the aspect ratio.

    A rung's height is the picture's short side, so a portrait 1080x1920 source gets a 1080x1920 top rung,
    not a 608x1080 one. Never upscales: when every rung is above the source, one rung at the source's own
    size with the lowest rung's bitrate.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"source has no picture size ({width}x{height})")
    portrait = height > width
    short, long_ = (width, height) if portrait else (height, width)
    fitting = [r for r in sorted(ladder, key=lambda r: -r.height) if r.height <= short]
    if not fitting:
        lowest = min(ladder, key=lambda r: r.height)
        fitting = [Rung(_even(short, short), lowest.video_kbps)]
    out = []
    for rung in fitting:
        short_side, long_side = rung.height, _even(long_ * rung.height / short, long_)
        w, h = (short_side, long_side) if portrait else (long_side, short_side)
        out.append(Rendition(f"v{rung.height}", w, h, rung.video_kbps))
    return out


def output_fps(fps: float) -> float:
    """Constant output frame rate: the source's average rate, capped, rounded to 3 decimals."""
    if not fps or fps <= 0:
        return 25.0
    return round(min(fps, MAX_FPS), 3)


NTSC_RATES = {23.976: "24000/1001", 29.97: "30000/1001", 59.94: "60000/1001"}


def fps_expr(fps: float) -> str:
    """The exact rate for ffmpeg's fps filter: NTSC rates as their true fractions, so no frame is ever dropped."""
    for approx, exact in NTSC_RATES.items():
        if abs(fps - approx) < 0.01:
            return exact
    return f"{fps:g}"


def transcode_argv(
    src: str | Path,
    out_dir: str | Path,
    renditions: list[Rendition],
    *,
    fps: float | None,
    interlaced: bool,
    has_audio: bool,
    loudness: Loudness,
    duration_s: float,
    preset: str = "veryfast",
    poster: bool = True,
    audio_filter: str | None = None,
    top: Rendition | None = None,
    x264_params: str = X264_PARAMS,
) -> list[str]:
    """The single ffmpeg command: HLS per video rung, one stereo AAC audio rendition, a poster frame and up to
    POSTER_CANDIDATES scene-cut frames into POSTERS_DIR (SCENE_FRAME; see poster_plan) unless
    poster=False: the benchmark's one-command-per-rung baseline makes them once, not once per rung.
    `audio_filter` is the audio's first normalisation pass (see _audio_chain); audio_argv makes the next ones.
    `top`: the ladder's top rung, the posters' size (default renditions[0]; a group without it passes it, see
    group_argvs); with renditions=[] and poster=True, the posters alone. `x264_params`: the encoders' threading.
    The graph is built with ffmpeg-python (mediaflow.graphs): one decode, split once per branch."""
    out = Path(out_dir)
    inp = graphs.source(src)
    outputs = []
    top = top or (renditions[0] if renditions else None)
    poster = poster and top is not None
    if renditions or poster:
        rate = output_fps(fps or 0)
        video = inp["v:0"]
        if interlaced:
            video = video.filter("bwdif", mode="send_frame", deint="all")
        video = video.filter("fps", fps_expr(rate))  # constant frame rate, whatever the source did
        # split outputs: one per rung, then the poster and the poster candidates
        split = video.filter_multi_output("split")
        gop = str(max(1, round(rate * SEGMENT_S)))
        for i, r in enumerate(renditions):
            rung = split[i].filter("scale", r.width, r.height, flags="bicubic").filter("setsar", 1)
            rdir = out / r.name
            options = {
                "an": None, "c:v": "libx264", "preset": preset, "profile:v": "high",
                # x264's frame threads under VBV give different bytes run to run; sliced threads are repeatable,
                # so publishing again gives the same objects (measured: ~30-40% slower on 2 cores)
                "x264-params": x264_params,
                "b:v": f"{r.video_kbps}k", "maxrate": f"{int(r.video_kbps * 1.1)}k", "bufsize": f"{r.video_kbps * 2}k",
                "g": gop, "keyint_min": gop, "sc_threshold": "0",
                "map_metadata": "-1", "fflags": "+bitexact", "flags:v": "+bitexact",
                **_hls(rdir),
            }  # fmt: skip
            outputs.append(rung.filter("format", "yuv420p").output(str(rdir / "index.m3u8"), **options))
        if poster:
            poster_t = round(min(max(duration_s * 0.1, 0.0), 10.0), 3)
            k = len(renditions)
            still = _poster_sized(split[k].filter("select", f"gte(t,{poster_t})*lt(selected_n,1)"), top)
            outputs.append(still.output(str(out / POSTER), **{"frames:v": "1", "q:v": "3", "update": "1"}))
            # vfr: each picked frame once (an image muxer is cfr by default: it would repeat frames to fill the gaps)
            picks = _poster_sized(split[k + 1].filter("select", scene_expr(duration_s)), top)
            outputs.append(picks.output(str(out / POSTERS_DIR / SCENE_FRAME), **{
                "fps_mode": "vfr", "frames:v": str(POSTER_CANDIDATES), "q:v": "3", "flags:v": "+bitexact",
                "frame_pts": "1"}))  # fmt: skip
    if has_audio:
        outputs.append(_audio_hls_output(graphs.apply_chain(inp["a:0"], _audio_chain(loudness, audio_filter)),
                                         out / AUDIO_DIR))  # fmt: skip
    return graphs.command(*outputs)


@dataclass(frozen=True)
class Group:
    """One ffmpeg process of the ladder (group_argvs): its rungs (one decode for all of them), whether it makes the
    posters (the default poster and the scene picks) and the audio rendition."""

    renditions: tuple[Rendition, ...]
    posters: bool
    audio: bool


# The work of each part of the graph, in pixels encoded per frame, for balancing the groups (plan_groups). Measured
# (CPU seconds, ffmpeg 5.1, x264 veryfast, a 20-s 1080p25 source; docs/performance.md): a rung costs a fixed part
# (its scaler, x264's per-frame work) plus a part that follows its size: 1080p 11.7 s, 720p 6.2 s, 480p 4.3 s,
# 360p 2.9 s = about 1.8 s + 4.8 s per million pixels; the audio rendition (loudness filter, AAC) 1.1 s and the
# posters (scene score of every frame, a few stills) 0.4 s, which do not grow with the rungs.
RUNG_FIXED_PX = 380_000
AUDIO_PX = 230_000
POSTERS_PX = 80_000


def rung_cost(r: Rendition) -> int:
    """A rung's share of the encoding work, in pixels per frame (every rung has the same frame rate)."""
    return r.width * r.height + RUNG_FIXED_PX


# long: a greedy split with its placement rules spelled out; short steps, one idea each
def plan_groups(renditions: list[Rendition], *, has_audio: bool, poster: bool = True, groups: int = 1) -> list[Group]:
    """The ladder's work split over at most `groups` ffmpeg processes, balanced by the work of each part.

    Every rung is in exactly one group, the posters (when there are rungs and `poster`) and the audio in exactly
    one. The parts go largest first, each to the group with the least work so far (LPT: within 4/3 of the best
    split; rung_cost, AUDIO_PX, POSTERS_PX). Rungs first fill the groups (no group decodes the source for no rung);
    the posters need a decoded picture, so they go to the lightest group with rungs. The audio needs no video
    decode: with fewer rungs than groups it gets a process of its own (a one-rung title: the loudness filter and
    AAC beside the video instead of in its main thread). Groups are listed in ladder order (the top rung's first);
    groups=1 is the single command of before.
    """
    if groups < 1:
        raise ValueError(f"groups must be at least 1, got {groups}")
    n_video = min(groups, len(renditions))
    rungs: list[list[Rendition]] = [[] for _ in range(n_video)]
    load = [0] * n_video
    extras = {"posters": POSTERS_PX if poster and renditions else 0, "audio": AUDIO_PX if has_audio else 0}
    own_audio = has_audio and n_video < groups
    parts = [(rung_cost(r), k, r) for k, r in enumerate(renditions)]
    parts += [(cost, len(renditions) + j, name) for j, (name, cost) in enumerate(extras.items())
              if cost and not (name == "audio" and own_audio)]  # fmt: skip
    placed: dict[str, int] = {}
    for cost, _, part in sorted(parts, key=lambda p: (-p[0], p[1])):
        i = min(range(n_video), key=lambda j: (load[j], j))
        if isinstance(part, Rendition):
            rungs[i].append(part)
        else:
            placed[part] = i
        load[i] += cost
    order = {r.name: k for k, r in enumerate(renditions)}
    ranked = sorted(range(n_video), key=lambda i: min(order[r.name] for r in rungs[i]))
    out = [Group(tuple(sorted(rungs[i], key=lambda r: order[r.name])), posters=placed.get("posters") == i,
                 audio=placed.get("audio") == i) for i in ranked]  # fmt: skip
    if has_audio and (own_audio or not out):
        out.append(Group((), posters=False, audio=True))
    return out


def group_argvs(src: str | Path, out_dir: str | Path, renditions: list[Rendition], *, groups: int, has_audio: bool,
                poster: bool = True, **kwargs) -> list[tuple[Group, list[str]]]:  # fmt: skip
    """The ladder as one ffmpeg per group (plan_groups), each decoding the source once for its own rungs: the same
    files as transcode_argv with every rung, each rung with the same options. `kwargs`: transcode_argv's."""
    top = renditions[0] if renditions else None
    plan = plan_groups(renditions, has_audio=has_audio, poster=poster, groups=groups)
    return [(g, transcode_argv(src, out_dir, list(g.renditions), has_audio=g.audio, poster=g.posters, top=top,
                               **kwargs)) for g in plan]  # fmt: skip


def _hls(rdir: Path) -> dict[str, str]:
    """An HLS output's muxer options: VOD playlist, SEGMENT_S segments, each starting on a keyframe."""
    return {"format": "hls", "hls_time": str(SEGMENT_S), "hls_playlist_type": "vod",
            "hls_flags": "independent_segments", "hls_segment_filename": str(rdir / "seg_%05d.ts")}  # fmt: skip


def _poster_sized(stream, top: Rendition):
    return stream.filter("scale", top.width, top.height).filter("setsar", 1)


def scene_min_gap_s(duration_s: float) -> float:
    """Shortest time between two scene picks: a quarter of a title (for 3 candidates), so they never cluster."""
    return round(max(duration_s, 0.0) / (POSTER_CANDIDATES + 1), 3)


def scene_expr(duration_s: float) -> str:
    """The select expression picking the poster candidates on their split branch: the first frame of a shot (scene
    score above SCENE_THRESHOLD) after SCENE_SKIP_S, at least scene_min_gap_s after the previous pick, at most
    POSTER_CANDIDATES of them (selected_n: the pictures after the last pick are never scaled). Plain: ffmpeg-python
    escapes its commas for the filtergraph."""
    return (f"gte(t,{SCENE_SKIP_S:g})*lt(selected_n,{POSTER_CANDIDATES})*gt(scene,{SCENE_THRESHOLD:g})"
            f"*(isnan(prev_selected_t)+gte(t-prev_selected_t,{scene_min_gap_s(duration_s):g}))")  # fmt: skip


_PICK = re.compile(r"^scene_(\d+)\.jpg$")


def scene_frames(names) -> list[int]:
    """The frame numbers (on the output grid) of the graph's scene picks, in order, from their file names."""
    return sorted(int(m.group(1)) for m in map(_PICK.match, names) if m)


def frame_time(frame: int, fps: float) -> float:
    """A frame's time (s) on the output grid: the fps filter's time base is 1/rate, so this is exact."""
    return round(float(frame / Fraction(fps_expr(output_fps(fps)))), 3)


def poster_plan(scenes: list[float], *, duration_s: float, fps: float) -> list[dict]:
    """The POSTER_CANDIDATES candidates in time order: [{variant, file, time_s, picked_by, scene}], where scene
    is the 1-based index of a scene pick in `scenes` (None for the rest). Missing candidates are frames at
    even spacing (1/4, 2/4, 3/4 of the title, on the output frame grid), each one the free spot farthest from
    the times already taken."""
    rate = Fraction(fps_expr(output_fps(fps)))
    picks = [(t, "scene", i) for i, t in enumerate(scenes[:POSTER_CANDIDATES], 1)]
    last = max(0, math.ceil(max(duration_s, 0.0) * rate) - 1)  # the last frame's number
    spots = [min(last, round(duration_s * rate * j / (POSTER_CANDIDATES + 1))) for j in range(1, POSTER_CANDIDATES + 1)]
    spots = [round(float(f / rate), 3) for f in spots]
    while len(picks) < POSTER_CANDIDATES:
        taken = [t for t, _, _ in picks]
        best = max(spots, key=lambda t: (min((abs(t - x) for x in taken), default=math.inf), -t))
        spots.remove(best)
        picks.append((best, "spacing", None))
    picks.sort(key=lambda p: (p[0], p[1]))
    return [{"variant": f"p{i}", "file": f"{POSTERS_DIR}/p{i}.jpg", "time_s": t, "picked_by": by, "scene": n}
            for i, (t, by, n) in enumerate(picks, 1)]  # fmt: skip


def poster_frame_argv(
    src: str | Path, dst: str | Path, top: Rendition, *, time_s: float, fps: float, interlaced: bool
) -> list[str]:
    """One frame as a poster candidate, as the graph makes them (deinterlaced, top rung's size, square pixels):
    the first picture from half a frame before time_s on, so that frame. A fast input seek to SEEK_PREROLL_S
    before it, then decoding up to it: demuxers without an index (MPEG-TS) land on the keyframe after the
    asked time, which would give a picture up to a GOP late."""
    rate = Fraction(fps_expr(output_fps(fps)))
    target = max(0.0, time_s - float(1 / rate) / 2)
    preroll = min(target, SEEK_PREROLL_S)
    video = graphs.source(src, ss=f"{target - preroll:.6f}")["v:0"]
    if interlaced:
        video = video.filter("bwdif", mode="send_frame", deint="all")
    frame = _poster_sized(video, top).output(str(dst), **{
        "ss": f"{preroll:.6f}", "frames:v": "1", "q:v": "3", "flags:v": "+bitexact", "update": "1"})  # fmt: skip
    return graphs.command(frame)


def _audio_chain(loudness: Loudness, audio_filter: str | None) -> str:
    """The audio rendition's filter chain: `audio_filter` (a normalisation pass, mediaflow.loudness.audio_filter)
    or, without one, a dynamic pass at the spec's target (nothing measured first: the benchmark)."""
    if audio_filter:
        return audio_filter
    first = loudness_passes.first_pass(None, target_lufs=loudness.target_lufs, true_peak_dbtp=loudness.true_peak_dbtp)
    return loudness_passes.audio_filter(first, target_lufs=loudness.target_lufs)


def _audio_hls_output(stream, out_dir: Path, **options):
    """The stereo AAC HLS audio rendition of `stream` in out_dir (`options`: more output options)."""
    return stream.output(str(out_dir / "index.m3u8"), **{
        "vn": None, "c:a": "aac", "b:a": f"{AUDIO_KBPS}k", "ac": "2",
        "map_metadata": "-1", "fflags": "+bitexact", "flags:a": "+bitexact", **_hls(out_dir), **options})  # fmt: skip


def locale_audio_argv(src: str | Path, out_dir: str | Path, *, loudness: Loudness, duration_s: float,
                      audio_filter: str | None = None) -> list[str]:  # fmt: skip
    """An extra language track as its own HLS audio rendition, aligned to the video: padded with silence or cut
    to the programme duration so players switching language never run off the end."""
    audio = graphs.apply_chain(graphs.source(src)["a:0"], _audio_chain(loudness, audio_filter)).filter("apad")
    return graphs.command(_audio_hls_output(audio, Path(out_dir), t=f"{duration_s:.3f}"))


def audio_argv(src: str | Path, out_dir: str | Path, *, audio_filter: str) -> list[str]:
    """The programme's audio rendition alone, as transcode_argv makes it, with another normalisation pass:
    what the loudness passes after the first run (the first one is part of the single graph)."""
    audio = graphs.apply_chain(graphs.source(src)["a:0"], audio_filter)
    return graphs.command(_audio_hls_output(audio, Path(out_dir)))


_EXTINF = re.compile(r"^#EXTINF:([\d.]+)", re.M)


def playlist_segments(playlist: str) -> list[tuple[float, str]]:
    """(duration, uri) of each segment of a media playlist."""
    out, pending = [], None
    for line in playlist.splitlines():
        line = line.strip()
        m = _EXTINF.match(line)
        if m:
            pending = float(m.group(1))
        elif line and not line.startswith("#") and pending is not None:
            out.append((pending, line))
            pending = None
    return out


def measured_bandwidth(segments: list[tuple[float, int]]) -> tuple[int, int]:
    """(peak, average) bits per second from (duration, bytes) of each segment, as HLS BANDWIDTH wants."""
    segments = [(d, b) for d, b in segments if d > 0]
    if not segments:
        return 0, 0
    peak = max(b * 8 / d for d, b in segments)
    avg = sum(b for _, b in segments) * 8 / sum(d for d, _ in segments)
    return int(math.ceil(peak)), int(math.ceil(avg))


def avc_codec(profile: str | None, level: int | None) -> str:
    """RFC 6381 codec string for H.264, e.g. High@4.0 -> avc1.640028."""
    idc = {"baseline": 0x42, "constrained baseline": 0x42, "main": 0x4D, "high": 0x64}.get(
        (profile or "").lower(), 0x64
    )
    constraint = 0x40 if (profile or "").lower() == "constrained baseline" else 0x00
    return f"avc1.{idc:02x}{constraint:02x}{int(level or 40):02x}"


def playlist_bandwidth(playlist: Path) -> tuple[int, int]:
    """(peak, average) bits per second of a media playlist on disk, from its segments' real sizes."""
    segs = playlist_segments(Path(playlist).read_text())
    return measured_bandwidth([(d, (Path(playlist).parent / uri).stat().st_size) for d, uri in segs])


AAC_LC = "mp4a.40.2"


def master_playlist(variants: list[dict], audios: list[dict] | None = None, subtitles: list[dict] | None = None) -> str:
    """HLS master playlist.

    variants: [{uri, width, height, fps, peak_bps, avg_bps, codec}] highest first.
    audios: [{uri, peak_bps, avg_bps, language, name}] main programme audio first (the DEFAULT), then locales.
    subtitles: [{uri, language, name}] WebVTT subtitle playlists.
    Audio and subtitles are EXT-X-MEDIA rendition groups, so a locale added later is a new line in the master,
    not a re-encode. Audio-only titles list the main audio playlist as the variant.
    """
    audios, subtitles = list(audios or []), list(subtitles or [])
    lines = ["#EXTM3U", "#EXT-X-VERSION:6", "#EXT-X-INDEPENDENT-SEGMENTS"]
    grouped_audio = bool(variants and audios) or len(audios) > 1
    if grouped_audio:
        for i, a in enumerate(audios):
            default = "YES" if i == 0 else "NO"
            lines.append(
                f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",LANGUAGE="{a["language"]}",NAME="{a["name"]}",'
                f'DEFAULT={default},AUTOSELECT=YES,CHANNELS="2",URI="{a["uri"]}"'
            )
    for s in subtitles:
        lines.append(
            f'#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",LANGUAGE="{s["language"]}",NAME="{s["name"]}",'
            f'DEFAULT=NO,AUTOSELECT=YES,FORCED=NO,URI="{s["uri"]}"'
        )
    audio_peak = max((a["peak_bps"] for a in audios), default=0)
    audio_avg = max((a["avg_bps"] for a in audios), default=0)
    groups = (',AUDIO="aud"' if grouped_audio else "") + (',SUBTITLES="subs"' if subtitles else "")
    for v in variants:
        codecs = v["codec"] + (f",{AAC_LC}" if audios else "")
        lines += [
            f"#EXT-X-STREAM-INF:BANDWIDTH={v['peak_bps'] + audio_peak},AVERAGE-BANDWIDTH={v['avg_bps'] + audio_avg},"
            f'CODECS="{codecs}",RESOLUTION={v["width"]}x{v["height"]},FRAME-RATE={v["fps"]:.3f}{groups}',
            v["uri"],
        ]
    if not variants and audios:
        main = audios[0]
        lines += [
            f'#EXT-X-STREAM-INF:BANDWIDTH={audio_peak},AVERAGE-BANDWIDTH={audio_avg},CODECS="{AAC_LC}"{groups}',
            main["uri"],
        ]
    return "\n".join(lines) + "\n"


def output_dirs(out_dir: str | Path, renditions: list[Rendition], has_audio: bool) -> list[Path]:
    """Folders transcode_argv writes into; ffmpeg's HLS and image muxers do not create them."""
    dirs = [Path(out_dir) / r.name for r in renditions] + ([Path(out_dir) / POSTERS_DIR] if renditions else [])
    dirs += [Path(out_dir) / AUDIO_DIR] if has_audio else []
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    return dirs
