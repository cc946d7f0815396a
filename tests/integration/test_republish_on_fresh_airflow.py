"""A published URL never changes its bytes, on the real stack: one small delivery processed twice, each time by a
fresh Airflow (a new metadata DB and ledger) on the same S3 API, as when Airflow is redeployed while the
distribution bucket (behind a CDN) is kept. x264 under VBV is not bit-exact run to run, so the second encode may
differ: every URL the first run published must still return its first bytes (the master playlist excepted: it is
the switch point), and either nothing new was written or the new objects are all under one new version that the
master now names. `out/published/` (what `make run` exports) is checked the same way.

Its own stack on free ports in a throw-away folder, never the session's: restarting Airflow would pull the rug from
under the other tests. One 2-s 480p clip, one channel.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import m3u8
import pytest

from mediaflow import names
from mediaflow.store import IMMUTABLE, SWITCH, Buckets
from mediaflow_airflow.api_client import AirflowApi
from mediaflow_dev import runner, samples
from mediaflow_dev.devstack import Stack

pytestmark = pytest.mark.integration

ASSET = "pubver-clip"
STREAM = "news_clip"
PREFIX = f"web/{ASSET}/"
MASTER = PREFIX + "master.m3u8"
TIMINGS: dict[str, float] = {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _batch_caught_up(st: Stack, timeout_s: float = 240) -> None:
    """The nightly batch's catch-up run (started as its DAG appears) has ended, so it cannot take the test's
    delivery beside the test's own run."""
    api = AirflowApi(st.api_url, "admin", st.password())
    api.wait_for_dags([names.CONTENT_BATCH_DAG])
    began = time.monotonic()
    while time.monotonic() - began < timeout_s:
        runs = api.request("GET", f"/api/v2/dags/{names.CONTENT_BATCH_DAG}/dagRuns?limit=100")["dag_runs"]
        if (
            runs
            and all(r["state"] in ("success", "failed") for r in runs)
            or not runs
            and time.monotonic() - began > 60
        ):
            return
        time.sleep(2)
    raise AssertionError(f"the content batch's catch-up run did not end within {timeout_s:.0f}s")


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("pubver")
    env = {
        "MEDIAFLOW_STACK_DIR": str(root / "state"),
        "MEDIAFLOW_OUT_DIR": str(root / "out"),
        "MEDIAFLOW_AIRFLOW_PORT": str(_free_port()),
        "MEDIAFLOW_S3_PORT": str(_free_port()),
        "MEDIAFLOW_SMTP_PORT": str(_free_port()),
        "MEDIAFLOW_PG_PORT": str(_free_port()),
    }
    # the session's embedded stack may have set these (its fault gates): this stack has none
    gates = ["MEDIAFLOW_S3_CLIENT_PORT", "MEDIAFLOW_API_CLIENT_PORT"]
    saved = {k: os.environ.get(k) for k in [*env, *gates]}
    for k in gates:
        os.environ.pop(k, None)
    os.environ.update(env)
    st = Stack.from_env()
    try:
        started = time.monotonic()
        st.up()
        _batch_caught_up(st)
        TIMINGS["first_up_s"] = round(time.monotonic() - started, 1)
        yield st
    finally:
        st.down()
        st.postgres.remove()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _published(s3) -> dict[str, bytes]:
    bucket = Buckets.from_env().distribution
    keys = [o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=PREFIX)
            for o in p.get("Contents", [])]  # fmt: skip
    return {k: s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}


def _exported(out_dir: Path) -> dict[str, bytes]:
    root = out_dir / "published"
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _version(master: bytes) -> str:
    (version,) = {p.uri.split("/", 1)[0] for p in m3u8.loads(master.decode()).playlists}
    return version


def _named(objects: dict[str, bytes]) -> set[str]:
    """Every key the master names, directly or through its media playlists."""
    named, todo = set(), [MASTER]
    while todo:
        key = todo.pop()
        named.add(key)
        if key.endswith(".m3u8"):
            pl = m3u8.loads(objects[key].decode())
            base = key.rsplit("/", 1)[0] + "/"
            uris = [p.uri for p in pl.playlists] + [m.uri for m in pl.media if m.uri] + [s.uri for s in pl.segments]
            todo += [base + u for u in uris if base + u not in named]
    return named


