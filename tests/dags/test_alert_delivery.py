"""Alert delivery through the smtp provider to a real SMTP server (the project's aiosmtpd sink on a free port),
with the alert outbox in a real SQLite ledger: once per failure or breach, retried while SMTP is down."""

from __future__ import annotations

import asyncio
import json
import socket
from datetime import UTC, datetime, timedelta
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiosmtpd.controller import Controller

from mediaflow.ledger import Ledger
from mediaflow_dev.smtp_sink import EmlWriter

DAG, RUN = "value_stream__news_clip", "manual__drill"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def env(tmp_path, monkeypatch):
    port = _free_port()
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT",
                       f"smtp://127.0.0.1:{port}?disable_ssl=true&disable_tls=true&from_email=mediaflow%40localhost")  # fmt: skip
    monkeypatch.setenv(
        "AIRFLOW_CONN_MEDIAFLOW_LEDGER", json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "ledger.db")})
    )
    monkeypatch.setenv("MEDIAFLOW_LEDGER_SPOOL", str(tmp_path / "spool"))
    monkeypatch.setenv("MEDIAFLOW_UI_URL", "http://ui.example:8080")
    sink = SimpleNamespace(port=port, mail=tmp_path / "mail", controller=None)

    def start():
        sink.controller = Controller(EmlWriter(sink.mail), hostname="127.0.0.1", port=port)
        sink.controller.start()

    sink.start = start
    yield sink
    if sink.controller:
        sink.controller.stop()


def _mails(folder: Path) -> list:
    return [BytesParser(policy=default_policy).parsebytes(p.read_bytes()) for p in sorted(folder.glob("*.eml"))]


def _ti(**kw):
    base = dict(dag_id=DAG, run_id=RUN, task_id="publish.publish_channels", map_index=-1, try_number=3)
    return SimpleNamespace(**{**base, **kw})


def test_ledger_connection_picks_the_database():
    from mediaflow_airflow.hooks import LedgerHook

    def conn(**kw):
        base = dict(conn_id="mediaflow_ledger", conn_type="sqlite", host="/var/lib/ledger.db", login=None,
                    password=None, port=None, schema=None, extra_dejson={})  # fmt: skip
        return SimpleNamespace(**{**base, **kw})

    assert LedgerHook.url_of(conn()) == "sqlite:////var/lib/ledger.db"
    pg = conn(conn_type="postgres", host="ledger-db", login="mf", password="p@ss", port=5432, schema="ledger")
    assert LedgerHook.url_of(pg) == "postgresql+psycopg2://mf:p%40ss@ledger-db:5432/ledger"
    assert LedgerHook.url_of(conn(extra_dejson={"sqlalchemy_url": "sqlite:///x.db"})) == "sqlite:///x.db"
    with pytest.raises(ValueError, match="conn_type 'http' is not a ledger database"):
        LedgerHook.url_of(conn(conn_type="http"))


def test_a_task_failure_mails_the_owners_once(env, tmp_path):
    from mediaflow_airflow.notifiers import TaskFailureNotifier

    env.start()
    Ledger(f"sqlite:///{tmp_path / 'ledger.db'}").record_run(dag_id=DAG, run_id=RUN, asset_id="clip-7")
    notifier = TaskFailureNotifier(to=["ops@example.com"], value_stream="news_clip")
    context = {"ti": _ti(), "exception": RuntimeError("EndpointConnectionError: s3 unreachable")}
    notifier.notify(context)
    notifier.notify(context)  # the same failure reported twice
    (mail,) = _mails(env.mail)
    assert mail["Subject"] == "[FAILED] clip-7: publish stage task publish.publish_channels failed (news_clip)"
    assert mail["To"] == "ops@example.com"
    body = mail.get_body(("html",)).get_content()
    assert "s3 unreachable" in body and "http://ui.example:8080/dags/value_stream__news_clip/runs/manual__drill" in body
    (alert,) = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}").alerts(DAG, RUN)
    assert (alert["kind"], alert["status"], alert["recipients"]) == ("task_failed", "sent", ["ops@example.com"])
    # a later try that fails again is a new failure, and mails again
    notifier.notify({"ti": _ti(try_number=4), "exception": RuntimeError("again")})
    assert len(_mails(env.mail)) == 2


def test_with_smtp_down_the_alert_stays_pending_and_is_delivered_when_it_returns(env, tmp_path):
    from mediaflow_airflow.notifiers import TaskFailureNotifier, deliver

    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    TaskFailureNotifier(to=["ops@example.com"], value_stream="news_clip").notify({"ti": _ti(), "exception": None})
    (pending,) = ledger.pending_alerts(DAG, RUN)
    assert pending["tries"] == 1 and pending["last_error"]
    env.start()
    assert deliver(ledger, pending)
    assert ledger.pending_alerts(DAG, RUN) == [] and len(_mails(env.mail)) == 1


