"""Progress inside the long stages: ffmpeg's machine-readable -progress output turned into seconds of the source
encoded (a real ffmpeg on a generated clip), the objects a transcode uploads and a publish copies, and the words
`make run` and the task log show for them."""

from __future__ import annotations

import subprocess
import threading

import pytest

from mediaflow import flow, media, progress
from mediaflow.spec import load_specs

SPEC = load_specs()["news_clip"]
SECONDS = 20


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True, timeout=120)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("progress") / "clip.mp4"
    _ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=320x180:rate=25:duration={SECONDS}",
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={SECONDS}",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "2", str(path))  # fmt: skip
    return path


def test_blocks_split_across_reads_are_parsed_whole():
    text = ("frame=10\nout_time_us=400000\nout_time=00:00:00.400000\nprogress=continue\n"
            "frame=20\nout_time_us=800000\nout_ti")  # fmt: skip
    blocks, rest = progress.parse_blocks(text)
    assert [progress.out_time_s(b) for b in blocks] == [0.4] and rest.startswith("frame=20")
    blocks, rest = progress.parse_blocks(rest + "me=00:00:00.800000\nprogress=end\n")
    assert [(progress.out_time_s(b), b["progress"]) for b in blocks] == [(0.8, "end")] and rest == ""
    assert progress.out_time_s({"out_time_us": "N/A", "out_time": "N/A"}) is None, "before the first frame"
    assert progress.out_time_s({"out_time": "01:02:03.500000"}) == 3723.5


def test_a_real_encode_reports_monotonic_seconds_up_to_the_whole_source(clip, tmp_path):
    reports = []
    argv = ["ffmpeg", "-nostdin", "-hide_banner", "-y", "-i", str(clip), "-vf", "scale=160:90", "-c:v", "libx264",
            "-preset", "veryfast", "-c:a", "aac", str(tmp_path / "out.mp4")]  # fmt: skip
    with progress.FFmpegProgress(tmp_path / "progress.txt", total_s=SECONDS, report=reports.append, stage="transcode",
                                 poll_s=0.05) as watched:  # fmt: skip
        subprocess.run(progress.with_progress(argv, watched.path, period_s=0.1), check=True, capture_output=True,
                       timeout=120)  # fmt: skip
    done = [r["done"] for r in reports]
    assert done[0] == 0 and done[-1] == SECONDS and watched.ended, reports
    assert done == sorted(done) and len(set(done)) == len(done), "monotonic, each figure once"
    assert {(r["stage"], r["unit"], r["total"]) for r in reports} == {("transcode", "s", SECONDS)}
    assert progress.describe(reports[-1]) == "transcode 100 % (0:20 of 0:20)"
    # what ffmpeg wrote: key=value blocks, seconds rising, the last one `end` (never its log text)
    blocks, rest = progress.parse_blocks((tmp_path / "progress.txt").read_text())
    seconds = [progress.out_time_s(b) for b in blocks if progress.out_time_s(b) is not None]
    assert blocks[-1]["progress"] == "end" and rest == "" and seconds == sorted(seconds)
    assert seconds[-1] == pytest.approx(SECONDS, abs=0.2)


def test_a_failed_encode_reports_no_end(clip, tmp_path):
    reports = []
    with pytest.raises(subprocess.CalledProcessError):
        with progress.FFmpegProgress(tmp_path / "p.txt", total_s=SECONDS, report=reports.append, stage="transcode"):
            subprocess.run(progress.with_progress(["ffmpeg", "-nostdin", "-i", str(tmp_path / "missing.mp4"),
                                                   str(tmp_path / "o.mp4")], tmp_path / "p.txt"),
                           check=True, capture_output=True, timeout=60)  # fmt: skip
    assert [r["done"] for r in reports] == [0.0], "no figure past what was encoded"


def test_until_ffmpeg_writes_its_first_block_the_fallback_gives_the_figure(tmp_path):
    """ffmpeg 5.x holds its first -progress block until every output has started (the poster candidates wait for a
    scene cut): meanwhile the figure comes from the segments written."""
    reports = []
    with progress.FFmpegProgress(tmp_path / "p.txt", total_s=60, report=reports.append, stage="transcode",
                                 poll_s=0.05, fallback=lambda: 8.0):  # fmt: skip
        subprocess.run(["python3", "-c", "import time; time.sleep(1)"], check=True)  # an encode that says nothing yet
    assert [r["done"] for r in reports] == [0.0, 8.0]


