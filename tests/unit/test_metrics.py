"""Vectorised flow metrics over hand-built ledgers, checked against the one-run-at-a-time reference
(mediaflow.stages.stage_spans) and against numbers worked out by hand."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from mediaflow import metrics
from mediaflow.spec import STAGE_ORDER
from mediaflow.stages import stage_spans as reference_spans

T0 = datetime(2026, 11, 28, 1, 0, tzinfo=timezone.utc)
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
        assert o["wait_s"] == pytest.approx(r["wait_s"]) if r["wait_s"] is not None else pd.isna(o["wait_s"]), r["stage"]
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
    summary = metrics.stage_summary(spans, {"news_clip": {"transcode": 60, "review": 600, "ingest": 5, "compliance": 60}})
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
    assert metrics.throughput_per_day(flow, spans).to_dict("records") == [{"stream": "news_clip", "day": "2026-11-28", "finished": 1}]
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
