"""Owner alerts: stage SLA breaches, the lead-time deadline, task failures, a title waiting for a person's review, a
title rejected. Plain Python, no Airflow imports.

Every alert goes through the ledger's outbox: `Ledger.claim_alert` records it once per (run, kind, key), then a
sender delivers it and marks it sent; what could not be delivered stays pending and is retried.
"""

from __future__ import annotations

import html as _html
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from mediaflow import names
from mediaflow.ledger import Ledger
from mediaflow.spec import STAGE_ORDER, format_duration
from mediaflow.stages import instant, stage_spans

WATCH_TASK = names.SLA_WATCH  # the value-stream DAG's per-run SLA watcher (outside the stages)


def run_url(ui_url: str, dag_id: str, run_id: str) -> str:
    return f"{ui_url.rstrip('/')}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def _dur(seconds: float) -> str:
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m{sec:02d}s" if h else f"{m}m{sec:02d}s" if m else f"{sec}s"


def _now_lines(attempts: list[dict], spans: list[dict], now: datetime) -> list[str]:
    """What is running or waiting in the run right now, for the reader of an alert."""
    lines = []
    for a in attempts:
        if a["state"] == "running" and a.get("started_at") and a["task_id"] != WATCH_TASK:
            where = a["task_id"] + (f"[{a['map_index']}]" if a["map_index"] >= 0 else "")
            lines.append(
                f"running: {where} (try {a['try_number']}, for {_dur((now - a['started_at']).total_seconds())})"
            )
    if not lines and spans and spans[-1]["ended_at"]:
        last = spans[-1]
        ended = instant(last["ended_at"])
        lines.append(
            f"waiting: nothing runs; {last['stage']} ended {_dur((now - ended).total_seconds())} ago (hand-off)"
        )
    return lines or ["nothing running"]


def _page(rows: list[tuple[str, str]], now_lines: list[str], link: str) -> str:
    cells = "".join(f"<tr><th align='left'>{_html.escape(k)}</th><td>{_html.escape(str(v))}</td></tr>" for k, v in rows)
    now = "".join(f"<li>{_html.escape(line)}</li>" for line in now_lines)
    return (f"<table>{cells}</table><p>Now:</p><ul>{now}</ul>"
            f"<p><a href='{_html.escape(link)}'>Open the run in the Airflow UI</a></p>")  # fmt: skip


def stage_sla_mail(*, stream: str, asset: str, dag_id: str, run_id: str, span: dict, attempts: list[dict],
                   spans: list[dict], now: datetime, ui_url: str) -> tuple[str, str]:  # fmt: skip
    """(subject, html) for a stage over its SLA: still running, or finished late."""
    start, end = instant(span["started_at"]), instant(span["ended_at"])
    elapsed = ((end or now) - start).total_seconds()
    status = f"finished late at {span['ended_at']}" if end else "still running"
    subject = (
        f"[SLA] {asset}: {span['stage']} stage over its {format_duration(span['sla_s'])} SLA ({status.split(' at')[0]})"
    )
    link = run_url(ui_url, dag_id, run_id)
    rows = [("Value stream", stream), ("Asset", asset), ("Stage", span["stage"]), ("SLA", format_duration(span["sla_s"])),
            ("Elapsed", _dur(elapsed)), ("Stage started", span["started_at"]), ("Status", status),
            ("Attempts", span["attempts"]), ("Run", f"{dag_id} / {run_id}")]  # fmt: skip
    return subject, _page(rows, _now_lines(attempts, spans, now), link)


def lead_time_mail(*, stream: str, asset: str, dag_id: str, run_id: str, sla_s: float, queued_at: datetime | None,
                   deadline: datetime | None, attempts: list[dict], spans: list[dict], now: datetime, ui_url: str) -> tuple[str, str]:  # fmt: skip
    subject = f"[SLA] {asset}: lead time over its {format_duration(sla_s)} SLA ({stream})"
    elapsed = (now - queued_at).total_seconds() if queued_at else None
    current = next((s["stage"] for s in reversed(spans) if not s["ended_at"]), spans[-1]["stage"] if spans else "-")
    rows = [("Value stream", stream), ("Asset", asset), ("Stage", "lead time"), ("SLA", format_duration(sla_s)),
            ("Elapsed", _dur(elapsed) if elapsed is not None else "-"), ("Run queued", queued_at.isoformat() if queued_at else "-"),
            ("Deadline", deadline.isoformat() if deadline else "-"), ("Latest stage", current), ("Run", f"{dag_id} / {run_id}")]  # fmt: skip
    return subject, _page(rows, _now_lines(attempts, spans, now), run_url(ui_url, dag_id, run_id))


def task_failure_mail(*, stream: str, asset: str, dag_id: str, run_id: str, task: str, try_number: int,
                      error: str, ui_url: str) -> tuple[str, str]:  # fmt: skip
    stage = task.split(".", 1)[0] if "." in task else task
    subject = f"[FAILED] {asset}: {stage} stage task {task} failed ({stream})"
    rows = [("Value stream", stream), ("Asset", asset), ("Stage", stage), ("Task", task), ("Try", try_number),
            ("Error", error or "-"), ("Run", f"{dag_id} / {run_id}")]  # fmt: skip
    return subject, _page(
        rows, ["the run goes on where it can; clear the task in the UI to retry it"], run_url(ui_url, dag_id, run_id)
    )


def _first(items: list[str]) -> str:
    """The first of several reasons for a subject line, with how many more there are."""
    more = f" (+{len(items) - 1} more)" if len(items) > 1 else ""
    return f"{items[0][:160]}{more}" if items else ""


