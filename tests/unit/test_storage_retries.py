"""Storage calls through a real outage: moto's S3 API over HTTP behind a TCP gate that refuses and cuts connections.
A call made while the endpoint is down keeps retrying with growing, jittered waits and succeeds when it returns;
past its budget it fails with StorageUnavailable naming the call and the error; a real error is never retried."""

from __future__ import annotations

import logging
import threading
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from fault_gate import FaultGate
from mediaflow.store import StorageUnavailable, is_transient, with_retries


@pytest.fixture
def gated(server):
    port = int(server.rsplit(":", 1)[1])
    gate = FaultGate(port)
    # one attempt per botocore call: the waits measured here are ours alone
    client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{gate.port}", aws_access_key_id="k",
                          aws_secret_access_key="s", region_name="us-east-1",
                          config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=5))  # fmt: skip
    try:
        client.create_bucket(Bucket="gated")
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass
    yield gate, client
    gate.up()


def _recording_sleep(waits: list[float]):
    def sleep(s: float) -> None:
        waits.append(s)
        time.sleep(s)

    return sleep


def test_a_write_during_an_outage_waits_with_backoff_and_lands_once(gated, caplog):
    gate, client = gated
    gate.down_for(4.0)
    waits: list[float] = []
    began = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="mediaflow.store"):
        with_retries(lambda: client.put_object(Bucket="gated", Key="title/master.m3u8", Body=b"#EXTM3U\n"),
                     "write s3://gated/title/master.m3u8", budget_s=30, sleep=_recording_sleep(waits))  # fmt: skip
    took = time.monotonic() - began
    assert took >= 3.5, "it waited for the endpoint instead of failing"
    assert len(waits) >= 2 and all(w >= 0 for w in waits)
    assert client.get_object(Bucket="gated", Key="title/master.m3u8")["Body"].read() == b"#EXTM3U\n"
    listed = client.list_objects_v2(Bucket="gated", Prefix="title/")["Contents"]
    assert [o["Key"] for o in listed] == ["title/master.m3u8"], "one object, however many tries"
    said = [r.getMessage() for r in caplog.records]
    assert any("write s3://gated/title/master.m3u8 failed (EndpointConnectionError" in m for m in said), said


def test_past_its_budget_a_call_fails_naming_the_call_and_the_storage_error(gated):
    gate, client = gated
    gate.down()
    began = time.monotonic()
    with pytest.raises(StorageUnavailable) as err:
        with_retries(lambda: client.get_object(Bucket="gated", Key="x"), "read s3://gated/x", budget_s=3)
    assert time.monotonic() - began < 15
    text = str(err.value)
    assert "read s3://gated/x" in text and "after 3 s of retries" in text
    assert "EndpointConnectionError" in text and f"127.0.0.1:{gate.port}" in text, text


def test_a_connection_cut_mid_request_is_retried(gated):
    """The outage starts at the request itself (it is cut, not forwarded): the call retries and lands."""
    gate, client = gated
    gate.down_when(b"PUT /gated/cut-me", seconds=2.0)
    with_retries(lambda: client.put_object(Bucket="gated", Key="cut-me", Body=b"x" * 1000), "write", budget_s=20)
    assert gate.cut_requests == 1 and gate.outages[-1]["up_at"] is not None
    assert client.head_object(Bucket="gated", Key="cut-me")["ContentLength"] == 1000


def test_real_errors_are_not_retried(gated):
    _, client = gated
    waits: list[float] = []
    with pytest.raises(ClientError) as err:
        with_retries(lambda: client.get_object(Bucket="gated", Key="no-such-key"), "read", budget_s=30,
                     sleep=_recording_sleep(waits))  # fmt: skip
    assert err.value.response["Error"]["Code"] == "NoSuchKey" and waits == []
    assert not is_transient(err.value)


def test_the_waits_grow_exponentially_with_full_jitter():
    """The policy itself: attempt n waits a random time up to 0.5 s x 2^n (capped at 8 s), so clients that failed
    together do not come back together."""
    runs = []
    for _ in range(2):
        failures, waits = iter(range(7)), []

        def flaky() -> str:
            if next(failures, None) is not None:  # noqa: B023 (called within this iteration)
                raise ConnectionError("endpoint down")
            return "ok"

        assert with_retries(flaky, "probe", budget_s=3600, sleep=waits.append) == "ok"
        runs.append(waits)
    for waits in runs:
        assert len(waits) == 7
        assert all(0 <= w <= min(8.0, 0.5 * 2 ** (i + 1)) for i, w in enumerate(waits)), waits
    assert runs[0] != runs[1], "jitter: two clients do not wait alike"


def test_the_gate_refuses_then_serves_again(gated):
    gate, client = gated
    gate.down()
    with pytest.raises(Exception) as err:
        client.list_buckets()
    assert is_transient(err.value)
    threading.Timer(0.5, gate.up).start()
    time.sleep(1.0)
    assert "gated" in [b["Name"] for b in client.list_buckets()["Buckets"]]
