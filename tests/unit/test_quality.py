"""Rendition quality (mediaflow.quality): the scorer's figures from real libvmaf/psnr/ssim runs of the pinned ffmpeg 6
on generated clips encoded by the real ladder graph, the windows a title is scored on, the gate's decisions and the
spec's `quality` field."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from mediaflow import ladder, media, quality
from mediaflow.quality import RungScore
from mediaflow.spec import Loudness, Quality, Rung, SpecError, parse_spec
from mediaflow_dev import samples

SECONDS = 10.0  # two and a half HLS segments: a window in the third one exercises both seeks


def run_ffmpeg(argv: list[str]) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def encoded(tmp_path_factory) -> dict:
    """A 640x360 25 fps test pattern encoded by ladder.transcode_argv twice: at 1500 kbps and starved at 100 kbps."""
    tmp = tmp_path_factory.mktemp("quality")
    src = tmp / "src.mp4"
    run_ffmpeg(["ffmpeg", "-nostdin", "-y", "-f", "lavfi", "-i", f"testsrc2=size=640x360:rate=25:duration={SECONDS}",
                "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-pix_fmt", "yuv420p", str(src)])  # fmt: skip
    out = {"src": src, "tmp": tmp}
    for name, kbps in (("good", 1500), ("starved", 100)):
        (rend,) = ladder.select_renditions((Rung(360, kbps),), 640, 360)
        hls = tmp / name
        ladder.output_dirs(hls, [rend], False)
        run_ffmpeg(ladder.transcode_argv(src, hls, [rend], fps=25, interlaced=False, has_audio=False,
                                         loudness=Loudness(-23, -1), duration_s=SECONDS, poster=False))  # fmt: skip
        out[name] = (hls, rend)
    return out


WINS = [(0.5, 2.0), (8.2, 1.2)]  # the first segment (no seek), and the third (both inputs seek)


@pytest.fixture(scope="module")
def scores(encoded) -> dict[str, RungScore]:
    out = {}
    for name in ("good", "starved"):
        hls, rend = encoded[name]
        work = encoded["tmp"] / f"work-{name}"
        work.mkdir()
        out[name] = quality.score_rendition(encoded["src"], hls, rend, fps=25, interlaced=False, duration_s=SECONDS,
                                            run_ffmpeg=run_ffmpeg, workdir=work, wins=WINS)  # fmt: skip
    return out


def test_an_unimpaired_encode_scores_high_and_a_starved_one_far_lower(scores):
    good, starved = scores["good"], scores["starved"]
    assert good.vmaf > 90, good  # misaligned frames (one frame off) would pull a moving pattern far below this
    assert good.vmaf_min > 80 and good.psnr > 35 and good.ssim > 0.98, good
    assert starved.vmaf < good.vmaf - 20, (good, starved)
    assert starved.psnr < good.psnr and starved.ssim < good.ssim
    assert good.frames == 50 + 30  # 2.0 s + 1.2 s at 25 fps: every frame of both windows, none twice
    assert good.to_dict()["windows"] == [[0.5, 2.0], [8.2, 1.2]]
    assert {"rendition": "v360", "width": 640, "height": 360}.items() <= good.to_dict().items()


def test_the_gate_names_the_starved_rung(scores):
    problems = quality.gate([scores["good"], scores["starved"].to_dict()], Quality(vmaf_floor=80))
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"rendition v360: VMAF {scores['starved'].vmaf:.1f} below the stream's floor 80")
    assert "(windows 0:00-0:02, 0:08-0:09)" in problems[0]


def test_the_score_matches_libvmafs_own_pooling(encoded, tmp_path):
    """The parser's mean/min/harmonic mean of a real libvmaf log are the ones libvmaf itself writes."""
    hls, rend = encoded["starved"]
    logs = quality.Logs.in_dir(tmp_path, "w")
    win = (8.2, 1.2)
    run_ffmpeg(quality.reference_argv(encoded["src"], rend, win, logs.reference, fps=25, interlaced=False))
    copy_argv, copy_start = quality.distorted_argv(hls / rend.name / "index.m3u8", win, logs.distorted, fps=25)
    assert copy_start == 200  # the third segment's keyframe (8.0 s)
    run_ffmpeg(copy_argv)
    run_ffmpeg(quality.score_argv(logs, win, fps=25, copy_start=copy_start))
    text = logs.vmaf.read_text()
    figures = quality.read_logs(logs)
    pooled = quality.vmaf_pooled(text)
    assert len(figures.vmaf) == len(figures.mse) == len(figures.ssim) == 30
    assert figures.vmaf_mean == pytest.approx(pooled["mean"], abs=1e-3)
    assert figures.vmaf_min == pytest.approx(pooled["min"], abs=1e-3)
    assert figures.vmaf_harmonic_mean == pytest.approx(pooled["harmonic_mean"], abs=1e-3)
    assert 10 < figures.psnr < 60 and 0 < figures.ssim_mean < 1


