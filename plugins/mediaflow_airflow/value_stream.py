"""DAG factory: one value-stream DAG per stream spec (`value_stream__<name>`)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from airflow.sdk import DAG, Param, TaskGroup, TriggerRule, task

from mediaflow.spec import StreamSpec, format_duration

from mediaflow_airflow.operators import IngestOperator, PublishOperator, TranscodeOperator

PRIORITIES = ["low", "normal", "high", "urgent"]
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
-> **publish** (`<channel>/<asset_id>/` in the distribution bucket, master playlist last).

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
        description=f"{spec.name}: ingest -> transcode -> publish",
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

            @task.short_circuit(task_id="accepted", ignore_downstream_trigger_rules=False)
            def accepted(result: dict) -> bool:
                """Rejected deliveries stop here; the outcome task still records them."""
                return result["status"] == "accepted"

            gate = accepted(ingested.output)

        with TaskGroup("transcode"):
            transcoded = TranscodeOperator(
                task_id="transcode_ladder", value_stream=spec.name, ingested=ingested.output, pool="transcode"
            )
        gate >> transcoded

        with TaskGroup("publish"):
            published = PublishOperator(
                task_id="publish_channels",
                value_stream=spec.name,
                ingested=ingested.output,
                transcoded=transcoded.output,
            )

        @task(task_id="outcome", trigger_rule=TriggerRule.ALL_DONE)
        def outcome(ingest_result, publish_result, **context) -> dict:
            """Record this run's outcome (published | rejected | failed) for summaries and reports."""
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
            )
            buckets = Buckets.from_env()
            MediaStoreHook().put_bytes(json.dumps(entry, indent=2).encode(), buckets.reports, outcome_key(spec.dag_id, run_id))
            return entry

        outcome(ingested.output, published.output)
    return dag
