"""The sample generator's ffmpeg-python graphs give the argv the hand-written ones gave (mediaflow_dev.samples).

GOLDEN holds the argv samples.py built by hand before it moved to ffmpeg-python (recorded from main at f5d3d9a, the
output under /out). Each case builds today's argv with the same arguments and compares both the way ffmpeg reads them
(tests/unit/ffargv.py: the same inputs, global options, per output file the same options and the same streams
feeding it, option order ignored); no ffmpeg runs. The hand-written argv named no -map where each lavfi input holds
one stream (video first, then audio): ffmpeg's default selection takes exactly those, in input order, which is what
ffmpeg-python's explicit `-map 0 -map 1` says.

The bytes were compared once, when the change was made: every file of `python -m mediaflow_dev.samples`, `night
--count 6` and `feature --minutes 1 --locales 2` came out with the same md5, except the two that differ run to run
on the old code too (x264 under VBV and VP9 with row-mt use threads: night h264_mp4 and vp9_webm sources).
"""

from __future__ import annotations

from pathlib import Path

import ffargv
import pytest

from mediaflow_dev import samples

OUT = Path("/out")  # the output folder of every case
VIDEO = {
    "video_1080p25_crf": dict(width=1920, height=1080, fps=25, seconds=8.0),
    "video_portrait_30": dict(width=720, height=1280, fps=30, seconds=8.0),
    "video_mezzanine_kbps": dict(width=1920, height=1080, fps=25, seconds=30.0, video_kbps=20000),
    "video_mute_int_seconds": dict(width=160, height=120, fps=25, seconds=1, audio=False),
}
BROADCAST = {"broadcast_ts": dict(seconds=6), "broadcast_ts_two_programmes": dict(seconds=6, programmes=2)}
MEDIA = {
    f"media_{fmt}{'' if a else '_mute'}": dict(
        fmt=fmt, height=360 if a else 720, fps=30 if a else 24, seconds=2.5 if a else 3.0, audio=a
    )
    for fmt in ("h264_mp4", "mpeg2_ts", "dnxhr_mov", "vp9_webm", "mpeg4_mkv", "audio_only")
    for a in (True, False)
}