def test_one_frame_off_would_show(encoded, tmp_path):
    """The alignment matters and is right: the good rung's window scored one frame off scores far lower."""
    hls, rend = encoded["good"]
    logs = quality.Logs.in_dir(tmp_path, "w")
    win = (4.4, 1.2)
    run_ffmpeg(quality.reference_argv(encoded["src"], rend, win, logs.reference, fps=25, interlaced=False))
    copy_argv, copy_start = quality.distorted_argv(hls / rend.name / "index.m3u8", win, logs.distorted, fps=25)
    run_ffmpeg(copy_argv)
    vmaf = {}
    for shift in (0, 1):
        run_ffmpeg(quality.score_argv(logs, win, fps=25, copy_start=copy_start - shift))
        vmaf[shift] = quality.read_logs(logs).vmaf_mean
    assert vmaf[0] > 90 and vmaf[1] < vmaf[0] - 15, vmaf


def _mid_gop_recording(tmp) -> Path:
    """An off-air recording that starts mid-GOP: 576i25 MPEG-2 in TS, open GOPs, cut where no keyframe is."""
    whole, cut = tmp / "offair.ts", tmp / "offair-cut.ts"
    samples.make_broadcast_ts(whole, seconds=8)
    samples.cut_mid_gop(whole, cut)
    return cut


def _late_video_mp4(tmp) -> Path:
    """An MP4 whose picture starts 0.6 s after its sound (the container starts at the sound)."""
    both, late = tmp / "both.mp4", tmp / "late.mp4"
    run_ffmpeg(["ffmpeg", "-nostdin", "-y", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=6", "-f",
                "lavfi", "-i", "sine=f=440:d=6", "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-c:a", "aac",
                str(both)])  # fmt: skip
    run_ffmpeg(["ffmpeg", "-nostdin", "-y", "-itsoffset", "0.6", "-i", str(both), "-i", str(both), "-map", "0:v",
                "-map", "1:a", "-c", "copy", str(late)])  # fmt: skip
    return late


@pytest.mark.parametrize("make", [_mid_gop_recording, _late_video_mp4], ids=["mid_gop_ts", "late_video_mp4"])
def test_a_source_whose_picture_starts_late_scores_its_rungs_frame_for_frame(make, tmp_path):
    """A recording that starts mid-GOP, as ingest prepares it (its copy from the first keyframe: the sound starts
    0.6 s before the picture), and an MP4 whose picture starts after its sound: the transcode puts the first
    picture at the sound's start (repeated to fill the gap); the reference must follow, frame for frame, or an
    unimpaired rung scores like noise (before the fix: PSNR 20 dB, VMAF 13-17)."""
    (prepared := tmp_path / "prepared").mkdir()
    src = make(tmp_path)
    facts = media.inspect_source(src, min_duration_s=1, workdir=prepared)  # as ingest does
    src = prepared / facts["prepared"] if facts.get("prepared") else src
    video = facts["video"]
    rends = ladder.select_renditions((Rung(360, 1200),), round(video["width"] * video["sar"]), video["height"])
    fps = ladder.output_fps(video["fps"])
    hls = tmp_path / "hls"
    ladder.output_dirs(hls, rends, True)
    run_ffmpeg(ladder.transcode_argv(src, hls, rends, fps=fps, interlaced=video["interlaced"], has_audio=True,
                                     loudness=Loudness(-23, -1), duration_s=facts["duration_s"], poster=False))  # fmt: skip
    (work := tmp_path / "work").mkdir()
    (score,) = quality.score_ladder(src, hls, rends, fps=fps, interlaced=video["interlaced"],
                                    duration_s=facts["duration_s"], run_ffmpeg=run_ffmpeg, workdir=work)  # fmt: skip
    assert score.vmaf > 85 and score.psnr > 30 and score.ssim > 0.97, score
    encoded = sum(d for d, _ in ladder.playlist_segments((hls / rends[0].name / "index.m3u8").read_text()))
    assert score.frames == round(encoded * fps), score  # every frame of the rung scored, none twice


