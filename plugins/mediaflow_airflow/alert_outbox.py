"""The `alert_outbox` DAG: alerts the mail server refused, after their run's watcher has given up, are sent again
until they go through. A run's own watcher retries its pending alerts while the run lasts (and up to 15 minutes
after); this picks up the rest, so an SMTP outage of any length drops nothing."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from airflow.sdk import DAG, CronTriggerTimetable, task

from mediaflow import names
from mediaflow_airflow.background import background_dag_args

# past the watcher's hold (15 min after the run's outcome), so the two never send the same alert at once
GRACE_S = 1200


def alert_outbox_dag() -> DAG:
    cron = os.environ.get("MEDIAFLOW_OUTBOX_CRON", "*/10 * * * *")
    with DAG(
        dag_id=names.OUTBOX_DAG,
        description="Resend the alerts (SLA, lead time, task failure, digest) that are still pending after their run",
        doc_md=f"""### Alert outbox
Every `{cron}` (UTC): the alerts in the ledger's outbox (`stage_alerts`) still `pending` {GRACE_S // 60} minutes
after their run ended (or, for a digest, after it was written) are delivered again through SmtpNotifier. The task
fails, listing them, while the mail server still refuses: a red task, never a silent drop.""",
        schedule=CronTriggerTimetable(cron, timezone="UTC"),
        **background_dag_args(owner="media-ops", retries=1),
        tags=["alerts"],
    ) as dag:

        @task(task_id=names.RESEND_STRANDED)
        def resend_stranded() -> int:
            """Deliver every stranded pending alert; fail while any is still refused."""
            from mediaflow import alerts
            from mediaflow_airflow.hooks import LedgerHook
            from mediaflow_airflow.notifiers import deliver

            sent, pending = alerts.resend_stranded(
                LedgerHook().get_conn(), deliver, now=datetime.now(UTC), grace_s=GRACE_S
            )
            print(f"{len(sent)} stranded alert(s) delivered")
            if pending:
                raise RuntimeError(f"{len(pending)} alert(s) still refused by the mail server (they stay in the outbox): "
                                   + "; ".join(f"{a['subject']} ({a['last_error']})" for a in pending))  # fmt: skip
            return len(sent)

        resend_stranded()
    return dag
