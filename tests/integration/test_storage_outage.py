"""S3 down, on the real stack: Airflow's side reaches the S3 API through a fault gate (tests/fault_gate.py) that
refuses and cuts connections. A 30 s outage during ingest and another during publish are ridden out by the storage
retries (exponential backoff, jitter) inside the same task attempt; the title publishes once, whole, with no stray
object. An outage longer than the retry budget fails the title with a reason naming the storage error, publishes
nothing half-way, and clearing the failed task resumes it to published."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import m3u8
import pytest

from mediaflow import ladder
from mediaflow.ledger import Ledger
from mediaflow.spec import load_specs
from mediaflow.store import Buckets, distribution_prefix, work_prefix
from mediaflow_dev import runner, samples

pytestmark = pytest.mark.integration

STREAM = "storage_drill"
DAG_ID = f"value_stream__{STREAM}"
INGEST, PUBLISH = "ingest.ingest_delivery", "publish.publish_channels"


def _deliver(stack, tmp_path, asset_id: str) -> str:
    folder = tmp_path / asset_id
    folder.mkdir()
    samples.make_video(folder / "source.mp4", width=640, height=360, fps=25, seconds=4)
    (folder / "manifest.json").write_text(json.dumps({"asset_id": asset_id, "title": "Storage outage drill",
        "value_stream": STREAM, "source": {"file": "source.mp4"}, "territories": ["US"], "channels": ["web"]}))  # fmt: skip
    (tmp_path / "avails.csv").write_text("asset_id,territory,channel,window_start,window_end,exclusive\n"
                                         f"{asset_id},US,web,2026-01-01T00:00:00Z,2030-01-01T00:00:00Z,false\n")  # fmt: skip
    s3, buckets = stack.s3_client(), Buckets.from_env()  # the test's own client goes around the gate
    runner.merge_avails(s3, buckets, tmp_path / "avails.csv")
    runner.upload_delivery(s3, buckets, folder)
    return f"storage_drill__{asset_id}"


def _objects(s3, bucket: str, prefix: str) -> dict[str, dict]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {o["Key"]: {"size": o["Size"], "etag": o["ETag"]} for p in pages for o in p.get("Contents", [])}


def _live_version(s3, bucket: str, prefix: str) -> str:
    """The version folder the live master names (every URI in it starts with it)."""
    master = m3u8.loads(s3.get_object(Bucket=bucket, Key=prefix + "master.m3u8")["Body"].read().decode())
    (version,) = {p.uri.split("/", 1)[0] for p in master.playlists}
    return version


def _named_by_playlists(s3, bucket: str, prefix: str) -> set[str]:
    """Every key the live master names, directly or through its media playlists, the master, the title's default
    poster and its version's posters (transcode's default and the candidates) included."""
    version = _live_version(s3, bucket, prefix)
    named = {prefix + "poster.jpg", f"{prefix}{version}/poster.jpg"}
    named |= {f"{prefix}{version}/posters/p{i}.jpg" for i in range(1, ladder.POSTER_CANDIDATES + 1)}
    todo = [prefix + "master.m3u8"]
    while todo:
        key = todo.pop()
        named.add(key)
        if key.endswith(".m3u8"):
            pl = m3u8.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode())
            base = key.rsplit("/", 1)[0] + "/"
            uris = [p.uri for p in pl.playlists] + [m.uri for m in pl.media if m.uri] + [s.uri for s in pl.segments]
            todo += [base + u for u in uris if base + u not in named]
    return named


def _attempts(stack, run_id: str, task_id: str) -> list[dict]:
    rows = [a for a in Ledger(stack.ledger_url).attempts(DAG_ID, run_id) if a["task_id"] == task_id]
    return sorted(rows, key=lambda a: a["try_number"])


def test_storage_down_30s_during_ingest_and_during_publish_is_ridden_out(stack, api, s3_gate, s3, tmp_path):
    asset_id = f"outage-ride-{datetime.now(UTC):%H%M%S}"
    run_id = _deliver(stack, tmp_path, asset_id)
    buckets = Buckets.from_env()
    api.wait_for_dags([DAG_ID])
    # ingest's first request lists the delivery's folder: storage goes down right there
    s3_gate.down_when(f"prefix=deliveries%2F{asset_id}%2F".encode(), seconds=30)
    api.trigger(DAG_ID, run_id, {"delivery": asset_id})
    during_ingest = s3_gate.wait_outage_over(timeout=300)
    # then down again at the first object written to the distribution bucket
    s3_gate.down_when(f"PUT /{buckets.distribution}/{distribution_prefix('web', asset_id)}".encode(), seconds=30)
    done = runner.wait(stack, [(asset_id, DAG_ID, run_id, load_specs()[STREAM])], timeout_s=600)
    during_publish = s3_gate.outages[-1]
    assert during_publish is not during_ingest and during_publish["up_at"] is not None, s3_gate.outages
    assert during_publish["up_at"] - during_publish["down_at"] >= 29.5

    run, tis = done[run_id]
    outcome = api.xcom(DAG_ID, run_id, "outcome")
    assert outcome["status"] == "published", outcome["reasons"]
    by_id = {t["task_id"]: t for t in tis}
    for task_id, outage in ((INGEST, during_ingest), (PUBLISH, during_publish)):
        assert by_id[task_id]["state"] == "success" and by_id[task_id]["try_number"] == 1, by_id[task_id]
        (attempt,) = _attempts(stack, run_id, task_id)  # ridden out inside one attempt: no task retry needed
        assert (
            attempt["started_at"].timestamp() <= outage["down_at"] + 1
            and attempt["ended_at"].timestamp() >= outage["up_at"] - 1
        ), f"{task_id} ran {attempt['started_at']}..{attempt['ended_at']}, the outage was {outage}"

    # published once, whole: exactly what the playlists name, each object the same bytes as its work copy
    prefix = distribution_prefix("web", asset_id)
    live = _objects(s3, buckets.distribution, prefix)
    assert set(live) == _named_by_playlists(s3, buckets.distribution, prefix), "no stray or duplicate objects"
    work = _objects(s3, buckets.work, work_prefix(asset_id, run_id))
    version = _live_version(s3, buckets.distribution, prefix)
    for key, obj in live.items():
        if not key.endswith("master.m3u8"):
            name = key[len(prefix) :].removeprefix(version + "/")
            copies = [w for k, w in work.items() if k.endswith("/" + name)]
            assert copies and copies[0]["etag"] == obj["etag"], f"{key} differs from its work copy"


def test_storage_down_past_the_budget_fails_the_title_naming_it_and_clearing_resumes(stack, api, s3_gate, s3, tmp_path):
    asset_id = f"outage-long-{datetime.now(UTC):%H%M%S}"
    run_id = _deliver(stack, tmp_path, asset_id)
    buckets, spec = Buckets.from_env(), load_specs()[STREAM]
    prefix = distribution_prefix("web", asset_id)
    api.wait_for_dags([DAG_ID])
    # 55 s: longer than one call's 40 s budget (MEDIAFLOW_S3_RETRY_BUDGET_S on the test stack) plus its last wait
    s3_gate.down_when(f"PUT /{buckets.distribution}/{prefix}".encode(), seconds=55)
    api.trigger(DAG_ID, run_id, {"delivery": asset_id})
    done = runner.wait(stack, [(asset_id, DAG_ID, run_id, spec)], timeout_s=600)
    _, tis = done[run_id]
    assert {t["task_id"]: t["state"] for t in tis}[PUBLISH] == "failed"
    outcome = api.xcom(DAG_ID, run_id, "outcome")
    assert outcome["status"] == "failed"
    reason = next(r for r in outcome["reasons"] if r.startswith(f"task {PUBLISH} failed: "))
    assert "StorageUnavailable: object storage unavailable" in reason and "after 40 s of retries" in reason, reason
    assert f"s3://{buckets.distribution}/{prefix}" in reason and "EndpointConnectionError" in reason, reason
    assert f"{prefix}master.m3u8" not in _objects(s3, buckets.distribution, prefix), "nothing went live half-way"
    assert Ledger(stack.ledger_url).run(DAG_ID, run_id)["status"] == "failed"

    s3_gate.wait_outage_over(timeout=120)
    cleared = api.clear_tasks(DAG_ID, run_id, [PUBLISH])  # what a person does in the UI: Clear, with downstream
    assert {PUBLISH, "outcome"} <= {t["task_id"] for t in cleared}
    time.sleep(2)
    done = runner.wait(stack, [(asset_id, DAG_ID, run_id, spec)], timeout_s=600)
    _, tis = done[run_id]
    assert {t["task_id"]: t["state"] for t in tis}[PUBLISH] == "success"
    outcome = api.xcom(DAG_ID, run_id, "outcome")
    assert outcome["status"] == "published", outcome["reasons"]
    live = _objects(s3, buckets.distribution, prefix)
    assert set(live) == _named_by_playlists(s3, buckets.distribution, prefix)
    assert Ledger(stack.ledger_url).run(DAG_ID, run_id)["status"] == "published"
    assert [a["state"] for a in _attempts(stack, run_id, PUBLISH)] == ["failed", "success"]