def test_a_ladder_over_two_processes_scores_every_rung_frame_for_frame(tmp_path):
    """The ladder as two ffmpeg processes (ladder.group_argvs), only one of them reading the sound: each rung is
    scored on its own process's timeline (audio_with names the rungs whose process read the sound)."""
    (prepared := tmp_path / "prepared").mkdir()
    facts = media.inspect_source(_mid_gop_recording(tmp_path), min_duration_s=1, workdir=prepared)
    src, video = prepared / facts["prepared"], facts["video"]
    rends = ladder.select_renditions((Rung(576, 2000), Rung(360, 1200)), round(video["width"] * video["sar"]),
                                     video["height"])  # fmt: skip
    hls = tmp_path / "hls"
    ladder.output_dirs(hls, rends, True)
    fps = ladder.output_fps(video["fps"])
    groups = ladder.group_argvs(src, hls, rends, groups=2, has_audio=True, fps=fps, interlaced=video["interlaced"],
                                loudness=Loudness(-23, -1), duration_s=facts["duration_s"], poster=False)  # fmt: skip
    assert len(groups) == 2 and sum(g.audio for g, _ in groups) == 1
    for _, argv in groups:
        run_ffmpeg(argv)
    (work := tmp_path / "work").mkdir()
    scores = quality.score_ladder(src, hls, rends, fps=fps, interlaced=video["interlaced"],
                                  duration_s=facts["duration_s"], run_ffmpeg=run_ffmpeg, workdir=work,
                                  audio_with={r.name for g, _ in groups if g.audio for r in g.renditions})  # fmt: skip
    assert [s.rendition for s in scores] == ["v576", "v360"]
    for score in scores:
        assert score.vmaf > 85 and score.psnr > 30, score


def test_the_timeline_follows_ffmpegs_start_rule():
    """A transport stream's timeline starts at the earliest of the streams the transcode reads; any other
    container's at its own start."""
    probe = {"format": {"format_name": "mpegts", "start_time": "1.000000"},
             "streams": [{"codec_type": "subtitle", "start_time": "1.000000"},
                         {"codec_type": "video", "start_time": "2.010000"},
                         {"codec_type": "audio", "start_time": "1.400000"}]}  # fmt: skip
    assert quality.timeline_of(probe) == quality.Timeline(origin_s=1.4, container_start_s=1.0)
    assert quality.timeline_of(probe, has_audio=False).origin_s == 2.01
    mp4 = {**probe, "format": {"format_name": "mov,mp4,m4a,3gp,3g2,mj2", "start_time": "1.000000"}}
    assert quality.timeline_of(mp4) == quality.Timeline(origin_s=1.0, container_start_s=1.0)


