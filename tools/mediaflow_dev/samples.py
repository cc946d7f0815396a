"""Sample deliveries made with ffmpeg's lavfi sources: real media, no downloads, same bytes every time.

Usage: python -m mediaflow_dev.samples OUT_DIR
       python -m mediaflow_dev.samples night OUT_DIR [--count N] [--seed S] [--min-s 10] [--max-s 60]
       python -m mediaflow_dev.samples feature OUT_DIR [--minutes 120] [--height 180] [--locales 10]

`night` writes a night's batch (generate_night): N mixed deliveries (codecs, containers, sizes, captions, extra
audio, broken uploads, titles needing a person), their rights in OUT_DIR/avails.csv and what should become of each
one in OUT_DIR/expected.json; `make run DELIVERIES=OUT_DIR` processes them. `feature` writes one feature-length
title with ten caption locales (generate_feature).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import ffmpeg

from mediaflow import ffrun, graphs, rights

TONE = "sine=frequency=1000:sample_rate=48000"  # about -18 dBFS, like a line-up tone (tone() as a lavfi string)
GLOBAL = ("-nostdin", "-hide_banner", "-loglevel", "error", "-y")
BITEXACT = {"fflags": "+bitexact", "map_metadata": "-1"}  # no encoder version or creation time in the file

# Every sample is an ffmpeg-python graph of lavfi sources compiled to an argv (the *_argv functions: pure, tested
# against the argv written by hand before, tests/unit/test_samples_graphs.py) and run by mediaflow.ffrun: no shell,
# a timeout, its own process group. ffmpeg-python maps the sources explicitly (-map 0 -map 1) and writes options in
# name order: the same streams and options as before, so the same bytes.


def lavfi(name: str, **options) -> ffmpeg.nodes.FilterableStream:
    """A lavfi source as an input: lavfi("testsrc2", size="320x180", rate=25) -> -f lavfi -i testsrc2=size=...:rate=25
    (options in the order given; plain values only, no escaping)."""
    return ffmpeg.input(f"{name}=" + ":".join(f"{k}={v}" for k, v in options.items()), f="lavfi")


def tone(seconds: float, *, frequency: int = 1000) -> ffmpeg.nodes.FilterableStream:
    """A sine at `frequency` Hz, 48 kHz, `seconds` long (1 kHz: TONE)."""
    return lavfi("sine", frequency=frequency, sample_rate=48000, duration=seconds)


def _compile(output) -> list[str]:
    return graphs.command(output, global_args=GLOBAL)


def _ffmpeg(argv: list[str], *, seconds: float) -> None:
    """Run one sample's argv (mediaflow.ffrun): FFmpegError (a RuntimeError) with ffmpeg's error lines if it fails."""
    ffrun.run(argv, purpose="sample generation", timeout=ffrun.budget_s(seconds), check=True)


def video_argv(
    path: Path, *, width: int, height: int, fps: int, seconds: float, audio: bool = True, video_kbps: int | None = None
) -> list[str]:
    """H.264 (+ AAC) test pattern in MP4; video_kbps gives a constant-bitrate mezzanine instead of CRF 18."""
    streams = [lavfi("testsrc2", size=f"{width}x{height}", rate=fps, duration=seconds)]
    options: dict = {"c:v": "libx264", "preset": "ultrafast", "pix_fmt": "yuv420p", "g": fps}
    if video_kbps:
        options |= {"b:v": f"{video_kbps}k", "maxrate": f"{video_kbps}k", "bufsize": f"{video_kbps * 2}k"}
    else:
        options["crf"] = 18
    if audio:
        streams.append(tone(seconds))
        options |= {"c:a": "aac", "b:a": "192k", "ac": 2}
    return _compile(ffmpeg.output(*streams, str(path), movflags="+faststart", **options, **BITEXACT))


def make_video(
    path: Path, *, width: int, height: int, fps: int, seconds: float, audio: bool = True, video_kbps: int | None = None
) -> None:
    """H.264 (+ AAC) test pattern; video_kbps gives a constant-bitrate mezzanine instead of CRF 18."""
    argv = video_argv(path, width=width, height=height, fps=fps, seconds=seconds, audio=audio, video_kbps=video_kbps)
    _ffmpeg(argv, seconds=seconds)


def audio_argv(path: Path, *, seconds: float, frequency: int = 1000) -> list[str]:
    """A stereo 16-bit WAV of a tone (1 kHz: a podcast's source; 660 Hz: an extra language track)."""
    return _compile(ffmpeg.output(tone(seconds, frequency=frequency), str(path), ac=2, fflags="+bitexact",
                               **{"c:a": "pcm_s16le"}))  # fmt: skip


def make_audio(path: Path, *, seconds: float, frequency: int = 1000) -> None:
    _ffmpeg(audio_argv(path, seconds=seconds, frequency=frequency), seconds=seconds)


# broadcast MPEG-2 576i: open GOPs of 12 with B-frames, interlaced (top field first), MPEG-1 Layer II audio
BROADCAST = {"c:v": "mpeg2video", "b:v": "4M", "g": 12, "bf": 2, "flags": "+ildct+ilme", "top": 1,
             "c:a": "mp2", "b:a": "192k", "format": "mpegts"}  # fmt: skip
PROGRAMMES = ("title=sd:st=0:st=1", "title=main:st=2:st=3")


def broadcast_ts_argv(path: Path, *, seconds: float, programmes: int = 1) -> list[str]:
    """make_broadcast_ts's argv."""
    main = [lavfi("testsrc2", size="720x576", rate=25, duration=seconds), tone(seconds)]
    if programmes == 1:
        return _compile(ffmpeg.output(*main, str(path), **BROADCAST))
    other = [lavfi("testsrc", size="352x288", rate=25, duration=seconds), tone(seconds, frequency=300)]
    streams = [other[0]["v"], other[1]["a"], main[0]["v"], main[1]["a"]]
    argv = _compile(ffmpeg.output(*streams, str(path), **BROADCAST))
    # -program is given twice; ffmpeg-python 0.2.0 gives an option one value: they go in before the output file
    return [*argv[:-1], *(x for p in PROGRAMMES for x in ("-program", p)), argv[-1]]


def make_broadcast_ts(path: Path, *, seconds: float, programmes: int = 1) -> None:
    """A broadcast-like MPEG-2 576i transport stream: 720x576 25 fps interlaced (top field first) MPEG-2 video in
    open GOPs of 12 with B-frames, MPEG-1 Layer II audio. With programmes=2, a smaller SD service (352x288, its own
    tone) comes first in the multiplex, the way a DVB recording of a whole transponder carries several."""
    _ffmpeg(broadcast_ts_argv(path, seconds=seconds, programmes=programmes), seconds=seconds)


def _starts_with_keyframe(path: Path) -> bool:
    argv = ["ffprobe", "-v", "quiet", "-select_streams", "v:0", "-show_entries", "packet=flags", "-read_intervals",
            "%+#1", "-of", "csv=p=0", str(path)]  # fmt: skip
    return ffrun.run(argv, purpose="keyframe check", timeout=ffrun.PROBE_TIMEOUT_S).stdout.strip().startswith("K")


def cut_mid_gop(src: Path, dst: Path, *, at: float = 0.15) -> int:
    """A recording that starts mid-GOP: `src` (a transport stream) from a 188-byte packet boundary at or after `at`
    of its size where the first video frame is no keyframe, to the end. Returns the byte offset of the cut."""
    data = src.read_bytes()
    offset = (int(len(data) * at) // 188) * 188
    while offset < len(data) // 2:
        dst.write_bytes(data[offset:])
        if not _starts_with_keyframe(dst):
            return offset
        offset += 188 * 50
    raise RuntimeError(f"{src.name}: no cut that starts mid-GOP found")


def truncate(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _manifest(folder: Path, **fields) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps(fields, indent=2) + "\n")


SAMPLES = {
    # delivery id: (asset id, title, value stream, maker)
    "sample-feature-1080p": ("sample-feature-1080p", "Test Pattern: Feature 1080p", "feature_film"),
    "sample-news-720p": ("sample-news-720p", "Test Pattern: News 720p", "news_clip"),
    "sample-vertical-portrait": ("sample-vertical-portrait", "Test Pattern: Vertical Clip", "news_clip"),
    "sample-podcast-audio": ("sample-podcast-audio", "Test Tone: Podcast Episode", "news_clip"),
    "sample-broken-truncated": ("sample-broken-truncated", "Broken Upload: Truncated Source", "series_episode"),
    # series_episode asks for legal review by a person: this one waits in awaiting_review
    "sample-episode-review": ("sample-episode-review", "Test Pattern: Episode Awaiting Legal Review", "series_episode"),
    # its GB rights window has closed (include/rights/avails.csv): legal review, then US only
    "sample-rights-closed-gb": ("sample-rights-closed-gb", "Test Pattern: Closed GB Window", "news_clip"),
}


VERSION = "4"  # bump when the samples change, so an existing sample folder is made anew


def _srt_time(t: float) -> str:
    ms = int(round(t * 1000))
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def _cues(seconds: float) -> list[tuple[float, float]]:
    return [(t, min(t + 1.8, seconds - 0.1)) for t in [0.5 + 2.0 * i for i in range(int((seconds - 0.6) // 2.0))]]


def write_captions(folder: Path, seconds: float) -> list[dict]:
    """Sidecars as vendors send them: WebVTT (UTF-8), SRT in Windows-1252, TTML."""
    en = [
        "Previously, on Test Pattern...",
        "The colours are calibrated.",
        "Listen: the tone is steady.",
        "See you next week.",
    ]
    es = [
        "Anteriormente, en Patrón de Prueba...",
        "¿Dónde está el niño?",
        "Canción de café, señal estable.",
        "¡Hasta la próxima!",
    ]
    de = [
        "Was bisher geschah...",
        "Die Farben sind kalibriert.",
        "Hören Sie: ein gleichmäßiger Ton.",
        "Bis nächste Woche.",
    ]
    cues = _cues(seconds)
    vtt = ["WEBVTT", ""]
    srt = []
    ttml = ['<?xml version="1.0" encoding="UTF-8"?>',
            '<tt xmlns="http://www.w3.org/ns/ttml" xmlns:tts="http://www.w3.org/ns/ttml#styling" xml:lang="de">',
            "<body><div>"]  # fmt: skip
    for i, (start, end) in enumerate(cues):
        vtt += [f"{_srt_time(start).replace(',', '.')} --> {_srt_time(end).replace(',', '.')} line:85%", en[i % 4], ""]
        srt += [str(i + 1), f"{_srt_time(start)} --> {_srt_time(end)}", es[i % 4], ""]
        ttml.append(f'<p begin="{start:.3f}s" end="{end:.3f}s">{de[i % 4]}</p>')
    ttml += ["</div></body>", "</tt>"]
    (folder / "en-US.vtt").write_text("\n".join(vtt), encoding="utf-8")
    (folder / "es-ES.srt").write_bytes("\r\n".join(srt).encode("cp1252"))  # a legacy Windows tool's output
    (folder / "de-DE.ttml").write_text("\n".join(ttml), encoding="utf-8")
    return [{"locale": "en-US", "file": "en-US.vtt"}, {"locale": "es-ES", "file": "es-ES.srt"},
            {"locale": "de-DE", "file": "de-DE.ttml"}]  # fmt: skip


def generate(out_dir: str | Path, *, seconds: float = 8.0) -> list[Path]:
    """Write the sample deliveries under out_dir (skipping ones already there); return their folders."""
    out_dir = Path(out_dir)
    marker = out_dir / ".samples-version"
    if out_dir.exists() and (not marker.exists() or marker.read_text().strip() != VERSION):
        for old in SAMPLES:
            shutil.rmtree(out_dir / old, ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(VERSION)
    folders = []
    for delivery_id, (asset_id, title, stream) in SAMPLES.items():
        folder = out_dir / delivery_id
        folders.append(folder)
        if (folder / "manifest.json").exists():
            continue
        folder.mkdir(parents=True, exist_ok=True)
        extra: dict = {}
        if delivery_id == "sample-feature-1080p":
            source = "feature.mp4"
            make_video(folder / source, width=1920, height=1080, fps=25, seconds=seconds)
            extra["captions"] = write_captions(folder, seconds)
            make_audio(folder / "fr-FR.wav", seconds=seconds, frequency=660)
            extra["audio"] = [{"locale": "fr-FR", "file": "fr-FR.wav"}]
        elif delivery_id == "sample-news-720p":
            source = "news.mp4"
            make_video(folder / source, width=1280, height=720, fps=30, seconds=seconds)
            # a vendor's caption file with a broken timestamp: this locale is rejected, the clip still publishes
            (folder / "pt-BR.srt").write_text("1\n00:00:01,000 --> 00:00:03,000\nBoa noite.\n\n"
                                              "2\n00:00:04,000 --> 00:00:0x,500\nÚltimas notícias.\n")  # fmt: skip
            extra["captions"] = [{"locale": "pt-BR", "file": "pt-BR.srt"}]
        elif delivery_id == "sample-vertical-portrait":
            source = "vertical.mp4"
            make_video(folder / source, width=720, height=1280, fps=30, seconds=seconds)
        elif delivery_id == "sample-podcast-audio":
            source = "episode.wav"
            make_audio(folder / source, seconds=seconds)
        elif delivery_id in ("sample-episode-review", "sample-rights-closed-gb"):
            source = "clip.mp4"
            make_video(folder / source, width=640, height=360, fps=25, seconds=min(seconds, 6.0))
        else:
            source = "broken.mp4"
            make_video(folder / source, width=1280, height=720, fps=25, seconds=seconds)
            truncate(folder / source, 0.4)  # an upload cut short: ffprobe still reads the header
        _manifest(
            folder,
            asset_id=asset_id,
            title=title,
            value_stream=stream,
            source={"file": source},
            territories=["US", "GB"],
            channels=["web"],
            metadata={"generated_by": "mediaflow_dev.samples"},
            **extra,
        )
    return folders


# ---------------------------------------------------------------- a night's batch (load test and benchmark)

# Containers and codecs a night brings: (file extension, video codec argv, audio codec argv). Each is cheap to make
# with Debian's ffmpeg 5.1 (ProRes is not: prores_ks takes ~4.5 s per second of 1080p, so DNxHR LB stands for the
# intermediate codecs, and only at small sizes, where its bitrate stays modest).
NIGHT_FORMATS = {
    "h264_mp4": ("mp4", {"c:v": "libx264", "preset": "ultrafast", "pix_fmt": "yuv420p"}, {"c:a": "aac", "b:a": "160k"}),
    "mpeg2_ts": ("ts", {"c:v": "mpeg2video", "g": 12, "bf": 2}, {"c:a": "mp2", "b:a": "192k"}),
    "dnxhr_mov": ("mov", {"c:v": "dnxhd", "profile:v": "dnxhr_lb", "pix_fmt": "yuv422p"}, {"c:a": "pcm_s16le"}),
    "vp9_webm": (
        "webm",
        {"c:v": "libvpx-vp9", "deadline": "realtime", "cpu-used": 8, "row-mt": 1},
        {"c:a": "libopus", "b:a": "128k"},
    ),
    "mpeg4_mkv": ("mkv", {"c:v": "mpeg4", "q:v": 5}, {"c:a": "ac3", "b:a": "192k"}),
    "audio_only": ("m4a", {}, {"c:a": "aac", "b:a": "160k"}),
}
NIGHT_SIZES = {360: 640, 480: 854, 720: 1280, 1080: 1920}
NIGHT_KBPS = {360: 900, 480: 1500, 720: 3000, 1080: 6000}  # source bitrates (the ones that take one) by height
SMALL_ONLY = {"dnxhr_mov": 480}  # formats made no taller than this
# Broken uploads, each with what must become of it: (kind, expected reason substring); status rejected. The batch's
# manifest validation refuses not_json and unknown_stream before any run starts; ingest rejects the others.
NIGHT_BROKEN = [
    ("not_json", "not valid JSON"),
    ("missing_source", "named in manifest.json as source.file but not in the delivery"),
    ("truncated", "does not decode cleanly (truncated or corrupt)"),
    ("unknown_stream", "is not a value stream"),
    ("not_media", "ffprobe cannot read it"),
    ("fixity", "sha256 fixity check failed"),
    ("too_short", "is shorter than this stream allows"),
    ("empty", "file is empty (0 bytes)"),
]
# Titles a person must look at (status awaiting_review): series_episode's spec asks for legal review by a person;
# a feature without rights for one of its territories (no row in avails.csv) is sent to legal review.
NIGHT_REVIEW = [("legal_by_spec", "legal review waits for a person"), ("no_rights", "legal review waits for a person")]
BROKEN_CAPTION = "1\n00:00:00,500 --> 00:00:01,500\nBoa noite.\n\n2\n00:00:01,600 --> 00:00:0x,900\nÚltimas notícias.\n"


@dataclass(frozen=True)
class NightDelivery:
    """One generated delivery and what must become of it (runner summary: status, and a reason holding `reason`)."""

    delivery_id: str
    asset_id: str
    value_stream: str
    kind: str  # "ok", "locale_rejected", a NIGHT_REVIEW kind or a NIGHT_BROKEN kind
    status: str  # published | awaiting_review | rejected
    reason: str | None  # a substring of one of the summary's reasons (None: no reason expected)
    media: str  # e.g. "h264_mp4 720p25 12s", or "" when the delivery has no media
    source: str | None  # the source file in the folder, when it has one


@dataclass(frozen=True)
class _Media:
    fmt: str
    height: int
    fps: int
    seconds: float
    audio: bool

    @property
    def name(self) -> str:
        pic = "" if self.fmt == "audio_only" else f"-{self.height}p{self.fps}"
        return f"{self.fmt}{pic}-{self.seconds:g}s{'' if self.audio else '-mute'}.{NIGHT_FORMATS[self.fmt][0]}"

    @property
    def label(self) -> str:
        pic = "" if self.fmt == "audio_only" else f" {self.height}p{self.fps}"
        return f"{self.fmt}{pic} {self.seconds:g}s{'' if self.audio else ' no audio'}"


def media_argv(path: Path, *, fmt: str, height: int, fps: int, seconds: float, audio: bool = True) -> list[str]:
    """make_media's argv."""
    _ext, vcodec, acodec = NIGHT_FORMATS[fmt]
    streams, options = [], {}
    if fmt != "audio_only":
        streams.append(lavfi("testsrc2", size=f"{NIGHT_SIZES[height]}x{height}", rate=fps, duration=seconds))
        kbps = NIGHT_KBPS[height]
        options |= vcodec
        if fmt not in ("dnxhr_mov", "mpeg4_mkv"):
            options |= {"b:v": f"{kbps}k", "maxrate": f"{kbps}k", "bufsize": f"{kbps * 2}k"}
        if fmt in ("h264_mp4", "vp9_webm"):
            options["g"] = fps
    if audio or fmt == "audio_only":
        streams.append(tone(seconds))
        options |= {**acodec, "ac": 2}
    return _compile(ffmpeg.output(*streams, str(path), **options, **BITEXACT))


def make_media(path: Path, *, fmt: str, height: int, fps: int, seconds: float, audio: bool = True) -> None:
    """A test pattern (testsrc2: moving, so QC finds no frozen picture) with a tone, in one of NIGHT_FORMATS."""
    _ffmpeg(media_argv(path, fmt=fmt, height=height, fps=fps, seconds=seconds, audio=audio), seconds=seconds)


def _write_night_captions(folder: Path, seconds: float, locales: list[str]) -> list[dict]:
    """A subset of samples.write_captions' sidecars (en-US WebVTT, es-ES SRT in Windows-1252, de-DE TTML)."""
    entries = write_captions(folder, seconds)
    for e in entries:
        if e["locale"] not in locales:
            (folder / e["file"]).unlink()
    return [e for e in entries if e["locale"] in locales]


def _place(cache: dict[str, Path], folder: Path, media: _Media, name: str) -> None:
    """The media file in the folder: made once per distinct media, hard-linked (or copied) into the next folders.
    Ingest treats identical bytes under different asset ids as different titles (no dedupe), so reuse is safe."""
    target = folder / name
    first = cache.get(media.name)
    if first is None:
        make_media(target, fmt=media.fmt, height=media.height, fps=media.fps, seconds=media.seconds, audio=media.audio)
        cache[media.name] = target
        return
    try:
        os.link(first, target)
    except OSError:
        shutil.copyfile(first, target)


def _palette(rng: random.Random, count: int, seconds: tuple[float, float], heights: dict[int, float]) -> list[_Media]:
    """`count` distinct media: every format at least once (first), then a seeded mix; sizes weighted by `heights`."""
    fmts = list(NIGHT_FORMATS)
    out: list[_Media] = []
    lo, hi = seconds
    for i in range(count):
        fmt = fmts[i] if i < len(fmts) else rng.choice(fmts[:-1] * 3 + fmts[-1:])  # audio-only: 1 in 16
        allowed = {h: w for h, w in heights.items() if h <= SMALL_ONLY.get(fmt, 10_000)} or {min(heights): 1.0}
        height = rng.choices(list(allowed), weights=list(allowed.values()))[0]
        fps = rng.choice((24, 25, 30))
        secs = round(rng.uniform(lo, hi) * 2) / 2  # half seconds
        out.append(_Media(fmt, height, fps, max(secs, lo), audio=fmt == "audio_only" or i % 7 != 3))
    return out


# long: tooling: the night's sample mix, one kind of delivery after another
def generate_night(
    dest: str | Path,
    n: int,
    *,
    seed: int = 0,
    seconds: tuple[float, float] = (10.0, 60.0),
    heights: dict[int, float] | None = None,
    broken_share: float = 0.10,
    review_share: float = 0.05,
    distinct: int = 16,
    prefix: str = "night",
) -> list[NightDelivery]:
    """N delivery folders in `dest` (made anew), mixed as a night brings them, deterministic for a seed.

    Valid titles go to feature_film or news_clip (every review automatic) with rights for each territory in
    dest/avails.csv (runner.upload merges it into the catalog), so they publish; some bring captions (WebVTT, SRT,
    TTML) and a French audio track, and about 1 in 12 a broken caption file (the title publishes, that locale is
    rejected). round(n * broken_share) are broken uploads (NIGHT_BROKEN, in turn) and round(n * review_share) need
    a person (NIGHT_REVIEW, in turn). `distinct` media files are made and reused (hard links) across deliveries,
    so making 300 costs about as much as making 16. `heights`: {height: weight} of 360/480/720/1080 (default
    even). Writes dest/expected.json too; returns one NightDelivery per folder, in delivery id order. A night made
    before in `dest` is replaced; any other non-empty folder is refused."""
    dest = Path(dest)
    if dest.is_dir() and any(dest.iterdir()):
        if not (dest / "expected.json").exists():  # only a night made here before is made anew
            raise ValueError(f"{dest} is not empty and holds no generated night (expected.json): choose another folder")
        shutil.rmtree(dest)
    dest.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    palette = _palette(rng, max(1, min(distinct, n)), seconds, heights or dict.fromkeys(NIGHT_SIZES, 1.0))
    n_broken, n_review = round(n * broken_share), round(n * review_share)
    # where the special ones go: spread through the night, deterministic
    slots = rng.sample(range(n), n_broken + n_review)
    special = {i: NIGHT_BROKEN[k % len(NIGHT_BROKEN)] for k, i in enumerate(slots[:n_broken])}
    special |= {i: NIGHT_REVIEW[k % len(NIGHT_REVIEW)] for k, i in enumerate(slots[n_broken:])}
    cache: dict[str, Path] = {}
    avails = [",".join(rights.HEADER)]
    out: list[NightDelivery] = []
    for i in range(n):
        delivery_id = asset_id = f"{prefix}-{seed}-{i:03d}"
        folder = dest / delivery_id
        folder.mkdir()
        kind, reason = special.get(i, ("ok", None))
        media: _Media | None = palette[i % len(palette)]
        stream = "news_clip" if media.fmt == "audio_only" or (media.height <= 480 and i % 2) else "feature_film"
        territories = ["US"] if i % 3 else ["US", "GB"]
        source = f"source.{NIGHT_FORMATS[media.fmt][0]}"
        extra: dict = {}
        if kind in ("ok", "not_json", "unknown_stream", "fixity", *dict(NIGHT_REVIEW)):
            _place(cache, folder, media, source)
        if kind == "ok" and media.fmt != "audio_only":
            locales = rng.choice([[], [], ["en-US"], ["en-US", "es-ES"], ["de-DE"]])
            if locales and media.seconds >= 3:  # write_captions' first cue starts at 0.5 s and lasts up to 1.8 s
                extra["captions"] = _write_night_captions(folder, media.seconds, locales)
            if i % 12 == 5:  # a vendor's broken caption file: that locale is rejected, the title publishes
                (folder / "pt-BR.srt").write_text(BROKEN_CAPTION, encoding="utf-8")
                extra.setdefault("captions", []).append({"locale": "pt-BR", "file": "pt-BR.srt"})
                kind, reason = "locale_rejected", "locale pt-BR (captions) rejected"
            if i % 5 == 2 and media.audio:
                make_audio(folder / "fr-FR.wav", seconds=media.seconds, frequency=660)
                extra["audio"] = [{"locale": "fr-FR", "file": "fr-FR.wav"}]
        rights_for = territories
        if kind == "legal_by_spec":
            stream = "series_episode"
        elif kind == "no_rights":
            stream, territories, rights_for = "feature_film", ["US", "GB"], ["US"]  # GB has no row: legal review
        elif kind == "unknown_stream":
            stream = "telenovela"
        elif kind in ("missing_source", "truncated", "not_media", "too_short", "empty"):
            media, source = None, "source.mp4"
            if kind == "truncated":
                make_video(folder / source, width=640, height=360, fps=25, seconds=4.0)
                truncate(folder / source, 0.4)  # an upload cut short: ffprobe still reads the header
            elif kind == "not_media":
                (folder / source).write_bytes(b"<html><body>502 Bad Gateway</body></html>\n" * 64)
            elif kind == "too_short":
                stream = "feature_film"  # min_duration_s 2
                make_video(folder / source, width=640, height=360, fps=25, seconds=0.6)
            elif kind == "empty":
                (folder / source).write_bytes(b"")
            # missing_source: named in the manifest, never delivered
        manifest = {"asset_id": asset_id, "title": f"Night {seed} title {i}", "value_stream": stream,
                    "source": {"file": source, **({"sha256": "0" * 64} if kind == "fixity" else {})},
                    "territories": territories, "channels": ["web"], **extra,
                    "metadata": {"generated_by": "mediaflow_dev.samples.generate_night", "media": media.label if media else ""}}  # fmt: skip
        body = json.dumps(manifest, indent=2) + "\n"
        if kind == "not_json":
            body = body.replace('"title":', '"title"', 1)  # hand-edited: a colon lost
        (folder / "manifest.json").write_text(body)
        avails += [f"{asset_id},{t},web,2020-01-01T00:00:00Z,2099-01-01T00:00:00Z,false" for t in rights_for]
        status = (
            "rejected"
            if kind in dict(NIGHT_BROKEN)
            else "awaiting_review"
            if kind in dict(NIGHT_REVIEW)
            else "published"
        )
        out.append(NightDelivery(delivery_id=delivery_id, asset_id=asset_id, value_stream=stream, kind=kind,
                                 status=status, reason=reason, media=media.label if media else "",
                                 source=source if (folder / source).exists() else None))  # fmt: skip
    (dest / "avails.csv").write_text("\n".join(avails) + "\n")
    (dest / "expected.json").write_text(json.dumps([asdict(d) for d in out], indent=2) + "\n")
    return out


# ---------------------------------------------------------------- a feature-length title (issue 18)

# Ten caption locales as vendors send them: (locale, format, lines). Non-Latin scripts on purpose.
FEATURE_LOCALES = [
    ("en-US", "vtt", ["Where were you last night?", "The signal is steady.", "Keep rolling.", "Cut!"]),
    ("es-ES", "srt", ["¿Dónde estabas anoche?", "La señal es estable.", "Sigue grabando.", "¡Corten!"]),
    ("de-DE", "ttml", ["Wo warst du gestern Abend?", "Das Signal ist stabil.", "Weiterdrehen.", "Schnitt!"]),
    ("fr-FR", "vtt", ["Où étais-tu hier soir ?", "Le signal est stable.", "On continue.", "Coupez !"]),
    ("it-IT", "srt", ["Dov'eri ieri sera?", "Il segnale è stabile.", "Continua a girare.", "Stop!"]),
    ("pt-BR", "vtt", ["Onde você estava ontem à noite?", "O sinal está estável.", "Continue gravando.", "Corta!"]),
    ("ja-JP", "vtt", ["昨夜はどこにいたの？", "信号は安定している。", "回し続けて。", "カット！"]),
    ("ko-KR", "srt", ["어젯밤에 어디 있었어?", "신호가 안정적이야.", "계속 찍어.", "컷!"]),
    ("ar-SA", "vtt", ["أين كنت الليلة الماضية؟", "الإشارة مستقرة.", "استمر في التصوير.", "اقطع!"]),
    ("hi-IN", "vtt", ["कल रात तुम कहाँ थे?", "सिग्नल स्थिर है।", "शूटिंग जारी रखो।", "कट!"]),
]


def write_feature_captions(folder: Path, seconds: float, locales: int = 10) -> list[dict]:
    """`locales` caption sidecars of a `seconds`-long title, a cue every 2 s (a 2-hour film: 3,599 cues each):
    WebVTT, SRT (UTF-8) and TTML, as FEATURE_LOCALES says."""
    cues = _cues(seconds)
    entries = []
    for locale, fmt, lines in FEATURE_LOCALES[:locales]:
        name = f"{locale}.{fmt}"
        if fmt == "vtt":
            body = ["WEBVTT", ""]
            for i, (a, b) in enumerate(cues):
                body += [f"{_srt_time(a).replace(',', '.')} --> {_srt_time(b).replace(',', '.')}", lines[i % 4], ""]
        elif fmt == "srt":
            body = []
            for i, (a, b) in enumerate(cues):
                body += [str(i + 1), f"{_srt_time(a)} --> {_srt_time(b)}", lines[i % 4], ""]
        else:
            body = ['<?xml version="1.0" encoding="UTF-8"?>',
                    f'<tt xmlns="http://www.w3.org/ns/ttml" xml:lang="{locale}"><body><div>']  # fmt: skip
            body += [f'<p begin="{a:.3f}s" end="{b:.3f}s">{lines[i % 4]}</p>' for i, (a, b) in enumerate(cues)]
            body += ["</div></body></tt>"]
        (folder / name).write_text("\n".join(body) + "\n", encoding="utf-8")
        entries.append({"locale": locale, "file": name})
    return entries


def generate_feature(
    dest: str | Path,
    *,
    minutes: float = 120.0,
    height: int = 180,
    locales: int = 10,
    delivery_id: str = "feature-length",
) -> Path:
    """One feature-length delivery in dest/<delivery_id>: a `minutes`-long test pattern (moving, so QC finds no
    frozen picture) at `height` lines (16:9, 25 fps, H.264 + AAC stereo in MP4), `locales` caption sidecars with
    a cue every 2 s, into feature_film on web and ott_partner with rights in dest/avails.csv. Writes
    dest/expected.json (published). Made anew each time; the media itself is reused when it already exists."""
    dest = Path(dest)
    folder = dest / delivery_id
    folder.mkdir(parents=True, exist_ok=True)
    seconds = round(minutes * 60.0, 3)
    width = _even_width(height)
    source = folder / f"feature-{height}p-{minutes:g}min.mp4"
    if not source.exists():
        for old in folder.glob("feature-*.mp4"):
            old.unlink()
        part = source.with_suffix(".part.mp4")
        _ffmpeg(feature_argv(part, width=width, height=height, seconds=seconds), seconds=seconds)
        part.replace(source)
    for old in folder.glob("*.*"):
        if old.suffix in (".vtt", ".srt", ".ttml"):
            old.unlink()
    captions = write_feature_captions(folder, seconds, locales)
    _manifest(folder, asset_id=delivery_id, title=f"Feature-length test pattern ({minutes:g} min)",
              value_stream="feature_film", source={"file": source.name}, territories=["US", "GB"],
              channels=["web", "ott_partner"], captions=captions,
              metadata={"generated_by": "mediaflow_dev.samples.generate_feature"})  # fmt: skip
    rows = [",".join(rights.HEADER)]
    rows += [f"{delivery_id},{t},{c},2020-01-01T00:00:00Z,2099-01-01T00:00:00Z,false"
             for t in ("US", "GB") for c in ("web", "ott_partner")]  # fmt: skip
    (dest / "avails.csv").write_text("\n".join(rows) + "\n")
    expected = NightDelivery(delivery_id=delivery_id, asset_id=delivery_id, value_stream="feature_film", kind="ok",
                             status="published", reason=None, media=f"h264_mp4 {height}p25 {seconds:g}s",
                             source=source.name)  # fmt: skip
    (dest / "expected.json").write_text(json.dumps([asdict(expected)], indent=2) + "\n")
    return folder


def feature_argv(path: Path, *, width: int, height: int, seconds: float) -> list[str]:
    """generate_feature's media: H.264 CRF 23 (GOP 2 s) + AAC stereo in MP4, 25 fps."""
    streams = [lavfi("testsrc2", size=f"{width}x{height}", rate=25, duration=seconds), tone(seconds)]
    options = {"c:v": "libx264", "preset": "ultrafast", "crf": 23, "pix_fmt": "yuv420p", "g": 50,
               "c:a": "aac", "b:a": "128k", "ac": 2}  # fmt: skip
    return _compile(ffmpeg.output(*streams, str(path), movflags="+faststart", **options, **BITEXACT))


def _even_width(height: int) -> int:
    return int(round(height * 16 / 9 / 2)) * 2


def main_feature(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m mediaflow_dev.samples feature", description=generate_feature.__doc__)
    ap.add_argument("dest")
    ap.add_argument("--minutes", type=float, default=120.0)
    ap.add_argument("--height", type=int, default=180)
    ap.add_argument("--locales", type=int, default=10, choices=range(0, len(FEATURE_LOCALES) + 1), metavar="0-10")
    args = ap.parse_args(argv)
    folder = generate_feature(args.dest, minutes=args.minutes, height=args.height, locales=args.locales)
    print(f"{folder}: a {args.minutes:g}-minute {args.height}p title with {args.locales} caption locales")
    print(f"process it: make run DELIVERIES={args.dest}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "feature":
        return main_feature(argv[1:])
    if not argv or argv[0] != "night":
        for f in generate(argv[0] if argv else "samples"):
            print(f)
        return 0
    ap = argparse.ArgumentParser(prog="python -m mediaflow_dev.samples night", description=generate_night.__doc__)
    ap.add_argument("dest")
    ap.add_argument("--count", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-s", type=float, default=10.0, help="shortest title (seconds)")
    ap.add_argument("--max-s", type=float, default=60.0, help="longest title (seconds)")
    ap.add_argument("--distinct", type=int, default=16, help="distinct media files made (reused across deliveries)")
    args = ap.parse_args(argv[1:])
    night = generate_night(
        args.dest, args.count, seed=args.seed, seconds=(args.min_s, args.max_s), distinct=args.distinct
    )
    counts: dict[str, int] = {}
    for d in night:
        counts[d.status] = counts.get(d.status, 0) + 1
    print(
        f"{len(night)} deliveries in {args.dest} ({', '.join(f'{v} {k}' for k, v in sorted(counts.items()))}); "
        f"rights in {Path(args.dest) / 'avails.csv'}, what should become of each in {Path(args.dest) / 'expected.json'}"
    )
    print(f"process them: make run DELIVERIES={args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
