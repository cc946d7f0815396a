"""ABR ladder: rung selection, the single ffmpeg command, master playlist; one small real encode."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from ffargv import outputs

from mediaflow import ladder, loudness
from mediaflow.ladder import (
    avc_codec,
    master_playlist,
    measured_bandwidth,
    output_fps,
    playlist_segments,
    select_renditions,
    transcode_argv,
)
from mediaflow.spec import Loudness, load_specs
from mediaflow_dev import samples

SPECS = load_specs()
SERIES = SPECS["series_episode"]
NEWS = SPECS["news_clip"]


def dims(renditions):
    return [(r.width, r.height) for r in renditions]


# ---------------------------------------------------------------- select_renditions


def test_1080p_source_gets_the_full_series_ladder():
    out = select_renditions(SERIES.ladder, 1920, 1080)
    assert dims(out) == [(1920, 1080), (1280, 720), (854, 480), (640, 360)]
    assert [r.video_kbps for r in out] == [5000, 3000, 1200, 700]
    assert [r.name for r in out] == ["v1080", "v720", "v480", "v360"]


def test_720p_source_is_never_upscaled():
    out = select_renditions(SERIES.ladder, 1280, 720)
    assert dims(out) == [(1280, 720), (854, 480), (640, 360)]
    assert all(r.height <= 720 and r.width <= 1280 for r in out)


def test_portrait_source_rung_height_is_the_short_side():
    out = select_renditions(SERIES.ladder, 720, 1280)
    assert dims(out) == [(720, 1280), (480, 854), (360, 640)]
    assert all(r.height > r.width for r in out), "portrait stays portrait"


def test_source_smaller_than_every_rung_gets_one_rung_at_source_size():
    out = select_renditions(SERIES.ladder, 320, 240)
    assert len(out) == 1
    assert dims(out) == [(320, 240)]
    assert out[0].video_kbps == min(r.video_kbps for r in SERIES.ladder) == 700


@pytest.mark.parametrize(
    "w,h", [(1920, 1080), (1280, 720), (720, 1280), (1080, 1920), (320, 240), (1440, 1080), (3840, 1600), (640, 480)]
)
def test_all_dims_even_and_aspect_ratio_kept(w, h):
    for spec in SPECS.values():
        out = select_renditions(spec.ladder, w, h)
        assert out, f"{w}x{h}: no rendition"
        for r in out:
            assert r.width % 2 == 0 and r.height % 2 == 0, f"{w}x{h} -> {r}: odd dimension"
            assert r.width <= w and r.height <= h, f"{w}x{h} -> {r}: upscaled"
            assert abs((r.width / r.height) / (w / h) - 1) < 0.01, f"{w}x{h} -> {r}: aspect ratio drifts > 1%"
        heights = [min(r.width, r.height) for r in out]
        assert heights == sorted(heights, reverse=True), "renditions are listed highest first"


def test_odd_sized_source_is_never_upscaled():
    over = {}
    for w, h in [(1919, 1080), (1279, 720), (147, 1080), (243, 100)]:
        bigger = [(r.width, r.height) for r in select_renditions(SERIES.ladder, w, h) if r.width > w or r.height > h]
        if bigger:
            over[f"{w}x{h}"] = bigger
    assert not over, (
        f"BUG ladder.py:35 (_even) / select_renditions: renditions larger than an odd-sized source: {over}. "
        "_even rounds to the nearest even number, which can exceed an odd source side; clamp each side to the "
        "source side rounded down to even."
    )


def test_source_without_picture_size_is_an_error():
    with pytest.raises(ValueError, match="no picture size"):
        select_renditions(SERIES.ladder, 0, 1080)


# ---------------------------------------------------------------- transcode_argv

LOUD = Loudness(-23.0, -1.0)


def argv_for(renditions, *, interlaced=False, has_audio=True, fps=25.0, loudness=LOUD):
    return transcode_argv(
        "/in/src.mxf",
        "/out",
        renditions,
        fps=fps,
        interlaced=interlaced,
        has_audio=has_audio,
        loudness=loudness,
        duration_s=60.0,
    )


def option_values(argv, flag):
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def graph_of(argv):
    values = option_values(argv, "-filter_complex")
    assert len(values) == 1, "exactly one filter graph"
    return values[0]


def test_one_ffmpeg_decodes_once_and_encodes_every_rung():
    rends = select_renditions(SERIES.ladder, 1920, 1080)
    argv = argv_for(rends)
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv)
    assert argv[0] == "ffmpeg"
    assert argv.count("ffmpeg") == 1
    assert option_values(argv, "-i") == ["/in/src.mxf"], "single input, decoded once"
    graph = graph_of(argv)
    assert graph.count("split=") == 1 and f"split={len(rends) + 2}" in graph, (
        "one branch per rung, the poster's and the poster candidates'"
    )
    outs = outputs(argv)
    for r in rends:
        out = outs[f"/out/{r.name}/index.m3u8"]
        (chain,) = out["filters"]
        assert chain[:3] == ["input=0:v:0", "fps=fps=25", f"split=outputs={len(rends) + 2}"]
        assert chain[3:] == [f"scale=flags=bicubic:h={r.height}:w={r.width}", "setsar=r=1", "format=pix_fmts=yuv420p"]
        assert out["options"]["-b:v"] == f"{r.video_kbps}k", f"rung {r.name} has its own bitrate"
        assert out["options"]["-hls_segment_filename"] == f"/out/{r.name}/seg_%05d.ts"
    assert option_values(argv, "-b:v") == [f"{r.video_kbps}k" for r in rends]
    assert [a for a in argv if a.endswith("index.m3u8")] == [f"/out/{r.name}/index.m3u8" for r in rends] + [
        "/out/audio/index.m3u8"
    ]
    assert outs["/out/audio/index.m3u8"]["options"]["-hls_segment_filename"] == "/out/audio/seg_%05d.ts"
    assert argv[-1] == "/out/audio/index.m3u8"
    assert "/out/poster.jpg" in argv
    assert "/out/posters/scene_%d.jpg" in argv


def output_args(argv, path):
    """The options of the output written to `path`: from the -map before it up to it."""
    end = argv.index(path)
    start = max(i for i, a in enumerate(argv[:end]) if a == "-map")
    return argv[start:end]


def test_default_poster_is_unchanged():
    rends = select_renditions(SERIES.ladder, 1920, 1080)
    out = outputs(argv_for(rends))["/out/poster.jpg"]
    assert out["filters"] == [
        [
            "input=0:v:0",
            "fps=fps=25",
            f"split=outputs={len(rends) + 2}",
            "select=expr=gte(t,6.0)*lt(selected_n,1)",
            "scale=h=1080:w=1920",
            "setsar=r=1",
        ]
    ]
    assert out["options"] == {"-frames:v": "1", "-q:v": "3", "-update": "1"}


def test_poster_candidates_are_scene_cuts_on_their_own_branch_of_the_graph():
    rends = select_renditions(SERIES.ladder, 1920, 1080)
    argv = argv_for(rends)  # 60 s title
    out = outputs(argv)["/out/posters/scene_%d.jpg"]
    (chain,) = out["filters"]
    assert chain[:3] == ["input=0:v:0", "fps=fps=25", f"split=outputs={len(rends) + 2}"], "a branch of its own"
    assert chain[4:] == ["scale=h=1080:w=1920", "setsar=r=1"]
    assert chain[3].startswith("select=expr=")
    assert "/out" not in graph_of(argv), "no path inside the filtergraph: ffmpeg would parse it"
    terms = chain[3].removeprefix("select=expr=").split("*")
    assert "gt(scene,0.3)" in terms, "a new shot: scene score above 0.3"
    assert "gte(t,1)" in terms, "nothing from the first second"
    assert "lt(selected_n,3)" in terms, "at most 3 frames leave the select"
    assert "(isnan(prev_selected_t)+gte(t-prev_selected_t,15))" in terms, "15 s apart: a quarter of the title"
    opts = out["options"]
    assert opts["-frames:v"] == str(ladder.POSTER_CANDIDATES) == "3"
    assert opts["-fps_mode"] == "vfr", "each pick once: an image muxer is cfr by default"
    assert opts["-flags:v"] == "+bitexact"
    assert opts["-q:v"] == "3", "as the default poster"
    assert opts["-frame_pts"] == "1", "a pick's file is named by its frame number: its time"


def test_scene_gap_follows_the_title_length():
    assert ladder.scene_min_gap_s(9.0) == 2.25
    assert ladder.scene_min_gap_s(2700.0) == 675.0
    assert ladder.scene_min_gap_s(0.0) == 0.0
    assert "gte(t-prev_selected_t,2.25)" in ladder.scene_expr(9.0)


def test_no_poster_no_candidates():
    rends = select_renditions(SERIES.ladder, 1920, 1080)
    argv = transcode_argv(
        "/in/src.mxf",
        "/out",
        rends[:1],
        fps=25.0,
        interlaced=False,
        has_audio=False,
        loudness=LOUD,
        duration_s=60.0,
        poster=False,
    )
    graph = graph_of(argv)
    assert "split=1" in graph and "scene" not in graph and "select" not in graph
    assert not any(a.endswith(".jpg") for a in argv)


def test_output_dirs_include_the_posters_folder(tmp_path):
    rends = select_renditions(NEWS.ladder, 1280, 720)
    dirs = ladder.output_dirs(tmp_path, rends, True)
    assert tmp_path / ladder.POSTERS_DIR in dirs and (tmp_path / "posters").is_dir()
    audio_only = tmp_path / "a"
    assert ladder.output_dirs(audio_only, [], True) == [audio_only / "audio"]


def test_constant_frame_rate_and_gop_of_one_segment():
    argv = argv_for(select_renditions(NEWS.ladder, 1280, 720), fps=29.97)
    assert "fps=30000/1001" in graph_of(argv), "NTSC is 30000/1001 exactly, not 29.97"
    assert "fps=25[" in graph_of(argv_for(select_renditions(NEWS.ladder, 1280, 720), fps=25.0))
    assert set(option_values(argv, "-g")) == {str(round(29.97 * ladder.SEGMENT_S))}
    assert set(option_values(argv, "-sc_threshold")) == {"0"}


@pytest.mark.parametrize("interlaced", [True, False])
def test_deinterlace_only_interlaced_sources(interlaced):
    graph = graph_of(argv_for(select_renditions(NEWS.ladder, 1920, 1080), interlaced=interlaced))
    assert ("bwdif" in graph) is interlaced
    # deinterlace before the frame-rate conversion and the split
    if interlaced:
        assert graph.index("bwdif") < graph.index("fps=") < graph.index("split=")


@pytest.mark.parametrize("interlaced", [True, False])
def test_poster_candidate_branch_follows_the_deinterlacer_and_frame_rate(interlaced):
    graph = graph_of(argv_for(select_renditions(NEWS.ladder, 1920, 1080), interlaced=interlaced))
    # the scene score is computed on the split's own branch, after deinterlacing and the constant frame rate
    assert graph.index("fps=") < graph.index("split=") < graph.index("scene")
    assert graph.count("bwdif") == int(interlaced), "deinterlaced once, before the split"


# ---------------------------------------------------------------- poster candidates: picking and filling in


def test_scene_picks_from_their_file_names():
    # -frame_pts names a pick by its pts, on the fps filter's 1/rate time base: its frame number
    names = ["scene_100000.jpg", "scene_75.jpg", "p1.jpg", "scene_.jpg", "scene_9.jpg.tmp"]
    assert ladder.scene_frames(names) == [75, 100000]
    assert [ladder.frame_time(n, 29.97) for n in (75, 100000)] == [2.502, 3336.667]
    assert ladder.frame_time(50, 25.0) == 2.0 and ladder.scene_frames([]) == []


def plan(scenes, duration_s, fps=25.0):
    return [
        (c["variant"], c["time_s"], c["picked_by"], c["scene"])
        for c in ladder.poster_plan(scenes, duration_s=duration_s, fps=fps)
    ]


def test_poster_plan_three_scene_cuts():
    assert plan([2.0, 4.4, 6.8], 9.0) == [("p1", 2.0, "scene", 1), ("p2", 4.4, "scene", 2), ("p3", 6.8, "scene", 3)]
    assert plan([2.0, 4.4, 6.8, 8.0], 9.0)[-1] == ("p3", 6.8, "scene", 3), "never more than three"


def test_poster_plan_without_cuts_is_evenly_spaced_on_the_frame_grid():
    assert plan([], 4.0) == [("p1", 1.0, "spacing", None), ("p2", 2.0, "spacing", None), ("p3", 3.0, "spacing", None)]
    # 30 s at 25 fps: frames 187.5 -> 188, 375, 562.5 -> 562 (each a real frame's time)
    assert [t for _, t, _, _ in plan([], 30.0)] == [7.52, 15.0, 22.48]
    # NTSC: on the 1001/30000 grid
    assert [t for _, t, _, _ in plan([], 60.0, fps=29.97)] == [round(f * 1001 / 30000, 3) for f in (450, 899, 1349)]


def test_poster_plan_fills_in_around_the_scene_picks():
    files = [c["file"] for c in ladder.poster_plan([3.0], duration_s=8.0, fps=25.0)]
    assert files == ["posters/p1.jpg", "posters/p2.jpg", "posters/p3.jpg"]
    # spots 2, 4, 6: the farthest from the cut first (6), then the earlier of two as far (2)
    assert plan([3.0], 8.0) == [("p1", 2.0, "spacing", None), ("p2", 3.0, "scene", 1), ("p3", 6.0, "spacing", None)]
    # a cut on a spot takes it: the spacing frames go to the other two
    assert plan([4.0], 8.0) == [("p1", 2.0, "spacing", None), ("p2", 4.0, "scene", 1), ("p3", 6.0, "spacing", None)]
    assert plan([2.0, 6.1], 8.0) == [("p1", 2.0, "scene", 1), ("p2", 4.0, "spacing", None), ("p3", 6.1, "scene", 2)]


def test_poster_plan_very_short_title_stays_on_its_frames():
    # 3 frames at 25 fps: spots on frames 1, 2 and 2 (the last), never past the end
    assert [t for _, t, _, _ in plan([], 0.12)] == [0.04, 0.08, 0.08]
    assert [t for _, t, _, _ in plan([], 0.0)] == [0.0, 0.0, 0.0]


def test_poster_frame_argv_fast_seek_then_decode_to_the_frame():
    top = select_renditions(NEWS.ladder, 1920, 1080)[0]
    argv = ladder.poster_frame_argv("/in/src.ts", "/out/posters/p2.jpg", top, time_s=15.0, fps=25.0, interlaced=False)
    assert argv[0] == "ffmpeg" and argv[-1] == "/out/posters/p2.jpg"
    i = argv.index("-i")
    assert argv[i + 1] == "/in/src.ts"
    # input seek (fast) to 5 s before half a frame ahead of the picture, then 5 s decoded (MPEG-TS lands late)
    assert argv[i - 2 : i] == ["-ss", "9.980000"], "an input option: before -i"
    assert outputs(argv)["/out/posters/p2.jpg"]["options"]["-ss"] == "5.000000", "an output option: decoded to it"
    assert outputs(argv)["/out/posters/p2.jpg"]["filters"] == [["input=0:v:0", "scale=h=720:w=1280", "setsar=r=1"]], (
        "the default poster's size and pixels"
    )
    assert option_values(argv, "-frames:v") == ["1"] and option_values(argv, "-q:v") == ["3"]
    assert option_values(argv, "-flags:v") == ["+bitexact"]
    early = ladder.poster_frame_argv("/in/a.mp4", "/o.jpg", top, time_s=2.0, fps=25.0, interlaced=True)
    assert option_values(early, "-ss") == ["0.000000", "1.980000"]
    assert outputs(early)["/o.jpg"]["filters"] == [
        ["input=0:v:0", "bwdif=deint=all:mode=send_frame", "scale=h=720:w=1280", "setsar=r=1"]
    ]
    ntsc = ladder.poster_frame_argv("/in/a.mp4", "/o.jpg", top, time_s=2.502, fps=29.97, interlaced=False)
    assert option_values(ntsc, "-ss") == ["0.000000", f"{2.502 - 1001 / 60000:.6f}"]


@pytest.mark.parametrize("spec", [SERIES, NEWS], ids=lambda s: s.name)
def test_loudness_normalised_to_the_spec_target(spec):
    argv = argv_for(select_renditions(spec.ladder, 1920, 1080), loudness=spec.loudness)
    (chain,) = outputs(argv)["/out/audio/index.m3u8"]["filters"]
    (norm,) = [f for f in chain if f.startswith("loudnorm=")]
    named = dict(kv.split("=", 1) for kv in norm.removeprefix("loudnorm=").split(":"))
    # nothing measured (the benchmark): a dynamic pass, the peak aimed a margin under the ceiling
    assert (float(named["I"]), float(named["TP"])) == (
        spec.loudness.target_lufs,
        spec.loudness.true_peak_dbtp - loudness.TP_MARGIN_DB,
    )
    downmix = outputs(["ffmpeg", "-i", "x", "-filter_complex", f"[0:a:0]{loudness.DOWNMIX}[a]", "-map", "[a]", "y"])
    assert chain[: len(downmix["y"]["filters"][0])] == downmix["y"]["filters"][0], "the defined downmix to stereo"
    measured = transcode_argv("/in/src.mxf", "/out", [], fps=25.0, interlaced=False, has_audio=True,
                              loudness=spec.loudness, duration_s=10.0,
                              audio_filter="aformat=sample_fmts=fltp,volume=-3.00dB,aresample=48000")  # fmt: skip
    assert outputs(measured)["/out/audio/index.m3u8"]["filters"] == [
        ["input=0:a:0", "aformat=sample_fmts=fltp", "volume=volume=-3.00dB", "aresample=sample_rate=48000"]
    ], "a measured pass replaces the default"


def test_audio_argv_encodes_the_audio_rendition_alone_like_the_graph():
    argv = ladder.audio_argv("/in/src.mxf", "/out/audio", audio_filter="volume=1.00dB")
    alone = outputs(argv)["/out/audio/index.m3u8"]
    assert alone["filters"] == [["input=0:a:0", "volume=volume=1.00dB"]]
    in_graph = outputs(argv_for([], has_audio=True))["/out/audio/index.m3u8"]
    assert alone["options"] == in_graph["options"], "the same AAC, HLS and segment settings"


def test_audio_only_source_gets_only_an_audio_rendition():
    argv = argv_for([], has_audio=True)
    graph = graph_of(argv)
    assert "split=" not in graph and "scale=" not in graph and "fps=" not in graph
    assert "loudnorm" in graph
    assert len(option_values(argv, "-map")) == 1
    assert "-b:v" not in argv and "libx264" not in argv
    assert [a for a in argv if a.endswith(".m3u8")] == ["/out/audio/index.m3u8"]
    assert not any(a.endswith("poster.jpg") for a in argv)
    assert not any(a.endswith(".jpg") or "posters" in a for a in argv), "audio only: no poster candidates"


def test_video_without_audio_has_no_audio_output():
    rends = select_renditions(NEWS.ladder, 1280, 720)
    argv = argv_for(rends, has_audio=False)
    graph = graph_of(argv)
    assert "loudnorm" not in graph and "[0:a" not in graph
    assert len(option_values(argv, "-map")) == len(rends) + 2, "the rungs, the poster, the poster candidates"
    assert "-c:a" not in argv
    assert not any("/audio/" in a for a in argv)
    assert [a for a in argv if a.endswith(".m3u8")] == [f"/out/{r.name}/index.m3u8" for r in rends]


def test_output_fps():
    assert output_fps(0) == 25.0
    assert output_fps(None) == 25.0
    assert output_fps(-5) == 25.0
    assert output_fps(120) == 60
    assert output_fps(60) == 60
    assert output_fps(30000 / 1001) == 29.97
    assert output_fps(24) == 24


# ---------------------------------------------------------------- master playlist and friends

AUDIO = {"uri": "audio/index.m3u8", "peak_bps": 140_000, "avg_bps": 130_000, "language": "und", "name": "Main"}
VARIANTS = [
    {
        "uri": "v720/index.m3u8",
        "width": 1280,
        "height": 720,
        "fps": 25.0,
        "peak_bps": 3_000_000,
        "avg_bps": 2_500_000,
        "codec": "avc1.64001f",
    },
    {
        "uri": "v360/index.m3u8",
        "width": 640,
        "height": 360,
        "fps": 25.0,
        "peak_bps": 800_000,
        "avg_bps": 700_000,
        "codec": "avc1.64001e",
    },
]


def stream_infs(text):
    lines = text.splitlines()
    return [(lines[i], lines[i + 1]) for i, line in enumerate(lines) if line.startswith("#EXT-X-STREAM-INF:")]


def test_master_playlist_lists_every_variant_with_audio_group():
    text = master_playlist(VARIANTS, [AUDIO])
    assert text.startswith("#EXTM3U\n") and text.endswith("\n")
    media = [line for line in text.splitlines() if line.startswith("#EXT-X-MEDIA:")]
    assert len(media) == 1
    assert "TYPE=AUDIO" in media[0] and 'GROUP-ID="aud"' in media[0] and 'URI="audio/index.m3u8"' in media[0]
    infs = stream_infs(text)
    assert [uri for _, uri in infs] == ["v720/index.m3u8", "v360/index.m3u8"]
    for (attrs, _), v in zip(infs, VARIANTS, strict=False):
        assert f"RESOLUTION={v['width']}x{v['height']}" in attrs
        assert re.search(rf"(^|[:,])BANDWIDTH={v['peak_bps'] + AUDIO['peak_bps']}(,|$)", attrs), attrs
        assert f"AVERAGE-BANDWIDTH={v['avg_bps'] + AUDIO['avg_bps']}" in attrs
        assert f'CODECS="{v["codec"]},mp4a.40.2"' in attrs
        assert 'AUDIO="aud"' in attrs
        assert "FRAME-RATE=25.000" in attrs


def test_master_playlist_video_only_has_no_audio_group():
    text = master_playlist(VARIANTS, [])
    assert "#EXT-X-MEDIA" not in text and "mp4a" not in text and "AUDIO=" not in text
    attrs = stream_infs(text)[0][0]
    assert "BANDWIDTH=3000000," in attrs


def test_master_playlist_audio_only_lists_the_audio_playlist():
    text = master_playlist([], [AUDIO])
    infs = stream_infs(text)
    assert infs == [(infs[0][0], "audio/index.m3u8")]
    assert 'CODECS="mp4a.40.2"' in infs[0][0]
    assert "BANDWIDTH=140000," in infs[0][0]
    assert "RESOLUTION" not in text and "#EXT-X-MEDIA" not in text


def test_avc_codec_strings():
    assert avc_codec("High", 40) == "avc1.640028"
    assert avc_codec("Main", 31) == "avc1.4d001f"
    assert avc_codec("Constrained Baseline", 30) == "avc1.42401e"
    assert avc_codec(None, None) == "avc1.640028"


MEDIA_PLAYLIST = """#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:4
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-INDEPENDENT-SEGMENTS
#EXTINF:4.000000,
seg_00000.ts
#EXTINF:4.000000,
seg_00001.ts
#EXTINF:1.520000,
seg_00002.ts
#EXT-X-ENDLIST
"""


def test_playlist_segments_parses_a_media_playlist():
    assert playlist_segments(MEDIA_PLAYLIST) == [(4.0, "seg_00000.ts"), (4.0, "seg_00001.ts"), (1.52, "seg_00002.ts")]
    assert playlist_segments("#EXTM3U\n#EXT-X-ENDLIST\n") == []


def test_measured_bandwidth_peak_and_average():
    peak, avg = measured_bandwidth([(4.0, 500_000), (4.0, 1_000_000), (2.0, 100_000)])
    assert peak == 2_000_000  # 1 MB over 4 s
    assert avg == 1_280_000  # 1.6 MB over 10 s
    assert peak >= avg
    assert measured_bandwidth([]) == (0, 0)
    assert measured_bandwidth([(0.0, 1000)]) == (0, 0), "zero-length segments are ignored, not divided by"


# ---------------------------------------------------------------- one real encode


def ffprobe_json(path, *args):
    proc = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", *args, str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout)


def test_real_ffmpeg_encode_of_a_tiny_source(tmp_path):
    src = tmp_path / "src.mp4"
    samples.make_video(src, width=320, height=240, fps=25, seconds=2)
    out = tmp_path / "hls"
    rends = select_renditions(NEWS.ladder, 320, 240)
    assert dims(rends) == [(320, 240)]
    ladder.output_dirs(out, rends, True)
    argv = transcode_argv(
        src, out, rends, fps=25, interlaced=False, has_audio=True, loudness=NEWS.loudness, duration_s=2.0
    )
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]

    rung = out / rends[0].name
    segments = playlist_segments((rung / "index.m3u8").read_text())
    assert segments and abs(sum(d for d, _ in segments) - 2.0) < 0.2
    stream = ffprobe_json(rung / segments[0][1], "-show_streams", "-select_streams", "v:0")["streams"][0]
    assert stream["codec_name"] == "h264"
    assert (stream["width"], stream["height"]) == (320, 240)

    audio_pl = out / ladder.AUDIO_DIR / "index.m3u8"
    assert audio_pl.exists(), "audio rendition playlist missing"
    audio_segs = playlist_segments(audio_pl.read_text())
    assert audio_segs
    astream = ffprobe_json(audio_pl.parent / audio_segs[0][1], "-show_streams")["streams"]
    assert [s["codec_type"] for s in astream] == ["audio"] and astream[0]["codec_name"] == "aac"
    assert (out / ladder.POSTER).stat().st_size > 0


def test_encoding_twice_gives_identical_bytes(tmp_path):
    """Publishing again must give the same objects: the ladder encode is repeatable byte for byte."""
    src = tmp_path / "src.mp4"
    samples.make_video(src, width=640, height=360, fps=25, seconds=3)
    rends = select_renditions(NEWS.ladder, 640, 360)
    digests = []
    for attempt in ("a", "b"):
        out = tmp_path / attempt
        ladder.output_dirs(out, rends, True)
        argv = transcode_argv(
            src, out, rends, fps=25, interlaced=False, has_audio=True, loudness=NEWS.loudness, duration_s=3.0
        )
        subprocess.run(argv, capture_output=True, check=True, timeout=60)
        digests.append({p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()})
    assert digests[0].keys() == digests[1].keys()
    differing = [name for name in digests[0] if digests[0][name] != digests[1][name]]
    assert differing == []


def test_master_playlist_with_locales_reads_back_with_an_hls_parser():
    import m3u8

    fr = {
        "uri": "audio_fr-FR/index.m3u8",
        "peak_bps": 150_000,
        "avg_bps": 128_000,
        "language": "fr-FR",
        "name": "Français",
    }
    subs = [
        {"uri": "subs_en-US/index.m3u8", "language": "en-US", "name": "English"},
        {"uri": "subs_es-ES/index.m3u8", "language": "es-ES", "name": "Español"},
    ]
    playlist = m3u8.loads(master_playlist(VARIANTS, [AUDIO, fr], subs))
    audio = [m for m in playlist.media if m.type == "AUDIO"]
    assert [(m.language, m.default, m.uri) for m in audio] == [
        ("und", "YES", "audio/index.m3u8"),
        ("fr-FR", "NO", "audio_fr-FR/index.m3u8"),
    ]
    subtitles = [m for m in playlist.media if m.type == "SUBTITLES"]
    assert [(m.language, m.group_id, m.uri) for m in subtitles] == [
        ("en-US", "subs", "subs_en-US/index.m3u8"),
        ("es-ES", "subs", "subs_es-ES/index.m3u8"),
    ]
    for variant in playlist.playlists:
        assert variant.stream_info.audio == "aud" and variant.stream_info.subtitles == "subs"
    # bandwidth budgets for the largest audio rendition a player may pick
    assert playlist.playlists[0].stream_info.bandwidth == VARIANTS[0]["peak_bps"] + fr["peak_bps"]


# ---------------------------------------------------------------- the ladder over several processes (plan_groups)

FILM = SPECS["feature_film"]
SHAPES = [(1920, 1080), (1280, 720), (854, 480), (640, 360), (320, 240), (1080, 1920)]


def _load(group):
    return (
        sum(ladder.rung_cost(r) for r in group.renditions)
        + ladder.POSTERS_PX * group.posters
        + (ladder.AUDIO_PX * group.audio)
    )


@pytest.mark.parametrize("groups", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("has_audio", [True, False])
@pytest.mark.parametrize("shape", SHAPES)
def test_every_rung_is_in_one_group_and_the_audio_and_posters_once(shape, has_audio, groups):
    for spec in SPECS.values():
        rends = select_renditions(spec.ladder, *shape)
        plan = ladder.plan_groups(rends, has_audio=has_audio, groups=groups)
        placed = [r for g in plan for r in g.renditions]
        assert sorted(placed, key=rends.index) == rends and len(placed) == len(set(placed)), "every rung exactly once"
        assert sum(g.posters for g in plan) == 1, "the posters made once"
        assert all(g.renditions for g in plan if g.posters), "the posters ride on a group that decodes the picture"
        assert sum(g.audio for g in plan) == int(has_audio), "the audio rendition made once (or not at all)"
        assert 1 <= len(plan) <= groups
        assert all(g.renditions or g.audio for g in plan), "no process without work"
        assert plan[0].renditions[0] == rends[0], "the top rung's group first"
        for g in plan:  # within a group, the ladder's order
            assert list(g.renditions) == sorted(g.renditions, key=rends.index)


def test_one_group_is_the_single_command_of_before():
    rends = select_renditions(FILM.ladder, 1920, 1080)
    kw = dict(fps=25.0, interlaced=False, loudness=LOUD, duration_s=60.0)
    ((group, argv),) = ladder.group_argvs("/in/src.mxf", "/out", rends, groups=1, has_audio=True, **kw)
    assert group == ladder.Group(tuple(rends), posters=True, audio=True)
    assert argv == transcode_argv("/in/src.mxf", "/out", rends, has_audio=True, **kw)


def test_two_groups_split_the_1080p_ladder_by_work():
    """1080p alone against 720p + 480p + 360p: the split whose two sides are closest in work (the 1080p rung's
    group also makes the light extras)."""
    rends = select_renditions(FILM.ladder, 1920, 1080)
    plan = ladder.plan_groups(rends, has_audio=True, groups=2)
    assert [[r.name for r in g.renditions] for g in plan] == [["v1080"], ["v720", "v480", "v360"]]
    assert (plan[0].audio, plan[0].posters) == (True, True)
    a, b = (_load(g) for g in plan)
    assert abs(a - b) / max(a, b) < 0.05, (a, b)


@pytest.mark.parametrize("groups", [2, 3])
@pytest.mark.parametrize("shape", [(1920, 1080), (1280, 720)])
def test_the_split_is_within_lpts_bound_of_the_best_one(shape, groups):
    """Greedy largest-first is within 4/3 of the best split: checked against every split, found by brute force."""
    import itertools

    rends = select_renditions(FILM.ladder, *shape)
    plan = ladder.plan_groups(rends, has_audio=True, groups=groups)
    parts = [ladder.rung_cost(r) for r in rends] + [ladder.AUDIO_PX, ladder.POSTERS_PX]
    best = min(
        max(sum(c for c, k in zip(parts, assign, strict=True) if k == g) for g in range(groups))
        for assign in itertools.product(range(groups), repeat=len(parts))
    )
    assert max(_load(g) for g in plan) <= best * 4 / 3


def test_a_one_rung_title_gets_its_audio_in_a_process_of_its_own():
    """A 360p title has one rung: two cores are used only when the audio (loudness filter, AAC) runs beside it."""
    rends = select_renditions(FILM.ladder, 640, 360)
    plan = ladder.plan_groups(rends, has_audio=True, groups=2)
    assert plan == [ladder.Group(tuple(rends), posters=True, audio=False), ladder.Group((), posters=False, audio=True)]
    assert ladder.plan_groups(rends, has_audio=False, groups=2) == [ladder.Group(tuple(rends), True, False)]
    assert ladder.plan_groups([], has_audio=True, groups=2) == [ladder.Group((), posters=False, audio=True)]


def test_group_argvs_each_decode_once_and_size_the_posters_by_the_top_rung():
    rends = select_renditions(FILM.ladder, 1280, 720)
    kw = dict(fps=25.0, interlaced=False, loudness=LOUD, duration_s=60.0)
    pairs = ladder.group_argvs("/in/src.mxf", "/out", rends, groups=2, has_audio=True, **kw)
    assert len(pairs) == 2
    written = []
    for group, argv in pairs:
        assert option_values(argv, "-i") == ["/in/src.mxf"], "one input, decoded once per group"
        outs = outputs(argv)
        written += list(outs)
        if group.posters:
            (chain,) = outs["/out/poster.jpg"]["filters"]
            assert "scale=h=720:w=1280" in chain, "the poster at the top rung's size, wherever it is made"
    assert sorted(written) == sorted(outputs(transcode_argv("/in/src.mxf", "/out", rends, has_audio=True, **kw)))


def test_groups_must_be_at_least_one():
    with pytest.raises(ValueError, match="at least 1"):
        ladder.plan_groups(select_renditions(FILM.ladder, 640, 360), has_audio=True, groups=0)


def test_a_failing_group_ends_the_others_and_fails_the_transcode_naming_its_rungs(tmp_path):
    from mediaflow import ffrun, flow

    runner = ffrun.Runner()
    rends = select_renditions(FILM.ladder, 1280, 720)
    endless = ["ffmpeg", "-nostdin", "-re", "-f", "lavfi", "-i", "testsrc=size=64x64:rate=10", "-f", "null", "-"]
    broken = ["ffmpeg", "-nostdin", "-i", str(tmp_path / "missing.mov"), "-f", "null", "-"]
    groups = [(ladder.Group((rends[0],), posters=False, audio=True), endless),
              (ladder.Group(tuple(rends[1:]), posters=True, audio=False), broken)]  # fmt: skip
    heard = []
    with pytest.raises(ffrun.FFmpegError, match=r"transcode group 2 of 2 \(v480, v360, posters\): .*missing.mov") as e:
        flow.encode_groups(groups, workdir=tmp_path, out=tmp_path, total_s=60.0, report=heard.append,
                           run_ffmpeg=lambda argv: runner.run(argv, check=True), kill_ffmpeg=runner.kill)  # fmt: skip
    assert not isinstance(e.value, ffrun.FFmpegKilled)
    assert runner.pid is None, "the endless group was ended with the failing one"
    assert heard and heard[0]["done"] == 0.0
