"""DAG factory: one value-stream DAG per stream spec (`value_stream__<name>`)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from airflow.sdk import DAG, Param, TaskGroup, TriggerRule, task

from mediaflow.spec import StreamSpec, format_duration

from mediaflow_airflow.operators import (
    IngestOperator,
    LocalizeOperator,
    PublishOperator,
    TranscodeOperator,
    mapped_results,
)

PRIORITIES = ["low", "normal", "high", "urgent"]
TRANSCODE_ID, LOCALIZE_ID, PUBLISH_ID = "transcode.transcode_ladder", "localize.localize_locale", "publish.publish_channels"
# Tasks touch S3 and ffmpeg: infrastructure blips are retried with backoff; bad input never raises.
DEFAULT_ARGS = {
    "owner": "media-ops",
    "retries": 2,
    "retry_delay": timedelta(seconds=10),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=5),
}


def _doc(spec: StreamSpec) -> str:
    rungs = ", ".join(f"{r.height}p @ {r.video_kbps} kb/s" for r in spec.ladder)
    slas = "\n".join(f"| {stage} | {format_duration(s)} |" for stage, s in spec.stage_slas_s.items())
    return f"""### Value stream `{spec.name}`
Delivery -> **ingest** (manifest, fixity, probe, decode test) -> **transcode** (one ffmpeg, HLS ladder)
-> **localize** (one task per caption/audio locale: WebVTT subtitles, loudness-normalised AAC tracks)
-> **publish** (`<channel>/<asset_id>/` in the distribution bucket, master playlist last).

A delivery with only captions/audio for a published title skips transcode and adds its locales.
One bad locale is rejected on its own (owners get one email); the title publishes without it.

Trigger with a delivery id (folder under `deliveries/` in the landing bucket) or an `s3://bucket/prefix/`.
Bad input ends `rejected` with its reasons and a copy in quarantine; it never fails the run.

- Ladder: {rungs} (never upscaled)
- Loudness: {spec.loudness.target_lufs:g} LUFS, true peak {spec.loudness.true_peak_dbtp:g} dBTP
- Channels: {", ".join(spec.channels)}; owners: {", ".join(spec.owners)}
- Lead-time SLA: {format_duration(spec.lead_time_sla_s)}

| stage | SLA |
|---|---|
{slas}

Spec file: `include/streams/{spec.name}.yaml`
"""


def value_stream_dag(spec: StreamSpec) -> DAG:
    with DAG(
        dag_id=spec.dag_id,
        description=f"{spec.name}: ingest -> transcode -> localize -> publish",
        doc_md=_doc(spec),
        schedule=None,
        start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
        catchup=False,
        max_active_runs=16,
        default_args=DEFAULT_ARGS,
        tags=["value-stream", spec.name],
        params={
            "delivery": Param(
                "",
                type="string",
                minLength=1,
                pattern=r"^(s3://[^\s]+|[A-Za-z0-9][A-Za-z0-9._-]{0,127})$",
                title="Delivery",
                description="Delivery id (a folder under deliveries/ in the landing bucket) or an s3://bucket/prefix/",
            ),
            "priority": Param(
                "normal",
                type="string",
                enum=PRIORITIES,
                title="Priority",
                values_display={"low": "Low", "normal": "Normal", "high": "High", "urgent": "Urgent (ahead of the batch)"},
            ),
        },
        render_template_as_native_obj=True,
    ) as dag:
        with TaskGroup("ingest"):
            ingested = IngestOperator(task_id="ingest_delivery", value_stream=spec.name, delivery="{{ params.delivery }}")

            @task.branch(task_id="route")
            def route(result: dict) -> list[str]:
                """Rejected: stop here (the outcome still records it). Sidecars only: no transcode."""
                if result["status"] != "accepted":
                    return []
                if result["mode"] == "sidecars":
                    return [LOCALIZE_ID, PUBLISH_ID]
                return [TRANSCODE_ID, LOCALIZE_ID, PUBLISH_ID]

            routed = route(ingested.output)

            @task(task_id="locales")
            def locales(result: dict) -> list[dict]:
                """The caption and audio locales of the delivery: the localize stage maps one task over each."""
                return result.get("locales") or []

            locale_items = locales(ingested.output)
            locale_items >> routed

        with TaskGroup("transcode"):
            transcoded = TranscodeOperator(
                task_id="transcode_ladder", value_stream=spec.name, ingested=ingested.output, pool="transcode"
            )
        routed >> transcoded

        with TaskGroup("localize"):
            localized = LocalizeOperator.partial(
                task_id="localize_locale",
                value_stream=spec.name,
                ingested=ingested.output,
                map_index_template="{{ task.item.locale }} {{ task.item.kind }}",
                trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS,  # runs without transcode for sidecars
            ).expand(item=locale_items)
        [routed, transcoded] >> localized

        with TaskGroup("publish"):
            published = PublishOperator(
                task_id="publish_channels",
                value_stream=spec.name,
                ingested=ingested.output,
                transcode_task_id=TRANSCODE_ID,
                localize_task_id=LOCALIZE_ID,
                trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS,
            )
        # publish hangs off the route too, so a rejected delivery skips it whatever its trigger rule says
        [routed, transcoded, localized] >> published

        @task(task_id="outcome", trigger_rule=TriggerRule.ALL_DONE)
        def outcome(ingest_result, publish_result, **context) -> dict:
            """Record this run's outcome (published | rejected | failed); mail the owners about rejected locales."""
            from mediaflow import flow
            from mediaflow.store import Buckets, outcome_key
            from mediaflow_airflow.hooks import MediaStoreHook

            ti, run_id = context["ti"], context["run_id"]
            states = ti.get_task_states(dag_id=spec.dag_id, run_ids=[run_id]).get(run_id, {})
            failed = sorted(t for t, s in states.items() if s in ("failed", "upstream_failed") and t != ti.task_id)
            entry = flow.outcome(
                dag_run_id=run_id,
                value_stream=spec.name,
                ingested=ingest_result,
                published=publish_result,
                failed_tasks=failed,
                finished_at=datetime.now(timezone.utc),
                localized=mapped_results(ti, LOCALIZE_ID),
            )
            buckets = Buckets.from_env()
            MediaStoreHook().put_bytes(json.dumps(entry, indent=2).encode(), buckets.reports, outcome_key(spec.dag_id, run_id))
            mail = flow.locale_rejection_mail(entry, owners=list(spec.owners))
            if mail:
                from airflow.providers.smtp.notifications.smtp import SmtpNotifier

                SmtpNotifier(to=mail["to"], subject=mail["subject"], html_content=mail["html"]).notify(context)
            return entry

        outcome(ingested.output, published.output)
    return dag