def test_the_sla_watcher_mails_each_breach_once_and_ends_with_the_run(env, tmp_path):
    """StageSlaTrigger as the triggerer runs it: async, SmtpNotifier's async path, the ledger in threads."""
    from mediaflow_airflow.triggers import StageSlaTrigger

    env.start()
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    now = datetime.now(UTC)
    ledger.record_run(dag_id=DAG, run_id=RUN, asset_id="clip-9", queued_at=now - timedelta(seconds=30))
    ledger.record_attempt(dag_id=DAG, run_id=RUN, task_id="ingest.ingest_delivery", map_index=-1, try_number=1,
                          state="success", started_at=now - timedelta(seconds=29), ended_at=now - timedelta(seconds=25))  # fmt: skip
    ledger.record_attempt(dag_id=DAG, run_id=RUN, task_id="transcode.transcode_ladder", map_index=-1, try_number=1,
                          state="running", started_at=now - timedelta(seconds=24))  # fmt: skip
    trigger = StageSlaTrigger(dag_id=DAG, run_id=RUN, value_stream="news_clip", slas_s={"ingest": 60, "transcode": 10},
                              owners=["desk@example.com"], ui_url="http://ui", poll_s=0.2)  # fmt: skip
    classpath, kwargs = trigger.serialize()
    assert classpath == "mediaflow_airflow.triggers.StageSlaTrigger" and StageSlaTrigger(**kwargs).serialize() == (
        classpath,
        kwargs,
    )

    async def scenario():
        events = []

        async def consume():
            async for event in trigger.run():
                events.append(event.payload)

        task = asyncio.create_task(consume())
        await asyncio.sleep(1.5)  # several looks while transcode is over its SLA
        ledger.record_attempt(dag_id=DAG, run_id=RUN, task_id="transcode.transcode_ladder", map_index=-1, try_number=1,
                              state="success", started_at=now - timedelta(seconds=24), ended_at=datetime.now(UTC))  # fmt: skip
        ledger.record_attempt(dag_id=DAG, run_id=RUN, task_id="outcome", map_index=-1, try_number=1, state="success",
                              started_at=datetime.now(UTC), ended_at=datetime.now(UTC))  # fmt: skip
        await asyncio.wait_for(task, 10)
        return events

    (event,) = asyncio.run(scenario())
    (mail,) = _mails(env.mail)
    assert mail["Subject"] == "[SLA] clip-9: transcode stage over its 10s SLA (still running)"
    assert event == {"sent": [mail["Subject"]], "pending": []}


def test_alerts_still_pending_after_their_run_are_sent_by_the_outbox_sweep(env, tmp_path):
    """SMTP down past the run's end: the alert_outbox DAG's sweep (alerts.resend_stranded) keeps them pending while
    the server refuses, then delivers each once; a running run's alerts stay with its own watcher."""
    from mediaflow import alerts
    from mediaflow_airflow.notifiers import deliver

    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    now = datetime.now(UTC)
    ledger.record_run(dag_id=DAG, run_id="ended", state="failed", ended_at=now - timedelta(minutes=5))
    ledger.record_run(dag_id=DAG, run_id="going", state="running")
    for run, kind in (("ended", "task_failed"), ("going", "task_failed")):
        ledger.claim_alert(dag_id=DAG, run_id=run, kind=kind, key="publish#1", recipients=["ops@example.com"],
                           subject=f"[FAILED] {run}", html="<p>x</p>")  # fmt: skip
    ledger.claim_alert(dag_id="value_stream_metrics", run_id="2026-11-28", kind="digest", key="2026-11-28",
                       recipients=["owners@example.com"], subject="[mediaflow] value streams digest 2026-11-28", html="<p>d</p>")  # fmt: skip
    later = now + timedelta(minutes=30)  # the watcher of "ended" has long given up

    sent, pending = alerts.resend_stranded(ledger, deliver, now=later, grace_s=1200)  # SMTP still down
    assert sent == [] and sorted(a["subject"] for a in pending) == [
        "[FAILED] ended",
        "[mediaflow] value streams digest 2026-11-28",
    ]
    assert all(
        a["tries"] == 1 and a["last_error"] for a in ledger.stranded_alerts(older_than=later - timedelta(seconds=1200))
    )

    env.start()
    sent, pending = alerts.resend_stranded(ledger, deliver, now=later, grace_s=1200)
    assert len(sent) == 2 and pending == []
    assert sorted(m["Subject"] for m in _mails(env.mail)) == [
        "[FAILED] ended",
        "[mediaflow] value streams digest 2026-11-28",
    ]
    assert [a["status"] for a in ledger.alerts(DAG, "going")] == ["pending"], "a running run's alerts are its watcher's"
    assert alerts.resend_stranded(ledger, deliver, now=later, grace_s=1200) == ([], [])


def test_two_senders_of_one_pending_alert_mail_it_once(env, tmp_path):
    """The lead-time callback claims its alert and sends it while the run's SLA watcher, in the same triggerer,
    sends every pending alert of the run: both used to mail it (seen in the SLA drill). Taking it first
    (Ledger.take_alert) lets one send and the other see it is being sent."""
    from mediaflow_airflow.notifiers import adeliver, deliver

    env.start()
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    alert = ledger.claim_alert(dag_id=DAG, run_id=RUN, kind="lead_time", key="lead_time", recipients=["ops@example.com"],
                               subject="[SLA] drill: lead time over its 20s SLA", html="<p>late</p>")  # fmt: skip

    async def race():
        return await asyncio.gather(
            adeliver(ledger, alert), adeliver(ledger, alert), asyncio.to_thread(deliver, ledger, alert)
        )

    results = asyncio.run(race())
    assert sorted(results, key=str) == [None, None, True], results
    assert [m["Subject"] for m in _mails(env.mail)] == ["[SLA] drill: lead time over its 20s SLA"]
    assert ledger.alerts(DAG, RUN)[0]["status"] == "sent" and ledger.pending_alerts(DAG, RUN) == []
    assert deliver(ledger, alert) is None and len(_mails(env.mail)) == 1, "a sent alert is never sent again"
