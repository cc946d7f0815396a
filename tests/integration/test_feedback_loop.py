"""The audience feedback loop on the real stack: a drop of viewing events lands, its Asset event runs
audience_feedback, and the next content batch starts the next episode of the series viewers watch to the end
before an earlier-delivered episode of a series they abandon. The deliveries go to the `feedback_drill` stream,
paused for the test: the batch creates their runs (in its order) without executing them."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from mediaflow import feedback, runner
from mediaflow.store import Buckets

pytestmark = pytest.mark.integration
DAG = "value_stream__feedback_drill"
FEEDBACK_DAG = "audience_feedback"


def _wait_for_asset_run(api, since: str, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = api.request("GET", f"/api/v2/dags/{FEEDBACK_DAG}/dagRuns?limit=50&order_by=-run_after")["dag_runs"]
        mine = [r for r in runs if r["run_type"] == "asset_triggered" and r["run_after"] >= since]
        if mine and mine[0]["state"] in ("success", "failed"):
            return mine[0]
        time.sleep(2)
    raise AssertionError(f"no asset-triggered {FEEDBACK_DAG} run finished within {timeout:.0f} s")


def test_viewing_feedback_changes_the_next_batch_order(stack, api, s3):
    api.wait_for_dags([FEEDBACK_DAG, runner.BATCH_DAG_ID, DAG])
    api.request("PATCH", f"/api/v2/dags/{DAG}", {"is_paused": True})
    buckets, tag = Buckets.from_env(), uuid.uuid4().hex[:6]
    hit, flop = f"fb{tag}-hit", f"fb{tag}-flop"
    written = []
    try:
        # episode 1 of each series is live (its published state, as publish records it) and has been watched
        for series in (hit, flop):
            key = f"published/{series}-s01e01.json"
            state = {"asset_id": f"{series}-s01e01", "source": {"duration_s": 600.0}, "locales": {}}
            s3.put_object(Bucket=buckets.reports, Key=key, Body=json.dumps(state).encode())
            written.append(key)
        events = feedback.synthetic_events([
            {"asset_id": f"{hit}-s01e01", "duration_s": 600, "territories": ["US"], "locales": ["en-US"],
             "intro_drop": 0.05, "drop_per_min": 0.02},
            {"asset_id": f"{flop}-s01e01", "duration_s": 600, "territories": ["US"], "locales": ["en-US"],
             "intro_drop": 0.5, "drop_per_min": 1.0},
        ], seed=11, sessions_per_title=150)  # fmt: skip
        drop = f"viewing-events/e2e-{tag}.csv"
        s3.put_object(Bucket=buckets.landing, Key=drop, Body=events.to_csv(index=False).encode())
        since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 5))
        api.asset_event("mediaflow_viewing_events", {"key": drop})
        run = _wait_for_asset_run(api, since)
        assert run["state"] == "success", run

        table = json.loads(s3.get_object(Bucket=buckets.reports, Key="feedback/latest/priorities.json")["Body"].read())
        assert table["series"][hit] > 0.8 > 0.3 > table["series"][flop]

        # episode 2 of each: the abandoned series' episode was delivered first
        for series, at in ((flop, "2026-11-28T00:00:00Z"), (hit, "2026-11-28T01:00:00Z")):
            d = f"{series}-s01e02"
            manifest = {"asset_id": d, "title": d, "value_stream": "feedback_drill", "source": {"file": "clip.mp4"},
                        "territories": ["US"], "delivered_at": at}  # fmt: skip
            s3.put_object(Bucket=buckets.landing, Key=f"deliveries/{d}/clip.mp4", Body=b"\x00" * 1024)
            s3.put_object(Bucket=buckets.landing, Key=f"deliveries/{d}/manifest.json", Body=json.dumps(manifest).encode())
        run_id, _ = runner.run_content_batch(stack, timeout_s=300)
        triggered = [t["delivery_id"] for t in api.xcom(runner.BATCH_DAG_ID, run_id, "trigger_runs") or []]
        mine = [d for d in triggered if d.startswith(f"fb{tag}-")]
        assert mine == [f"{hit}-s01e02", f"{flop}-s01e02"], triggered
        assert {r["conf"]["delivery"] for r in api.request("GET", f"/api/v2/dags/{DAG}/dagRuns?limit=100")["dag_runs"]} >= set(mine)
    finally:  # later batches in this session keep their own order
        for key in written + ["feedback/latest/priorities.json"]:
            s3.delete_object(Bucket=buckets.reports, Key=key)


def test_make_runs_feedback_pass_exports_a_report_with_retention(stack, api, s3):
    """What `make run` does after its batch: synthetic viewers for the published titles, audience_feedback once,
    feedback/latest/ exported to out/reports/feedback/ with the retention chart and the recommendations."""
    buckets, tag = Buckets.from_env(), uuid.uuid4().hex[:6]
    asset = f"fb{tag}-feature"
    key = f"published/{asset}.json"
    state = {"asset_id": asset, "source": {"duration_s": 90.0}, "locales": {"captions:es-ES": {}}}
    s3.put_object(Bucket=buckets.reports, Key=key, Body=json.dumps(state).encode())
    summary = {"assets": [{"asset_id": asset, "status": "published", "value_stream": "feature_film",
                           "source": {"duration_s": 90.0}, "locales": {"es-ES": "published"},
                           "published": [{"channel": "web", "territories": ["US", "BR"]}]}]}  # fmt: skip
    try:
        assert runner.feedback_pass(stack, summary) is True
        page = runner.export_feedback(stack)
        html = page.read_text()
        assert page == stack.out_dir / "reports" / "feedback" / "index.html"
        assert f"<b>{asset}</b>" in html and "<polyline" in html  # its retention chart
        recs = json.loads((page.parent / "recommendations.json").read_text())["recommendations"]
        assert {(r["asset_id"], r["locale"]) for r in recs if r["asset_id"] == asset} == {(asset, "pt-BR")}
        assert (page.parent / "retention.parquet").exists() and (page.parent / "priorities.json").exists()
        # the dashboard shows the same: recommendations and the title's retention curve
        shown = api.request("GET", "/mediaflow/api/feedback")
        assert any(r["asset_id"] == asset and r["locale"] == "pt-BR" for r in shown["recommendations"])
        curve = [r["retention"] for r in shown["retention"] if r["title"] == asset]
        assert len(curve) == 9 and curve[0] == 1.0 and curve == sorted(curve, reverse=True)
    finally:
        s3.delete_object(Bucket=buckets.reports, Key=key)
        s3.delete_object(Bucket=buckets.reports, Key="feedback/latest/priorities.json")
