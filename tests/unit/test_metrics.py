"""Vectorised flow metrics over hand-built ledgers, checked against the one-run-at-a-time reference
(mediaflow.stages.stage_spans) and against numbers worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from mediaflow import metrics
from mediaflow.spec import STAGE_ORDER
from mediaflow.stages import stage_spans as reference_spans

T0 = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)
DAG = "value_stream__news_clip"


def at(s):
    return None if s is None else T0 + timedelta(seconds=s)


def row(run, task, start, end, try_number=1, map_index=-1):
    return {"dag_id": DAG, "run_id": run, "task_id": task, "map_index": map_index, "try_number": try_number,
            "stream": "news_clip", "stage": task.split(".", 1)[0] if "." in task else None,
            "state": "success" if end is not None else "running", "started_at": at(start), "ended_at": at(end)}  # fmt: skip


LEDGER = [
    # r1: parallel compliance checks (union, not sum), a retried transcode, mapped localize
    row("r1", "ingest.ingest_delivery", 10, 20),
    row("r1", "transcode.transcode_ladder", 25, 40),
    row("r1", "transcode.transcode_ladder", 50, 90, try_number=2),
    row("r1", "localize.localize_locale", 91, 100, map_index=0),
    row("r1", "localize.localize_locale", 92, 105, map_index=1),
    row("r1", "compliance.rights", 110, 120),
    row("r1", "compliance.loudness", 115, 130),
    row("r1", "compliance.metadata", 140, 150),
    row("r1", "outcome", 151, 152),
    # r2: review rework (rejected, re-run), and a publish still running
    row("r2", "ingest.ingest_delivery", 0, 5),
    row("r2", "review.legal_approval", 10, 100),
    row("r2", "review.legal_approval", 300, 400, try_number=2),
    row("r2", "publish.publish_channels", 410, None),
]
RUNS = pd.DataFrame([{"dag_id": DAG, "run_id": "r1", "stream": "news_clip", "queued_at": at(0), "delivered_at": at(-60)},
                     {"dag_id": DAG, "run_id": "r2", "stream": "news_clip", "queued_at": at(-10), "delivered_at": None}])  # fmt: skip
NOW = at(500)


@pytest.fixture
def spans():
    return metrics.stage_spans(pd.DataFrame(LEDGER), RUNS, now=NOW)


@pytest.mark.parametrize("run", ["r1", "r2"])
def test_spans_agree_with_the_per_run_reference(spans, run):
    rows = [{"stage": r["stage"], "start": r["started_at"], "end": r["ended_at"], "try_number": r["try_number"]}
            for r in LEDGER if r["run_id"] == run and r["stage"]]  # fmt: skip
    queued = RUNS.set_index("run_id").loc[run, "queued_at"]
    ref = reference_spans(rows, stage_order=list(STAGE_ORDER), queued_at=queued, slas_s={}, now=NOW)
    ours = spans[spans["run_id"] == run].reset_index(drop=True)
    assert list(ours["stage"]) == [s["stage"] for s in ref]
    for (_, o), r in zip(ours.iterrows(), ref, strict=True):
        assert o["active_s"] == pytest.approx(r["active_s"]), r["stage"]
        assert o["wait_s"] == pytest.approx(r["wait_s"]) if r["wait_s"] is not None else pd.isna(o["wait_s"]), r[
            "stage"
        ]
        assert o["attempts"] == r["attempts"]
        assert pd.isna(o["ended_at"]) == (r["ended_at"] is None)


def test_hand_worked_numbers(spans):
    s = spans.set_index(["run_id", "stage"])
    assert s.loc[("r1", "compliance"), "active_s"] == 30  # 110-130 union 140-150, not 10+15+10
    assert s.loc[("r1", "transcode"), "active_s"] == 55 and s.loc[("r1", "transcode"), "cycle_s"] == 65
    assert s.loc[("r1", "ingest"), "wait_s"] == 10  # from the run's queue time
    assert s.loc[("r2", "review"), "active_s"] == 190 and s.loc[("r2", "review"), "attempts"] == 2  # rework adds time
    assert s.loc[("r2", "publish"), "cycle_s"] == 90 and pd.isna(s.loc[("r2", "publish"), "ended_at"])


def test_summary_per_stream_and_stage(spans):
    summary = metrics.stage_summary(
        spans, {"news_clip": {"transcode": 60, "review": 600, "ingest": 5, "compliance": 60}}
    )
    t = summary.set_index("stage")
    assert list(summary["stage"]) == ["ingest", "transcode", "localize", "compliance", "review", "publish"]
    assert t.loc["transcode", "sla_attainment_pct"] == 0.0 and t.loc["transcode", "rework_pct"] == 100.0
    assert t.loc["ingest", "count"] == 2 and t.loc["ingest", "sla_attainment_pct"] == 50.0  # 10 s late, 5 s ok
    assert t.loc["review", "sla_attainment_pct"] == 100.0
    assert pd.isna(t.loc["publish", "sla_attainment_pct"])  # still running: not judged yet


def test_flow_efficiency_of_finished_runs(spans):
    fe = metrics.flow_efficiency(spans, RUNS).set_index("run_id")
    assert list(fe.index) == ["r1"]  # r2 is still publishing
    assert fe.loc["r1", "lead_time_s"] == 210  # delivered at -60, last stage ended at 150
    assert fe.loc["r1", "active_s"] == 10 + 55 + 14 + 30
    assert fe.loc["r1", "flow_efficiency"] == pytest.approx(109 / 210)


def test_empty_ledger_gives_empty_frames():
    empty = metrics.stage_spans(pd.DataFrame(columns=list(LEDGER[0])), RUNS, now=NOW)
    assert empty.empty and metrics.stage_summary(empty, {}).empty


def test_wip_throughput_and_bottleneck(spans):
    assert metrics.wip_now(spans).to_dict("records") == [{"stream": "news_clip", "stage": "publish", "wip": 1}]
    flow = metrics.flow_efficiency(spans, RUNS)
    assert metrics.throughput_per_day(flow, spans).to_dict("records") == [
        {"stream": "news_clip", "day": "2026-11-28", "finished": 1}
    ]
    summary = metrics.stage_summary(spans, {})
    (top,) = metrics.bottleneck(summary).to_dict("records")
    assert top["stage"] == "review" and top["wait_median_s"] == 5 and top["active_median_s"] == 190  # 390 s cycle


def test_a_stage_far_slower_than_its_own_history_is_flagged():
    rows = []
    for d in range(1, 31):  # thirty days of 60-100 s transcodes
        base = d * 86400
        rows.append(row(f"h{d}", "transcode.transcode_ladder", base, base + 60 + (d % 5) * 10))
    rows.append(row("today-ok", "transcode.transcode_ladder", 31 * 86400, 31 * 86400 + 70))
    rows.append(row("today-slow", "transcode.transcode_ladder", 31 * 86400 + 100, 31 * 86400 + 400))
    spans = metrics.stage_spans(pd.DataFrame(rows), now=at(32 * 86400))
    flagged = metrics.anomalies(spans, day=(T0 + timedelta(days=31)).strftime("%Y-%m-%d"))
    assert list(flagged["run_id"]) == ["today-slow"] and bool(flagged.loc[0, "slow_cycle"])
    assert flagged.loc[0, "cycle_limit_s"] == pytest.approx(100)


# ---------------------------------------------------------------- compute(): the whole window at once

SLAS = {"news_clip": {"ingest": 15, "transcode": 60, "localize": 60, "compliance": 60, "review": 600, "publish": 60}}
QUALITY_R1 = {"status": "published", "reviews_total": 3, "reviews_rejected": 0, "qc_findings": 2, "locales_total": 2,
              "locales_rejected": 1}  # fmt: skip


def runs_with_quality():
    r = RUNS.copy()
    for k, v in QUALITY_R1.items():
        r[k] = [v, None]
    return r


def test_compute_tables_for_a_window_with_parallel_stages_rework_and_a_title_in_progress():
    t = metrics.compute(pd.DataFrame(LEDGER), runs_with_quality(), SLAS, since=at(-3600), until=NOW, now=NOW)
    runs = t["runs"].set_index("run_id")
    assert runs.loc["r1", "lead_time_s"] == 210 and runs.loc["r1", "active_s"] == 109  # no stage overlaps in r1
    assert pd.isna(runs.loc["r2", "lead_time_s"]), "a title still publishing has no lead time yet"
    stages = t["stages"].set_index("stage")
    assert stages.loc["transcode", "attempts_per_title"] == 2 and stages.loc["transcode", "complete_accurate_pct"] == 0
    assert stages.loc["ingest", "complete_accurate_pct"] == 100
    assert stages.loc["publish", "wip"] == 1 and stages.loc["ingest", "wip"] == 0
    (stream,) = t["streams"].to_dict("records")
    assert stream["titles"] == 2 and stream["finished"] == 1 and stream["in_progress"] == 1 and stream["wip"] == 1
    assert stream["lead_time_median_s"] == 210 and stream["bottleneck"] == "review"
    assert (
        stream["qc_findings_per_title"] == 2
        and stream["locale_rejection_pct"] == 50
        and stream["review_rejection_pct"] == 0
    )
    assert t["throughput"].to_dict("records") == [{"stream": "news_clip", "day": "2026-11-28", "finished": 1}]
    (lt,) = t["lead_times"].to_dict("records")
    assert lt["finished"] == 1 and lt["p50_s"] == 210
    assert t["spans"]["sla_missed"].tolist().count(True) >= 1  # r1 transcode: 65 s against 60 s


def test_overlapping_stages_count_once_in_active_time():
    rows = [row("p", "transcode.transcode_ladder", 0, 100), row("p", "localize.localize_locale", 50, 150),
            row("p", "compliance.rights", 60, 120), row("p", "publish.publish_channels", 200, 210)]  # fmt: skip
    runs = pd.DataFrame(
        [{"dag_id": DAG, "run_id": "p", "stream": "news_clip", "queued_at": at(0), "delivered_at": at(0)}]
    )
    t = metrics.compute(pd.DataFrame(rows), runs, {}, since=at(-10), until=at(300), now=at(300))
    (run,) = t["runs"].to_dict("records")
    assert run["active_s"] == 160 and run["lead_time_s"] == 210  # 0-150 and 200-210, not 100+100+60+10
    assert run["flow_efficiency"] == pytest.approx(160 / 210)


def test_an_empty_window_gives_empty_tables_not_errors():
    t = metrics.compute(pd.DataFrame(LEDGER), RUNS, SLAS, since=at(86400), until=at(2 * 86400), now=NOW)
    assert all(t[name].empty for name in ("spans", "runs", "throughput", "lead_times", "cfd"))
    # nothing queued in the window, but r2 is still publishing now: WIP shows it
    assert t["stages"][["stage", "count", "wip"]].to_dict("records") == [{"stage": "publish", "count": 0, "wip": 1}]
    empty = metrics.compute(
        pd.DataFrame(columns=list(LEDGER[0])), RUNS.iloc[0:0], SLAS, since=at(0), until=NOW, now=NOW
    )
    assert all(frame.empty for frame in empty.values())
    assert metrics.to_json(empty)["stages"] == []


def test_runs_before_the_window_are_left_out_but_still_in_progress_counts_as_wip():
    t = metrics.compute(pd.DataFrame(LEDGER), RUNS, SLAS, since=at(-5), until=NOW, now=NOW)  # r2 queued at -10
    assert set(t["runs"]["run_id"]) == {"r1"}
    publish = t["stages"].set_index("stage").loc["publish"]
    assert publish["wip"] == 1 and publish["count"] == 0  # r2 is still publishing: WIP now, whatever the window


def test_cumulative_flow_counts_arrivals_and_finished_stages():
    t = metrics.compute(pd.DataFrame(LEDGER), RUNS, SLAS, since=at(-3600), until=NOW, now=NOW)
    cfd = t["cfd"]
    last = cfd.sort_values("at").groupby("step")["count"].last()
    assert last["arrived"] == 2 and last["ingest"] == 2 and last["review"] == 1 and "publish" not in last
    # cumulative: never decreasing
    assert all(g["count"].is_monotonic_increasing for _, g in cfd.sort_values("at").groupby("step"))


def test_value_stream_map_rows_sum_to_lead_and_value_added_time():
    t = metrics.compute(pd.DataFrame(LEDGER), RUNS, SLAS, since=at(-3600), until=NOW, now=NOW)
    vsm = metrics.value_stream_map(t["stages"], "news_clip")
    assert [b["stage"] for b in vsm] == ["ingest", "transcode", "localize", "compliance", "review", "publish"]
    assert {
        "cycle_median_s",
        "active_median_s",
        "wait_median_s",
        "attempts_per_title",
        "complete_accurate_pct",
        "wip",
    } <= set(vsm[0])


def test_quality_of_an_outcome_entry():
    from mediaflow.flow import quality_of

    entry = {"status": "rejected", "reviews": [{"decision": "rejected"}, None, {"decision": "approved"}],
             "locales": {"es-ES": "rejected: bad timing", "fr-FR": "published"},
             "compliance": {"technical_qc": {"findings": ["black frames 3 s"]}},
             "warnings": ["x.mp4: silence 0.0-2.2 s at the head, within the 3 s allowance"]}  # fmt: skip
    assert quality_of(entry) == {"status": "rejected", "reviews_total": 2, "reviews_rejected": 1, "qc_findings": 1,
                                 "locales_total": 2, "locales_rejected": 1,
                                 "warnings": ["x.mp4: silence 0.0-2.2 s at the head, within the 3 s allowance"],
                                 "lowest_rung_vmaf": None, "renditions": []}  # fmt: skip
    assert quality_of({"status": "failed"})["reviews_total"] == 0
    rungs = [{"rendition": "v720", "vmaf": 93.1}, {"rendition": "v360", "vmaf": 71.4}]
    scored = quality_of({"status": "published", "renditions": rungs})
    assert scored["lowest_rung_vmaf"] == 71.4 and scored["renditions"] == rungs, "the lowest rung is the title's figure"


def test_the_scorecard_shows_the_median_of_each_titles_lowest_rung_vmaf():
    runs = pd.DataFrame([{"stream": "s", "run_id": f"r{i}", "status": "published", "reviews_total": 0,
                          "reviews_rejected": 0, "qc_findings": 0, "locales_total": 0, "locales_rejected": 0,
                          "lowest_rung_vmaf": v} for i, v in enumerate([70.0, 90.0, None, 80.0])])  # fmt: skip
    [card] = metrics.records(metrics.scorecard(runs))
    assert card["lowest_rung_vmaf_median"] == 80.0, "titles scored before 1.1 (None) are left out, not counted as 0"


def test_a_generated_ledger_of_a_million_attempt_rows(capsys):
    """The size the issue asks for; time and peak memory are printed (make bench records them, tests never
    time-assert). The numbers must still add up."""
    import resource
    import time

    until = datetime(2026, 11, 28, 21, 0, tzinfo=UTC)
    attempts, runs = metrics.synthetic_ledger(1_000_000, until=until)
    assert 950_000 <= len(attempts) <= 1_050_000
    began = time.perf_counter()
    t = metrics.compute(attempts, runs, {}, since=until - timedelta(days=30), until=until, now=until)
    took = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with capsys.disabled():
        print(
            f"\n[metrics] {len(attempts):,} attempt rows -> {len(t['spans']):,} spans in {took:.2f} s; peak RSS {peak:.0f} MB"
        )
    expected_spans = attempts[attempts["started_at"] >= until - timedelta(days=30)].drop_duplicates(
        ["dag_id", "run_id", "stage"]
    )
    assert len(t["spans"]) == t["stages"]["count"].sum()
    assert len(t["spans"]) >= len(expected_spans) * 0.99
    assert t["runs"]["lead_time_s"].dropna().ge(t["runs"]["active_s"].dropna().min()).all()
    assert (t["runs"]["flow_efficiency"].dropna().between(0, 1)).all()


def test_an_attempt_that_started_after_now_counts_nothing_rather_than_negative():
    """A live ledger read a moment after `now` holds attempts that started later still: they count zero."""
    rows = [row("late", "ingest.ingest_delivery", 0, 10), row("late", "transcode.transcode_ladder", 30, None)]
    runs = pd.DataFrame(
        [{"dag_id": DAG, "run_id": "late", "stream": "news_clip", "queued_at": at(0), "delivered_at": at(0)}]
    )
    t = metrics.compute(pd.DataFrame(rows), runs, {}, since=at(-10), until=at(20), now=at(20))
    transcode = t["spans"].set_index("stage").loc["transcode"]
    assert transcode["active_s"] == 0 and transcode["cycle_s"] == 0 and transcode["wait_s"] == 20
    assert (t["spans"][["active_s", "cycle_s", "wait_s"]] >= 0).all().all()
    assert metrics.run_active_seconds(pd.DataFrame(rows), now=at(20))["active_s"].tolist() == [10]
