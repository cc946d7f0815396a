"""Owner alerts sent through the smtp provider's SmtpNotifier, each recorded in the ledger's outbox first.

- `TaskFailureNotifier`: a value-stream task's on_failure_callback (Airflow calls it once per final failure,
  not per retry).
- `lead_time_missed`: the DeadlineAlert's AsyncCallback; runs in the triggerer when a run passes its lead-time SLA.
- `ReviewRequestNotifier`: a review approval task's HITL notifier: mails the owners why a person is asked (each
  failed check's finding: check, figure, limit) with the Required Actions link, when the title starts to wait.
- `mail_rejection`: the outcome task's mail when a title was rejected, every reason in it.
- `deliver` / `adeliver`: take one outbox alert (Ledger.take_alert), send it and mark it sent: True. A failure
  leaves it pending (the run's SLA watcher retries it): False. None: another sender has it (nothing sent).
"""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import UTC, datetime

from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow.sdk.bases.notifier import BaseNotifier

from mediaflow import names

log = logging.getLogger(__name__)


def ui_url() -> str:
    """Where people open the Airflow UI (alert links)."""
    if os.environ.get("MEDIAFLOW_UI_URL"):
        return os.environ["MEDIAFLOW_UI_URL"]
    from airflow.configuration import conf

    return conf.get("api", "base_url", fallback=None) or "http://localhost:8080"


def _ledger():
    from mediaflow_airflow.hooks import LedgerHook

    return LedgerHook().get_conn()


def _notifier(alert: dict) -> SmtpNotifier:
    return SmtpNotifier(to=alert["recipients"], subject=alert["subject"], html_content=alert["html"])


def deliver(ledger, alert: dict, context: dict | None = None) -> bool | None:
    if not ledger.take_alert(alert["id"]):
        return None
    try:
        _notifier(alert).notify(context or {})
    except Exception as e:
        log.warning("alert %s not delivered yet (%s: %s); it stays pending", alert["subject"], type(e).__name__, e)
        ledger.mark_failed(alert["id"], f"{type(e).__name__}: {e}")
        return False
    ledger.mark_sent(alert["id"])
    return True


async def adeliver(ledger, alert: dict) -> bool | None:
    """`deliver` for the triggerer: the mail goes out through SmtpNotifier's async path, the ledger in a thread."""
    if not await asyncio.to_thread(ledger.take_alert, alert["id"]):
        return None
    try:
        await _notifier(alert).async_notify({})
    except Exception as e:
        log.warning("alert %s not delivered yet (%s: %s); it stays pending", alert["subject"], type(e).__name__, e)
        await asyncio.to_thread(ledger.mark_failed, alert["id"], f"{type(e).__name__}: {e}")
        return False
    await asyncio.to_thread(ledger.mark_sent, alert["id"])
    return True


class TaskFailureNotifier(SmtpNotifier):
    """Mails the stream's owners when a task has failed for good: the outbox key (task, map index, try) keeps it to
    one mail per failure even if the callback runs twice."""

    def __init__(self, *, to: list[str], value_stream: str, **kwargs):
        super().__init__(to=to, **kwargs)
        self.value_stream = value_stream

    def notify(self, context):
        from mediaflow import alerts

        ti = context["ti"]
        error = context.get("exception")
        try:
            ledger = _ledger()
            asset = alerts.asset_name(ledger.run(ti.dag_id, ti.run_id), ti.run_id)
        except Exception:
            log.warning("ledger unavailable: the failure mail goes out unrecorded", exc_info=True)
            ledger, asset = None, ti.run_id
        task = ti.task_id + (f"[{ti.map_index}]" if ti.map_index is not None and ti.map_index >= 0 else "")
        subject, body = alerts.task_failure_mail(stream=self.value_stream, asset=asset, dag_id=ti.dag_id, run_id=ti.run_id,
                                                 task=task, try_number=ti.try_number, error=str(error or ""), ui_url=ui_url())  # fmt: skip
        if ledger is None:
            self.subject, self.html_content = subject, body
            return super().notify(context)
        alert = ledger.claim_alert(dag_id=ti.dag_id, run_id=ti.run_id, kind="task_failed", key=f"{task}#{ti.try_number}",
                                   recipients=list(self.to), subject=subject, html=body, stream=self.value_stream,
                                   asset_id=asset, stage=ti.task_id.split(".", 1)[0])  # fmt: skip
        if alert is not None:
            deliver(ledger, alert, context)


