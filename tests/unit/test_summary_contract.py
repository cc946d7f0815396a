"""summary.json (v1, now 1.1) is a contract: a fixed, hand-made set of runs (published, rejected at ingest, rejected by a
reviewer, no rights window, failed with the task's error, waiting for a person, failed with no outcome, refused by
the batch, left pending, still running) goes through the runner's summarize, and out/summary.json must equal
tests/unit/golden/summary_v1.json byte for byte: keys, key order, indentation, every value.

The golden file was written by this test from the code before the summary entry had one constructor
(mediaflow.results.SummaryEntry), so the refactoring is proven not to change a byte. Regenerate it (only for a
deliberate, documented change of the contract) with MEDIAFLOW_WRITE_GOLDEN=1. Regenerated once, for 1.1 (issue 20):
the top-level `version` and the published title's `renditions`, nothing else changed (see the commit's diff).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from mediaflow import flow
from mediaflow.ledger import Ledger
from mediaflow.spec import load_specs
from mediaflow.store import DELIVERIES, Buckets, outcome_key
from mediaflow_dev import runner

GOLDEN = Path(__file__).parent / "golden" / "summary_v1.json"
NOW = datetime(2026, 11, 28, 4, 0, tzinfo=UTC)
FINISHED = datetime(2026, 11, 28, 3, 30, tzinfo=UTC)
SE, NC = "value_stream__series_episode", "value_stream__news_clip"


class FrozenDatetime(datetime):
    @classmethod
    def now(cls, tz=None):
        return NOW if tz else NOW.replace(tzinfo=None)


class Runs(list):
    pending: list[dict] = []


ACCEPTED = {"status": "accepted", "mode": "full", "reasons": [], "warnings": ["video.mp4: 3 frames before the first keyframe skipped"],
            "delivery": "bbb-s01e01", "asset_id": "bbb-s01e01", "delivery_id": "bbb-s01e01",
            "value_stream": "series_episode", "title": "Big Buck Bunny",
            "source_uri": "s3://work/assets/bbb-s01e01/runs/r1/source/video.mp4",
            "source": {"container": "mov,mp4,m4a,3gp,3g2,mj2", "duration_s": 8.0,
                       "video": {"width": 1280, "height": 720, "fps": 25.0, "interlaced": False},
                       "audio_streams": 1, "loudness": {"integrated_lufs": -20.5, "true_peak_dbtp": -0.4}},
            "previous": None, "locales_skipped": [], "territories": ["US", "GB"], "channels": ["web"],
            "delivered_at": "2026-11-28T01:00:00Z", "quarantine_uri": None}  # fmt: skip
CHECKS = {
    "rights": {"check": "rights", "passed": True, "problems": [], "decisions": [
        {"channel": "web", "territory": "US", "publishable": True, "reason": "window open"},
        {"channel": "web", "territory": "GB", "publishable": True, "reason": "window open"}]},
    "loudness": {"check": "loudness", "passed": True, "problems": [], "source": {"integrated_lufs": -20.5},
                 "renditions": {"audio": {"integrated_lufs": -23.0, "true_peak_dbtp": -1.2}},
                 "normalisation": {"audio": {"mode": "linear", "passes": 2}}},
    "technical_qc": {"check": "technical_qc", "passed": True, "problems": [],
                     "warnings": ["video.mp4: black 0.0-0.4 s at the head (allowed 2.0 s)"],
                     "findings": [{"kind": "black", "severity": "warning", "message": "black at the head"}],
                     "detections": {"black": [[0.0, 0.4]]}},
    "metadata": {"check": "metadata", "passed": True, "problems": [], "gx_uri": "s3://reports/compliance/x/gx.json",
                 "gx": {"suite": "manifest_suite", "suite_version": "3", "success": True, "evaluated": 12,
                        "successful": 12, "failed": [], "extra": "not kept"}},
}  # fmt: skip
# v1.1: the rungs as transcode scored them (flow.scored_rungs), as technical QC passes them on
SCORED = {**CHECKS, "technical_qc": {**CHECKS["technical_qc"], "renditions": [
    {"rendition": "v720", "width": 1280, "height": 720, "bitrate_kbps": 2310, "peak_kbps": 2790, "vmaf": 94.12,
     "vmaf_min": 88.05, "psnr": 41.2, "ssim": 0.9821, "windows": [[1.0, 6.0]]},
    {"rendition": "v360", "width": 640, "height": 360, "bitrate_kbps": 640, "peak_kbps": 770, "vmaf": 90.5,
     "vmaf_min": 81.3, "psnr": 38.02, "ssim": 0.9702, "windows": [[1.0, 6.0]]}]}}  # fmt: skip
AUTO = {
    "branch": "editorial",
    "decision": "approved",
    "by": "auto",
    "comment": "editorial: automated checks passed (metadata)",
}
HUMAN_OK = {"branch": "legal", "decision": "approved", "by": "alice", "comment": ""}
HUMAN_NO = {"branch": "legal", "decision": "rejected", "by": "bob", "comment": "wrong cut for GB"}
LOCALIZED = [{"kind": "captions", "locale": "es-ES", "file": "es.vtt", "status": "ok", "reasons": [], "warnings": []},
             {"kind": "captions", "locale": "pt-BR", "file": "pt.srt", "status": "rejected",
              "reasons": ["pt.srt: cue 2 (line 6): unparseable timestamp"]}]  # fmt: skip
PUBLISHED = {"published": [{"channel": "web", "territories": ["US", "GB"],
                            "uri": "s3://distribution/web/bbb-s01e01/master.m3u8", "local_path": None}],
             "locales": {"es-ES": "published", "pt-BR": "rejected: pt.srt: cue 2 (line 6): unparseable timestamp"},
             "reasons": ["locale pt-BR (captions) rejected: pt.srt: cue 2 (line 6): unparseable timestamp"],
             "warnings": ["es.vtt: cue 4 overlaps cue 3"], "lease_wait_s": 0.0}  # fmt: skip


def outcomes() -> dict[str, dict]:
    """run id -> the entry the `outcome` task wrote for it (flow.outcome over hand-made task results)."""

    def run(run_id, stream="series_episode", **kw):
        return flow.outcome(dag_run_id=run_id, value_stream=stream, finished_at=FINISHED,
                            **{"ingested": None, "published": None, "failed_tasks": [], **kw})  # fmt: skip

    rejected_ingest = {"status": "rejected", "delivery": "bad-1", "delivery_id": "bad-1", "asset_id": None,
                       "value_stream": "news_clip", "reasons": ["manifest.json: required field 'title' is missing"],
                       "quarantine_uri": "s3://quarantine/deliveries/bad-1/"}  # fmt: skip
    return {
        "r1": run("r1", ingested=ACCEPTED, published=PUBLISHED, localized=LOCALIZED, checks=SCORED,
                  reviews=[AUTO, HUMAN_OK, None]),
        "r2": run("r2", "news_clip", ingested=rejected_ingest),
        "r3": run("r3", ingested={**ACCEPTED, "asset_id": "t3", "delivery_id": "t3"}, reviews=[AUTO, HUMAN_NO, None],
                  checks={**CHECKS, "rights": {**CHECKS["rights"], "passed": False,
                                               "problems": ["rights web/GB: no window"]}}),
        "r4": run("r4", ingested={**ACCEPTED, "asset_id": "t4", "delivery_id": "t4"},
                  published={"published": [], "locales": {}, "reasons": ["rights web/US: window closed"], "warnings": []}),
        "r5": run("r5", ingested={**ACCEPTED, "asset_id": "t5", "delivery_id": "t5"}, localized=LOCALIZED[:1],
                  failed_tasks=["publish.publish_channels", "transcode.transcode_ladder"],
                  task_errors={"transcode.transcode_ladder": "ffmpeg exited 1: Invalid data found"}),
    }  # fmt: skip


class FakeApi:
    """The REST API as awaiting_entry reads it: XComs of the run parked on a review."""

    def xcom(self, dag_id, run_id, task_id, key="return_value", map_index=-1):
        if task_id == "ingest.ingest_delivery":
            return {**ACCEPTED, "asset_id": "t6", "delivery_id": "t6"}
        check = task_id.split(".", 1)[1]
        if check == "rights":
            return {**CHECKS["rights"], "passed": False, "problems": ["rights web/GB: no window open at 2026-11-28"]}
        return CHECKS.get(check)


def ti(run_id, task_id, state, dag_id=SE):
    return {"dag_id": dag_id, "dag_run_id": run_id, "task_id": task_id, "map_index": -1, "state": state}


def test_summary_json_is_byte_for_byte_the_v1_golden(s3, tmp_path, monkeypatch):
    store, buckets = s3
    for role in Buckets.roles():
        monkeypatch.setenv(f"MEDIAFLOW_BUCKET_{role.upper()}", getattr(buckets, role))
    monkeypatch.setattr(runner, "datetime", FrozenDatetime)
    monkeypatch.setattr(runner, "PROJECT", tmp_path)
    monkeypatch.setattr(runner, "_api", lambda stack: FakeApi())
    specs = load_specs()
    se, nc = specs["series_episode"], specs["news_clip"]
    for run_id, entry in outcomes().items():
        dag_id = NC if entry["value_stream"] == "news_clip" else SE
        store.put_bytes(json.dumps(entry, indent=2).encode(), buckets.reports, outcome_key(dag_id, run_id))
    store.put_bytes(b"#EXTM3U\n", buckets.distribution, "web/bbb-s01e01/master.m3u8")
    # the batch refused one delivery: its marker and its (bad) manifest
    store.put_bytes(json.dumps({"delivery_id": "bad-2", "status": "rejected", "reasons": ["manifest.json: not JSON"],
                                "quarantine_uri": "s3://quarantine/deliveries/bad-2/"}).encode(),
                    buckets.reports, "deliveries/bad-2.json")  # fmt: skip
    store.put_bytes(
        json.dumps({"asset_id": "bad-2", "value_stream": 7}).encode(),
        buckets.landing,
        f"{DELIVERIES}/bad-2/manifest.json",
    )
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Ledger(ledger_url)
    ledger.record_run(dag_id=SE, run_id="r1", state="success", queued_at=datetime(2026, 11, 28, 1, 5, tzinfo=UTC))
    for _i, (task, start, end) in enumerate([("ingest.ingest_delivery", (1, 6), (1, 8)),
                                            ("transcode.transcode_ladder", (1, 9), (2, 0)),
                                            ("publish.publish_channels", (3, 0), (3, 29))]):  # fmt: skip
        ledger.record_attempt(dag_id=SE, run_id="r1", task_id=task, map_index=-1, try_number=1, state="success",
                              started_at=datetime(2026, 11, 28, *start, tzinfo=UTC),
                              ended_at=datetime(2026, 11, 28, *end, tzinfo=UTC))  # fmt: skip
    ledger.claim_alert(dag_id=SE, run_id="r1", kind="stage_sla", key="transcode", recipients=["vs-owner@example.com"],
                       subject="[mediaflow] bbb-s01e01: transcode over its SLA", html="<p>late</p>",
                       stream="series_episode", asset_id="bbb-s01e01", stage="transcode")  # fmt: skip

    class Stack:
        api_url = "http://localhost:8080"
        out_dir = tmp_path / "out"

        def __init__(self):
            self.ledger_url = ledger_url

        def s3_client(self):
            return store.c

    runs = Runs([("bbb-s01e01", SE, "r1", se), ("bad-1", NC, "r2", nc), ("t3", SE, "r3", se), ("t4", SE, "r4", se),
                 ("t5", SE, "r5", se), ("t6", SE, "r6", se), ("t7", NC, "r7", nc), ("bad-2", "nightly_content_batch",
                 "batch__1", None), ("t9", SE, "r9", se)])  # fmt: skip
    runs.pending = [{"delivery_id": "t10", "reason": "trigger failed: HTTP 503 (retried for 120 s)"}]
    done = {
        **{r: ({"state": "success"}, []) for r in ("r1", "r2", "r3", "r4", "r5")},
        "r6": ({"state": "running"}, [ti("r6", "review.legal_approval", "awaiting_input"),
                                      ti("r6", "review.qc_approval", "awaiting_input")]),
        "r7": ({"state": "failed"}, [ti("r7", "ingest.ingest_delivery", "failed", NC),
                                     ti("r7", "transcode.transcode_ladder", "upstream_failed", NC)]),
        "batch__1": ({"state": "success"}, []),
    }  # fmt: skip
    runner.summarize(Stack(), runs, done, stopped="interrupted (Ctrl-C)")
    written = (tmp_path / "out" / "summary.json").read_bytes()
    if os.environ.get("MEDIAFLOW_WRITE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_bytes(written)
    assert written == GOLDEN.read_bytes(), "summary.json (v1) changed: see the module docstring"
    assert [a["status"] for a in json.loads(written)["assets"]] == [
        "published",
        "rejected",
        "rejected",
        "rejected",
        "failed",
        "awaiting_review",
        "failed",
        "rejected",
    ]
