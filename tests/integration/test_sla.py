"""Stage ledger and SLA alerts against the real stack (scheduler, triggerer, SMTP sink): dag.test() never
evaluates deadlines, so this runs the `sla_drill` stream (tests/integration/streams) for real.

Its transcode SLA is 3 s and its lead-time SLA 20 s; every other stage has minutes. The scheduler is restarted
while transcode runs."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path

import pytest

from mediaflow.ledger import Ledger
from mediaflow_dev import runner, samples

pytestmark = pytest.mark.integration
ASSET = "drill-sla"


def _mails(folder: Path) -> list[tuple[str, datetime]]:
    """(subject, time the SMTP sink received it) of every message about the drill asset."""
    out = []
    for p in sorted(folder.glob("*.eml")):
        msg = BytesParser(policy=default_policy).parsebytes(p.read_bytes())
        if ASSET in msg["Subject"]:
            out.append((msg["Subject"], datetime.fromtimestamp(p.stat().st_mtime, UTC)))
    return out


def _until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def drill(stack, api, tmp_path_factory):
    root = tmp_path_factory.mktemp("drill")
    folder = root / ASSET
    folder.mkdir()
    samples.make_video(folder / "clip.mp4", width=1280, height=720, fps=25, seconds=20)  # transcode takes >3 s
    (folder / "manifest.json").write_text(json.dumps({"asset_id": ASSET, "title": "SLA drill", "value_stream": "sla_drill",
                                                      "source": {"file": "clip.mp4"}, "territories": ["US"], "channels": ["web"]}))  # fmt: skip
    (root / "avails.csv").write_text(f"asset_id,territory,channel,window_start,window_end,exclusive\n"
                                     f"{ASSET},US,web,2026-01-01T00:00:00Z,2030-01-01T00:00:00Z,false\n")  # fmt: skip
    runs = runner.submit(stack, root)
    ((_, dag_id, run_id, _),) = runs
    ledger = Ledger(stack.ledger_url)
    transcoding = lambda: any(a["task_id"] == "transcode.transcode_ladder" and a["state"] == "running"  # noqa: E731
                              for a in ledger.attempts(dag_id, run_id))  # fmt: skip
    _until(transcoding, 300, "transcode to start")
    restarted_at = datetime.now(UTC)
    stack.restart_scheduler()
    done = runner.wait(stack, runs, timeout_s=600)
    time.sleep(6)  # three more looks of any watcher that might still be about
    summary = runner.summarize(stack, runs, done)
    return {"dag_id": dag_id, "run_id": run_id, "entry": summary["assets"][0], "ledger": ledger,
            "restarted_at": restarted_at, "mails": _mails(stack.out_dir / "mail")}  # fmt: skip


def _span(drill, stage):
    return next(s for s in drill["entry"]["stages"] if s["stage"] == stage)


def test_the_drill_title_publishes(drill):
    assert drill["entry"]["status"] == "published", drill["entry"]["reasons"]


def test_a_breached_stage_mails_once_while_it_still_runs_despite_a_scheduler_restart(drill):
    transcode = _span(drill, "transcode")
    ended = datetime.fromisoformat(transcode["ended_at"].replace("Z", "+00:00"))
    assert drill["restarted_at"] < ended, "the scheduler restart happened mid-stage"
    sla = [(s, t) for s, t in drill["mails"] if "transcode stage" in s]
    assert [s for s, _ in sla] == [f"[SLA] {ASSET}: transcode stage over its 3s SLA (still running)"]
    assert sla[0][1] < ended, f"alert received at {sla[0][1]}, stage ended at {ended}"
    started = datetime.fromisoformat(transcode["started_at"].replace("Z", "+00:00"))
    print(f"\ntranscode SLA alert {(sla[0][1] - started).total_seconds() - 3:.1f} s after the SLA elapsed")


def test_stages_within_their_sla_send_nothing(drill):
    others = [s for s, _ in drill["mails"] if "stage over" in s and "transcode stage" not in s]
    assert others == []
    assert [s["stage"] for s in drill["entry"]["stages"] if s["sla_missed"]] == ["transcode"]


def test_the_lead_time_deadline_alert_arrives_once(drill):
    assert [s for s, _ in drill["mails"] if "lead time" in s] == [
        f"[SLA] {ASSET}: lead time over its 20s SLA (sla_drill)"
    ]


def test_summary_stages_and_alerts_come_from_the_ledger(drill):
    entry = drill["entry"]
    stages = {s["stage"]: s for s in entry["stages"]}
    assert list(stages)[:2] == ["ingest", "transcode"] and "publish" in stages
    for s in stages.values():
        assert s["active_s"] > 0 and s["wait_s"] is not None and s["attempts"] >= 1 and s["sla_s"] > 0
    assert {(a["kind"], a["stage"], a["status"]) for a in entry["alerts"]} == {
        ("stage_sla", "transcode", "sent"),
        ("lead_time", "lead time", "sent"),
    }
    assert all(a["sent_at"] and a["recipients"] == ["drill-owner@example.com", "drill-lead@example.com"]
               for a in entry["alerts"])  # fmt: skip


def test_ledger_cycle_times_agree_with_airflow_within_a_second(drill, api):
    rows = {
        (a["task_id"], a["map_index"], a["try_number"]): a
        for a in drill["ledger"].attempts(drill["dag_id"], drill["run_id"])
    }
    compared = 0
    for ti in api.task_instances(drill["dag_id"], drill["run_id"]):
        key = (ti["task_id"], ti["map_index"], ti["try_number"])
        if ti["state"] == "skipped" and key not in rows:
            continue  # skipped by a branch: never ran, so not in the ledger
        row = rows[key]
        for ours, theirs in ((row["started_at"], ti["start_date"]), (row["ended_at"], ti["end_date"])):
            assert abs((ours - datetime.fromisoformat(theirs.replace("Z", "+00:00"))).total_seconds()) <= 1.0, ti[
                "task_id"
            ]
        compared += 1
    assert compared >= 10
