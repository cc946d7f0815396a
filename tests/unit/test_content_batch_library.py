"""The content batch library against a real S3 API over HTTP (moto's server on a free port) and the real GX suite."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC

from mediaflow import batch

STREAMS = ["feature_film", "news_clip", "series_episode"]


def deliver(store, buckets, delivery_id, manifest, *, raw: bytes | None = None, files=("clip.mp4",)):
    body = raw if raw is not None else json.dumps(manifest).encode()
    store.put_bytes(body, buckets.landing, f"deliveries/{delivery_id}/manifest.json")
    for f in files:
        store.put_bytes(b"\x00" * 16, buckets.landing, f"deliveries/{delivery_id}/{f}")


def good(asset, **over):
    m = {"asset_id": asset, "title": f"T {asset}", "value_stream": "news_clip", "source": {"file": "clip.mp4"},
         "territories": ["US", "GB"]}  # fmt: skip
    m.update(over)
    return {k: v for k, v in m.items() if v is not None}


def test_pending_deliveries_page_through_thousands_and_skip_processed(s3):
    store, buckets = s3
    puts = [(buckets.landing, f"deliveries/d-{i:04d}/manifest.json") for i in range(1205)]  # > one page of 1000
    puts += [(buckets.reports, batch.processed_key(f"d-{i:04d}")) for i in range(1003)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda bk: store.put_bytes(b"{}", *bk), puts))
    store.put_bytes(json.dumps({"delivery_id": "d-1100", "run_id": "nightly__2026-11-28__d-1100"}).encode(),
                    buckets.reports, batch.claim_key("d-1100"))  # fmt: skip
    new, claims = batch.pending_deliveries(store, buckets)
    assert len(new) == 1205 - 1003 - 1 and new[0] == "d-1003" and "d-1100" not in new
    assert [c["run_id"] for c in claims] == ["nightly__2026-11-28__d-1100"]


def test_the_suite_refuses_bad_manifests_with_reasons_naming_file_and_field(s3):
    store, buckets = s3
    deliver(store, buckets, "ok-1", good("ok-1"))
    deliver(
        store,
        buckets,
        "ok-sidecars",
        good("ok-sidecars", source=None, captions=[{"locale": "es-ES", "file": "es.srt"}]),
    )
    deliver(store, buckets, "bad-json", None, raw=b"{not json")
    deliver(store, buckets, "bad-array", None, raw=b"[1, 2]")
    deliver(store, buckets, "bad-missing-territories", good("a2", territories=None))
    deliver(store, buckets, "bad-stream", good("a3", value_stream="telenovela"))
    deliver(store, buckets, "bad-key", good("a4") | {"priority": 1})
    deliver(store, buckets, "bad-asset-id", good("../../etc/passwd"))
    deliver(store, buckets, "bad-types", good("a6", title=5, territories="US"))
    deliver(store, buckets, "bad-priority", good("a7", metadata={"priority": "asap"}))
    deliver(store, buckets, "bad-nothing", good("a8", source=None))
    store.put_bytes(b"x", buckets.landing, "deliveries/bad-no-manifest/clip.mp4")
    new, _ = batch.pending_deliveries(store, buckets)
    result = batch.validate(batch.read_manifests(store, buckets, new), known_streams=STREAMS)
    assert sorted(r["delivery_id"] for r in result["valid"]) == ["ok-1", "ok-sidecars"]
    inv = {d: " | ".join(r) for d, r in result["invalid"].items()}
    assert inv["bad-json"].startswith("manifest.json: not valid JSON")
    assert inv["bad-array"] == "manifest.json: must be a JSON object, got list"
    assert "bad-no-manifest" not in inv, "a folder without its manifest is still arriving"
    assert inv["bad-missing-territories"] == "manifest.json: field 'territories' is missing"
    assert "field 'value_stream': 'telenovela' is not a value stream" in inv["bad-stream"]
    assert inv["bad-key"] == "manifest.json: unknown top-level key 'priority' (free-form fields go under 'metadata')"
    assert "field 'asset_id': '../../etc/passwd' must match" in inv["bad-asset-id"]
    assert (
        "field 'title' must be a string, got int" in inv["bad-types"]
        and "field 'territories': '\"US\"'" in inv["bad-types"]
    )
    assert "field 'metadata.priority': 'asap' must be one of low, normal, high, urgent" in inv["bad-priority"]
    assert "field 'source' is missing" in inv["bad-nothing"]
    assert result["suite"]["suite"] == "mediaflow_delivery_manifests" and result["suite"]["success"] is False


def test_plan_orders_by_priority_then_arrival_and_caps(s3):
    rows = [
        {"delivery_id": "n-late", "priority": "normal", "delivered_at": "2026-11-28T03:00:00Z"},
        {"delivery_id": "n-early", "priority": "normal", "delivered_at": "2026-11-28T01:00:00Z"},
        {"delivery_id": "u", "priority": "urgent", "delivered_at": "2026-11-28T05:00:00Z"},
        {"delivery_id": "l", "priority": "low", "delivered_at": None, "last_modified": "2026-11-27T00:00:00Z"},
        {"delivery_id": "h", "priority": "high", "delivered_at": None},
    ]
    now, later = batch.plan(rows, cap=3)
    assert [r["delivery_id"] for r in now] == ["u", "h", "n-early"]
    assert [r["delivery_id"] for r in later] == ["n-late", "l"]


def test_quarantine_keeps_originals_and_marks_the_delivery_processed(s3):
    store, buckets = s3
    deliver(store, buckets, "bad-stream", good("a3", value_stream="telenovela"), files=("clip.mp4", "fr.wav"))
    uri = batch.quarantine(
        store, buckets, "bad-stream", ["manifest.json: field 'value_stream': ..."], batch_run_id="b1"
    )
    assert uri == "s3://quarantine/deliveries/bad-stream/"
    q = store.list(buckets.quarantine, "deliveries/bad-stream/")
    assert sorted(k.rsplit("/", 1)[1] for k in q) == ["_rejection.json", "clip.mp4", "fr.wav", "manifest.json"]
    assert store.list(buckets.landing, "deliveries/bad-stream/"), "landing keeps the originals too"
    assert batch.read_marker(store, buckets, "bad-stream")["status"] == "rejected"
    assert batch.pending_deliveries(store, buckets) == ([], [])


def test_claim_then_mark_triggered(s3):
    store, buckets = s3
    deliver(store, buckets, "ok-1", good("ok-1"))
    row = {"delivery_id": "ok-1", "asset_id": "ok-1", "value_stream": "news_clip", "priority": "high"}
    rec = batch.claim(
        store, buckets, row, dag_id="value_stream__news_clip", run_id="nightly__2026-11-28__ok-1", batch_run_id="b1"
    )
    assert batch.pending_deliveries(store, buckets) == ([], [rec])  # a batch dying here is finished by the next
    batch.mark_triggered(store, buckets, rec)
    assert batch.pending_deliveries(store, buckets) == ([], [])
    assert batch.read_marker(store, buckets, "ok-1")["run_id"] == "nightly__2026-11-28__ok-1"


def test_a_delivery_a_run_took_outside_a_batch_is_never_started_by_a_batch(s3):
    """Triggered from the form: the run marks it taken, so tonight's batch skips it; a batch's own marker stays."""
    store, buckets = s3
    deliver(store, buckets, "manual-1", good("manual-1"))
    deliver(store, buckets, "batched-1", good("batched-1"))
    assert batch.mark_taken_by_run(store, buckets, "manual-1", dag_id="value_stream__news_clip", run_id="manual__x")
    assert batch.pending_deliveries(store, buckets)[0] == ["batched-1"]
    marker = batch.read_marker(store, buckets, "manual-1")
    assert (marker["status"], marker["run_id"], marker["taken_by"]) == ("triggered", "manual__x", "run")
    rec = batch.claim(store, buckets, {"delivery_id": "batched-1", "asset_id": "batched-1", "value_stream": "news_clip"},
                      dag_id="value_stream__news_clip", run_id="nightly__d__batched-1", batch_run_id="b1")  # fmt: skip
    batch.mark_triggered(store, buckets, rec)
    assert not batch.mark_taken_by_run(
        store, buckets, "batched-1", dag_id="value_stream__news_clip", run_id="nightly__d__batched-1"
    )
    assert batch.read_marker(store, buckets, "batched-1")["batch_run_id"] == "b1"


def test_one_summary_mail_for_all_refused_deliveries():
    mail = batch.rejection_mail({"a": ["r1"], "b<x>": ["r2", "r3"]}, {"a": "s3://q/a/"}, batch_run_id="scheduled__x")
    assert mail["subject"] == "[BATCH] 2 delivery manifests rejected (scheduled__x)"
    assert "b&lt;x&gt;" in mail["html"] and "r3" in mail["html"]
    assert batch.rejection_mail({}, {}, batch_run_id="x") is None


def test_run_ids_are_deterministic():
    assert batch.run_id_for("nightly", batch.day_of("2026-11-28T02:00:00Z"), "d-1") == "nightly__2026-11-28__d-1"


def test_a_delivery_without_its_manifest_waits_then_is_refused(s3):
    from datetime import datetime, timedelta

    store, buckets = s3
    store.put_bytes(b"x", buckets.landing, "deliveries/arriving/clip.mp4")
    assert batch.read_manifests(store, buckets, ["arriving"]) == []
    later = datetime.now(UTC) + timedelta(hours=25)
    (row,) = batch.read_manifests(store, buckets, ["arriving"], now=later)
    result = batch.validate([row], known_streams=STREAMS)
    assert result["invalid"] == {
        "arriving": ["manifest.json: missing from the delivery (no manifest 24 h after its files)"]
    }


# ---------------------------------------------------------------- triggers that fail
class FakeApi:
    """Airflow's trigger semantics (one run per run id, HTTP 409 on a repeat) with faults per delivery."""

    def __init__(self, faults=None):
        import threading

        self.runs: dict[tuple, dict] = {}
        self.calls: list[str] = []
        self.faults = dict(faults or {})  # delivery_id -> list of errors to raise, one per call (last one repeats)
        self._lock = threading.Lock()

    def trigger_once(self, dag_id, run_id, conf):
        from mediaflow_airflow.api_client import ApiError

        with self._lock:
            self.calls.append(conf["delivery"])
            errors = self.faults.get(conf["delivery"])
            error = (errors.pop(0) if len(errors) > 1 else errors[0]) if errors else None
            if error == "went-through-then-timed-out":  # the POST created the run, the answer never came
                self.runs.setdefault((dag_id, run_id), {"dag_run_id": run_id, "conf": conf})
                raise ApiError(f"POST /api/v2/dags/{dag_id}/dagRuns: no answer after 1 try: timed out")
            if error is not None:
                raise error
            if (dag_id, run_id) in self.runs:
                return self.runs[(dag_id, run_id)], False  # what trigger_once makes of a 409
            self.runs[(dag_id, run_id)] = {"dag_run_id": run_id, "conf": conf}
            return self.runs[(dag_id, run_id)], True


