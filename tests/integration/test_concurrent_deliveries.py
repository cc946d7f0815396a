"""Two deliveries of the same asset in flight at once, on the real stack: their publishes take turns (a lease per
asset in the ledger), the newest delivery is what stays live whichever finishes first, the older one is either
replaced or refused with a reason, and a player never sees a torn title."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import m3u8
import pytest

from distribution_watch import DistributionWatch
from mediaflow.ledger import Ledger
from mediaflow.spec import load_specs
from mediaflow.stages import iso_z
from mediaflow.store import Buckets, distribution_prefix
from mediaflow_dev import runner, samples

pytestmark = pytest.mark.integration

STREAM = "storage_drill"
DAG_ID = f"value_stream__{STREAM}"
PUBLISH = "publish.publish_channels"


def _deliver(stack, root, asset_id: str, delivery_id: str, seconds: int, delivered_at: datetime) -> None:
    folder = root / delivery_id
    folder.mkdir()
    samples.make_video(folder / "source.mp4", width=640, height=360, fps=25, seconds=seconds)
    (folder / "manifest.json").write_text(json.dumps({"asset_id": asset_id, "title": "Twin deliveries",
        "value_stream": STREAM, "source": {"file": "source.mp4"}, "territories": ["US"], "channels": ["web"],
        "delivered_at": iso_z(delivered_at)}))  # fmt: skip
    runner.upload_delivery(stack.s3_client(), Buckets.from_env(), folder)


def _live_duration(s3, bucket: str, prefix: str) -> float:
    master = m3u8.loads(s3.get_object(Bucket=bucket, Key=prefix + "master.m3u8")["Body"].read().decode())
    variant = m3u8.loads(s3.get_object(Bucket=bucket, Key=prefix + master.playlists[0].uri)["Body"].read().decode())
    return sum(seg.duration for seg in variant.segments)


def test_two_deliveries_of_one_asset_publish_in_turn_and_the_newest_stays_live(stack, api, s3, tmp_path):
    stamp = datetime.now(UTC)
    asset_id = f"twin-{stamp:%H%M%S}"
    (tmp_path / "avails.csv").write_text("asset_id,territory,channel,window_start,window_end,exclusive\n"
                                         f"{asset_id},US,web,2026-01-01T00:00:00Z,2030-01-01T00:00:00Z,false\n")  # fmt: skip
    runner.merge_avails(s3, Buckets.from_env(), tmp_path / "avails.csv")
    older, newer = f"{asset_id}-a", f"{asset_id}-b"  # 4 s and 6 s: the live playlist tells which one is live
    _deliver(stack, tmp_path, asset_id, older, 4, stamp - timedelta(minutes=5))
    _deliver(stack, tmp_path, asset_id, newer, 6, stamp)
    buckets, spec = Buckets.from_env(), load_specs()[STREAM]
    prefix = distribution_prefix("web", asset_id)
    watch = DistributionWatch(s3, buckets.distribution, asset_id)
    watch.start()
    api.wait_for_dags([DAG_ID])

    # A third publisher of the asset is mid-way (what a slow publish looks like to the other two): both runs
    # reach publish while it holds the asset, and wait
    ledger = Ledger(stack.ledger_url)
    lease = f"publish:{asset_id}"
    assert ledger.acquire_lease(lease, "test: a slow publish", ttl_s=600) is None
    runs = {d: f"twin__{d}" for d in (older, newer)}
    for delivery_id, run_id in runs.items():
        api.trigger(DAG_ID, run_id, {"delivery": delivery_id})
    deadline = time.monotonic() + 600
    while True:
        states = [{t["task_id"]: t["state"] for t in api.task_instances(DAG_ID, r)}.get(PUBLISH) for r in runs.values()]
        if states == ["running", "running"]:
            break
        assert time.monotonic() < deadline, f"both publishes never ran at once: {states}"
        assert not {"success", "failed"} & set(states), f"a publish went through while the asset was held: {states}"
        time.sleep(1)
    time.sleep(4)  # both are waiting on the lease now, polling it every 2 s
    ledger.release_lease(lease, "test: a slow publish")

    done = runner.wait(stack, [(d, DAG_ID, r, spec) for d, r in runs.items()], timeout_s=600)
    watch.stop.set()
    watch.join()
    outcomes = {d: api.xcom(DAG_ID, r, "outcome") for d, r in runs.items()}
    published = {d: api.xcom(DAG_ID, r, PUBLISH) for d, r in runs.items()}
    assert all(p["lease_wait_s"] >= 4 for p in published.values()), published  # both waited for the third

    assert outcomes[newer]["status"] == "published", outcomes[newer]["reasons"]
    if outcomes[older]["status"] != "published":  # it came second: refused, with the reason
        assert outcomes[older]["status"] == "rejected"
        assert any(f"the live version comes from delivery {newer}" in r for r in outcomes[older]["reasons"]), outcomes[
            older
        ]
    assert _live_duration(s3, buckets.distribution, prefix) == pytest.approx(6.0, abs=0.5), (
        "the newest delivery is live"
    )
    assert watch.looks > 10 and watch.torn == [], watch.torn

    for run, _ in done.values():
        assert run["state"] == "success"
