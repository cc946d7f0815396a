"""Owner alerts sent through the smtp provider's SmtpNotifier, each recorded in the ledger's outbox first.

- `TaskFailureNotifier`: a value-stream task's on_failure_callback (Airflow calls it once per final failure,
  not per retry).
- `lead_time_missed`: the DeadlineAlert's AsyncCallback; runs in the triggerer when a run passes its lead-time SLA.
- `deliver` / `adeliver`: take one outbox alert (Ledger.take_alert), send it and mark it sent: True. A failure
  leaves it pending (the run's SLA watcher retries it): False. None: another sender has it (nothing sent).
"""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import datetime, timezone

from airflow.providers.smtp.notifications.smtp import SmtpNotifier

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
    now = datetime.now(timezone.utc)

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
    return {True: "sent", None: "being sent by the run's SLA watcher"}.get(sent, "pending (the run's SLA watcher retries it)")
