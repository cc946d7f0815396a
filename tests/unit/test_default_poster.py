"""The poster A/B winner becomes the title's default poster: on every live channel, once, only for a candidate the
live version has, kept by a later sidecar-only publish, reset by a new transcode; the change is in the ledger."""

from __future__ import annotations

import pytest

from mediaflow import flow, ladder, posters
from mediaflow.ledger import Ledger

ASSET = "show-s01e02"
CHANNELS = ["web", "ott_partner"]
PICTURES = {"poster.jpg": b"default frame", "posters/p1.jpg": b"scene one", "posters/p2.jpg": b"scene two",
            "posters/p3.jpg": b"scene three"}  # fmt: skip
FILES = ["master.m3u8", "v360/index.m3u8", "v360/seg_00000.ts", *PICTURES]
VARIANTS = [{"uri": "v360/index.m3u8", "width": 640, "height": 360, "fps": 25.0, "peak_bps": 800_000,
             "avg_bps": 700_000, "codec": "avc1.640028"}]  # fmt: skip


def _live_title(store, buckets) -> dict:
    """A title as publish leaves it: the work copy of its transcode published to each channel; its state."""
    work = f"{ASSET}/run1/hls/"
    body = {**PICTURES, "master.m3u8": b"#EXTM3U\n", "v360/index.m3u8": b"#EXTM3U\n", "v360/seg_00000.ts": b"ts"}
    for name, data in body.items():
        store.put_bytes(data, buckets.work, work + name)
    ingested = {"asset_id": ASSET, "delivery_id": "d1", "delivered_at": "2026-11-28T01:00:00Z", "channels": CHANNELS,
                "territories": ["US"], "source": {"duration_s": 60.0}}  # fmt: skip
    video = {"hls_uri": f"s3://{buckets.work}/{work}", "files": FILES, "variants": VARIANTS, "audios": []}
    flow.publish(store, buckets, ingested=ingested, transcoded=video, localized=[])
    return flow.published_state(store, buckets, ASSET)


def _candidate_on(store, buckets, channel: str, variant: str) -> bytes:
    version = flow.published_state(store, buckets, ASSET)["version"]
    return store.get_bytes(buckets.distribution, f"{channel}/{ASSET}/{version}/posters/{variant}.jpg")


def _poster_on(store, buckets, channel: str) -> bytes:
    return store.get_bytes(buckets.distribution, f"{channel}/{ASSET}/poster.jpg")


def _set(store, buckets, variant: str, **kw) -> dict:
    decision = {"p_value": 0.0004, "variants": {"p1": {"ctr": 0.41}, "p2": {"ctr": 0.58}}}
    return posters.set_default_poster(store, buckets, asset_id=ASSET, variant=variant, decision=decision,
                                      decided_by="feedback-run-1", now="2026-11-29T04:00:00Z", **kw)  # fmt: skip


def test_the_winner_becomes_poster_jpg_on_every_channel_and_in_the_state(s3):
    store, buckets = s3
    _live_title(store, buckets)
    done = _set(store, buckets, "p2")
    assert done["status"] == "changed" and done["previous"] is None and sorted(done["channels"]) == sorted(CHANNELS)
    for ch in CHANNELS:
        assert _poster_on(store, buckets, ch) == b"scene two"
        assert _candidate_on(store, buckets, ch, "p1") == b"scene one", "candidates stay"
    state = flow.published_state(store, buckets, ASSET)
    assert state["poster"]["variant"] == "p2" and state["poster"]["decided_by"] == "feedback-run-1"
    assert state["poster"]["p_value"] == 0.0004 and state["poster"]["ctr"]["p2"] == 0.58


def test_setting_the_same_winner_again_writes_nothing(s3):
    store, buckets = s3
    _live_title(store, buckets)
    _set(store, buckets, "p2")
    before = {**store.list(buckets.distribution, ""), **store.list(buckets.reports, "published/")}
    again = _set(store, buckets, "p2")
    assert again["status"] == "unchanged" and again["previous"] == "p2"
    after = {**store.list(buckets.distribution, ""), **store.list(buckets.reports, "published/")}
    assert after == before, "an idempotent re-run touches no object"


def test_a_new_winner_replaces_the_old_one_and_names_it(s3):
    store, buckets = s3
    _live_title(store, buckets)
    _set(store, buckets, "p2")
    moved = _set(store, buckets, "p3")
    assert moved["status"] == "changed" and moved["previous"] == "p2"
    assert {_poster_on(store, buckets, ch) for ch in CHANNELS} == {b"scene three"}


@pytest.mark.parametrize("variant", ["b", "p7"])
def test_a_variant_the_live_version_never_had_is_skipped_with_the_reason(s3, variant):
    store, buckets = s3
    _live_title(store, buckets)
    done = _set(store, buckets, variant)
    assert done["status"] == "skipped"
    assert f"poster variant '{variant}' is not a candidate" in done["reason"] and "p1, p2, p3" in done["reason"]
    assert {_poster_on(store, buckets, ch) for ch in CHANNELS} == {b"default frame"}
    assert "poster" not in flow.published_state(store, buckets, ASSET)