def review_request_mail(*, stream: str, asset: str, dag_id: str, run_id: str, branch: str, problems: list[str],
                        warnings: list[str], link: str) -> tuple[str, str]:  # fmt: skip
    """(subject, html) when a title waits for a person's review: each failed check's finding (check, figure, limit)
    in the subject and the body, the warnings beside them, and the Required Actions page that answers it."""
    why = problems or [f"the stream's policy asks for {branch} review by a person"]
    subject = f"[REVIEW] {asset}: {branch} review waits for a person: {_first(why)}"
    rows = [("Value stream", stream), ("Asset", asset), ("Review", branch), ("Run", f"{dag_id} / {run_id}")]
    cells = "".join(f"<tr><th align='left'>{_html.escape(k)}</th><td>{_html.escape(str(v))}</td></tr>" for k, v in rows)
    items = lambda xs: "".join(f"<li>{_html.escape(x)}</li>" for x in xs)  # noqa: E731
    body = (f"<table>{cells}</table><p>Why a person is asked:</p><ul>{items(why)}</ul>"
            + (f"<p>Warnings (no action needed):</p><ul>{items(warnings)}</ul>" if warnings else "")
            + f"<p><a href='{_html.escape(link)}'>Approve or reject in Required Actions</a></p>")  # fmt: skip
    return subject, body


def rejection_mail(*, stream: str, asset: str, dag_id: str, run_id: str, reasons: list[str], warnings: list[str],
                   ui_url: str) -> tuple[str, str]:  # fmt: skip
    """(subject, html) when a title was rejected: every reason (check, figure, limit), the warnings beside them."""
    subject = f"[REJECTED] {asset}: {_first(reasons) or 'rejected'} ({stream})"
    rows = [("Value stream", stream), ("Asset", asset), ("Status", "rejected: nothing published"),
            ("Run", f"{dag_id} / {run_id}")]  # fmt: skip
    cells = "".join(f"<tr><th align='left'>{_html.escape(k)}</th><td>{_html.escape(str(v))}</td></tr>" for k, v in rows)
    items = lambda xs: "".join(f"<li>{_html.escape(x)}</li>" for x in xs)  # noqa: E731
    body = (
        f"<table>{cells}</table><p>Why:</p><ul>{items(reasons)}</ul>"
        + (f"<p>Warnings:</p><ul>{items(warnings)}</ul>" if warnings else "")
        + "<p>Fix the delivery and deliver it again (same asset id).</p>"
        + f"<p><a href='{_html.escape(run_url(ui_url, dag_id, run_id))}'>Open the run in the Airflow UI</a></p>"
    )
    return subject, body


def spans_of(
    ledger: Ledger, dag_id: str, run_id: str, slas_s: dict, now: datetime
) -> tuple[list[dict], list[dict], dict | None]:
    """(attempts, stage spans, run row) of one run, from the ledger."""
    rows = ledger.attempts(dag_id, run_id)
    run = ledger.run(dag_id, run_id)
    staged = [{"stage": a["stage"], "start": a["started_at"], "end": a["ended_at"], "try_number": a["try_number"]}
              for a in rows if a["stage"] and a["started_at"]]  # fmt: skip
    spans = stage_spans(staged, stage_order=list(STAGE_ORDER), queued_at=run["queued_at"] if run else None,
                        slas_s=slas_s, now=now)  # fmt: skip
    return rows, spans, run


def asset_name(run: dict | None, run_id: str) -> str:
    return (run or {}).get("asset_id") or (run or {}).get("delivery_id") or run_id


def watch_pass(ledger: Ledger, *, dag_id: str, run_id: str, stream: str, slas_s: dict, owners: list[str],
               ui_url: str, final_task: str = names.OUTCOME, now: datetime | None = None) -> tuple[list[dict], bool]:  # fmt: skip
    """One look at a run: raise an alert for every stage over its SLA (running or finished late) that has none
    yet. Returns (alerts waiting for delivery, including older undelivered ones; whether the run's work is over)."""
    now = now or datetime.now(UTC)
    rows, spans, run = spans_of(ledger, dag_id, run_id, slas_s, now)
    asset = asset_name(run, run_id)
    for span in spans:
        if span["sla_missed"]:
            subject, body = stage_sla_mail(stream=stream, asset=asset, dag_id=dag_id, run_id=run_id, span=span,
                                           attempts=rows, spans=spans, now=now, ui_url=ui_url)  # fmt: skip
            ledger.claim_alert(dag_id=dag_id, run_id=run_id, kind="stage_sla", key=span["stage"], recipients=owners,
                               subject=subject, html=body, stream=stream, asset_id=asset, stage=span["stage"])  # fmt: skip
    over = any(a["task_id"] == final_task and a["state"] in ("success", "failed") for a in rows)
    return ledger.pending_alerts(dag_id, run_id), over


def resend_stranded(ledger: Ledger, deliver, *, now: datetime, grace_s: float) -> tuple[list[dict], list[dict]]:
    """Deliver the outbox's stranded alerts (Ledger.stranded_alerts, `grace_s` after their run ended): nothing the
    mail server refused is dropped, however long it was down. `deliver(ledger, alert) -> bool` sends one and
    records the result. Returns (sent, still pending)."""
    stranded = ledger.stranded_alerts(older_than=now - timedelta(seconds=grace_s))
    sent = [a for a in stranded if deliver(ledger, a)]
    return sent, [a for a in stranded if a not in sent]
