"""Poster candidates from the transcode stage, through the real library path (the S3 API over HTTP, real ffmpeg):
scene cuts the single-decode graph picks, frames at even spacing where a title has no cut, in time order, the
size of the default poster, the same bytes on every run. Sources are made here with ffmpeg's lavfi patterns, cut
at known frames; anamorphic (240x180 at SAR 4:3, shown 320x180), so every candidate has to be scaled."""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction

import pytest

from mediaflow import flow, ladder, media
from mediaflow.spec import load_specs
from mediaflow_dev import samples

SPEC = load_specs()["news_clip"]
FPS = 25
FRAME_S = 1 / FPS
SIZE = (320, 180)  # the top (only) rung of a 320x180 picture: the poster's size
PATTERNS = ["color=c=navy:", "testsrc2=", "smptebars=", "rgbtestsrc=", "testsrc=", "mandelbrot=", "yuvtestsrc="]


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def cut_source(path, shots_s: list[float]) -> None:
    """One shot per lavfi pattern, `shots_s` long each (whole frames), hard cuts between, a tone under it."""
    inputs, chain = [], ""
    for i, seconds in enumerate(shots_s):
        inputs += ["-f", "lavfi", "-i", f"{PATTERNS[i]}size=240x180:rate={FPS}"]
        chain += f"[{i}:v]trim=end_frame={round(seconds * FPS)},setpts=PTS-STARTPTS,format=yuv420p,setsar=1[v{i}];"
    total = sum(shots_s)
    inputs += ["-f", "lavfi", "-i", f"{samples.TONE}:duration={total}"]
    chain += "".join(f"[v{i}]" for i in range(len(shots_s))) + f"concat=n={len(shots_s)}:v=1:a=0,setsar=4/3[v]"
    _ffmpeg(*inputs, "-filter_complex", chain, "-map", "[v]", "-map", f"{len(shots_s)}:a", "-c:v", "libx264",
            "-preset", "ultrafast", "-crf", "18", "-g", str(FPS), "-c:a", "aac", "-fflags", "+bitexact",
            "-map_metadata", "-1", str(path))  # fmt: skip


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    d = tmp_path_factory.mktemp("poster-sources")
    # cuts at 0.6 s (inside the first second: ignored), 2.0, 2.6 (too close to 2.0), 4.4 and 6.8; 9 s long
    cut_source(d / "cuts.mp4", [0.6, 1.4, 0.6, 1.8, 2.4, 2.2])
    cut_source(d / "nocut.mp4", [4.0])  # testsrc2 only, as the bundled samples
    cut_source(d / "onecut.mp4", [3.0, 5.0])  # one cut, at 3.0; 8 s long
    samples.make_audio(d / "podcast.wav", seconds=3)
    return d


def transcode(s3, path, run_id="manual__posters"):
    store, buckets = s3
    store.upload(str(path), buckets.landing, f"deliveries/{path.stem}/{path.name}")
    ingested = {"asset_id": path.stem, "source_uri": f"s3://{buckets.landing}/deliveries/{path.stem}/{path.name}",
                "source": media.probe(path)}  # fmt: skip

    def run_ffmpeg(argv):
        subprocess.run(argv, check=True, capture_output=True, timeout=120)

    return flow.transcode(store, buckets, ingested=ingested, spec=SPEC, run_id=run_id, run_ffmpeg=run_ffmpeg)


def candidate_bytes(s3, transcoded) -> dict[str, bytes]:
    store, _ = s3
    bucket, prefix = transcoded["hls_uri"][len("s3://") :].split("/", 1)
    return {p["variant"]: store.get_bytes(bucket, prefix + p["file"]) for p in transcoded["posters"]}


def frame_at(src, n: int, out) -> bytes:
    """Frame n of a source by decoding from the start: the reference a candidate at n/FPS must be, byte for byte."""
    _ffmpeg("-i", str(src), "-vf", f"select='eq(n\\,{n})',scale={SIZE[0]}:{SIZE[1]},setsar=1", "-fps_mode", "vfr",
            "-frames:v", "1", "-q:v", "3", "-flags:v", "+bitexact", "-update", "1", str(out))  # fmt: skip
    return out.read_bytes()