def test_a_title_that_is_not_live_is_skipped(s3):
    store, buckets = s3
    done = _set(store, buckets, "p1")
    assert done["status"] == "skipped" and "is not published" in done["reason"]
    assert store.list(buckets.distribution, "") == {}


def test_a_sidecar_only_publish_keeps_the_chosen_poster_and_a_new_transcode_resets_it(s3):
    store, buckets = s3
    state = _live_title(store, buckets)
    _set(store, buckets, "p2")
    ingested = {"asset_id": ASSET, "delivery_id": "d2", "delivered_at": "2026-11-29T01:00:00Z", "channels": CHANNELS,
                "territories": ["US"], "source": state["source"]}  # fmt: skip
    caption = {"kind": "captions", "locale": "es-ES", "file": "es.vtt", "status": "ok", "warnings": [], "reasons": [],
               "hls_uri": f"s3://{buckets.work}/{ASSET}/run2/hls/", "files": ["subs/es-ES/index.m3u8"],
               "rendition": {"uri": "subs/es-ES/index.m3u8", "language": "es-ES", "name": "Español"}}  # fmt: skip
    store.put_bytes(b"#EXTM3U\n", buckets.work, f"{ASSET}/run2/hls/subs/es-ES/index.m3u8")
    flow.publish(store, buckets, ingested=ingested, transcoded=None, localized=[caption])
    assert {_poster_on(store, buckets, ch) for ch in CHANNELS} == {b"scene two"}, "sidecars do not undo the A/B winner"
    assert flow.published_state(store, buckets, ASSET)["poster"]["variant"] == "p2"

    transcoded = {**state["video"], "hls_uri": state["video"]["hls_uri"]}  # the same pictures, transcoded again
    flow.publish(store, buckets, ingested={**ingested, "delivery_id": "d3"}, transcoded=transcoded, localized=[])
    assert {_poster_on(store, buckets, ch) for ch in CHANNELS} == {b"default frame"}, "new pictures, new test"
    assert "poster" not in flow.published_state(store, buckets, ASSET)


def test_winners_come_from_ab_json_only_where_the_test_declared_one():
    ab = {"run": "r1", "titles": {
        "b-title": {"winner": "p3", "p_value": 0.001, "threshold": 0.025, "variants": {}, "best": "p3"},
        "a-title": {"winner": None, "p_value": 0.4, "threshold": 0.05, "variants": {}, "best": "p1"},
        "c-title": {"winner": "p1", "p_value": 0.0, "threshold": 0.05, "variants": {}, "best": "p1"},
    }}  # fmt: skip
    assert [(w["asset_id"], w["variant"]) for w in posters.winners(ab)] == [("b-title", "p3"), ("c-title", "p1")]
    assert posters.winners({}) == [] and posters.winners({"titles": {}}) == []


def test_candidates_are_read_from_the_published_files_in_variant_order():
    state = {"video": {"files": ["poster.jpg", "posters/p10.jpg", "posters/p2.jpg", "posters/p1.jpg", "posters/x.jpg"]}}
    assert posters.candidates(state) == ["p1", "p2", "p10"]
    assert posters.source_of_default({**state, "poster": {"variant": "p2"}}) == "posters/p2.jpg"
    assert posters.source_of_default({**state, "poster": {"variant": "p9"}}) == ladder.POSTER
    assert posters.source_of_default(None) == ladder.POSTER


def test_the_ledger_keeps_every_poster_change(tmp_path):
    led = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    led.record_poster_change(asset_id=ASSET, variant="p2", previous=None, channels=CHANNELS, p_value=0.001,
                             decided_by="fb-1", dag_id="default_posters", run_id="r1")  # fmt: skip
    led.record_poster_change(asset_id=ASSET, variant="p3", previous="p2", channels=["web"], p_value=0.002,
                             decided_by="fb-2", dag_id="default_posters", run_id="r2")  # fmt: skip
    led.record_poster_change(asset_id="other", variant="p1", previous=None, channels=["web"], p_value=None,
                             decided_by=None, dag_id="default_posters", run_id="r2")  # fmt: skip
    rows = led.poster_changes(ASSET)
    assert [(r["variant"], r["previous"], r["channels"]) for r in rows] == [
        ("p2", None, CHANNELS),
        ("p3", "p2", ["web"]),
    ]
    assert rows[0]["changed_at"].tzinfo is not None and len(led.poster_changes()) == 3


def test_the_ledger_gets_each_change_once_and_a_change_a_died_try_left_unrecorded(s3):
    store, buckets = s3
    _live_title(store, buckets)
    first = _set(store, buckets, "p2")
    assert posters.to_record(first, recorded=None)
    again = _set(store, buckets, "p2")
    assert not posters.to_record(again, recorded="p2"), "the same default twice: one ledger row"
    assert posters.to_record(again, recorded=None), "state written, record lost with the try: recorded on the retry"
    assert posters.to_record(again, recorded="p1")
    assert not posters.to_record(_set(store, buckets, "p9"), recorded=None), "skipped: nothing to record"
