"""A delivery whose trigger keeps failing, on the real stack: the content batch reaches the REST API through an HTTP
fault gate (tests/http_fault_gate.py) that answers 503 to every trigger of that one delivery's run, as an overloaded
API server does. The batch retries it within its budget (MEDIAFLOW_TRIGGER_RETRY_BUDGET_S, 20 s in the tests), then
leaves it pending with the reason (its claim in the reports bucket, the task's return value, one mail to the batch
owners, `pending` in summary.json) and starts the others, which publish; the batch run succeeds. Once the fault is
gone, the next batch starts that delivery's run, under the run id it was claimed with, exactly once."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import default as default_policy

import pytest

from mediaflow import batch
from mediaflow.store import Buckets
from mediaflow_dev import runner, samples

pytestmark = pytest.mark.integration
STREAM = "storage_drill"  # tests/integration/streams: one 240p rung, every review automatic
DAG_ID = f"value_stream__{STREAM}"


def _mails(stack) -> list:
    return [
        BytesParser(policy=default_policy).parsebytes(p.read_bytes())
        for p in sorted((stack.out_dir / "mail").glob("*.eml"), key=lambda p: int(p.stem))
    ]


def _runs_of(api, delivery_id: str) -> list[dict]:
    runs = api.request("GET", f"/api/v2/dags/{DAG_ID}/dagRuns?limit=100")["dag_runs"]
    return [r for r in runs if (r.get("conf") or {}).get("delivery") == delivery_id]


@pytest.fixture(scope="module")
def night(stack, api, api_gate, s3, tmp_path_factory):
    stamp = datetime.now(UTC).strftime("%H%M%S")
    good, bad = [f"pend-ok{i}-{stamp}" for i in (1, 2)], f"pend-bad-{stamp}"
    root = tmp_path_factory.mktemp("pending")
    avails = ["asset_id,territory,channel,window_start,window_end,exclusive"]
    for d in [*good, bad]:
        (root / d).mkdir()
        samples.make_video(root / d / "source.mp4", width=640, height=360, fps=25, seconds=3)
        (root / d / "manifest.json").write_text(json.dumps({"asset_id": d, "title": f"Pending drill {d}", "value_stream": STREAM,
                                                            "source": {"file": "source.mp4"}, "territories": ["US"], "channels": ["web"]}))  # fmt: skip
        avails.append(f"{d},US,web,2026-01-01T00:00:00Z,2030-01-01T00:00:00Z,false")
    (root / "avails.csv").write_text("\n".join(avails) + "\n")
    api.wait_for_dags([runner.BATCH_DAG_ID, DAG_ID])
    mails_before = len(_mails(stack))
    # every trigger of the bad delivery's run is refused, however often the batch retries it
    api_gate.fail(path_contains=f"/api/v2/dags/{DAG_ID}/dagRuns", body_contains=f'"delivery": "{bad}"'.encode())
    try:
        runs = runner.submit(stack, root)
    finally:
        api_gate.clear()
    refused = list(api_gate.answered)
    claim = json.loads(s3.get_object(Bucket=Buckets.from_env().reports, Key=batch.claim_key(bad))["Body"].read())
    first = {"runs": runs, "refused": refused, "claim": claim, "bad_runs_after_first": _runs_of(api, bad),
             "batch": api.dag_run(runner.BATCH_DAG_ID, runs.batch_run_id),
             "triggered": api.xcom(runner.BATCH_DAG_ID, runs.batch_run_id, "trigger_runs")}  # fmt: skip
    summary = runner.summarize(stack, runs, runner.wait(stack, runs, timeout_s=900))
    first["summary"] = summary
    first["summary_file"] = json.loads((stack.out_dir / "summary.json").read_text())
    first["mails"] = [m for m in _mails(stack)[mails_before:] if "left pending" in m["Subject"]]
    # the fault is gone: the next batch starts the pending delivery, once, and it publishes
    second_id, second_run = runner.run_content_batch(stack)
    second = {"batch": second_run, "triggered": api.xcom(runner.BATCH_DAG_ID, second_id, "trigger_runs")}
    started = [(bad, DAG_ID, claim["run_id"], runs[0][3])]
    second["entry"] = runner.summarize(stack, started, runner.wait(stack, started, timeout_s=900))["assets"][0]
    third_id, _ = runner.run_content_batch(stack)
    second["third_triggered"] = api.xcom(runner.BATCH_DAG_ID, third_id, "trigger_runs")
    second["bad_runs"] = _runs_of(api, bad)
    second["marker"] = runner._marker(s3, Buckets.from_env(), bad)
    return {"good": good, "bad": bad, "first": first, "second": second}


def test_the_batch_succeeds_and_the_other_deliveries_publish(night):
    first = night["first"]
    assert first["batch"]["state"] == "success"
    by_id = {a["delivery_id"]: a for a in first["summary"]["assets"]}
    assert sorted(by_id) == sorted(night["good"])
    assert all(a["status"] == "published" for a in by_id.values()), {
        d: (a["status"], a["reasons"]) for d, a in by_id.items()
    }
    triggered = {t["delivery_id"]: t for t in first["triggered"]}
    assert all(triggered[d]["status"] == "triggered" and triggered[d]["created"] for d in night["good"])


def test_the_failing_delivery_is_left_pending_with_its_reason(night):
    first, bad = night["first"], night["bad"]
    assert len(first["refused"]) > 1, "the batch retried the trigger before leaving it pending"
    assert first["bad_runs_after_first"] == []  # no run was started for it
    # the batch's return value
    entry = next(t for t in first["triggered"] if t["delivery_id"] == bad)
    assert entry["status"] == "pending" and not entry["created"] and "HTTP 503" in entry["reason"]
    # its claim in the reports bucket: same run id for the next batch, and why
    claim = first["claim"]
    assert claim["status"] == "pending" and claim["reason"] == entry["reason"] and claim["http_status"] == 503
    assert claim["run_id"] == entry["run_id"] and claim["tried_by"] == first["runs"].batch_run_id
    # make run's summary (the returned one and out/summary.json): a pending list beside the assets
    for summary in (first["summary"], first["summary_file"]):
        (pending,) = summary["pending"]
        assert (pending["delivery_id"], pending["status"], pending["reason"]) == (bad, "pending", entry["reason"])
        assert bad not in {a["delivery_id"] for a in summary["assets"]}
    # one mail to the batch owners, naming the delivery and the reason
    (mail,) = first["mails"]
    assert mail["Subject"] == f"[BATCH] 1 delivery left pending: run not started ({first['runs'].batch_run_id})"
    assert mail["To"] == "media-ops@example.com"
    body = mail.get_body(("html",)).get_content()
    assert bad in body and "HTTP 503" in body and claim["run_id"] in body


def test_the_next_batch_starts_it_exactly_once(night):
    second, bad, claim = night["second"], night["bad"], night["first"]["claim"]
    assert second["batch"]["state"] == "success"
    (entry,) = [t for t in second["triggered"] if t["delivery_id"] == bad]
    assert (entry["status"], entry["created"], entry["run_id"]) == ("triggered", True, claim["run_id"])
    assert second["entry"]["status"] == "published", second["entry"]["reasons"]
    assert [t for t in second["third_triggered"] if t["delivery_id"] == bad] == []  # a later batch leaves it alone
    (run,) = second["bad_runs"]
    assert run["dag_run_id"] == claim["run_id"]
    assert second["marker"]["status"] == "triggered" and second["marker"]["run_id"] == claim["run_id"]