GOLDEN = {
    "video_1080p25_crf": "ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=1920x1080:rate=25:duration=8.0 -f lavfi -i sine=frequency=1000:sample_rate=48000:duration=8.0 -c:v libx264 -preset ultrafast -crf 18 -pix_fmt yuv420p -g 25 -c:a aac -b:a 192k -ac 2 -movflags +faststart -fflags +bitexact -map_metadata -1 /out/video_1080p25_crf.mp4",
    "video_portrait_30": "ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=720x1280:rate=30:duration=8.0 -f lavfi -i sine=frequency=1000:sample_rate=48000:duration=8.0 -c:v libx264 -preset ultrafast -crf 18 -pix_fmt yuv420p -g 30 -c:a aac -b:a 192k -ac 2 -movflags +faststart -fflags +bitexact -map_metadata -1 /out/video_portrait_30.mp4",
    "video_mezzanine_kbps": "ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=1920x1080:rate=25:duration=30.0 -f lavfi -i sine=frequency=1000:sample_rate=48000:duration=30.0 -c:v libx264 -preset ultrafast -b:v 20000k -maxrate 20000k -bufsize 40000k -pix_fmt yuv420p -g 25 -c:a aac -b:a 192k -ac 2 -movflags +faststart -fflags +bitexact -map_metadata -1 /out/video_mezzanine_kbps.mp4",
    "video_mute_int_seconds": "ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=160x120:rate=25:duration=1 -c:v libx264 -preset ultrafast -crf 18 -pix_fmt yuv420p -g 25 -movflags +faststart -fflags +bitexact -map_metadata -1 /out/video_mute_int_seconds.mp4",
    "audio_tone": "ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i sine=frequency=1000:sample_rate=48000:duration=8.0 -ac 2 -c:a pcm_s16le -fflags +bitexact /out/audio_tone.wav",
    "broadcast_ts": "ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=720x576:rate=25:duration=6 -f lavfi -i sine=frequency=1000:sample_rate=48000:duration=6 -c:v mpeg2video -b:v 4M -g 12 -bf 2 -flags +ildct+ilme -top 1 -c:a mp2 -b:a 192k -f mpegts /out/broadcast_ts.ts",
    "broadcast_ts_two_programmes": "ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i testsrc=size=352x288:rate=25:duration=6 -f lavfi -i sine=frequency=300:sample_rate=48000:duration=6 -f lavfi -i testsrc2=size=720x576:rate=25:duration=6 -f lavfi -i sine=frequency=1000:sample_rate=48000:duration=6 -map 0:v -map 1:a -map 2:v -map 3:a -c:v mpeg2video -b:v 4M -g 12 -bf 2 -flags +ildct+ilme -top 1 -c:a mp2 -b:a 192k -program title=sd:st=0:st=1 -program title=main:st=2:st=3 -f mpegts /out/broadcast_ts_two_programmes.ts",
    "media_h264_mp4": "ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=640x360:rate=30:duration=2.5 -f lavfi -i sine=frequency=1000:sample_rate=48000:duration=2.5 -c:v libx264 -preset ultrafast -pix_fmt yuv420p -b:v 900k -maxrate 900k -bufsize 1800k -g 30 -c:a aac -b:a 160k -ac 2 -fflags +bitexact -map_metadata -1 /out/media_h264_mp4.mp4",
    "media_h264_mp4_mute": "ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=1280x720:rate=24:duration=3.0 -c:v libx264 -preset ultrafast -pix_fmt yuv420p -b:v 3000k -maxrate 3000k -bufsize 6000k -g 24 -fflags +bitexact -map_metadata -1 /out/media_h264_mp4_mute.mp4",
    "media_mpeg2_ts": "ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=640x360:rate=30:duration=2.5 -f lavfi -i sine=frequency=1000:sample_rate=48000:duration=2.5 -c:v mpeg2video -g 12 -bf 2 -b:v 900k -maxrate 900k -bufsize 1800k -c:a mp2 -b:a 192k -ac 2 -fflags +bitexact -map_metadata -1 /out/media_mpeg2_ts.ts",
    "media_mpeg2_ts_mute": "ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=1280x720:rate=24:duration=3.0 -c:v mpeg2video -g 12 -bf 2 -b:v 3000k -maxrate 3000k -bufsize 6000k -fflags +bitexact -map_metadata -1 /out/media_mpeg2_ts_mute.ts",
    "media_dnxhr_mov": "ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=640x360:rate=30:duration=2.5 -f lavfi -i sine=frequency=1000:sample_rate=48000:duration=2.5 -c:v dnxhd -profile:v dnxhr_lb -pix_fmt yuv422p -c:a pcm_s16le -ac 2 -fflags +bitexact -map_metadata -1 /out/media_dnxhr_mov.mov",
    "media_dnxhr_mov_mute": "ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=1280x720:rate=24:duration=3.0 -c:v dnxhd -profile:v dnxhr_lb -pix_fmt yuv422p -fflags +bitexact -map_metadata -1 /out/media_dnxhr_mov_mute.mov",
    "media_vp9_webm": "ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=640x360:rate=30:duration=2.5 -f lavfi -i sine=frequency=1000:sample_rate=48000:duration=2.5 -c:v libvpx-vp9 -deadline realtime -cpu-used 8 -row-mt 1 -b:v 900k -maxrate 900k -bufsize 1800k -g 30 -c:a libopus -b:a 128k -ac 2 -fflags +bitexact -map_metadata -1 /out/media_vp9_webm.webm",
    "media_vp9_webm_mute": "ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=1280x720:rate=24:duration=3.0 -c:v libvpx-vp9 -deadline realtime -cpu-used 8 -row-mt 1 -b:v 3000k -maxrate 3000k -bufsize 6000k -g 24 -fflags +bitexact -map_metadata -1 /out/media_vp9_webm_mute.webm",
    "media_mpeg4_mkv": "ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=640x360:rate=30:duration=2.5 -f lavfi -i sine=frequency=1000:sample_rate=48000:duration=2.5 -c:v mpeg4 -q:v 5 -c:a ac3 -b:a 192k -ac 2 -fflags +bitexact -map_metadata -1 /out/media_mpeg4_mkv.mkv",
    "media_mpeg4_mkv_mute": "ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=1280x720:rate=24:duration=3.0 -c:v mpeg4 -q:v 5 -fflags +bitexact -map_metadata -1 /out/media_mpeg4_mkv_mute.mkv",
    "media_audio_only": "ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i sine=frequency=1000:sample_rate=48000:duration=2.5 -c:a aac -b:a 160k -ac 2 -fflags +bitexact -map_metadata -1 /out/media_audio_only.m4a",
    "media_audio_only_mute": "ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i sine=frequency=1000:sample_rate=48000:duration=3.0 -c:a aac -b:a 160k -ac 2 -fflags +bitexact -map_metadata -1 /out/media_audio_only_mute.m4a",
    "audio_660_locale": "ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i sine=frequency=660:sample_rate=48000:duration=58.5 -ac 2 -c:a pcm_s16le -fflags +bitexact /out/audio_660_locale.wav",
    "feature": "ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=320x180:rate=25:duration=60.0 -f lavfi -i sine=frequency=1000:sample_rate=48000:duration=60.0 -c:v libx264 -preset ultrafast -crf 23 -pix_fmt yuv420p -g 50 -c:a aac -b:a 128k -ac 2 -movflags +faststart -fflags +bitexact -map_metadata -1 /out/feature.mp4",
}


