"""The distributed path for real, without Docker: PostgreSQL (metadata DB and ledger), Redis (Celery broker), two
Celery workers, scheduler, dag-processor, triggerer and api-server as separate processes (mediaflow_dev.cluster), on free
ports in a throw-away folder; never the session's embedded stack.

A small batch of news clips goes through the nightly batch and the value stream. worker-1 takes the batch alone
until, mid-transcode, it is killed with SIGKILL (its whole process group: Celery, task supervisors, tasks, ffmpeg),
as when its machine dies; worker-2 joins then. The tasks worker-1 was running are failed by the scheduler's
heartbeat timeout and retried on worker-2, which runs the rest; every title still publishes, whole. Both workers ran
tasks (each task instance names its worker: the cluster's hostname_callable).

Every title: status `published`, channel web, the rungs mediaflow.ladder.select_renditions picks for the source,
every segment a playlist names present, the same set of keys (killed or not). Then the same deliveries go through
the session's embedded stack (LocalExecutor): the same statuses and the same published objects, key, size
and ETag.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from mediaflow.ladder import select_renditions
from mediaflow.ledger import Ledger
from mediaflow.spec import load_specs
from mediaflow.store import parse_s3_uri
from mediaflow_dev import runner, samples
from mediaflow_dev.cluster import Cluster

pytestmark = pytest.mark.integration

STREAM = "cluster_drill"  # tests/integration/streams: two small rungs, retries 2 s apart
TITLES = 3
SECONDS = 2
WIDTH, HEIGHT = 640, 360
STREAMS = Path(__file__).parent / "streams"
VICTIM, SURVIVOR = "worker-1", "worker-2"
TIMINGS: dict[str, float] = {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("cluster")
    env = {
        "MEDIAFLOW_STACK_DIR": str(root / "state"),
        "MEDIAFLOW_OUT_DIR": str(root / "out"),
        "MEDIAFLOW_AIRFLOW_PORT": str(_free_port()),
        "MEDIAFLOW_S3_PORT": str(_free_port()),
        "MEDIAFLOW_SMTP_PORT": str(_free_port()),
        "MEDIAFLOW_PG_PORT": str(_free_port()),
        "MEDIAFLOW_REDIS_PORT": str(_free_port()),
        "MEDIAFLOW_WORKERS": "2",
        "MEDIAFLOW_EXTRA_STREAMS": str(STREAMS),
    }
    # the session's embedded stack may have set these: the cluster has its own (restored afterwards)
    saved = {k: os.environ.get(k) for k in [*env, "MEDIAFLOW_S3_CLIENT_PORT"]}
    os.environ.pop("MEDIAFLOW_S3_CLIENT_PORT", None)
    os.environ.update(env)
    # only the DAGs of the test run (the scheduled ones would catch up and take the workers' time)
    cl = Cluster.from_env(extra_env={"AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True"})
    started = time.monotonic()
    try:
        # worker-2 joins when worker-1 dies (the test starts it): until then every task, transcodes included, is
        # worker-1's, so the kill always finds a transcode to take down
        cl.up(workers=(VICTIM,))
        TIMINGS["up_s"] = round(time.monotonic() - started, 1)
        yield cl
    finally:
        stopping = time.monotonic()
        cl.down(grace=5)  # throw-away processes: SIGKILL what has not stopped after 5 s
        print(f"[cluster test] down in {time.monotonic() - stopping:.0f}s")
        for k, v in saved.items():
            if k == "MEDIAFLOW_EXTRA_STREAMS" or os.environ.get(k) != env.get(k):
                # set since by the session's stack (started by the next test), or the test streams, which the
                # session's stack names the same way: theirs now
                continue
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _deliveries(folder):
    rows = ["asset_id,territory,channel,window_start,window_end,exclusive"]
    for i in range(TITLES):
        asset_id = f"cluster-news-{i + 1}"
        d = folder / asset_id
        d.mkdir(parents=True)
        samples.make_video(d / "clip.mp4", width=WIDTH, height=HEIGHT, fps=25, seconds=SECONDS)
        (d / "manifest.json").write_text(json.dumps({"asset_id": asset_id, "title": f"Cluster drill {i + 1}",
            "value_stream": STREAM, "source": {"file": "clip.mp4"}, "territories": ["US"], "channels": ["web"],
            "delivered_at": "2026-11-28T01:00:00Z"}))  # fmt: skip
        rows.append(f"{asset_id},US,web,2026-01-01T00:00:00Z,2030-01-01T00:00:00Z,false")
    (folder / "avails.csv").write_text("\n".join(rows) + "\n")


KILLED: dict = {}


def _kill_mid_transcode(cluster, api, dag_id: str, timeout_s: float = 300) -> None:
    """SIGKILL worker-1 while it runs a transcode, preferably once it has finished value-stream work of its own."""
    deadline, first_seen = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        tis = api.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/~/taskInstances?limit=500")["task_instances"]
        mine = [t for t in tis if t.get("hostname") == VICTIM]
        transcodes = [t for t in mine if t["state"] == "running" and t["task_id"].startswith("transcode")]
        if transcodes:
            first_seen = first_seen or time.monotonic()
            if any(t["state"] == "success" for t in mine) or time.monotonic() - first_seen > 15:
                cluster.kill_worker(VICTIM)
                KILLED.update(at=time.monotonic(), victims=[dict(t, dag_id=dag_id) for t in transcodes])
                cluster.start_worker(SURVIVOR)  # the batch goes on on the other machine
                return
        time.sleep(0.3)


def _published_keys(s3, uri: str) -> tuple[set[str], list[str]]:
    """(keys under the title's published prefix, relative; the heights its master playlist lists)."""
    bucket, master_key = parse_s3_uri(uri)
    prefix = master_key.rsplit("/", 1)[0] + "/"
    keys = {o["Key"][len(prefix):] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for o in page.get("Contents", [])}  # fmt: skip
    master = s3.get_object(Bucket=bucket, Key=master_key)["Body"].read().decode()
    heights = [int(h) for h in re.findall(r"RESOLUTION=\d+x(\d+)", master)]
    for name in [ln for ln in master.splitlines() if ln and not ln.startswith("#")]:  # every segment present
        playlist = s3.get_object(Bucket=bucket, Key=prefix + name)["Body"].read().decode()
        base = name.rsplit("/", 1)[0] + "/" if "/" in name else ""
        for seg in [ln for ln in playlist.splitlines() if ln and not ln.startswith("#")]:
            assert base + seg in keys, f"{uri}: {name} names {seg}, which is not published"
    return keys, heights


def test_a_batch_spreads_over_two_celery_workers_and_survives_one_killed(cluster, tmp_path):
    deliveries = tmp_path / "deliveries"
    _deliveries(deliveries)
    api = runner._api(cluster)
    dag_id = load_specs()[STREAM].dag_id
    api.wait_for_dags([runner.BATCH_DAG_ID, dag_id])
    for dag in (runner.BATCH_DAG_ID, dag_id):
        api.request("PATCH", f"/api/v2/dags/{dag}", {"is_paused": False})
    # unpaused, the batch DAG catches up on its latest nightly interval: let that run end (nothing has landed yet),
    # or it would take the deliveries and the batch run submit() starts would wait behind it (max_active_runs=1)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        batch_runs = api.request("GET", f"/api/v2/dags/{runner.BATCH_DAG_ID}/dagRuns")["dag_runs"]
        if batch_runs and all(r["state"] in runner.TERMINAL for r in batch_runs):
            break
        if not batch_runs and time.monotonic() > deadline - 100:  # none after 20 s: none is coming
            break
        time.sleep(1)
    # the killer watches from the start: the value-stream runs start while submit() still waits for its batch run
    killer = threading.Thread(target=_kill_mid_transcode, args=(cluster, runner._api(cluster), dag_id), daemon=True)
    t0 = time.monotonic()
    killer.start()
    runs = runner.submit(cluster, deliveries)  # upload, run nightly_content_batch, one value-stream run per title
    assert len(runs) == TITLES and all(spec is not None for *_, spec in runs), runs
    killer.join(timeout=300)
    victims = KILLED.get("victims")
    assert victims, f"{VICTIM} never ran a transcode"
    killed_at = KILLED["at"]
    print(
        f"[cluster test] SIGKILL {VICTIM} at {killed_at - t0:.0f}s, running: "
        f"{[(t['dag_run_id'], t['task_id'], t['try_number']) for t in victims]}"
    )

    done = runner.wait(cluster, runs, timeout_s=600)
    batch_s = time.monotonic() - t0
    summary = runner.summarize(cluster, runs, done)

    # nothing lost: every title published, whole, as the embedded stack publishes it
    spec = load_specs()[STREAM]
    expected_heights = [r.height for r in select_renditions(spec.ladder, WIDTH, HEIGHT)]
    s3, key_sets = cluster.s3_client(), {}
    for entry in summary["assets"]:
        assert entry["status"] == "published", (entry["asset_id"], entry["reasons"])
        assert [p["channel"] for p in entry["published"]] == ["web"], entry["published"]
        keys, heights = _published_keys(s3, entry["published"][0]["uri"])
        assert heights == expected_heights, (entry["asset_id"], heights)
        key_sets[entry["asset_id"]] = keys
    assert len({frozenset(k) for k in key_sets.values()}) == 1, key_sets  # the same title layout for every title

    # the killed worker's tasks were retried on the other one, and succeeded there
    tis = {(dag_id, run_id): api.task_instances(dag_id, run_id) for _, dag_id, run_id, _ in runs}
    for v in victims:
        ti = next(
            t
            for t in tis[(v["dag_id"], v["dag_run_id"])]
            if t["task_id"] == v["task_id"] and t["map_index"] == v["map_index"]
        )
        assert ti["state"] == "success" and ti["try_number"] > v["try_number"], ti
        assert ti["hostname"] == SURVIVOR, ti
    # the ledger (PostgreSQL) keeps the killed attempt beside the one that succeeded
    ledger = Ledger(cluster.ledger_url)
    for v in victims:
        attempts = [a for a in ledger.attempts(v["dag_id"], v["dag_run_id"]) if a["task_id"] == v["task_id"]]
        assert len(attempts) >= 2, attempts

    # tasks spread over both workers: batch and value-stream tasks, by the worker each task instance names
    spread = Counter(t["hostname"] for rows in tis.values() for t in rows if t["state"] == "success")
    assert spread[SURVIVOR] > 0 and spread[VICTIM] > 0, spread
    # and by Celery: both workers received tasks (their logs)
    for name in (VICTIM, SURVIVOR):
        assert "execute_workload[" in cluster.log_file(name).read_text(errors="replace"), name
    print(
        f"[cluster test] up {TIMINGS['up_s']}s; batch of {TITLES} titles {batch_s:.0f}s (kill -> all published "
        f"{time.monotonic() - killed_at:.0f}s); successful task instances per worker {dict(spread)}"
    )
    CLUSTER_RESULT.update(deliveries=deliveries, published={e["asset_id"]: _objects(s3, e["published"][0]["uri"]) for e in summary["assets"]},
                          statuses={e["asset_id"]: e["status"] for e in summary["assets"]})  # fmt: skip


CLUSTER_RESULT: dict = {}


def _objects(s3, uri: str) -> dict[str, tuple[int, str]]:
    """The title's published objects, relative key -> (size, ETag)."""
    bucket, master_key = parse_s3_uri(uri)
    prefix = master_key.rsplit("/", 1)[0] + "/"
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {o["Key"][len(prefix) :]: (o["Size"], o["ETag"]) for page in pages for o in page.get("Contents", [])}


def test_the_embedded_stack_publishes_the_same_objects_for_the_same_deliveries(stack):
    """The same deliveries through the embedded stack (LocalExecutor): the same statuses and the same
    published objects, key for key, size for size, byte for byte (ETags): where a task runs does not change what
    it makes, killed worker and retry included."""
    if not CLUSTER_RESULT:
        pytest.fail("the cluster test did not get as far as publishing")
    runs = runner.submit(stack, CLUSTER_RESULT["deliveries"])  # avails.csv beside them goes into the rights catalog
    summary = runner.summarize(stack, runs, runner.wait(stack, runs, timeout_s=600))
    assert {e["asset_id"]: e["status"] for e in summary["assets"]} == CLUSTER_RESULT["statuses"]
    s3 = stack.s3_client()
    for entry in summary["assets"]:
        ours = _objects(s3, entry["published"][0]["uri"])
        assert ours == CLUSTER_RESULT["published"][entry["asset_id"]], entry["asset_id"]
