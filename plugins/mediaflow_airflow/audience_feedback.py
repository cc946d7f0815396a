"""The feedback loop's DAGs. `audience_feedback`: viewing events back into priorities and localization decisions;
runs daily, and whenever a drop of viewing events updates the `mediaflow_viewing_events` Asset; emits
`mediaflow_feedback`. `default_posters`: runs on every `mediaflow_feedback` update and republishes each poster A/B
winner as its title's default poster."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from airflow.sdk import DAG, AssetOrTimeSchedule, CronTriggerTimetable, task

from mediaflow import names
from mediaflow_airflow.assets import FEEDBACK, VIEWING_EVENTS
from mediaflow_airflow.background import background_dag_args
from mediaflow_airflow.operators import DefaultPosterOperator


def _settings() -> dict:
    env = os.environ
    return {
        "cron": env.get("MEDIAFLOW_FEEDBACK_CRON", "30 1 * * *"),
        "original_locale": env.get("MEDIAFLOW_ORIGINAL_LOCALE", "en-US"),
    }


def _doc(s: dict) -> str:
    return f"""### Audience feedback
Runs at `{s["cron"]}` (UTC) and whenever viewing events land (the `mediaflow_viewing_events` Asset). Definitions of
every figure and the A/B significance rule: docs/feedback.md.

1. **ingest_events**: every new CSV/Parquet drop in `s3://mediaflow-landing/viewing-events/`, row by row through
   the Great Expectations suite `include/gx/feedback/events.json`. Valid rows go to
   `s3://mediaflow-reports/feedback/events/`; bad rows, with their reasons and counts per reason, to
   `s3://mediaflow-quarantine/viewing-events/`. Nothing is dropped silently; each drop is ingested once.
2. **compute_feedback**: per title and territory starts, completion rate, average watch share and the
   retention curve (2 % steps of the title); demand per (territory, locale) the title lacks (titles are assumed to be in
   `{s["original_locale"]}` originally); poster A/B click-through; the priorities table. Written to
   `s3://mediaflow-reports/feedback/latest/`, then the `mediaflow_feedback` Asset is updated.

The nightly batch orders the deliveries of one manifest priority by `feedback/latest/priorities.json`.
"""


def audience_feedback_dag() -> DAG:
    s = _settings()
    with DAG(
        dag_id=names.FEEDBACK_DAG,
        description="Viewing events -> retention, localization recommendations, poster A/B, batch priorities",
        doc_md=_doc(s),
        schedule=AssetOrTimeSchedule(
            timetable=CronTriggerTimetable(s["cron"], timezone="UTC"), assets=[VIEWING_EVENTS]
        ),
        **background_dag_args(owner="audience-insights"),
        tags=["analytics", "feedback"],
    ) as dag:

        @task(task_id=names.INGEST_EVENTS)
        def ingest_events() -> list[dict]:
            """New event drops through the GX suite; bad rows quarantined with counts per reason."""
            from mediaflow import feedback
            from mediaflow.store import Buckets
            from mediaflow_airflow.hooks import MediaStoreHook

            store, buckets = MediaStoreHook(), Buckets.from_env()
            records = [feedback.ingest_drop(store, buckets, key) for key in feedback.pending_drops(store, buckets)]
            for r in records:
                print(f"{r['uri']}: {r['valid']} valid, {r['quarantined']} quarantined {r['counts']}")
            return [
                {k: r.get(k) for k in ("key", "rows", "valid", "quarantined", "counts", "file_rejected")}
                for r in records
            ]

        @task(task_id=names.COMPUTE_FEEDBACK, outlets=[FEEDBACK])
        def compute_feedback(ingested: list[dict], run_id=None) -> dict:
            """Figures, recommendations, A/B decisions and priorities to feedback/latest/."""
            from mediaflow import feedback
            from mediaflow.stages import iso_z
            from mediaflow.store import Buckets
            from mediaflow_airflow.hooks import MediaStoreHook

            store, buckets = MediaStoreHook(), Buckets.from_env()
            events = feedback.load_events(store, buckets)
            catalog = feedback.catalog_for(
                store, buckets, events["title"].unique(), original_locale=s["original_locale"]
            )
            result = feedback.compute(events, catalog)
            uris = feedback.publish(store, buckets, result, run=run_id, generated_at=iso_z(datetime.now(UTC)),
                                    ingested=ingested)  # fmt: skip
            print(f"{len(events)} events, {len(result['figures'])} title x territory rows, "
                  f"{len(result['recommendations'])} recommendations, {len(result['priorities']['titles'])} titles scored")  # fmt: skip
            return {"events": len(events), "recommendations": len(result["recommendations"]),
                    "winners": {t: d["winner"] for t, d in result["ab"].items() if d["winner"]}, "uris": uris}  # fmt: skip

        compute_feedback(ingest_events())
    return dag


def default_posters_dag() -> DAG:
    with DAG(
        dag_id=names.POSTERS_DAG,
        description="Poster A/B winners -> each title's default poster, through the publish path",
        doc_md="""### Default posters
Runs whenever `audience_feedback` updates the `mediaflow_feedback` Asset. For each title whose poster A/B test
declared a winner (`s3://mediaflow-reports/feedback/latest/ab.json`; the rule is in docs/feedback.md), one mapped
`set_default_poster` task copies that candidate (`posters/pN.jpg`, made by transcode) over `poster.jpg` on every
channel the title is live on, under the title's publish lease, and records the change in the ledger
(`poster_changes`). A winner that is already the default changes nothing; a variant the live version does not have
is skipped with the reason.
""",
        schedule=[FEEDBACK],
        **background_dag_args(owner="audience-insights"),
        tags=["feedback", "publish"],
    ) as dag:

        @task(task_id=names.AB_WINNERS)
        def ab_winners() -> list[dict]:
            """The titles whose poster A/B test has a winner, from feedback/latest/ab.json."""
            from mediaflow import feedback, posters
            from mediaflow.store import Buckets
            from mediaflow_airflow.hooks import MediaStoreHook

            ab = feedback.read_latest(MediaStoreHook(), Buckets.from_env(), "ab.json") or {}
            return [{**w, "decided_by": ab.get("run")} for w in posters.winners(ab)]

        DefaultPosterOperator.partial(
            task_id=names.SET_DEFAULT_POSTER, map_index_template="{{ task.asset_id }}"
        ).expand_kwargs(ab_winners())
    return dag