def _built(name: str) -> list[str]:
    if name in VIDEO:
        return samples.video_argv(OUT / f"{name}.mp4", **VIDEO[name])
    if name in BROADCAST:
        return samples.broadcast_ts_argv(OUT / f"{name}.ts", **BROADCAST[name])
    if name in MEDIA:
        ext = samples.NIGHT_FORMATS[MEDIA[name]["fmt"]][0]
        return samples.media_argv(OUT / f"{name}.{ext}", **MEDIA[name])
    if name == "audio_tone":
        return samples.audio_argv(OUT / "audio_tone.wav", seconds=8.0)
    if name == "audio_660_locale":
        return samples.audio_argv(OUT / "audio_660_locale.wav", seconds=58.5, frequency=660)
    assert name == "feature"
    return samples.feature_argv(OUT / "feature.mp4", width=320, height=180, seconds=60.0)


def _explicit_maps(argv: list[str]) -> list[str]:
    """A single-output argv without -map as ffmpeg reads it: every (one-stream) input, in order."""
    if "-map" in argv:
        return argv
    return [*argv[:-1], *(x for i in range(argv.count("-i")) for x in ("-map", str(i))), argv[-1]]


def test_every_case_is_recorded():
    assert set(GOLDEN) == {*VIDEO, *BROADCAST, *MEDIA, "audio_tone", "audio_660_locale", "feature"}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_the_graph_gives_what_the_hand_written_argv_gave(name):
    built = _built(name)
    assert all(isinstance(a, str) for a in built)
    assert ffargv.canonical(_explicit_maps(built)) == ffargv.canonical(_explicit_maps(GOLDEN[name].split(" ")))


def test_the_sources_are_lavfi_inputs_and_the_argv_is_ffmpeg_python_s():
    argv = samples.broadcast_ts_argv(OUT / "two.ts", seconds=6, programmes=2)
    assert argv[:6] == ["ffmpeg", *samples.GLOBAL]
    assert [argv[i - 2 : i + 2] for i, a in enumerate(argv) if a == "-i"][0] == [
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=352x288:rate=25:duration=6",
    ]
    assert argv[-5:] == ["-program", "title=sd:st=0:st=1", "-program", "title=main:st=2:st=3", "/out/two.ts"]