def test_parsers_read_the_stats_files_and_refuse_empty_ones():
    psnr = "n:1 mse_avg:2.00 mse_y:1.50 mse_u:3.00 mse_v:3.00 psnr_avg:45.11 psnr_y:46.37 psnr_u:43.36 psnr_v:43.36\n"
    ssim = "n:1 Y:0.990000 U:0.980000 V:0.970000 All:0.985000 (18.239087)\n"
    figures = quality.Figures((90.0, 70.0), quality.parse_psnr_stats(psnr * 2), quality.parse_ssim_stats(ssim * 2))
    assert figures.psnr == pytest.approx(45.1205, abs=1e-3) and figures.ssim_mean == 0.985
    assert figures.vmaf_mean == 80.0 and figures.vmaf_min == 70.0
    assert quality.Figures(mse=(0.0,)).psnr == 100.0  # identical pictures
    for parse, empty in ((quality.parse_psnr_stats, ""), (quality.parse_ssim_stats, "\n"),
                         (quality.parse_vmaf_log, json.dumps({"frames": []}))):  # fmt: skip
        with pytest.raises(ValueError):
            parse(empty)


# ---------------------------------------------------------------- windows


def test_a_short_title_is_scored_whole():
    assert quality.windows(4.0) == [(0.0, 4.0)]
    assert quality.windows(quality.WHOLE_S) == [(0.0, quality.WHOLE_S)]
    assert quality.windows(0) == []


def _check_spread(wins, duration):
    n = len(wins)
    inner = duration - 2 * quality.EDGE_S
    for i, (start, length) in enumerate(wins):  # one window inside each equal slice, clear of the edges
        lo, hi = quality.EDGE_S + inner * i / n, quality.EDGE_S + inner * (i + 1) / n
        assert lo <= start and start + length <= hi + 1e-6, (i, start, length, lo, hi)


def test_a_two_hour_title_gets_windows_from_every_part_within_the_budget():
    duration = 2 * 3600.0
    wins = quality.windows(duration)
    _check_spread(wins, duration)
    assert wins[0][0] < duration * 0.05 and wins[-1][0] > duration * 0.95  # opening and end represented
    scored = sum(length for _, length in wins)
    assert scored <= quality.SCORED_SHARE * duration + 1e-6
    # the budget: scoring every rung of the default ladder on the windows costs at most BUDGET of the transcode
    cost = scored * sum(quality.COST_RUNG_S.values())
    assert cost <= quality.BUDGET * quality.COST_LADDER_S * duration + 1e-6
    assert all(quality.MIN_WINDOW_S <= length <= quality.WINDOW_S for _, length in wins)


@pytest.mark.parametrize("duration", [21.0, 60.0, 600.0, 5880.0])
def test_titles_over_the_short_limit_get_at_least_an_opening_middle_and_end_window(duration):
    wins = quality.windows(duration)
    assert len(wins) >= 3
    _check_spread(wins, duration)


def test_windows_land_on_the_frame_grid():
    assert quality.frame_window(8.2, 1.2, 25) == (205, 30)
    assert quality.frame_window(1.0, 2.0, 29.97) == (30, 60)


# ---------------------------------------------------------------- the gate


def _score(name: str, height: int, vmaf: float) -> dict:
    return {"rendition": name, "width": height * 16 // 9, "height": height, "vmaf": vmaf, "vmaf_min": vmaf - 5,
            "vmaf_hmean": vmaf - 1, "psnr": 40.0, "ssim": 0.98, "windows": [[10.0, 6.0], [62.0, 6.0]], "frames": 300}  # fmt: skip


LADDER = [_score("v1080", 1080, 84.0), _score("v720", 720, 81.0), _score("v540", 540, 59.5), _score("v360", 360, 61.0)]


def test_per_height_floors_name_each_rung_below_its_own_floor():
    problems = quality.gate(LADDER, Quality(vmaf_floor=((1080, 85.0), (720, 80.0), (360, 60.0))))
    assert problems == [
        "rendition v1080: VMAF 84.0 below the stream's floor 85 (windows 0:10-0:16, 1:02-1:08)",
        # 540 is not listed: the nearest listed height below it (360) gives its floor
        "rendition v540: VMAF 59.5 below the stream's floor 60 (windows 0:10-0:16, 1:02-1:08)",
    ]


