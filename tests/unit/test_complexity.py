"""The content-aware ladder (mediaflow.complexity): the probe on real generated pictures (real ffmpeg), each rung's
bitrate chosen from it, near-duplicate rungs dropped, never more bits than the fixed ladder, and the spec's opt-in."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from mediaflow import complexity, flow, ladder
from mediaflow.spec import Rung, SpecError, load_spec

# a small ladder on a 640x360 source: the probe's work stays a few seconds
RUNGS = (Rung(360, 1500), Rung(288, 1000), Rung(216, 600), Rung(144, 350))
FIXED = ladder.select_renditions(RUNGS, 640, 360)
PICTURES = {
    "flat": "smptebars=size=640x360:rate=25",  # a still picture: almost nothing to code after the first frame
    "busy": "testsrc2=size=640x360:rate=25,noise=alls=40:allf=t",  # moving graphics under heavy grain
}


def run_ffmpeg(argv: list[str]) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cae")
    out = {}
    for name, picture in PICTURES.items():
        out[name] = d / f"{name}.mp4"
        run_ffmpeg(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"{picture},trim=duration=4", "-c:v", "libx264", "-preset", "veryfast", "-crf", "12",
                    "-pix_fmt", "yuv420p", str(out[name])])  # fmt: skip
    return out


@pytest.fixture(scope="module")
def fitted(sources, tmp_path_factory) -> dict[str, complexity.Fitted]:
    return {name: complexity.fit(src, FIXED, fps=25.0, interlaced=False, duration_s=4.0, target_vmaf=93.0,
                                 run_ffmpeg=run_ffmpeg, workdir=tmp_path_factory.mktemp(f"probe-{name}"))
            for name, src in sources.items()}  # fmt: skip


def test_a_busy_picture_gets_more_bits_per_rung_than_a_flat_one(fitted):
    flat, busy = ({c.rung: c for c in fitted[k].choices} for k in ("flat", "busy"))
    for r in FIXED:
        assert busy[r.name].probe_kbps[0] > 5 * flat[r.name].probe_kbps[0], "grain costs bits at a fixed CRF"
        assert busy[r.name].chosen_kbps > flat[r.name].chosen_kbps, r.name
    # heavy grain needs more than the fixed ladder gives at every rung: it keeps the fixed ladder, all rungs
    assert [(r.name, r.video_kbps) for r in fitted["busy"].renditions] == [(r.name, r.video_kbps) for r in FIXED]


def test_a_flat_picture_saves_bits_and_drops_the_rungs_that_would_cost_the_same(fitted):
    flat = fitted["flat"]
    assert sum(r.video_kbps for r in flat.renditions) < 0.5 * sum(r.video_kbps for r in FIXED)
    assert flat.renditions[0].name == "v360", "the top rung (the title's full picture) is always kept"
    assert len(flat.renditions) < len(FIXED), [c.why for c in flat.choices]
    dropped = [c for c in flat.choices if not c.kept]
    assert all(c.why.startswith("dropped") for c in dropped)
    kept = [r.video_kbps for r in flat.renditions]
    assert all(hi >= complexity.MIN_STEP * lo for hi, lo in zip(kept, kept[1:], strict=False)), kept


def test_no_rung_ever_gets_more_than_the_fixed_ladder_or_less_than_the_floor(fitted):
    for fit in fitted.values():
        for c, r in zip(fit.choices, FIXED, strict=True):
            assert complexity.floor_kbps(r, 25.0) <= c.chosen_kbps <= r.video_kbps, c
        figures = json.loads(json.dumps(fit.figures()))  # what the transcode result carries (plain JSON)
        assert figures["mode"] == "content_aware" and figures["target_vmaf"] == 93.0
        assert [r["rung"] for r in figures["rungs"]] == [r.name for r in FIXED]


def test_choose_from_hand_made_probe_figures():
    # probe kb/s at PROBE_CRF, two windows each: the hardest one decides
    seen = {"v360": [400.0, 900.0], "v288": [300.0, 600.0], "v216": [200.0, 350.0], "v144": [100.0, 150.0]}
    picks = complexity.choose(FIXED, seen, fps=25.0, target_vmaf=93.0)
    for c, r in zip(picks, FIXED, strict=True):
        expected = complexity.needed_kbps(max(seen[r.name]), r, fps=25.0, target_vmaf=93.0)
        assert c.needed_kbps == round(expected)
        assert c.chosen_kbps == round(min(max(expected, complexity.floor_kbps(r, 25.0)), r.video_kbps))
    # a higher target needs more bits for the same picture
    higher = complexity.choose(FIXED, seen, fps=25.0, target_vmaf=96.0)
    assert all(h.needed_kbps > c.needed_kbps for h, c in zip(higher, picks, strict=True))


def test_near_duplicate_rungs_are_dropped_bottom_up_and_the_top_rung_stays():
    # every rung at the floor: only the top one is worth keeping
    tiny = {r.name: [1.0] for r in FIXED}
    picks = complexity.choose(FIXED, tiny, fps=25.0, target_vmaf=93.0)
    assert [c.kept for c in picks] == [True, False, False, False]
    assert "under" in picks[1].why


def test_the_probe_cap_never_changes_a_choice():
    # the cap is past the point where a rung gets the fixed bitrate anyway: a probe held at the cap still does
    for r in FIXED:
        cap = complexity.probe_cap_kbps(r, fps=25.0, target_vmaf=93.0)
        capped = complexity.choose([r], {r.name: [cap]}, fps=25.0, target_vmaf=93.0)[0]
        assert capped.chosen_kbps == r.video_kbps
        at_half = complexity.needed_kbps(cap / complexity.CAP_OVER, r, fps=25.0, target_vmaf=93.0)
        assert at_half == pytest.approx(r.video_kbps, rel=0.01)


def test_probe_windows_spread_over_the_title_and_stay_small():
    assert complexity.windows(2.0) == [(0.0, 2.0)]
    wins = complexity.windows(600.0)
    assert len(wins) == 8 and all(n == complexity.WINDOW_S for _, n in wins)
    assert wins[0][0] < 60 and wins[-1][0] > 500, "beginning and end of the title both seen"
    assert sum(n for _, n in wins) / 600.0 <= 0.05
    assert len(complexity.windows(60.0)) == 1 and len(complexity.windows(61.0)) == 2


def test_the_probe_argv_is_the_ladder_chain_at_a_fixed_crf(tmp_path):
    argv = complexity.probe_argv("src.mxf", tmp_path, FIXED[:2], start=10.0, length=3.0, fps=29.97, interlaced=True)
    graph = argv[argv.index("-filter_complex") + 1]
    assert graph.index("bwdif") < graph.index("fps=30000/1001") < graph.index("split=2")
    assert "scale=640:360:flags=bicubic" in graph and "setsar=1" in graph
    assert argv[argv.index("-ss") + 1] == "10.000" and argv.index("-ss") < argv.index("-i")
    assert argv.count("-crf") == 2 and argv[argv.index("-crf") + 1] == str(complexity.PROBE_CRF)
    assert str(tmp_path / "v360.h264") in argv and str(tmp_path / "v288.h264") in argv
    assert "-maxrate" not in argv and "-y" in argv
    capped = complexity.probe_argv("src.mxf", tmp_path, FIXED[:1], start=0, length=3, fps=25, interlaced=False,
                                   caps={"v360": 4000})  # fmt: skip
    assert capped[capped.index("-maxrate") + 1] == "4000k" and capped[capped.index("-bufsize") + 1] == "4000k"


# ---------------------------------------------------------------- the spec's opt-in

SPEC = """\
name: cae_stream
owners: [ops@example.com]
ladder:
  - {{height: 360, video_kbps: 1500}}
  - {{height: 216, video_kbps: 600}}