class FakeClock:
    """Time that passes only when the retries sleep: a budget of minutes is tested in milliseconds."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s


def _claimed(store, buckets, ids, *, batch_run_id="b1"):
    for d in ids:
        deliver(store, buckets, d, good(d))
    return [batch.claim(store, buckets, {"delivery_id": d, "asset_id": d, "value_stream": "news_clip", "priority": "normal"},
                        dag_id="value_stream__news_clip", run_id=batch.run_id_for("nightly", "2026-11-28", d),
                        batch_run_id=batch_run_id) for d in ids]  # fmt: skip


def _http(status: int, text: str = ""):
    from mediaflow_airflow.api_client import ApiError

    return ApiError(f"POST /api/v2/dags/value_stream__news_clip/dagRuns: HTTP {status}: {text}", status)


def test_which_trigger_errors_are_worth_another_try():
    import urllib.error

    from mediaflow_airflow.api_client import ApiError

    for status in (404, 408, 409, 425, 429, 500, 502, 503, 504):
        assert batch.trigger_retryable(_http(status)), status
    for status in (400, 401, 403, 405, 422):
        assert not batch.trigger_retryable(_http(status)), status
    assert batch.trigger_retryable(ApiError("POST ...: no answer after 1 try: timed out"))  # no status: no answer
    assert batch.trigger_retryable(TimeoutError("timed out"))
    assert batch.trigger_retryable(ConnectionRefusedError(111, "refused"))
    assert batch.trigger_retryable(urllib.error.URLError("refused"))
    assert not batch.trigger_retryable(ValueError("a bug"))


def test_one_delivery_whose_trigger_keeps_failing_is_left_pending_and_the_others_start(s3):
    store, buckets = s3
    records = _claimed(store, buckets, ["a-1", "bad", "a-2", "a-3"])
    gone = _http(404, "Dag with dag_id: 'value_stream__news_clip' not found")
    api, clock = FakeApi({"bad": [gone]}), FakeClock()
    out = batch.trigger_all(store, buckets, records, trigger=api.trigger_once, batch_run_id="b1", budget_s=120,
                            workers=2, sleep=clock.sleep, clock=clock)  # fmt: skip
    assert [(r["delivery_id"], r["status"], r["created"]) for r in out] == [
        ("a-1", "triggered", True),
        ("bad", "pending", False),
        ("a-2", "triggered", True),
        ("a-3", "triggered", True),
    ]
    bad = out[1]
    assert bad["attempts"] > 3 and api.calls.count("bad") == bad["attempts"]  # retried with backoff ...
    assert clock.now - 1000 <= 120  # ... within the budget
    assert "Dag with dag_id: 'value_stream__news_clip' not found" in bad["reason"] and "next batch" in bad["reason"]
    for d in ("a-1", "a-2", "a-3"):
        assert batch.read_marker(store, buckets, d)["status"] == "triggered"
    assert batch.read_marker(store, buckets, "bad") is None
    new, claims = batch.pending_deliveries(store, buckets)
    (claim,) = claims
    assert (
        new == [] and claim["status"] == "pending" and claim["reason"] == bad["reason"] and claim["http_status"] == 404
    )
    assert claim["run_id"] == "nightly__2026-11-28__bad" and claim["tried_by"] == "b1"
    assert batch.pending_status("bad", None, claim)["reason"] == bad["reason"]

    # the next batch, the DAG back: the same run, started once; then nothing is left
    api.faults.clear()
    (again,) = batch.trigger_all(
        store, buckets, claims, trigger=api.trigger_once, batch_run_id="b2", sleep=clock.sleep, clock=clock
    )
    assert (again["status"], again["created"], again["run_id"]) == ("triggered", True, "nightly__2026-11-28__bad")
    assert batch.pending_deliveries(store, buckets) == ([], [])
    marker = batch.read_marker(store, buckets, "bad")
    assert (
        marker["status"] == "triggered" and "reason" not in marker and marker["pending_since"] == claim["pending_since"]
    )
    assert sorted(r["conf"]["delivery"] for r in api.runs.values()) == ["a-1", "a-2", "a-3", "bad"]  # one run each


def test_a_transient_failure_within_the_budget_is_ridden_out(s3):
    store, buckets = s3
    records = _claimed(store, buckets, ["flaky"])
    api, clock = FakeApi({"flaky": [_http(503), _http(404), "went-through-then-timed-out", None]}), FakeClock()
    (out,) = batch.trigger_all(store, buckets, records, trigger=api.trigger_once, batch_run_id="b1", budget_s=60,
                               sleep=clock.sleep, clock=clock)  # fmt: skip
    # the third POST created the run but its answer was lost: the fourth finds it (409), no second run
    assert (out["status"], out["created"]) == ("triggered", False)
    assert api.calls == ["flaky"] * 4 and len(api.runs) == 1
    assert batch.read_marker(store, buckets, "flaky")["run_id"] == "nightly__2026-11-28__flaky"


def test_a_trigger_that_can_never_succeed_is_not_retried_but_only_left_pending(s3):
    store, buckets = s3
    records = _claimed(store, buckets, ["bad-conf", "ok"])
    api, clock = FakeApi({"bad-conf": [_http(400, "conf: Invalid input")]}), FakeClock()
    out = batch.trigger_all(store, buckets, records, trigger=api.trigger_once, batch_run_id="b1", budget_s=120,
                            sleep=clock.sleep, clock=clock)  # fmt: skip
    assert [r["status"] for r in out] == ["pending", "triggered"]
    assert out[0]["attempts"] == 1 and clock.now == 1000 and "not retryable" in out[0]["reason"]
    assert "HTTP 400: conf: Invalid input" in out[0]["reason"]


def test_a_batch_spends_at_most_its_budget_on_retries_however_many_fail(s3):
    store, buckets = s3
    records = _claimed(store, buckets, ["down-1", "ok", "down-2", "down-3"])
    down = {d: [_http(503)] for d in ("down-1", "down-2", "down-3")}
    api, clock = FakeApi(down), FakeClock()
    out = batch.trigger_all(store, buckets, records, trigger=api.trigger_once, batch_run_id="b1", budget_s=30,
                            workers=1, sleep=clock.sleep, clock=clock)  # fmt: skip
    assert [r["status"] for r in out] == ["pending", "triggered", "pending", "pending"]
    assert out[0]["attempts"] == out[2]["attempts"] == out[3]["attempts"] > 2  # retried together, in rounds
    assert clock.now - 1000 <= 30


def test_when_the_api_answers_nothing_for_the_whole_budget_the_rest_is_not_tried(s3):
    """Each try a 90 s time-out: trying 300 deliveries one by one would take hours; the batch stops trying."""
    from mediaflow_airflow.api_client import ApiError

    store, buckets = s3
    records = _claimed(store, buckets, [f"d-{i}" for i in range(6)])
    clock = FakeClock()

    def timing_out(dag_id, run_id, conf):
        clock.sleep(90)
        raise ApiError(f"POST /api/v2/dags/{dag_id}/dagRuns: no answer after 1 try: timed out")

    out = batch.trigger_all(store, buckets, records, trigger=timing_out, batch_run_id="b1", budget_s=120,
                            workers=1, sleep=clock.sleep, clock=clock)  # fmt: skip
    assert all(r["status"] == "pending" for r in out)
    assert [r["attempts"] for r in out] == [2, 2, 2, 0, 0, 0]  # three in a row failed for the budget: down
    assert "not tried: the API server looked down" in out[3]["reason"] and "timed out" in out[3]["reason"]
    assert [c["delivery_id"] for c in batch.pending_deliveries(store, buckets)[1]] == [f"d-{i}" for i in range(6)]


def test_one_slow_failure_is_not_an_api_server_down(s3):
    """Seen on the 300-delivery batch: one trigger waited 95 s on the database lock, then HTTP 500; the others
    must still be tried, and that one again."""
    store, buckets = s3
    records = _claimed(store, buckets, [f"d-{i}" for i in range(4)])
    api, clock = FakeApi(), FakeClock()

    def slow_once(dag_id, run_id, conf):
        if conf["delivery"] == "d-1" and api.calls.count("d-1") == 0:
            api.calls.append("d-1")
            clock.sleep(95)
            raise _http(500, "(sqlite3.OperationalError) database is locked")
        return api.trigger_once(dag_id, run_id, conf)

    out = batch.trigger_all(store, buckets, records, trigger=slow_once, batch_run_id="b1", budget_s=20,
                            workers=1, sleep=clock.sleep, clock=clock)  # fmt: skip
    assert [(r["status"], r["created"]) for r in out] == [("triggered", True)] * 4
    assert out[1]["delivery_id"] == "d-1" and api.calls.count("d-1") == 2


def test_retry_delays_grow_exponentially_with_jitter_and_a_cap():
    assert [batch.retry_delay(n, rand=lambda: 1.0) for n in (1, 2, 3, 4, 5, 6, 9)] == [1, 2, 4, 8, 16, 20, 20]
    assert [batch.retry_delay(n, rand=lambda: 0.0) for n in (1, 2, 3)] == [0.5, 1, 2]


def test_one_mail_lists_every_delivery_left_pending():
    pending = [
        {"delivery_id": "a<1>", "dag_id": "value_stream__news_clip", "run_id": "nightly__d__a", "reason": "HTTP 503"},
        {"delivery_id": "b", "dag_id": "value_stream__news_clip", "run_id": "nightly__d__b", "reason": "HTTP 404"},
    ]
    mail = batch.pending_mail(pending, batch_run_id="scheduled__x")
    assert mail["subject"] == "[BATCH] 2 deliveries left pending: run not started (scheduled__x)"
    assert "a&lt;1&gt;" in mail["html"] and "HTTP 404" in mail["html"] and "nightly__d__b" in mail["html"]
    assert batch.pending_mail([], batch_run_id="x") is None


def test_what_make_run_says_of_a_delivery_without_a_run():
    assert batch.pending_status("d", {"status": "triggered"}, None) is None
    assert batch.pending_status("d", {"status": "rejected"}, None) is None
    assert "over its max_runs" in batch.pending_status("d", None, None)["reason"]
    died = batch.pending_status("d", None, {"delivery_id": "d", "dag_id": "x", "run_id": "r", "batch_run_id": "b1"})
    assert died["run_id"] == "r" and "b1" in died["reason"]
    failed = batch.pending_status(
        "d",
        None,
        {
            "delivery_id": "d",
            "dag_id": "x",
            "run_id": "r",
            "batch_run_id": "b1",
            "status": "pending",
            "reason": "HTTP 503",
            "tried_by": "b2",
            "attempts": 7,
        },
    )
    assert (failed["status"], failed["reason"], failed["batch_run_id"], failed["attempts"]) == (
        "pending",
        "HTTP 503",
        "b2",
        7,
    )
