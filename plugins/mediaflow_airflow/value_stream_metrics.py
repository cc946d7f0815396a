"""The `value_stream_metrics` DAG: flow metrics over the stage ledger, validated, reported, and a daily digest.
Runs hourly, and whenever a value-stream run's outcome updates the `mediaflow_ledger` Asset."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from airflow.sdk import DAG, AssetOrTimeSchedule, CronTriggerTimetable, Param, task

from mediaflow import names
from mediaflow_airflow.assets import LEDGER
from mediaflow_airflow.background import background_dag_args


def _settings() -> dict:
    env = os.environ
    return {
        "cron": env.get("MEDIAFLOW_METRICS_CRON", "0 * * * *"),
        "days": float(env.get("MEDIAFLOW_METRICS_DAYS", "30")),
        "digest_hour": int(env.get("MEDIAFLOW_DIGEST_HOUR", "0")),
    }


def _doc(s: dict) -> str:
    return f"""### Value stream metrics
Runs at `{s["cron"]}` (UTC) and whenever a value-stream run ends (the `mediaflow_ledger` Asset). Definitions of
every number: docs/analytics.md. The same numbers, live: **Value Streams** in the navigation bar.

1. **compute_metrics**: reads the stage ledger for the last **days** (default {s["days"]:g}), computes the flow
   metrics (pandas) and writes one Parquet file per table to `s3://mediaflow-reports/value-streams/runs/<run>/data/`.
2. **validate_metrics**: Great Expectations suites `include/gx/metrics/*.json`: no negative durations, active
   time within cycle and lead time, percentages within 0..100, row counts equal to what SQL counts in the ledger.
   A failure stops the report and names the table, column and check.
3. **publish_report**: the HTML report (charts, value stream map, scorecards) beside the data, then the run's
   folder copied to `value-streams/latest/`.
4. **send_digest**: the daily digest to the stream owners, once per UTC day from {s["digest_hour"]:02d}:00 on
   (the alert outbox makes it once, whichever run gets there first).
"""


# long: a DAG factory: the DAG's whole shape in one place, as Airflow's docs write them
def value_stream_metrics_dag() -> DAG:
    s = _settings()
    with DAG(
        dag_id=names.METRICS_DAG,
        description="Flow metrics over the stage ledger: validated, reported (HTML + Parquet), a daily digest",
        doc_md=_doc(s),
        schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable(s["cron"], timezone="UTC"), assets=[LEDGER]),
        **background_dag_args(owner="value-stream-owners"),
        tags=["analytics"],
        params={
            "days": Param(
                s["days"],
                type="number",
                minimum=0.01,
                maximum=3650,
                title="Days",
                description="The window: runs queued in the last this many days",
            )
        },  # fmt: skip
    ) as dag:

        @task(task_id=names.COMPUTE_METRICS)
        def compute_metrics(params=None, run_id=None) -> dict:
            """Flow metrics for the window, as Parquet in the reports bucket."""
            from mediaflow import analytics, metrics
            from mediaflow.spec import load_specs
            from mediaflow.store import Buckets
            from mediaflow_airflow.hooks import LedgerHook, MediaStoreHook

            now = datetime.now(UTC)  # the ledger is live: a window ending earlier would see later starts
            meta = analytics.snapshot(LedgerHook().get_conn(), MediaStoreHook(), Buckets.from_env(),
                                      slas_s=metrics.slas_of(load_specs()), run_id=run_id, now=now, days=float(params["days"]))  # fmt: skip
            print(f"metrics {meta['rows']} (the ledger counts {meta['expected']}) -> {meta['uri']}")
            return {
                "prefix": analytics.run_prefix(run_id),
                "expected": meta["expected"],
                "generated_at": meta["generated_at"],
            }

        @task(task_id=names.VALIDATE_METRICS)
        def validate_metrics(snap: dict) -> dict:
            """The metrics tables against their GX suites; a failure names table, column and check."""
            from mediaflow import analytics
            from mediaflow.store import Buckets
            from mediaflow_airflow.hooks import MediaStoreHook

            tables, _ = analytics.load(MediaStoreHook(), Buckets.from_env(), snap["prefix"])
            results = analytics.validate(tables, snap["expected"])
            return {
                name: {k: r[k] for k in ("suite", "success", "evaluated", "successful")} for name, r in results.items()
            }

        @task(task_id=names.PUBLISH_REPORT)
        def publish_report(snap: dict, validation: dict) -> str:
            """The HTML report beside the data; the run's folder becomes value-streams/latest/."""
            from mediaflow import analytics
            from mediaflow.store import Buckets
            from mediaflow_airflow.hooks import MediaStoreHook

            uri = analytics.publish_report(MediaStoreHook(), Buckets.from_env(), snap["prefix"])
            print(f"report: {uri}")
            return uri

        @task(task_id=names.SEND_DIGEST)
        def send_digest(snap: dict, report_uri: str, **context) -> str:
            """Once per UTC day: the digest to every stream owner (outbox: exactly once, retried until sent)."""
            from mediaflow import analytics
            from mediaflow.spec import load_specs
            from mediaflow.stages import instant
            from mediaflow.store import Buckets
            from mediaflow_airflow.hooks import LedgerHook, MediaStoreHook
            from mediaflow_airflow.notifiers import deliver, ui_url

            day = analytics.digest_day(instant(snap["generated_at"]), s["digest_hour"])
            if day is None:
                return f"not yet: the digest goes out from {s['digest_hour']:02d}:00 UTC"
            ledger = LedgerHook().get_conn()
            alert, why = analytics.claim_digest(ledger, MediaStoreHook(), Buckets.from_env(), snap["prefix"], day=day,
                                           owners=analytics.owners_of(load_specs()),
                                           report_link=f"{ui_url()}/plugin/value-streams")  # fmt: skip
            if alert is None:
                return why
            if not deliver(ledger, alert, context):
                raise RuntimeError(f"the {day} digest was not delivered (it stays in the outbox; the retry sends it)")
            return f"the {day} digest sent to {', '.join(alert['recipients'])}"

        snap = compute_metrics()
        report_uri = publish_report(snap, validate_metrics(snap))
        send_digest(snap, report_uri)
    return dag