def test_a_rung_below_every_listed_height_takes_the_smallest_floor():
    assert quality.floor_for(240, Quality(vmaf_floor=((1080, 85.0), (720, 70.0)))) == 70.0
    assert quality.floor_for(2160, Quality(vmaf_floor=((1080, 85.0), (720, 70.0)))) == 85.0
    assert quality.gate([_score("v240", 240, 69.0)], Quality(vmaf_floor=((1080, 85.0), (720, 70.0)))) == [
        "rendition v240: VMAF 69.0 below the stream's floor 70 (windows 0:10-0:16, 1:02-1:08)"
    ]


def test_one_floor_for_every_rung_and_no_floor_at_all():
    assert quality.gate(LADDER, Quality(vmaf_floor=59.0)) == []
    assert [p.split(":")[0] for p in quality.gate(LADDER, Quality(vmaf_floor=70))] == ["rendition v540",
                                                                                       "rendition v360"]  # fmt: skip
    assert quality.gate(LADDER, None) == []
    assert quality.gate(LADDER, Quality(on_fail="reject")) == []  # a policy without a floor gates nothing


# ---------------------------------------------------------------- the spec's quality field

BASE = {"name": "s", "owners": ["a@example.com"], "ladder": [{"height": 720, "video_kbps": 3000}],
        "loudness": {"target_lufs": -23, "true_peak_dbtp": -1}, "stages": {"ingest": {"sla": "10m"}},
        "lead_time_sla": "1h"}  # fmt: skip


def test_the_spec_reads_quality():
    assert parse_spec(BASE, "s.yaml").quality is None
    one = parse_spec({**BASE, "quality": {"vmaf_floor": 70}}, "s.yaml").quality
    assert one == Quality(vmaf_floor=70.0, on_fail="review")
    per = parse_spec({**BASE, "quality": {"vmaf_floor": {720: 80, 1080: 85}, "on_fail": "reject"}}, "s.yaml").quality
    assert per == Quality(vmaf_floor=((1080, 85.0), (720, 80.0)), on_fail="reject")


@pytest.mark.parametrize(
    ("quality_conf", "field", "says"),
    [
        ("high", "quality", "must be a mapping"),
        ({"vmaf_floor": 70, "grade": "A"}, "quality", "must be a mapping with vmaf_floor and/or on_fail"),
        ({"vmaf_floor": 170}, "quality.vmaf_floor", "outside 0..100"),
        ({"vmaf_floor": "70"}, "quality.vmaf_floor", "must be a number"),
        ({"vmaf_floor": {}}, "quality.vmaf_floor", "at least one height"),
        ({"vmaf_floor": {"hd": 80}}, "quality.vmaf_floor.hd", "rung height"),
        ({"vmaf_floor": {720: None}}, "quality.vmaf_floor.720", "must be a number"),
        ({"vmaf_floor": 70, "on_fail": "drop"}, "quality.on_fail", "review, reject"),
    ],
)
def test_spec_quality_errors_name_the_file_and_the_field(quality_conf, field, says):
    with pytest.raises(SpecError) as e:
        parse_spec({**BASE, "quality": quality_conf}, "streams/s.yaml")
    assert str(e.value).startswith(f"streams/s.yaml: field '{field}': ") and says in str(e.value), str(e.value)


def test_a_missing_scorer_says_what_to_run(monkeypatch, tmp_path):
    monkeypatch.setenv(quality.SCORER_ENV, str(tmp_path / "nope"))
    with pytest.raises(quality.ScorerMissing, match="no such file"):
        quality.scorer_path()
    monkeypatch.delenv(quality.SCORER_ENV)
    monkeypatch.setattr(quality.sys, "prefix", str(tmp_path))
    monkeypatch.setattr(quality, "OPT", tmp_path)
    with pytest.raises(quality.ScorerMissing, match="make deps"):
        quality.scorer_path()


def test_the_pinned_scorer_is_installed_and_has_libvmaf():
    path = quality.scorer_path()
    filters = subprocess.run([str(path), "-hide_banner", "-filters"], capture_output=True, text=True, timeout=60)
    assert {"libvmaf", "psnr", "ssim"} <= {line.split()[1] for line in filters.stdout.splitlines()[8:] if line.split()}
