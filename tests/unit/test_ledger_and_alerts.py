"""The stage ledger, the alert outbox, and the SLA watcher's decisions, through SQLAlchemy on both databases the ledger
runs on: PostgreSQL (the embedded stack's and docker-compose's) and a SQLite file."""

from __future__ import annotations

import json
import socket
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from mediaflow import alerts, ledger
from mediaflow.ledger import Ledger

T0 = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)
DAG, RUN = "value_stream__news_clip", "manual__1"


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


@pytest.fixture(params=["postgresql", "sqlite"])
def ledger_url(request, tmp_path):
    """An empty ledger database: one on the stack's PostgreSQL server, or a SQLite file."""
    if request.param == "postgresql":
        return request.getfixturevalue("postgres").new_database()
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture
def led(ledger_url, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDIAFLOW_LEDGER_SPOOL", str(tmp_path / "spool"))
    return Ledger(ledger_url)


def attempt(led, task, state, start, end=None, *, try_number=1, map_index=-1, run=RUN):
    led.record_attempt(dag_id=DAG, run_id=run, task_id=task, map_index=map_index, try_number=try_number, state=state,
                       started_at=at(start), ended_at=at(end) if end is not None else None)  # fmt: skip


def test_one_row_per_attempt_with_stream_and_stage(led):
    attempt(led, "transcode.transcode_ladder", "running", 10)
    attempt(led, "transcode.transcode_ladder", "up_for_retry", 10, 20)
    attempt(led, "transcode.transcode_ladder", "running", 30, try_number=2)
    attempt(led, "transcode.transcode_ladder", "success", 30, 50, try_number=2)
    attempt(led, "outcome", "success", 51, 52)
    rows = led.attempts(DAG, RUN)
    assert [(r["task_id"], r["try_number"], r["state"]) for r in rows] == [
        ("transcode.transcode_ladder", 1, "up_for_retry"),
        ("transcode.transcode_ladder", 2, "success"),
        ("outcome", 1, "success"),
    ]
    assert rows[0]["stream"] == "news_clip" and rows[0]["stage"] == "transcode" and rows[2]["stage"] is None
    assert rows[1]["started_at"] == at(30) and rows[1]["ended_at"] == at(50)  # aware UTC back out of SQLite


def test_a_replayed_event_adds_no_row_and_a_late_running_event_does_not_undo_the_end(led):
    attempt(led, "ingest.ingest_delivery", "running", 0)
    attempt(led, "ingest.ingest_delivery", "success", 0, 5)
    attempt(led, "ingest.ingest_delivery", "success", 0, 5)  # replayed
    attempt(led, "ingest.ingest_delivery", "running", 0)  # arrives late
    (row,) = led.attempts(DAG, RUN)
    assert (row["state"], row["started_at"], row["ended_at"]) == ("success", at(0), at(5))


def test_a_resumed_deferred_task_keeps_its_first_start(led):
    attempt(led, "review.legal_approval", "running", 10)
    attempt(led, "review.legal_approval", "running", 900)  # the same try, resumed after the reviewer answered
    attempt(led, "review.legal_approval", "success", 900, 901)
    (row,) = led.attempts(DAG, RUN)
    assert (row["started_at"], row["ended_at"]) == (at(10), at(901))


def test_mapped_indexes_are_rows_of_their_own(led):
    for i in range(3):
        attempt(led, "localize.localize_locale", "success", i, i + 4, map_index=i)
    assert len(led.attempts(DAG, RUN)) == 3


def test_run_row_fields_fill_in_over_time(led):
    led.record_run(dag_id=DAG, run_id=RUN, state="running", delivery_id="d-1", queued_at=at(-5), started_at=at(-4))
    led.record_run(dag_id=DAG, run_id=RUN, asset_id="a-1", delivered_at="2026-11-28T00:59:00Z")
    led.record_run(dag_id=DAG, run_id=RUN, state="success", ended_at=at(60))
    run = led.run(DAG, RUN)
    assert (run["state"], run["delivery_id"], run["asset_id"], run["stream"]) == ("success", "d-1", "a-1", "news_clip")
    assert (run["queued_at"], run["delivered_at"], run["ended_at"]) == (at(-5), at(-60), at(60))


def test_naive_datetimes_are_refused(led):
    with pytest.raises(Exception, match="naive datetime"):
        led.record_attempt(dag_id=DAG, run_id=RUN, task_id="x.y", map_index=-1, try_number=1, state="running",
                           started_at=datetime(2026, 1, 1))  # fmt: skip


def test_an_alert_is_raised_once_per_run_and_key(led):
    first = led.claim_alert(dag_id=DAG, run_id=RUN, kind="stage_sla", key="transcode", recipients=["o@x.com"],
                            subject="s", html="h", stage="transcode")  # fmt: skip
    again = led.claim_alert(dag_id=DAG, run_id=RUN, kind="stage_sla", key="transcode", recipients=["o@x.com"],
                            subject="s2", html="h2", stage="transcode")  # fmt: skip
    assert first["status"] == "pending" and again is None
    led.mark_failed(first["id"], "ConnectionRefusedError: smtp down")
    (pending,) = led.pending_alerts(DAG, RUN)
    assert pending["tries"] == 1 and "smtp down" in pending["last_error"]
    led.mark_sent(first["id"])
    (sent,) = led.alerts(DAG, RUN)
    assert sent["status"] == "sent" and sent["sent_at"] and sent["tries"] == 2 and sent["recipients"] == ["o@x.com"]
    assert led.pending_alerts(DAG, RUN) == []


def test_a_ledger_outage_never_raises_and_the_write_is_replayed(ledger_url, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDIAFLOW_LEDGER_SPOOL", str(tmp_path / "spool"))
    good = ledger_url
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    down = {"postgresql": f"postgresql+psycopg2://postgres@127.0.0.1:{closed}/ledger",  # the server is unreachable
            "sqlite": "sqlite:////nonexistent-dir/ledger.db"}  # the database cannot be opened  # fmt: skip
    url = {"value": down[good.split(":")[0].split("+")[0]]}
    kwargs = dict(dag_id=DAG, run_id=RUN, task_id="ingest.ingest_delivery", map_index=-1, try_number=1,
                  state="success", started_at=at(0), ended_at=at(3))  # fmt: skip
    before = dict(ledger.OUTAGES)
    assert ledger.safe(lambda: url["value"], "record_attempt", retries=(0.0,), **kwargs) is False
    assert (
        ledger.OUTAGES["spooled"] == before["spooled"] + 1
        and ledger.OUTAGES["failed_writes"] >= before["failed_writes"] + 2
    )
    assert len(list((tmp_path / "spool").glob("*.jsonl"))) == 1
    url["value"] = good  # back: the next write replays what was spooled
    assert ledger.safe(
        lambda: url["value"],
        "record_attempt",
        **{**kwargs, "task_id": "ingest.route", "started_at": at(4), "ended_at": at(5)},
    )
    rows = Ledger(good).attempts(DAG, RUN)
    assert [(r["task_id"], r["ended_at"]) for r in rows] == [("ingest.ingest_delivery", at(3)), ("ingest.route", at(5))]
    assert list((tmp_path / "spool").iterdir()) == []


def test_a_connection_that_fails_to_resolve_is_an_outage_too(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDIAFLOW_LEDGER_SPOOL", str(tmp_path / "spool"))

    def no_connection():
        raise LookupError("The conn_id `mediaflow_ledger` isn't defined")

    assert ledger.safe(no_connection, "record_run", retries=(), dag_id=DAG, run_id=RUN, state="running") is False


# ------------------------------------------------------------ the watcher's decisions
SLAS = {"ingest": 120.0, "transcode": 60.0, "publish": 60.0}


def watch(led, now_s: float):
    return alerts.watch_pass(led, dag_id=DAG, run_id=RUN, stream="news_clip", slas_s=SLAS, owners=["o@x.com"],
                             ui_url="http://ui:8080", now=at(now_s))  # fmt: skip


def test_a_stage_over_its_sla_alerts_while_running_and_only_once(led):
    led.record_run(dag_id=DAG, run_id=RUN, state="running", queued_at=at(0), asset_id="bbb-s01e01")
    attempt(led, "ingest.ingest_delivery", "success", 1, 20)
    attempt(led, "transcode.transcode_ladder", "running", 21)
    assert watch(led, 80) == ([], False)  # 59 s into a 60 s SLA
    pending, over = watch(led, 82)
    assert not over and [a["key"] for a in pending] == ["transcode"]
    alert = pending[0]
    assert alert["subject"] == "[SLA] bbb-s01e01: transcode stage over its 1m SLA (still running)"
    assert "news_clip" in alert["html"] and "1m01s" in alert["html"]  # the stream and the elapsed time
    assert "running: transcode.transcode_ladder (try 1, for 1m01s)" in alert["html"]
    assert "http://ui:8080/dags/value_stream__news_clip/runs/manual__1" in alert["html"]
    led.mark_sent(alert["id"])
    assert watch(led, 300) == ([], False)  # still over, already alerted
    attempt(led, "transcode.transcode_ladder", "success", 21, 400)
    assert watch(led, 401) == ([], False)
    assert [a["key"] for a in led.alerts(DAG, RUN)] == ["transcode"]


def test_a_stage_that_ends_late_between_two_looks_alerts_on_completion(led):
    attempt(led, "publish.publish_channels", "success", 0, 90)
    attempt(led, "outcome", "success", 91, 92)
    pending, over = watch(led, 93)
    assert over and [a["subject"] for a in pending] == [
        "[SLA] manual__1: publish stage over its 1m SLA (finished late)"
    ]


def test_stages_within_their_sla_send_nothing_and_the_run_is_over_after_outcome(led):
    attempt(led, "ingest.ingest_delivery", "success", 0, 100)
    attempt(led, "transcode.transcode_ladder", "success", 100, 150)
    assert watch(led, 151) == ([], False)
    attempt(led, "outcome", "running", 152)
    assert watch(led, 152.5) == ([], False)
    attempt(led, "outcome", "success", 152, 153)
    assert watch(led, 154) == ([], True)


def test_retries_count_toward_the_stage_sla(led):
    attempt(led, "transcode.transcode_ladder", "up_for_retry", 0, 40)
    attempt(led, "transcode.transcode_ladder", "running", 50, try_number=2)
    pending, _ = watch(led, 61)
    assert [a["key"] for a in pending] == ["transcode"] and "Attempts</th><td>2" in pending[0]["html"]


def test_a_waiting_hand_off_is_shown_when_nothing_runs():
    spans = [{"stage": "compliance", "ended_at": "2026-11-28T01:00:10Z"}]
    lines = alerts._now_lines([], spans, at(70))
    assert lines == ["waiting: nothing runs; compliance ended 1m00s ago (hand-off)"]


def test_lead_time_and_failure_mails_name_the_asset_and_the_stage():
    subject, body = alerts.lead_time_mail(stream="series_episode", asset="bbb-s01e01", dag_id=DAG, run_id=RUN,
                                          sla_s=26 * 3600, queued_at=at(0), deadline=at(26 * 3600), attempts=[],
                                          spans=[], now=at(26 * 3600 + 5), ui_url="http://ui")  # fmt: skip
    assert subject == "[SLA] bbb-s01e01: lead time over its 26h SLA (series_episode)"
    assert "26h00m05s" in body
    subject, body = alerts.task_failure_mail(stream="news_clip", asset="clip-1", dag_id=DAG, run_id=RUN,
                                             task="publish.publish_channels", try_number=3, error="EndpointConnectionError",
                                             ui_url="http://ui")  # fmt: skip
    assert subject == "[FAILED] clip-1: publish stage task publish.publish_channels failed (news_clip)"
    assert "EndpointConnectionError" in body and "<td>3</td>" in body


def test_alert_text_is_html_escaped(led):
    led.record_run(dag_id=DAG, run_id=RUN, asset_id="<b>x</b>")
    attempt(led, "transcode.transcode_ladder", "running", 0)
    (alert,), _ = watch(led, 100)
    assert "<b>x</b>" not in alert["html"] and "&lt;b&gt;x&lt;/b&gt;" in alert["html"]
    assert json.loads(json.dumps(alert, default=str))  # serialisable for the summary


def test_a_failed_attempt_keeps_its_error_and_the_outcome_says_it(led):
    """The listener records why an attempt failed; a `failed` title names the error, not just 'see the log'."""
    from mediaflow import flow

    t0 = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
    publish = "publish.publish_channels"
    err = "StorageUnavailable: object storage unavailable: copy s3://w/a to s3://d/b still failing after 40 s"
    common = {"dag_id": DAG, "run_id": RUN, "task_id": publish, "map_index": -1}
    led.record_attempt(**common, try_number=1, state="up_for_retry", started_at=t0, ended_at=t0, error="OSError: first")
    led.record_attempt(**common, try_number=2, state="running", started_at=t0)
    led.record_attempt(**common, try_number=2, state="failed", started_at=t0, ended_at=t0, error=err)
    led.record_attempt(**common, try_number=2, state="running", started_at=t0)  # a late event keeps the error
    assert led.task_errors(DAG, RUN) == {publish: err}
    out = flow.outcome(dag_run_id=RUN, value_stream="s", ingested={"status": "accepted", "asset_id": "a"},
                       published=None, failed_tasks=[publish, "outcome_x"], finished_at=t0,
                       task_errors=led.task_errors(DAG, RUN))  # fmt: skip
    assert out["status"] == "failed"
    assert out["reasons"] == [f"task {publish} failed: {err}", "task outcome_x failed: see its log in the Airflow UI"]


def test_a_lease_has_one_holder_across_threads_and_the_others_wait(led):
    """Four publishers of one asset at once: never two inside at the same time; each gets its turn."""
    import threading

    inside, most, order = [], [0], []
    guard = threading.Lock()

    def publisher(n: int) -> None:
        with Ledger(led.url).lease("publish:bbb", f"run-{n}", poll_s=0.05, wait_s=30):
            with guard:
                inside.append(n)
                most[0] = max(most[0], len(inside))
            time.sleep(0.2)
            with guard:
                inside.remove(n)
                order.append(n)

    threads = [threading.Thread(target=publisher, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 1 and sorted(order) == [0, 1, 2, 3]
    assert led.acquire_lease("publish:bbb", "after", ttl_s=60) is None, "released at the end"


def test_a_lease_is_renewed_by_its_holder_taken_over_when_expired_and_busy_after_the_wait(led):
    from mediaflow.ledger import LeaseBusy

    assert led.acquire_lease("publish:x", "run-1", ttl_s=60) is None
    assert led.acquire_lease("publish:x", "run-1", ttl_s=60) is None, "a retried task is the same holder"
    assert led.acquire_lease("publish:x", "run-2", ttl_s=60) == "run-1"
    waited_for = []
    with pytest.raises(LeaseBusy, match="publish:x is still held by run-1"):
        with led.lease("publish:x", "run-2", wait_s=0.3, poll_s=0.1, on_wait=waited_for.append):
            pass
    assert waited_for == ["run-1"]
    assert led.acquire_lease("publish:y", "dead-worker", ttl_s=0.05) is None
    time.sleep(0.1)
    assert led.acquire_lease("publish:y", "run-3", ttl_s=60) is None, "an expired lease is taken over"


def test_one_sender_at_a_time_takes_a_pending_alert(led):
    alert = led.claim_alert(dag_id=DAG, run_id=RUN, kind="lead_time", key="lead_time", recipients=["o@x.com"],
                            subject="s", html="h")  # fmt: skip
    assert led.take_alert(alert["id"]) is True
    assert led.take_alert(alert["id"]) is False, "another sender has it"
    led.mark_failed(alert["id"], "SMTPServerDisconnected")
    assert led.take_alert(alert["id"]) is True, "a failed send gives it back"
    assert led.take_alert(alert["id"], ttl_s=0) is False
    with led.engine.begin() as c:  # its sender died: the hold runs out
        c.execute(sa.update(ledger.alerts).values(sending_until=datetime(2026, 1, 1, tzinfo=UTC)))
    assert led.take_alert(alert["id"]) is True
    led.mark_sent(alert["id"])
    assert led.take_alert(alert["id"]) is False, "a sent alert is never taken again"


def test_a_fresh_ledger_takes_many_processes_starting_at_once(postgres):
    """The first tasks of a night start together on an empty ledger database: each process creates the schema on
    first use, and none of them may fail for it (on PostgreSQL two CREATE TABLEs at once collide)."""
    import subprocess
    import sys

    url = postgres.new_database()
    start_at = time.time() + 8  # every process has imported SQLAlchemy by then: they reach the database together
    code = (
        "import sys, time\nfrom mediaflow.ledger import Ledger\ntime.sleep(max(0, float(sys.argv[2]) - time.time()))\n"
        "Ledger(sys.argv[1]).record_run(dag_id='value_stream__news_clip', run_id=sys.argv[3], state='running')"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, url, str(start_at), f"manual__{n}"], stderr=subprocess.PIPE,
                              text=True) for n in range(8)]  # fmt: skip
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, [e[-600:] for e in errors if e]
    assert all(Ledger(url).run("value_stream__news_clip", f"manual__{n}") for n in range(8))


def test_a_review_request_mail_names_each_finding_in_its_subject_and_body():
    subject, body = alerts.review_request_mail(
        stream="news_clip", asset="a1", dag_id=DAG, run_id=RUN, branch="qc",
        problems=["x.mp4: black 51.6-55.1 s (3.5 s) mid-programme, limit 2 s", "loudness -18.1 LUFS, target -23 ± 1 LU"],
        warnings=["x.mp4: silence 0.0-2.2 s (2.2 s) at the head, within the 3 s allowance"],
        link="http://ui/dags/d/runs/r/tasks/review.qc_approval/required_actions?map_index=-1")  # fmt: skip
    assert subject == ("[REVIEW] a1: qc review waits for a person: x.mp4: black 51.6-55.1 s (3.5 s) mid-programme, "
                       "limit 2 s (+1 more)")  # fmt: skip
    assert "loudness -18.1 LUFS, target -23 ± 1 LU" in body and "within the 3 s allowance" in body
    assert "required_actions?map_index=-1" in body


def test_a_rejection_mail_gives_every_reason_and_escapes_them():
    subject, body = alerts.rejection_mail(stream="news_clip", asset="a1", dag_id=DAG, run_id=RUN,
                                          reasons=["s.ts: does not decode cleanly: <7 errors>", "second"], warnings=[],
                                          ui_url="http://ui")  # fmt: skip
    assert subject == "[REJECTED] a1: s.ts: does not decode cleanly: <7 errors> (+1 more) (news_clip)"
    assert "&lt;7 errors&gt;" in body and "second" in body and "http://ui/dags/" in body