def test_the_same_delivery_twice_on_a_fresh_airflow_changes_no_published_url(own_stack, tmp_path):
    st, s3 = own_stack, own_stack.s3_client()
    deliveries = tmp_path / "deliveries"
    folder = deliveries / ASSET
    folder.mkdir(parents=True)
    samples.make_video(folder / "clip.mp4", width=854, height=480, fps=25, seconds=2)
    (folder / "manifest.json").write_text(json.dumps({"asset_id": ASSET, "title": "Republished", "value_stream": STREAM,
        "source": {"file": "clip.mp4"}, "territories": ["US"], "channels": ["web"]}))  # fmt: skip
    (deliveries / "avails.csv").write_text("asset_id,territory,channel,window_start,window_end,exclusive\n"
                                           f"{ASSET},US,web,2026-01-01T00:00:00Z,2030-01-01T00:00:00Z,false\n")  # fmt: skip

    started = time.monotonic()
    (entry,) = runner.run_batch(st, deliveries, timeout_s=600)["assets"]
    TIMINGS["first_run_s"] = round(time.monotonic() - started, 1)
    assert entry["status"] == "published", entry["reasons"]
    before, exported = _published(s3), _exported(st.out_dir)
    assert exported == before, "out/published mirrors the distribution bucket"
    # caches may keep a version's objects for good, the switch points a minute (Airflow's S3Hook set these)
    head = lambda key: s3.head_object(Bucket=Buckets.from_env().distribution, Key=key)  # noqa: E731
    segment = next(k for k in before if k.endswith(".ts"))
    assert (head(segment)["CacheControl"], head(segment)["ContentType"]) == (IMMUTABLE, "video/mp2t")
    assert (head(MASTER)["CacheControl"], head(MASTER)["ContentType"]) == (SWITCH, "application/vnd.apple.mpegurl")
    assert head(PREFIX + "poster.jpg")["CacheControl"] == SWITCH

    started = time.monotonic()
    st.fresh_airflow()  # the same S3 API, its objects and the title's published state kept
    # no need to wait for the batch's catch-up run here: it never starts a delivery it has processed
    AirflowApi(st.api_url, "admin", st.password()).wait_for_dags([names.value_stream_dag_id(STREAM)])
    TIMINGS["fresh_airflow_s"] = round(time.monotonic() - started, 1)
    started = time.monotonic()
    # the batch never starts a delivery it has processed (its marker is in the kept bucket): a person re-runs it
    runs = runner.rerun(st, [ASSET], [STREAM])
    (again,) = runner.summarize(st, runs, runner.wait(st, runs, timeout_s=600))["assets"]
    TIMINGS["second_run_s"] = round(time.monotonic() - started, 1)
    assert again["status"] == "published", again["reasons"]
    after = _published(s3)

    changed = sorted(k for k in before if after.get(k) != before[k])
    assert set(changed) <= {MASTER}, f"published URLs whose bytes changed: {changed}"
    old, new = _version(before[MASTER]), _version(after[MASTER])
    new_keys = sorted(set(after) - set(before))
    TIMINGS["new_objects"] = len(new_keys)
    if new == old:  # the encode came out bit-exact: nothing written at all
        assert new_keys == [] and changed == []
    else:  # new bytes: all under the new version, which the master (switched last) now names, whole
        assert {k[len(PREFIX) :].split("/", 1)[0] for k in new_keys} == {new}, new_keys
        assert _named(after) <= set(after) and {k for k in _named(after) if k != MASTER} <= set(new_keys)
    # what the user compared: out/published of the first run against the second's (it mirrors the bucket again)
    exported_again = _exported(st.out_dir)
    assert sorted(p for p, data in exported.items() if exported_again.get(p) != data and p != MASTER) == []
    print(f"\n[pubver] {TIMINGS} versions {old} -> {new}")
