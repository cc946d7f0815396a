"""The benchmark's pure helpers: quality and memory parsing, handoffs and the critical path, CPU accounting.
The benchmarks themselves never run in the test suite (`make bench`)."""

from __future__ import annotations

from pathlib import Path

import ffargv

from mediaflow_dev import bench

PSNR_LOG = """[Parsed_psnr_2 @ 0x55d] PSNR y:38.123456 u:44.5 v:45.0 average:39.876543 min:37.1 max:41.2
[Parsed_ssim_3 @ 0x55e] SSIM Y:0.961234 (14.2) U:0.98 (17.0) V:0.98 (17.1) All:0.970123 (15.2)
"""


def test_parse_quality_reads_the_summary_lines():
    assert bench.parse_quality(PSNR_LOG) == {"psnr_db": 39.876543, "ssim": 0.970123}


def test_parse_quality_without_summary_says_so():
    try:
        bench.parse_quality("nothing here")
    except ValueError as e:
        assert "no PSNR/SSIM" in str(e)
    else:
        raise AssertionError("expected ValueError")


def test_parse_smaps_rollup_takes_pss_not_rss():
    text = "55d0-7ff [rollup]\nRss:              204800 kB\nPss:               51234 kB\nPss_Anon:  100 kB\n"
    assert bench.parse_smaps_rollup(text) == 51234
    assert bench.parse_smaps_rollup("") == 0


def _ti(task, start, end):
    return {"task": ("d", task), "start": start, "end": end}


# a -> b -> d, a -> c -> d; c is the slow branch
UP = {("d", "b"): [("d", "a")], ("d", "c"): [("d", "a")], ("d", "d"): [("d", "b"), ("d", "c")]}
TIS = [_ti("a", 0, 10), _ti("b", 11, 12), _ti("c", 12.5, 30), _ti("d", 31, 40)]


def test_handoffs_measure_from_the_last_upstream_end():
    got = {h["task"][1]: h["latency_s"] for h in bench.handoffs(TIS, UP)}
    assert got == {"b": 1.0, "c": 2.5, "d": 1.0}  # d waits for c (ended 30), not b


def test_mapped_upstream_counts_its_last_instance():
    tis = [_ti("a", 0, 5), _ti("a", 0, 8), _ti("b", 9, 10)]
    assert [h["latency_s"] for h in bench.handoffs(tis, {("d", "b"): [("d", "a")]})] == [1.0]


def test_critical_path_follows_the_upstream_that_ended_last():
    path = bench.critical_path(TIS, UP)
    assert [t[1] for t in path["tasks"]] == ["a", "c", "d"]
    assert path["active_s"] == 10 + 17.5 + 9
    assert path["gaps_s"] == 2.5 + 1.0
    assert bench.critical_path([], UP)["active_s"] == 0.0


def test_cpu_between_and_saturation():
    recs = [{"start": 5, "cpu_s": 10.0}, {"start": 15, "cpu_s": 30.0}, {"start": 25, "cpu_s": 99.0}]
    assert bench.cpu_between(recs, 0, 20) == 40.0
    assert bench.saturation(40.0, 2, 20.0) == 1.0
    assert bench.saturation(1.0, 2, 0.0) == 0.0


def test_ran_keeps_what_ran_and_skips_the_watcher():
    rows = [
        {
            "task_id": "ingest.x",
            "state": "success",
            "start_date": "2026-11-28T00:00:00Z",
            "end_date": "2026-11-28T00:00:02Z",
        },
        {
            "task_id": "sla_watch",
            "state": "success",
            "start_date": "2026-11-28T00:00:00Z",
            "end_date": "2026-11-28T00:09:00Z",
        },
        {"task_id": "publish.y", "state": "skipped", "start_date": None, "end_date": "2026-11-28T00:00:03Z"},
    ]
    got = bench.ran(rows, "d", skip=("sla_watch",))
    assert [t["task"] for t in got] == [("d", "ingest.x")]
    assert got[0]["end"] - got[0]["start"] == 2.0