async def lead_time_missed(*, value_stream: str, owners: list[str], sla_s: float, context: dict | None = None, **_):
    """AsyncCallback of the run's lead-time DeadlineAlert (runs in the triggerer)."""
    from mediaflow import alerts
    from mediaflow.stages import instant

    context = context or {}
    dr, deadline = context.get("dag_run") or {}, context.get("deadline") or {}
    dag_id, run_id = dr.get("dag_id"), dr.get("dag_run_id") or dr.get("run_id")
    now = datetime.now(UTC)

    def _raise():
        ledger = _ledger()
        rows, spans, run = alerts.spans_of(ledger, dag_id, run_id, {}, now)
        queued = run and run.get("queued_at") or instant(dr.get("queued_at"))
        asset = alerts.asset_name(run, run_id)
        subject, body = alerts.lead_time_mail(stream=value_stream, asset=asset, dag_id=dag_id, run_id=run_id,
                                              sla_s=sla_s, queued_at=queued, deadline=instant(deadline.get("deadline_time")),
                                              attempts=rows, spans=spans, now=now, ui_url=ui_url())  # fmt: skip
        alert = ledger.claim_alert(dag_id=dag_id, run_id=run_id, kind="lead_time", key="lead_time", recipients=owners,
                                   subject=subject, html=body, stream=value_stream, asset_id=asset, stage="lead time")  # fmt: skip
        return ledger, alert

    ledger, alert = await asyncio.to_thread(_raise)
    if alert is None:
        return "already alerted"
    sent = await adeliver(ledger, alert)
    return {True: "sent", None: "being sent by the run's SLA watcher"}.get(
        sent, "pending (the run's SLA watcher retries it)"
    )


def _claim_and_deliver(context, *, kind: str, key: str, recipients: list[str], subject: str, body: str,
                       stream: str, asset: str, stage: str) -> None:  # fmt: skip
    """One outbox alert for this run, then delivered; without a ledger the mail goes out unrecorded."""
    ti = context["ti"]
    try:
        ledger = _ledger()
    except Exception:
        log.warning("ledger unavailable: the %s mail goes out unrecorded", kind, exc_info=True)
        SmtpNotifier(to=recipients, subject=subject, html_content=body).notify(context)
        return
    alert = ledger.claim_alert(dag_id=ti.dag_id, run_id=ti.run_id, kind=kind, key=key, recipients=recipients,
                               subject=subject, html=body, stream=stream, asset_id=asset, stage=stage)  # fmt: skip
    if alert is not None:
        deliver(ledger, alert, context)


class ReviewRequestNotifier(BaseNotifier):
    """HITL notifier of `<branch>_approval`: called once the review request is written, before the task waits."""

    def __init__(self, *, to: list[str], value_stream: str, branch: str, checks: list[str], ingest_task: str):
        super().__init__()
        self.to, self.value_stream, self.branch = list(to), value_stream, branch
        self.checks, self.ingest_task = list(checks), ingest_task

    def notify(self, context):
        from airflow.providers.standard.operators.hitl import HITLOperator

        from mediaflow import alerts

        ti = context["ti"]
        ingested = ti.xcom_pull(task_ids=self.ingest_task) or {}
        results = {c: ti.xcom_pull(task_ids=names.check_id(c)) or {} for c in self.checks}
        problems = [p for r in results.values() for p in r.get("problems") or []]
        warnings = list(ingested.get("warnings") or []) + [w for r in results.values() for w in r.get("warnings") or []]
        try:
            link = HITLOperator.generate_link_to_ui_from_context(context=context, base_url=ui_url())
        except ValueError:
            link = alerts.run_url(ui_url(), ti.dag_id, ti.run_id)
        asset = ingested.get("asset_id") or ti.run_id
        subject, body = alerts.review_request_mail(stream=self.value_stream, asset=asset, dag_id=ti.dag_id,
                                                   run_id=ti.run_id, branch=self.branch, problems=problems,
                                                   warnings=warnings, link=link)  # fmt: skip
        _claim_and_deliver(context, kind="review", key=self.branch, recipients=self.to, subject=subject, body=body,
                           stream=self.value_stream, asset=asset, stage=names.REVIEW)  # fmt: skip


def mail_rejection(context, entry: dict, *, owners: list[str]) -> None:
    """The outcome task's mail to the owners when the title was rejected (nothing when it was not)."""
    from mediaflow import alerts

    if entry.get("status") != "rejected":
        return
    ti = context["ti"]
    asset = entry.get("asset_id") or entry.get("delivery_id") or ti.run_id
    subject, body = alerts.rejection_mail(stream=entry["value_stream"], asset=asset, dag_id=ti.dag_id, run_id=ti.run_id,
                                          reasons=list(entry.get("reasons") or []),
                                          warnings=list(entry.get("warnings") or []), ui_url=ui_url())  # fmt: skip
    _claim_and_deliver(
        context,
        kind="rejected",
        key=names.OUTCOME,
        recipients=owners,
        subject=subject,
        body=body,
        stream=entry["value_stream"],
        asset=asset,
        stage=names.OUTCOME,
    )
