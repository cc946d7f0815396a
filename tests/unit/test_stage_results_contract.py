"""What ingest, transcode, localize and publish hand on (their XCom payloads) is a contract: a running DAG run reads
what an earlier task of it pushed, maybe with the code of a later deploy. A small generated delivery (a 2 s clip with
audio, a good and a bad caption file, a caption named but not delivered, an audio locale) goes through the real
library path against a local S3 API (moto), then a sidecar-only delivery, an older delivery publishing after a newer
one, and three deliveries ingest rejects; the JSON of every result must equal
tests/unit/golden/stage_results_v1.json: keys, key order and every value, except the few an encoder or the clock
decides (numbers become their type, ISO instants `<instant>`).

The golden file was written by this test from the code before flow.py built these results through
mediaflow.results (Ingested, Transcoded, Localized, Published), so that change is proven not to move a key.
Regenerate it (only for a deliberate, documented change of a payload) with MEDIAFLOW_WRITE_GOLDEN=1.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from mediaflow import flow
from mediaflow.spec import load_specs
from mediaflow_dev import samples

GOLDEN = Path(__file__).parent / "golden" / "stage_results_v1.json"
SPECS = load_specs()
SPEC = SPECS["news_clip"]
RUN_ID = "manual__stage-results"
INSTANT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?$")


def masked(value):
    """The payload with what an encoder or the clock decides replaced by its type; keys and their order kept. A
    published version id is a hash over the encoder's bytes: `<version>`."""
    if isinstance(value, dict):
        return {k: "<version>" if k == "version" and isinstance(v, str) else masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return f"<{type(value).__name__}>"
    if isinstance(value, str) and INSTANT.match(value):
        return "<instant>"
    return value


def run_ffmpeg(argv):
    subprocess.run(argv, check=True, capture_output=True, timeout=120)


def deliver(store, buckets, delivery_id: str, files: dict[str, bytes], doc: dict | None) -> None:
    prefix = f"deliveries/{delivery_id}/"
    for name, data in files.items():
        store.put_bytes(data, buckets.landing, prefix + name)
    if doc is not None:
        store.put_bytes(json.dumps(doc).encode(), buckets.landing, prefix + "manifest.json")


def manifest(drop: tuple[str, ...] = (), **over) -> dict:
    doc = {"asset_id": "contract-clip", "title": "Contract clip", "value_stream": "news_clip",
           "source": {"file": "clip.mp4"}, "territories": ["US", "GB"], "channels": ["web"],
           "delivered_at": "2026-11-28T01:00:00Z"}  # fmt: skip
    doc.update(over)
    return {k: v for k, v in doc.items() if k not in drop}


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("contract-media")
    samples.make_video(d / "clip.mp4", width=128, height=72, fps=25, seconds=2)
    samples.make_audio(d / "fr.wav", seconds=2)
    return {p.name: p.read_bytes() for p in d.iterdir()}


def ingest(store, buckets, delivery: str) -> dict:
    return flow.ingest(store, buckets, delivery=delivery, spec=SPEC, known_streams=set(SPECS), run_id=RUN_ID)


def localize_all(store, buckets, ingested: dict) -> list[dict]:
    return [flow.localize_locale(store, buckets, ingested=ingested, item=item, spec=SPEC, run_id=RUN_ID,
                                 run_ffmpeg=run_ffmpeg) for item in ingested["locales"]]  # fmt: skip


# long: one title's whole path, then the variants of each payload, collected in the order a reader meets them
def test_stage_results_keep_their_keys_and_order(s3, media, tmp_path):
    store, buckets = s3
    results: dict[str, object] = {}
    good = b"1\n00:00:00,500 --> 00:00:01,500\nHello\n\n"
    bad = b"1\n00:00:00,500 --> nonsense\nHello\n\n"
    captions = [{"locale": "en-US", "file": "en.srt"}, {"locale": "de-DE", "file": "de.srt"},
                {"locale": "it-IT", "file": "it.srt"}]  # fmt: skip
    deliver(store, buckets, "contract-full", {"clip.mp4": media["clip.mp4"], "en.srt": good, "de.srt": bad,
            "fr.wav": media["fr.wav"]}, manifest(captions=captions, audio=[{"locale": "fr-FR", "file": "fr.wav"}]))  # fmt: skip

    ingested = results["ingest_accepted"] = ingest(store, buckets, "contract-full")
    assert ingested["status"] == "accepted", ingested["reasons"]
    transcoded = results["transcode"] = flow.transcode(store, buckets, ingested=ingested, spec=SPEC, run_id=RUN_ID,
                                                       run_ffmpeg=run_ffmpeg, workdir=str(tmp_path))  # fmt: skip
    localized = results["localize"] = localize_all(store, buckets, ingested)
    assert [r["status"] for r in localized] == ["ok", "rejected", "rejected", "ok"]
    results["publish"] = flow.publish(store, buckets, ingested=ingested, transcoded=transcoded, localized=localized)
    assert results["publish"]["locales"]["en-US"] == "published"

    # a sidecar-only delivery of the same asset: ingest reads what is live, publish extends it
    deliver(store, buckets, "contract-sidecar", {"es.srt": good},
            manifest(drop=("source",), captions=[{"locale": "es-ES", "file": "es.srt"}]))  # fmt: skip
    sidecar = results["ingest_sidecars"] = ingest(store, buckets, "contract-sidecar")
    assert sidecar["status"] == "accepted" and sidecar["mode"] == "sidecars", sidecar["reasons"]
    sidecar_localized = results["localize_sidecars"] = localize_all(store, buckets, sidecar)
    results["publish_sidecars"] = flow.publish(store, buckets, ingested=sidecar, transcoded=None,
                                               localized=sidecar_localized)  # fmt: skip

    # an older delivery finishing after a newer one: not published, the reason says why
    older = {**ingested, "delivery_id": "contract-older", "delivered_at": "2026-11-27T01:00:00Z"}
    results["publish_superseded"] = flow.publish(store, buckets, ingested=older, transcoded=transcoded,
                                                 localized=localized)  # fmt: skip
    assert results["publish_superseded"]["published"] == []

    # ingest's rejections: checked and quarantined, nothing at the prefix, not a delivery reference at all
    deliver(store, buckets, "contract-bad", {"clip.mp4": media["clip.mp4"]}, manifest(source={"file": "gone.mp4"}))
    results["ingest_rejected"] = ingest(store, buckets, "contract-bad")
    results["ingest_nothing_there"] = ingest(store, buckets, "contract-empty")
    results["ingest_bad_reference"] = ingest(store, buckets, "s3://")
    assert [results[k]["status"] for k in ("ingest_rejected", "ingest_nothing_there", "ingest_bad_reference")] == [
        "rejected"
    ] * 3

    # what the operators push to XCom: plain JSON, nothing a decoder would have to know
    for name, result in results.items():
        for r in result if isinstance(result, list) else [result]:
            assert type(r) is dict, f"{name}: {type(r).__name__}, not a plain dict"
            assert json.loads(json.dumps(r)) == r, f"{name}: not plain JSON"
    written = (json.dumps(masked(results), indent=2) + "\n").encode()
    if os.environ.get("MEDIAFLOW_WRITE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_bytes(written)
    assert written == GOLDEN.read_bytes(), "a stage's XCom payload changed: see the module docstring"