def test_goal_and_verdict():
    assert bench.goal_text({"min": 1.5}) == ">= 1.5"
    assert bench.met({"median": 1.6, "goal": {"min": 1.5}}) == "met"
    assert bench.met({"median": 0.3, "goal": {"max": 0.2}}) == "MISSED"


def test_hand_tuned_keeps_every_output():
    ours = ["ffmpeg", "-x264-params", "sliced-threads=1", "-b:v", "5500k", "out/v1080/index.m3u8"]
    hand = bench.hand_tuned_argv(ours)
    assert [a for a in hand if a.endswith(".m3u8")] == ["out/v1080/index.m3u8"] and "5500k" in hand


def test_proc_cpu_counts_own_and_reaped_children_time():
    # pid (comm with ') ' in it) state ppid ... utime stime cutime cstime at fields 14-17
    rest = " ".join(["S", "1", "1", "1", "0", "-1", "0", "0", "0", "0", "0", "150", "50", "300", "100", "20", "0"])
    stat = f"4242 (airflow ) worker) {rest}"
    assert bench.proc_cpu_s(stat) == (150 + 50 + 300 + 100) / bench._CLK


def test_night_outcomes_count_lost_and_failed_deliveries_as_failed():
    from mediaflow_dev.samples import NightDelivery

    def d(i, status, reason=None):
        return NightDelivery(f"n-{i}", f"n-{i}", "news_clip", "ok", status, reason, "", None)

    expected = [d(0, "published"), d(1, "rejected", "not valid JSON"), d(2, "awaiting_review"), d(3, "published")]
    summary = {"assets": [
        {"delivery_id": "n-0", "status": "published", "reasons": []},
        {"delivery_id": "n-1", "status": "rejected", "reasons": ["manifest.json: not valid JSON (Expecting ':')"]},
        {"delivery_id": "n-2", "status": "failed", "reasons": ["run failed"]},
    ]}  # fmt: skip
    got = bench.night_outcomes(expected, summary)
    assert [f["delivery"] for f in got["failed"]] == ["n-2", "n-3"]  # n-3 has no outcome at all: lost
    assert got["wrong"] == []
    summary["assets"][1]["reasons"] = ["something else"]
    assert [w["delivery"] for w in bench.night_outcomes(expected, summary)["wrong"]] == ["n-1"]
    assert len(bench.night_outcomes(expected, None)["failed"]) == 4  # the night broke before any outcome


# quality()'s argv as written by hand before it moved to ffmpeg-python (main f5d3d9a)
QUALITY_GOLDEN = ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-t", "10", "-i", "/w/v360/index.m3u8", "-t", "10",
                  "-i", "/in/src.mp4", "-filter_complex",
                  "[1:v]fps=30000/1001,scale=640:360:flags=bicubic,setsar=1,format=yuv420p,split[r1][r2];"
                  "[0:v]setsar=1,format=yuv420p,split[d1][d2];[d1][r1]psnr[p];[d2][r2]ssim[s]",
                  "-map", "[p]", "-f", "null", "-", "-map", "[s]", "-f", "null", "-"]  # fmt: skip


def _quality_read(argv: list[str]) -> tuple:
    """Inputs (with their -t), and per null output the filters feeding it (ffargv; split's default is 2 outputs)."""
    graph = argv[argv.index("-filter_complex") + 1].replace("split[", "split=2[")
    produced = ffargv.parse_graph(graph)
    inputs = [(argv[i + 1], argv[i - 1]) for i, a in enumerate(argv) if a == "-i"]
    maps = [ffargv.resolve(argv[i + 1].strip("[]"), produced) for i, a in enumerate(argv) if a == "-map"]
    return inputs, maps, argv.count("null")


def test_quality_graph_is_the_hand_written_one():
    argv = bench.quality_argv(Path("/w/v360"), Path("/in/src.mp4"), 640, 360, 29.97, 10.0)
    assert _quality_read(argv) == _quality_read(QUALITY_GOLDEN)
    assert "-nostats" in argv  # the summaries only
