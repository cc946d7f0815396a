"""The value_stream_metrics steps without Airflow: the ledger window and its SQL counts, the GX validation of the
metrics tables (a broken table is refused, naming table, column and check), the digest's day, an older ledger
gaining the new columns in place; the snapshot's batch forecast in the report and the digest."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from mediaflow import analytics, metrics
from mediaflow.ledger import Ledger

T0 = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)
DAG = "value_stream__news_clip"


def at(s):
    return T0 + timedelta(seconds=s)


@pytest.fixture
def ledger(tmp_path):
    led = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    for run, q in (("r1", 0), ("r2", 100), ("old", -40 * 86400)):
        led.record_run(dag_id=DAG, run_id=run, state="success" if run != "r2" else "running", queued_at=at(q),
                       asset_id=f"asset-{run}", ended_at=at(q + 500) if run != "r2" else None)  # fmt: skip
        for task, start, end, tries in (("ingest.ingest_delivery", 10, 20, 1), ("transcode.transcode_ladder", 30, 90, 1),
                                        ("transcode.transcode_ladder", 95, 140, 2), ("publish.publish_channels", 150, 160, 1)):  # fmt: skip
            done = run != "r2" or task.startswith("ingest")
            led.record_attempt(dag_id=DAG, run_id=run, task_id=task, map_index=-1, try_number=tries,
                               state="success" if done else "running", started_at=at(q + start),
                               ended_at=at(q + end) if done else None)  # fmt: skip
        led.record_attempt(dag_id=DAG, run_id=run, task_id="outcome", map_index=-1, try_number=1, state="success",
                           started_at=at(q + 170), ended_at=at(q + 171))  # fmt: skip
    return led


def test_sql_counts_match_the_metrics_tables(ledger):
    since, until = at(-3600), at(3600)
    t = metrics.from_ledger(ledger, {}, since=since, until=until, now=at(1000))
    assert ledger.counts(since, until) == {"runs": 2, "spans": 6}  # r1, r2 x ingest/transcode/publish; not "old"
    assert len(t["runs"]) == 2 and len(t["spans"]) == 6
    results = analytics.validate(t, ledger.counts(since, until))
    assert all(r["success"] for r in results.values()) and set(results) == {"spans", "runs", "stages"}


def test_broken_metrics_are_refused_naming_table_column_and_check(ledger):
    since, until = at(-3600), at(3600)
    t = metrics.from_ledger(ledger, {}, since=since, until=until, now=at(1000))
    t["spans"].loc[0, "wait_s"] = -5.0
    t["stages"].loc[0, "sla_attainment_pct"] = 140.0
    with pytest.raises(analytics.MetricsInvalid) as e:
        analytics.validate(t, ledger.counts(since, until))
    msg = str(e.value)
    assert "spans: No negative hand-off wait. (expect_column_values_to_be_between on wait_s" in msg
    assert "stages: SLA attainment is a percentage. (expect_column_values_to_be_between on sla_attainment_pct" in msg
    with pytest.raises(analytics.MetricsInvalid, match="runs: One row per run the ledger holds"):
        analytics.validate(t, {"spans": 6, "runs": 3})


def test_the_digest_is_due_once_its_hour_has_come():
    assert analytics.digest_day(datetime(2026, 11, 28, 5, 59, tzinfo=UTC), 6) is None
    assert analytics.digest_day(datetime(2026, 11, 28, 6, 0, tzinfo=UTC), 6) == "2026-11-28"
    assert analytics.digest_day("2026-11-28T00:10:00Z", 0) == "2026-11-28"


def test_an_older_ledger_gains_the_outcome_columns_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # the stage_runs table as the first ledger version created it
        db.execute("CREATE TABLE stage_runs (dag_id VARCHAR(250) NOT NULL, run_id VARCHAR(250) NOT NULL, stream VARCHAR(250), "
                   "delivery_id TEXT, asset_id VARCHAR(250), delivered_at DATETIME, queued_at DATETIME, started_at DATETIME, "
                   "ended_at DATETIME, state VARCHAR(32), PRIMARY KEY (dag_id, run_id))")  # fmt: skip
        db.execute("INSERT INTO stage_runs (dag_id, run_id, state) VALUES (?, 'r0', 'success')", (DAG,))
    led = Ledger(f"sqlite:///{path}")
    led.record_run(dag_id=DAG, run_id="r0", status="published", qc_findings=2)
    row = led.run(DAG, "r0")
    assert row["state"] == "success" and row["status"] == "published" and row["qc_findings"] == 2


def test_snapshot_report_and_digest_over_a_real_s3_api(ledger, s3):
    """The DAG's steps in order against moto's S3 server: Parquet + meta.json, then the report copied to latest/,
    then one digest per day through the outbox (claimed once; pending until delivered; then done)."""
    store, buckets = s3
    meta = analytics.snapshot(
        ledger, store, buckets, slas_s={}, run_id="manual__2026-11-28T01:30:00+00:00", now=at(1800), days=1
    )
    prefix = analytics.run_prefix("manual__2026-11-28T01:30:00+00:00")
    assert (
        meta["rows"]["runs"] == meta["expected"]["runs"] == 2
        and meta["rows"]["spans"] == meta["expected"]["spans"] == 6
    )
    tables, _ = analytics.load(store, buckets, prefix)
    analytics.validate(tables, meta["expected"])
    assert analytics.publish_report(store, buckets, prefix) == f"s3://{buckets.reports}/{analytics.LATEST}/index.html"
    latest = store.list(buckets.reports, f"{analytics.LATEST}/")
    assert {
        f"{analytics.LATEST}/index.html",
        f"{analytics.LATEST}/meta.json",
        f"{analytics.LATEST}/data/runs.parquet",
    } <= set(latest)
    page = store.get_bytes(buckets.reports, f"{analytics.LATEST}/index.html").decode()
    assert "asset-r1" in page
    # the batch forecast beside the metrics: r2 still open, one finished run is too little history to forecast
    assert f"{analytics.LATEST}/data/burndown.parquet" in latest and "<h2>Batch forecast</h2>" in page
    assert "Batch forecast: 1 title still to finish; too little history: 1 runs of news_clip (need 5)." in page

    alert, why = analytics.claim_digest(
        ledger, store, buckets, prefix, day="2026-11-28", owners=["o@example.com"], report_link=None
    )
    assert why == "due" and alert["recipients"] == ["o@example.com"] and "digest 2026-11-28" in alert["subject"]
    assert "<li>Batch forecast: 1 title still to finish; too little history" in alert["html"]
    again, _ = analytics.claim_digest(
        ledger, store, buckets, prefix, day="2026-11-28", owners=["o@example.com"], report_link=None
    )
    assert again["id"] == alert["id"], "not delivered yet: the same pending digest, not a second one"
    ledger.mark_sent(alert["id"])
    assert analytics.claim_digest(ledger, store, buckets, prefix, day="2026-11-28", owners=["o@example.com"],
                                  report_link=None) == (None, "the 2026-11-28 digest was sent already")  # fmt: skip


def test_no_digest_while_the_window_holds_no_titles(tmp_path, s3):
    store, buckets = s3
    empty = Ledger(f"sqlite:///{tmp_path / 'empty.db'}")
    analytics.snapshot(empty, store, buckets, slas_s={}, run_id="r-empty", now=at(0), days=1)
    alert, why = analytics.claim_digest(empty, store, buckets, analytics.run_prefix("r-empty"), day="2026-11-28",
                                        owners=["o@example.com"], report_link=None)  # fmt: skip
    assert alert is None and why == "no titles in the window yet: no digest"
    assert empty.alerts(analytics.DIGEST_DAG) == []