def jpeg_facts(data: bytes, tmp_path, name: str) -> dict:
    path = tmp_path / name
    path.write_bytes(data)
    proc = subprocess.run(["ffprobe", "-v", "error", "-of", "json", "-show_streams", str(path)],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(proc.stdout)["streams"][0]


def assert_layout(transcoded):
    posters = transcoded["posters"]
    assert [p["variant"] for p in posters] == ["p1", "p2", "p3"]
    assert [p["file"] for p in posters] == ["posters/p1.jpg", "posters/p2.jpg", "posters/p3.jpg"]
    assert [p["time_s"] for p in posters] == sorted(p["time_s"] for p in posters), "time order, p1 first"
    assert {p["file"] for p in posters} <= set(transcoded["files"]), "uploaded with the rest"
    assert [f for f in transcoded["files"] if f.startswith(ladder.POSTERS_DIR + "/")] == [p["file"] for p in posters]
    assert ladder.POSTER in transcoded["files"], "the default poster stays"


def test_scene_cuts_are_the_candidates(s3, sources, tmp_path):
    t = transcode(s3, sources / "cuts.mp4")
    assert_layout(t)
    assert [p["picked_by"] for p in t["posters"]] == ["scene"] * 3
    times = [p["time_s"] for p in t["posters"]]
    for got, cut in zip(times, [2.0, 4.4, 6.8], strict=False):
        assert abs(got - cut) <= FRAME_S, f"candidate at {got} s, the cut is at {cut} s: {times}"
    # the picture is the first frame of the shot, the frame at the reported time
    got = candidate_bytes(s3, t)
    for p in t["posters"]:
        n = round(p["time_s"] * FPS)
        assert got[p["variant"]] == frame_at(sources / "cuts.mp4", n, tmp_path / f"ref{n}.jpg"), p
        assert got[p["variant"]] != frame_at(sources / "cuts.mp4", n - 1, tmp_path / f"ref{n - 1}.jpg"), p


def test_a_title_without_cuts_gets_frames_at_even_spacing(s3, sources, tmp_path):
    t = transcode(s3, sources / "nocut.mp4")
    assert_layout(t)
    assert [(p["time_s"], p["picked_by"]) for p in t["posters"]] == [
        (1.0, "spacing"),
        (2.0, "spacing"),
        (3.0, "spacing"),
    ]
    got = candidate_bytes(s3, t)
    for p in t["posters"]:
        n = round(p["time_s"] * FPS)
        assert got[p["variant"]] == frame_at(sources / "nocut.mp4", n, tmp_path / f"ref{n}.jpg"), p


def test_spacing_fills_in_around_a_scene_pick(s3, sources):
    t = transcode(s3, sources / "onecut.mp4")
    assert_layout(t)
    # spots 2.0, 4.0, 6.0: 6.0 is the farthest from the cut at 3.0, then 2.0 (as far as 4.0, and earlier)
    assert [(p["time_s"], p["picked_by"]) for p in t["posters"]] == [(2.0, "spacing"), (3.0, "scene"), (6.0, "spacing")]


@pytest.mark.parametrize("name", ["cuts.mp4", "onecut.mp4"])
def test_candidates_are_jpegs_the_size_of_the_default_poster(s3, sources, tmp_path, name):
    t = transcode(s3, sources / name)
    store, _ = s3
    bucket, prefix = t["hls_uri"][len("s3://") :].split("/", 1)
    default = jpeg_facts(store.get_bytes(bucket, prefix + ladder.POSTER), tmp_path, "poster.jpg")
    assert (default["width"], default["height"]) == SIZE
    for variant, data in candidate_bytes(s3, t).items():
        facts = jpeg_facts(data, tmp_path, f"{variant}.jpg")
        assert facts["codec_name"] == "mjpeg", variant
        assert (facts["width"], facts["height"]) == SIZE, variant
        assert Fraction(facts.get("sample_aspect_ratio", "1:1").replace(":", "/")) in (0, 1), variant
        assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9", f"{variant}: not a whole JPEG"


def test_candidates_are_the_same_bytes_on_every_run(s3, sources):
    """Scene picks and spacing frames alike. Only the pictures are compared here: on this clip the ladder's own
    segments are not always the same bytes (x264's sliced threads under VBV, before poster candidates too)."""
    first = transcode(s3, sources / "onecut.mp4", run_id="manual__a")
    again = transcode(s3, sources / "onecut.mp4", run_id="manual__b")
    assert first["posters"] == again["posters"]
    assert candidate_bytes(s3, first) == candidate_bytes(s3, again)
    store, buckets = s3
    etags = [{k.split("/", 2)[2]: v["etag"] for k, v in store.list(buckets.work, f"onecut/{run}/").items()
              if k.endswith(".jpg")} for run in ("manual__a", "manual__b")]  # fmt: skip
    assert sorted(etags[0]) == ["hls/poster.jpg", "hls/posters/p1.jpg", "hls/posters/p2.jpg", "hls/posters/p3.jpg"]
    assert etags[0] == etags[1]


def test_audio_only_source_has_no_candidates(s3, sources):
    t = transcode(s3, sources / "podcast.wav")
    assert t["posters"] == []
    assert not [f for f in t["files"] if f.startswith(ladder.POSTERS_DIR + "/") or f.endswith(".jpg")]


def test_a_work_folder_with_filtergraph_characters(s3, sources, tmp_path):
    """Characters the filtergraph parser would take (':' ',' '[' quotes) in the work folder change nothing."""
    store, buckets = s3
    odd = tmp_path / "it's [a]: b, c; d"
    odd.mkdir()
    path = sources / "cuts.mp4"
    store.upload(str(path), buckets.landing, "deliveries/odd/cuts.mp4")
    ingested = {"asset_id": "odd", "source_uri": f"s3://{buckets.landing}/deliveries/odd/cuts.mp4",
                "source": media.probe(path)}  # fmt: skip
    t = flow.transcode(
        store,
        buckets,
        ingested=ingested,
        spec=SPEC,
        run_id="manual__odd",
        workdir=str(odd),
        run_ffmpeg=lambda argv: subprocess.run(argv, check=True, capture_output=True, timeout=120),
    )
    assert [p["picked_by"] for p in t["posters"]] == ["scene"] * 3
