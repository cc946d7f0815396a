"""The `nightly_content_batch` DAG: everything delivered since the last batch, validated as one batch, one
value-stream run per valid delivery. Also runs as soon as a delivery lands (the `mediaflow_landing` Asset)."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG, AssetOrTimeSchedule, CronTriggerTimetable, Param, task

from mediaflow import names
from mediaflow_airflow.assets import LANDING

API_CONN_ID = "mediaflow_airflow_api"


def _settings() -> dict:
    env = os.environ
    return {
        "cron": env.get("MEDIAFLOW_NIGHTLY_CRON", "0 2 * * *"),
        "timezone": env.get("MEDIAFLOW_NIGHTLY_TZ", "UTC"),
        "max_runs": int(env.get("MEDIAFLOW_BATCH_MAX_RUNS", "500")),
        "owners": [
            a.strip() for a in env.get("MEDIAFLOW_BATCH_OWNERS", "media-ops@example.com").split(",") if a.strip()
        ],
    }


def _doc(s: dict) -> str:
    return f"""### Nightly content batch
Runs at `{s["cron"]}` ({s["timezone"]}), and whenever the `mediaflow_landing` Asset gets an event (a delivery
landed: `python -m mediaflow_dev.upload DIR`). Catchup is off; one batch at a time.

1. **find_pending**: lists `s3://mediaflow-landing/deliveries/` (paginated) and keeps the deliveries with no
   processed marker in `s3://mediaflow-reports/deliveries/<delivery_id>.json`.
2. **validate_manifests**: reads every pending manifest into one pandas DataFrame and validates it with the
   Great Expectations suite `include/gx/manifest_suite.json`.
3. **quarantine_invalid**: copies each invalid delivery to the quarantine bucket with `_rejection.json` (its
   reasons), marks it processed, and sends one summary email to {", ".join(s["owners"])}.
4. **trigger_runs**: starts one `value_stream__<stream>` run per valid delivery, urgent first (manifest
   `metadata.priority`; within one priority the highest audience-feedback score in
   `s3://mediaflow-reports/feedback/latest/priorities.json` first), at most **max_runs** per batch (the rest wait for the next batch). Run ids are
   deterministic (`nightly__<date>__<delivery_id>`, `landed__<date>__<delivery_id>` for landing events), and
   every delivery is marked processed, so no batch starts a title twice. A trigger that fails for a transient
   reason (404 while a DAG is re-parsed, a time-out, a 5xx, a 409 race) is retried with exponential backoff and
   jitter for up to `MEDIAFLOW_TRIGGER_RETRY_BUDGET_S` (default 120 s); a delivery whose trigger still fails (or
   fails for good, e.g. a 400) is left **pending**: its claim in `s3://mediaflow-reports/claims/<delivery_id>.json`
   says why, one mail to {", ".join(s["owners"])} lists every such delivery, the other deliveries start anyway,
   and the next batch starts it under the same run id. Runs are started through Airflow's official client
   (apache-airflow-client); each started run's note links back to this batch run, and this batch run's note links to
   the runs it started. Runs beyond a stream's `max_active_runs` wait queued,
   and ffmpeg work waits for a slot of the `media` pool (one per core; mediaflow.capacity).
