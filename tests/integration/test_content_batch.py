"""nightly_content_batch on 300 generated deliveries against the real stack: listed, validated as one batch with
the GX suite, invalid ones quarantined with one email, one run per valid delivery (urgent first), and a second
batch that starts nothing. The deliveries go to the `batch_drill` stream, paused for the test: its runs are
created and counted but not executed (the media path is covered by the other integration tests)."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from email.parser import BytesParser
from email.policy import default as default_policy

import pytest

from mediaflow import batch
from mediaflow.store import Buckets
from mediaflow_dev import runner

pytestmark = pytest.mark.integration
DAG = "value_stream__batch_drill"
N_VALID, BAD_KINDS = (
    270,
    {
        "no-territories": {"territories": None},
        "unknown-stream": {"value_stream": "telenovela"},
        "unknown-key": {"colour": "red"},
        "bad-asset-id": {"asset_id": "a;rm -rf"},
        "bad-priority": {"metadata": {"priority": "asap"}},
        "not-json": "not json",
    },
)


def _manifest(delivery_id: str, priority: str, **over) -> dict:
    m = {"asset_id": delivery_id, "title": f"Batch {delivery_id}", "value_stream": "batch_drill",
         "source": {"file": "clip.mp4"}, "territories": ["US"], "metadata": {"priority": priority}}  # fmt: skip
    m.update(over)
    return {k: v for k, v in m.items() if v is not None}


def _mails(stack) -> list:
    return [
        BytesParser(policy=default_policy).parsebytes(p.read_bytes())
        for p in sorted((stack.out_dir / "mail").glob("*.eml"), key=lambda p: int(p.stem))
    ]


def _batch_idle(api, timeout: float = 300) -> None:
    """Wait until no batch run is queued or running (a new stack starts one at once: the last 02:00's)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = api.request("GET", f"/api/v2/dags/{runner.BATCH_DAG_ID}/dagRuns?limit=100")["dag_runs"]
        if not any(r["state"] in ("queued", "running") for r in runs):
            return
        time.sleep(2)
    raise AssertionError("the content batch stayed busy")


def _all_runs(api) -> list[dict]:
    runs: list[dict] = []
    while page := api.request("GET", f"/api/v2/dags/{DAG}/dagRuns?limit=100&offset={len(runs)}")["dag_runs"]:
        runs += page
    return runs


@pytest.fixture(scope="module")
def batches(stack, api, s3):
    api.wait_for_dags([runner.BATCH_DAG_ID, DAG])
    api.request("PATCH", f"/api/v2/dags/{DAG}", {"is_paused": True})
    _batch_idle(api)
    buckets = Buckets.from_env()
    uploads = {}
    for i in range(N_VALID):
        d = f"b-{i:03d}"
        uploads[d] = json.dumps(_manifest(d, "urgent" if i % 45 == 7 else "low" if i % 3 == 0 else "normal")).encode()
    for kind, change in BAD_KINDS.items():
        for j in range(5):
            d = f"x-{kind}-{j}"
            uploads[d] = (
                change.encode() if isinstance(change, str) else json.dumps(_manifest(d, "normal", **change)).encode()
            )

    def put(item):
        d, body = item
        s3.put_object(Bucket=buckets.landing, Key=f"deliveries/{d}/clip.mp4", Body=b"\x00" * 1024)
        s3.put_object(Bucket=buckets.landing, Key=f"deliveries/{d}/manifest.json", Body=body)  # manifest last

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, uploads.items()))
    mails_before = len(_mails(stack))
    out = {"uploads": uploads, "mails_before": mails_before}
    for n in (1, 2):
        started = time.monotonic()
        run_id, _ = runner.run_content_batch(stack, timeout_s=900)
        out[n] = {"run_id": run_id, "seconds": time.monotonic() - started,
                  "triggered": api.xcom(runner.BATCH_DAG_ID, run_id, "trigger_runs") or [],
                  "quarantined": api.xcom(runner.BATCH_DAG_ID, run_id, "quarantine_invalid") or {},
                  "validation": api.xcom(runner.BATCH_DAG_ID, run_id, "validate_manifests")}  # fmt: skip
        print(
            f"\nbatch {n} over {len(uploads)} deliveries: {out[n]['seconds']:.1f} s (list, validate, quarantine, trigger)"
        )
    out["mails"] = [m for m in _mails(stack)[mails_before:] if m["Subject"].startswith("[BATCH]")]  # not the digest
    out["runs"] = _all_runs(api)
    return out  # the runs stay queued in the paused DAG: nothing schedules them


def test_one_run_per_valid_delivery_urgent_first_with_deterministic_ids(batches):
    triggered = batches[1]["triggered"]
    assert len(triggered) == N_VALID and all(t["created"] for t in triggered)
    day = batch.day_of(None)
    assert {t["run_id"] for t in triggered} == {f"nightly__{day}__b-{i:03d}" for i in range(N_VALID)}
    urgent = [t["delivery_id"] for t in triggered if t["priority"] == "urgent"]
    assert [t["delivery_id"] for t in triggered[: len(urgent)]] == urgent and len(urgent) == 6
    assert [t["priority"] for t in triggered[len(urgent):]] == sorted((t["priority"] for t in triggered[len(urgent):]),
                                                                     key=["normal", "low"].index)  # fmt: skip
    assert len(batches["runs"]) == N_VALID
    assert {r["conf"]["delivery"] for r in batches["runs"]} == {f"b-{i:03d}" for i in range(N_VALID)}


def test_invalid_manifests_are_quarantined_with_reasons(batches, s3):
    quarantined = batches[1]["quarantined"]
    assert sorted(quarantined) == sorted(f"x-{k}-{j}" for k in BAD_KINDS for j in range(5))
    buckets = Buckets.from_env()
    expected = {"no-territories": "field 'territories' is missing", "unknown-stream": "'telenovela' is not a value stream",
                "unknown-key": "unknown top-level key 'colour'", "bad-asset-id": "field 'asset_id': 'a;rm -rf' must match",
                "bad-priority": "'asap' must be one of", "not-json": "manifest.json: not valid JSON"}  # fmt: skip
    for d, entry in quarantined.items():
        kind = d[2:].rsplit("-", 1)[0]
        assert any(expected[kind] in r for r in entry["reasons"]), (d, entry["reasons"])
        record = json.loads(
            s3.get_object(Bucket=buckets.quarantine, Key=f"deliveries/{d}/_rejection.json")["Body"].read()
        )
        assert record["reasons"] == entry["reasons"]
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket=buckets.quarantine, Prefix=f"deliveries/{d}/")["Contents"]}
        assert {f"deliveries/{d}/clip.mp4", f"deliveries/{d}/manifest.json"} <= keys  # originals kept
    assert batches[1]["validation"]["suite"]["suite"] == "mediaflow_delivery_manifests"


def test_one_email_for_all_invalid_manifests(batches):
    (mail,) = batches["mails"]
    assert mail["Subject"] == f"[BATCH] 30 delivery manifests rejected ({batches[1]['run_id']})"
    assert mail["To"] == "media-ops@example.com"
    body = mail.get_body(("html",)).get_content()
    assert all(f"x-{k}-{j}" in body for k in BAD_KINDS for j in range(5))


def test_a_second_batch_starts_nothing(batches):
    assert batches[2]["triggered"] == [] and batches[2]["quarantined"] == {}
    assert len(batches["runs"]) == N_VALID  # no run started twice