def test_segments_written_count_only_what_every_output_has_finished(tmp_path):
    from mediaflow import ladder

    renditions = ladder.select_renditions(SPEC.ladder, 1280, 720)[:2]
    assert flow.segments_written_s(tmp_path, renditions, True) is None, "nothing started yet"
    for name, n in ((renditions[0].name, 5), (renditions[1].name, 4), (ladder.AUDIO_DIR, 6)):
        (tmp_path / name).mkdir()
        for i in range(n):
            (tmp_path / name / f"seg_{i:05d}.ts").write_bytes(b"x")
    assert flow.segments_written_s(tmp_path, renditions, True) == 3 * ladder.SEGMENT_S, (
        "the slowest output, less the open segment"
    )


def test_transcode_and_publish_report_seconds_then_objects(s3, clip):
    store, buckets = s3
    key = "deliveries/clip/clip.mp4"
    store.upload(str(clip), buckets.landing, key)
    ingested = {"asset_id": "clip", "delivery_id": "clip", "delivered_at": "2026-12-04T01:00:00Z",
                "source_uri": f"s3://{buckets.landing}/{key}", "source": media.inspect_source(clip, min_duration_s=0),
                "channels": ["web", "ott_partner"], "territories": ["US"], "previous": None}  # fmt: skip
    heard, lock = [], threading.Lock()

    def report(p):
        with lock:  # uploads and copies report from their threads
            heard.append(dict(p))

    transcoded = flow.transcode(store, buckets, ingested=ingested, spec=SPEC, run_id="manual__progress",
                                run_ffmpeg=lambda argv: subprocess.run(argv, check=True, capture_output=True, timeout=300),
                                progress=report)  # fmt: skip
    encode = [p for p in heard if p["phase"] is None]
    upload = [p for p in heard if p["phase"] == "upload"]
    assert encode[-1]["done"] == encode[-1]["total"] == ingested["source"]["duration_s"], encode[-3:]
    assert [p["done"] for p in upload] == list(range(len(transcoded["files"]) + 1)), "every file, counted once"
    assert {p["total"] for p in upload} == {len(transcoded["files"])}

    heard.clear()
    flow.publish(store, buckets, ingested=ingested, transcoded=transcoded, localized=[], progress=report)
    total = 2 * (len(transcoded["files"]) + 2)  # two channels: every file, the default poster and the master
    assert {(p["stage"], p["unit"], p["total"]) for p in heard} == {("publish", "objects", total)}
    assert sorted(p["done"] for p in heard) == list(range(total + 1))
    assert progress.describe(heard[-1]) == f"publish {total}/{total} objects"


def test_the_words_for_a_report():
    assert progress.describe(progress.progress(stage="transcode", done=3096.4, total=7200.0, unit="s")) == \
        "transcode 43 % (51:36 of 2:00:00)"  # fmt: skip
    assert progress.describe(progress.progress(stage="publish", done=1200, total=4100, unit="objects")) == \
        "publish 1200/4100 objects"  # fmt: skip
    assert progress.describe(progress.progress(stage="transcode", phase="upload", done=3, total=9, unit="objects")) == \
        "transcode upload 3/9 objects"  # fmt: skip


def test_the_ladder_groups_report_as_their_slowest():
    """Several ffmpeg at once (the ladder's groups): the figure is the slowest one's, never ahead of a rung still
    being written, and only once every group has said where it is."""
    seen = []
    slowest = progress.Slowest(seen.append, parts=2)
    a, b = slowest.part(0), slowest.part(1)

    def at(done):
        return progress.progress(stage="transcode", done=done, total=10.0, unit="s")

    a(at(0.0))
    b(at(0.0))
    a(at(6.0))
    b(at(4.0))
    b(at(9.0))
    a(at(10.0))
    b(at(10.0))
    assert [p["done"] for p in seen] == [0.0, 4.0, 6.0, 9.0, 10.0]
    assert all(p["stage"] == "transcode" and p["total"] == 10.0 for p in seen)
