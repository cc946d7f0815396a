"""The content batch library against a real S3 API over HTTP (moto's server on a free port) and the real GX suite."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor


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
    deliver(store, buckets, "ok-sidecars", good("ok-sidecars", source=None, captions=[{"locale": "es-ES", "file": "es.srt"}]))
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
    assert "field 'title' must be a string, got int" in inv["bad-types"] and "field 'territories': '\"US\"'" in inv["bad-types"]
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
    uri = batch.quarantine(store, buckets, "bad-stream", ["manifest.json: field 'value_stream': ..."], batch_run_id="b1")
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
    rec = batch.claim(store, buckets, row, dag_id="value_stream__news_clip", run_id="nightly__2026-11-28__ok-1", batch_run_id="b1")
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
    assert not batch.mark_taken_by_run(store, buckets, "batched-1", dag_id="value_stream__news_clip", run_id="nightly__d__batched-1")
    assert batch.read_marker(store, buckets, "batched-1")["batch_run_id"] == "b1"


def test_one_summary_mail_for_all_refused_deliveries():
    mail = batch.rejection_mail({"a": ["r1"], "b<x>": ["r2", "r3"]}, {"a": "s3://q/a/"}, batch_run_id="scheduled__x")
    assert mail["subject"] == "[BATCH] 2 delivery manifests rejected (scheduled__x)"
    assert "b&lt;x&gt;" in mail["html"] and "r3" in mail["html"]
    assert batch.rejection_mail({}, {}, batch_run_id="x") is None


def test_run_ids_are_deterministic():
    assert batch.run_id_for("nightly", batch.day_of("2026-11-28T02:00:00Z"), "d-1") == "nightly__2026-11-28__d-1"


def test_a_delivery_without_its_manifest_waits_then_is_refused(s3):
    from datetime import datetime, timedelta, timezone

    store, buckets = s3
    store.put_bytes(b"x", buckets.landing, "deliveries/arriving/clip.mp4")
    assert batch.read_manifests(store, buckets, ["arriving"]) == []
    later = datetime.now(timezone.utc) + timedelta(hours=25)
    (row,) = batch.read_manifests(store, buckets, ["arriving"], now=later)
    result = batch.validate([row], known_streams=STREAMS)
    assert result["invalid"] == {"arriving": ["manifest.json: missing from the delivery (no manifest 24 h after its files)"]}