loudness: {{target_lufs: -16, true_peak_dbtp: -1.5}}
stages:
  ingest: {{sla: 2m}}
lead_time_sla: 45m
{extra}
"""


def spec_file(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "cae_stream.yaml"
    path.write_text(SPEC.format(extra=extra))
    return path


def test_the_fixed_ladder_is_the_default(tmp_path):
    spec = load_spec(spec_file(tmp_path, ""))
    assert (spec.ladder_mode, spec.target_vmaf) == ("fixed", None)


def test_a_stream_opts_in_with_its_vmaf_target(tmp_path):
    spec = load_spec(spec_file(tmp_path, "ladder_mode: content_aware\ntarget_vmaf: 95"))
    assert (spec.ladder_mode, spec.target_vmaf) == ("content_aware", 95.0)
    assert load_spec(spec_file(tmp_path, "ladder_mode: content_aware")).target_vmaf == 93.0


@pytest.mark.parametrize(
    "extra, field, problem",
    [
        ("ladder_mode: per_title", "ladder_mode", "'per_title' must be one of fixed, content_aware"),
        ("target_vmaf: 93", "target_vmaf", "only with ladder_mode: content_aware"),
        ("ladder_mode: content_aware\ntarget_vmaf: 99.5", "target_vmaf", "99.5 is outside 85.0..97.0"),
        ("ladder_mode: content_aware\ntarget_vmaf: high", "target_vmaf", "must be a number"),
    ],
)
def test_a_bad_ladder_mode_names_the_file_and_the_field(tmp_path, extra, field, problem):
    path = spec_file(tmp_path, extra)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert str(err.value).startswith(f"{path}: field '{field}': ")
    assert problem in str(err.value)


# ---------------------------------------------------------------- through the transcode step


def test_a_content_aware_stream_transcodes_its_fitted_ladder_and_says_why(s3, sources, tmp_path):
    store, buckets = s3
    spec = load_spec(spec_file(tmp_path, "ladder_mode: content_aware"))
    store.upload(str(sources["flat"]), buckets.landing, "deliveries/d1/flat.mp4")
    doc = {"asset_id": "flat-title", "title": "Flat", "value_stream": "cae_stream", "source": {"file": "flat.mp4"},
           "territories": ["US"], "channels": ["web"]}  # fmt: skip
    store.put_bytes(json.dumps(doc).encode(), buckets.landing, "deliveries/d1/manifest.json")
    ingested = flow.ingest(store, buckets, delivery="d1", spec=spec, known_streams={"cae_stream"}, run_id="r1")
    assert ingested["status"] == "accepted", ingested["reasons"]
    got = flow.transcode(store, buckets, ingested=ingested, spec=spec, run_id="r1", run_ffmpeg=run_ffmpeg,
                         workdir=str(tmp_path))  # fmt: skip
    assert list(got)[:7] == ["hls_uri", "files", "variants", "audios", "fps", "posters", "loudness"]
    assert got["ladder"]["mode"] == "content_aware"
    assert [c["kept"] for c in got["ladder"]["rungs"]] == [True, False], "a still picture needs one rung"
    assert [v["uri"] for v in got["variants"]] == ["v360/index.m3u8"]
    assert not [f for f in got["files"] if f.startswith(("v216/", "w0/"))], "no dropped rung, no probe file uploaded"
    assert got["variants"][0]["avg_bps"] < 1500_000 * 0.5