"""


# long: a DAG factory: the DAG's whole shape in one place, as Airflow's docs write them
def content_batch_dag() -> DAG:
    s = _settings()
    with DAG(
        dag_id=names.CONTENT_BATCH_DAG,
        description="Nightly (and on landing) batch: find new deliveries, validate manifests, start value streams",
        doc_md=_doc(s),
        schedule=AssetOrTimeSchedule(
            timetable=CronTriggerTimetable(s["cron"], timezone=s["timezone"]), assets=[LANDING]
        ),
        start_date=datetime(2026, 1, 1, tzinfo=UTC),
        catchup=False,
        max_active_runs=1,  # two batches at once could both claim a delivery
        default_args={
            "owner": "media-ops",
            "retries": 2,
            "retry_delay": timedelta(seconds=20),
        },  # a blip costs 20 s, not 5 min
        tags=["batch"],
        params={
            "max_runs": Param(
                s["max_runs"],
                type="integer",
                minimum=0,
                maximum=100000,
                title="Max runs",
                description="At most this many value-stream runs are started by this batch; the rest wait for the next",
            ),  # fmt: skip
        },
    ) as dag:

        @task(task_id=names.FIND_PENDING)
        def find_pending() -> dict:
            """Deliveries in landing that no batch has processed; claims an interrupted batch left unfinished."""
            from mediaflow import batch
            from mediaflow.store import Buckets
            from mediaflow_airflow.hooks import MediaStoreHook

            new, claims = batch.pending_deliveries(MediaStoreHook(), Buckets.from_env())
            print(f"{len(new)} new deliveries, {len(claims)} claimed by an earlier batch and not yet started")
            return {"new": new, "claims": claims}

        @task(task_id=names.VALIDATE_MANIFESTS)
        def validate_manifests(found: dict, run_id=None) -> dict:
            """Every pending manifest in one DataFrame, one GX validation; the full result goes to the reports bucket."""
            from mediaflow import batch
            from mediaflow.spec import load_specs
            from mediaflow.store import Buckets, run_key
            from mediaflow_airflow.hooks import MediaStoreHook

            store, buckets = MediaStoreHook(), Buckets.from_env()
            rows = batch.read_manifests(store, buckets, found["new"])
            result = batch.validate(rows, known_streams=sorted(load_specs()))
            key = f"batches/{run_key(run_id)}/validation.json"
            store.put_bytes(json.dumps(result, indent=2, default=str).encode(), buckets.reports, key)
            print(f"{len(result['valid'])} valid, {len(result['invalid'])} invalid; s3://{buckets.reports}/{key}")
            keep = ("delivery_id", "asset_id", "value_stream", "priority", "delivered_at", "last_modified")
            return {"valid": [{k: r[k] for k in keep} for r in result["valid"]], "invalid": result["invalid"],
                    "suite": result["suite"], "report_uri": f"s3://{buckets.reports}/{key}"}  # fmt: skip

        @task(task_id=names.QUARANTINE_INVALID)
        def quarantine_invalid(validation: dict, run_id=None, **context) -> dict:
            """Invalid deliveries to quarantine with their reasons; one summary email for the batch."""
            from mediaflow import batch
            from mediaflow.store import Buckets
            from mediaflow_airflow.hooks import MediaStoreHook

            store, buckets = MediaStoreHook(), Buckets.from_env()
            quarantined = {d: batch.quarantine(store, buckets, d, reasons, batch_run_id=run_id)
                           for d, reasons in validation["invalid"].items()}  # fmt: skip
            mail = batch.rejection_mail(validation["invalid"], quarantined, batch_run_id=run_id)
            if mail:
                from airflow.providers.smtp.notifications.smtp import SmtpNotifier

                SmtpNotifier(to=s["owners"], subject=mail["subject"], html_content=mail["html"]).notify(context)
            return {d: {"reasons": validation["invalid"][d], "quarantine_uri": uri} for d, uri in quarantined.items()}

        @task(task_id=names.TRIGGER_RUNS)
        def trigger_runs(
            found: dict, validation: dict, params=None, dag_run=None, run_id=None, **context
        ) -> list[dict]:
            """One value-stream run per valid delivery, highest priority first, up to max_runs. A delivery whose
            trigger still fails after the retries is left pending (with its reason) for the next batch; the others
            start, and the task succeeds."""
            from mediaflow import batch, decisions, run_links
            from mediaflow.feedback import read_priorities
            from mediaflow.spec import load_specs
            from mediaflow.store import Buckets
            from mediaflow_airflow.hooks import AirflowApiHook, MediaStoreHook

            store, buckets = MediaStoreHook(), Buckets.from_env()
            api = AirflowApiHook(API_CONN_ID).get_conn(threads=batch.trigger_workers())
            specs = load_specs()
            ranking = read_priorities(store, buckets)  # audience feedback: None until audience_feedback has run
            plan = decisions.trigger_plan(validation["valid"], claims=len(found["claims"]), max_runs=params["max_runs"],
                                          priorities=ranking, when=dag_run.logical_date or dag_run.run_after,
                                          run_type=getattr(dag_run.run_type, "value", dag_run.run_type))  # fmt: skip
            later = plan.later
            todo = list(found["claims"]) + [
                batch.claim(store, buckets, row, dag_id=specs[row["value_stream"]].dag_id, run_id=row["run_id"],
                            batch_run_id=run_id)
                for row in plan.start
            ]  # fmt: skip
            began = time.monotonic()
            note = run_links.started_by_note(names.CONTENT_BATCH_DAG, run_id)  # each run links back to this batch run
            out = batch.trigger_all(store, buckets, todo, batch_run_id=run_id,
                                    trigger=lambda dag_id, run, conf: api.trigger_once(dag_id, run, conf, note=note))  # fmt: skip
            took = time.monotonic() - began
            if out:  # this batch run's page links to the runs it started
                try:
                    api.set_note(names.CONTENT_BATCH_DAG, run_id,
                                 run_links.batch_note(out, run_id_prefix=batch.run_id_for(plan.kind, plan.day, "")))  # fmt: skip
                except Exception as e:  # noqa: BLE001  the runs started; a note the API refused costs only the links
                    print(f"could not note the started runs on this batch run: {e}")
            api.close()
            pending = [r for r in out if r["status"] == batch.PENDING]
            print(f"started {sum(r['created'] for r in out)} runs ({len(out)} planned) in {took:.1f} s "
                  f"({took / max(1, len(out)):.2f} s each, {batch.trigger_workers()} at a time); {len(pending)} left "
                  f"pending; {len(later)} wait for the next batch")  # fmt: skip
            mail = batch.pending_mail(pending, batch_run_id=run_id)
            if mail:
                from airflow.providers.smtp.notifications.smtp import SmtpNotifier

                SmtpNotifier(to=s["owners"], subject=mail["subject"], html_content=mail["html"]).notify(context)
            return out

        found = find_pending()
        validation = validate_manifests(found)
        quarantine_invalid(validation)
        trigger_runs(found, validation)
    return dag
