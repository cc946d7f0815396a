"""The `audience_feedback` DAG: viewing events back into priorities and localization decisions. Runs daily, and
whenever a drop of viewing events updates the `mediaflow_viewing_events` Asset; emits `mediaflow_feedback`."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

from airflow.sdk import DAG, AssetOrTimeSchedule, CronTriggerTimetable, task

from mediaflow_airflow.assets import FEEDBACK, VIEWING_EVENTS

DAG_ID = "audience_feedback"
# below every value-stream task: titles first, reports after
TASK_ARGS = {"priority_weight": 1, "weight_rule": "absolute"}


def _settings() -> dict:
    env = os.environ
    return {
        "cron": env.get("MEDIAFLOW_FEEDBACK_CRON", "30 1 * * *"),
        "original_locale": env.get("MEDIAFLOW_ORIGINAL_LOCALE", "en-US"),
    }


def _doc(s: dict) -> str:
    return f"""### Audience feedback
Runs at `{s['cron']}` (UTC) and whenever viewing events land (the `mediaflow_viewing_events` Asset). Definitions of
every figure and the A/B significance rule: docs/feedback.md.

1. **ingest_events**: every new CSV/Parquet drop in `s3://mediaflow-landing/viewing-events/`, row by row through
   the Great Expectations suite `include/gx/feedback/events.json`. Valid rows go to
   `s3://mediaflow-reports/feedback/events/`; bad rows, with their reasons and counts per reason, to
   `s3://mediaflow-quarantine/viewing-events/`. Nothing is dropped silently; each drop is ingested once.
2. **compute_feedback**: per title and territory starts, completion rate, average watch share and 10-s
   retention; demand per (territory, locale) the title lacks (titles are assumed to be in
   `{s['original_locale']}` originally); poster A/B click-through; the priorities table. Written to
   `s3://mediaflow-reports/feedback/latest/`, then the `mediaflow_feedback` Asset is updated.

The nightly batch orders the deliveries of one manifest priority by `feedback/latest/priorities.json`.
"""


def audience_feedback_dag() -> DAG:
    s = _settings()
    with DAG(
        dag_id=DAG_ID,
        description="Viewing events -> retention, localization recommendations, poster A/B, batch priorities",
        doc_md=_doc(s),
        schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable(s["cron"], timezone="UTC"), assets=[VIEWING_EVENTS]),
        start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
        catchup=False,
        max_active_runs=1,
        default_args={"owner": "audience-insights", "retries": 2, "retry_delay": timedelta(seconds=30), **TASK_ARGS},
        tags=["analytics", "feedback"],
    ) as dag:

        @task
        def ingest_events() -> list[dict]:
            """New event drops through the GX suite; bad rows quarantined with counts per reason."""
            from mediaflow import feedback
            from mediaflow.store import Buckets
            from mediaflow_airflow.hooks import MediaStoreHook

            store, buckets = MediaStoreHook(), Buckets.from_env()
            records = [feedback.ingest_drop(store, buckets, key) for key in feedback.pending_drops(store, buckets)]
            for r in records:
                print(f"{r['uri']}: {r['valid']} valid, {r['quarantined']} quarantined {r['counts']}")
            return [{k: r.get(k) for k in ("key", "rows", "valid", "quarantined", "counts", "file_rejected")} for r in records]

        @task(outlets=[FEEDBACK])
        def compute_feedback(ingested: list[dict], run_id=None) -> dict:
            """Figures, recommendations, A/B decisions and priorities to feedback/latest/."""
            from mediaflow import feedback
            from mediaflow.stages import iso_z
            from mediaflow.store import Buckets
            from mediaflow_airflow.hooks import MediaStoreHook

            store, buckets = MediaStoreHook(), Buckets.from_env()
            events = feedback.load_events(store, buckets)
            catalog = feedback.catalog_for(store, buckets, events["title"].unique(), original_locale=s["original_locale"])
            result = feedback.compute(events, catalog)
            uris = feedback.publish(store, buckets, result, run=run_id, generated_at=iso_z(datetime.now(timezone.utc)),
                                    ingested=ingested)  # fmt: skip
            print(f"{len(events)} events, {len(result['figures'])} title x territory rows, "
                  f"{len(result['recommendations'])} recommendations, {len(result['priorities']['titles'])} titles scored")  # fmt: skip
            return {"events": len(events), "recommendations": len(result["recommendations"]),
                    "winners": {t: d["winner"] for t, d in result["ab"].items() if d["winner"]}, "uris": uris}  # fmt: skip

        compute_feedback(ingest_events())
    return dag
