"""A published URL never changes its bytes: each publish puts a title's objects under a content-addressed version
folder <channel>/<asset>/<version>/ and switches the stable master playlist (and default poster) to it last; the
version the replaced master named is kept, older ones are deleted. On a real S3 API (moto's server)."""

from __future__ import annotations

import pytest

from mediaflow import flow
from mediaflow.store import IMMUTABLE, SWITCH

ASSET = "a1"
VARIANTS = [{"uri": "v360/index.m3u8", "width": 640, "height": 360, "fps": 25.0, "peak_bps": 800_000,
             "avg_bps": 700_000, "codec": "avc1.64001e"}]  # fmt: skip
AUDIOS = [{"uri": "audio/index.m3u8", "peak_bps": 128_000, "avg_bps": 128_000, "language": "und", "name": "Main"}]
INGESTED = {"asset_id": ASSET, "delivery_id": "d1", "delivered_at": "2026-12-04T01:00:00Z", "source": {},
            "channels": ["web"], "territories": ["US"], "previous": None}  # fmt: skip


def _title(**changed: bytes) -> dict[str, bytes]:
    body = {"v360/seg_00000.ts": b"video 0", "v360/seg_00001.ts": b"video 1", "v360/index.m3u8": b"#EXTM3U v360",
            "audio/seg_00000.ts": b"audio 0", "audio/index.m3u8": b"#EXTM3U audio", "poster.jpg": b"frame",
            "posters/p1.jpg": b"scene one", "posters/p2.jpg": b"scene two"}  # fmt: skip
    return {**body, **changed}


def _transcode(store, buckets, run: str, body: dict[str, bytes]) -> dict:
    """What transcode hands on: its objects under the run's work prefix."""
    for name, data in body.items():
        store.put_bytes(data, buckets.work, f"{ASSET}/{run}/hls/{name}")
    return {"hls_uri": f"s3://{buckets.work}/{ASSET}/{run}/hls/", "files": sorted(body), "variants": VARIANTS,
            "audios": AUDIOS, "posters": []}  # fmt: skip


def _publish(store, buckets, run: str, body: dict[str, bytes], **kw) -> str:
    flow.publish(
        store, buckets, ingested=INGESTED, transcoded=_transcode(store, buckets, run, body), localized=[], **kw
    )
    return flow.published_state(store, buckets, ASSET)["version"]


def _bytes(store, buckets) -> dict[str, bytes]:
    return {k: store.get_bytes(buckets.distribution, k) for k in store.list(buckets.distribution, f"web/{ASSET}/")}


def _master(store, buckets) -> str:
    return store.get_bytes(buckets.distribution, f"web/{ASSET}/master.m3u8").decode()


def test_the_version_id_is_the_same_for_the_same_bytes_and_new_for_one_byte_more():
    objects = {"v360/seg_00000.ts": "e1", "v360/index.m3u8": "e2", "poster.jpg": "e3"}
    same = flow.publish_version(dict(reversed(objects.items())))
    assert same == flow.publish_version(objects) and len(same) == flow.VERSION_CHARS
    assert flow.publish_version({**objects, "v360/seg_00000.ts": "e9"}) != same, "one segment's bytes differ"
    assert flow.publish_version({**objects, "v360/seg_00001.ts": "e1"}) != same, "one object more"
    assert flow.publish_version({"v361/seg_00000.ts": "e1", "v360/index.m3u8": "e2", "poster.jpg": "e3"}) != same


def test_referenced_folders_are_the_top_folders_of_every_uri_a_master_names():
    master = ('#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",URI="abc/audio/index.m3u8"\n'
              '#EXT-X-STREAM-INF:BANDWIDTH=1\nabc/v360/index.m3u8\n')  # fmt: skip
    assert flow.referenced_folders(master) == {"abc/"}
    assert flow.referenced_folders("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv720/index.m3u8\n") == {"v720/"}
    assert flow.referenced_folders(None) == set()


def test_a_publish_puts_every_object_under_its_version_and_the_master_names_it(s3):
    store, buckets = s3
    version = _publish(store, buckets, "run1", _title())
    published = _bytes(store, buckets)
    assert set(published) == {f"web/{ASSET}/{version}/{n}" for n in _title()} | {f"web/{ASSET}/master.m3u8",
                                                                                  f"web/{ASSET}/poster.jpg"}  # fmt: skip
    master = _master(store, buckets)
    assert f"\n{version}/v360/index.m3u8\n" in master and f'URI="{version}/audio/index.m3u8"' in master
    assert published[f"web/{ASSET}/poster.jpg"] == b"frame", "the default poster at its stable URL"
    head = lambda key: store.c.head_object(Bucket=buckets.distribution, Key=f"web/{ASSET}/{key}")  # noqa: E731
    assert head(f"{version}/v360/seg_00000.ts")["CacheControl"] == IMMUTABLE
    assert head(f"{version}/v360/seg_00000.ts")["ContentLength"] == len(b"video 0")
    assert head("master.m3u8")["CacheControl"] == head("poster.jpg")["CacheControl"] == SWITCH


def test_the_same_bytes_published_again_write_nothing(s3):
    store, buckets = s3
    first = _publish(store, buckets, "run1", _title())
    before = store.list(buckets.distribution, f"web/{ASSET}/")
    assert _publish(store, buckets, "run2", _title()) == first, "another run, the same bytes: the same version"
    assert store.list(buckets.distribution, f"web/{ASSET}/") == before, "no object written again (last_modified)"


def test_new_bytes_go_to_a_new_version_and_no_published_url_changes_its_bytes(s3):
    """x264 under VBV is not bit-exact run to run: the second encode's segments differ. Every URL the first publish
    made keeps its bytes (the master excepted: the switch point), and the master names the new version."""
    store, buckets = s3
    first = _publish(store, buckets, "run1", _title())
    before = _bytes(store, buckets)
    second = _publish(store, buckets, "run2", _title(**{"v360/seg_00001.ts": b"video 1, encoded again"}))
    assert second != first
    after = _bytes(store, buckets)
    changed = sorted(k for k, data in before.items() if after.get(k) != data)
    assert changed == [f"web/{ASSET}/master.m3u8"]
    assert f"\n{second}/v360/index.m3u8\n" in _master(store, buckets) and first not in _master(store, buckets)
    assert after[f"web/{ASSET}/{second}/v360/seg_00001.ts"] == b"video 1, encoded again"


def test_the_previous_version_is_kept_and_older_ones_are_deleted(s3):
    store, buckets = s3
    v1 = _publish(store, buckets, "run1", _title())
    v2 = _publish(store, buckets, "run2", _title(**{"v360/seg_00000.ts": b"take 2"}))
    v3 = _publish(store, buckets, "run3", _title(**{"v360/seg_00000.ts": b"take 3"}))
    folders = {k.split("/")[2] for k in store.list(buckets.distribution, f"web/{ASSET}/") if k.count("/") > 2}
    assert folders == {v2, v3}, f"v1 {v1} is referenced by no master any more: deleted; v2 by the replaced one: kept"
    assert len(store.list(buckets.distribution, f"web/{ASSET}/{v2}/")) == len(_title()), "the kept version is whole"


def test_a_title_published_before_versions_keeps_its_old_folders_until_the_next_publish(s3):
    """The first versioned publish over an unversioned title: the old master's folders stay (players still hold it);
    what it did not name (posters/) goes; the publish after deletes the old folders too."""
    store, buckets = s3
    for name, data in {**_title(), "master.m3u8": b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv360/index.m3u8\n"}.items():
        store.put_bytes(data, buckets.distribution, f"web/{ASSET}/{name}")
    v1 = _publish(store, buckets, "run1", _title(**{"v360/seg_00000.ts": b"take 1"}))
    left = set(store.list(buckets.distribution, f"web/{ASSET}/"))
    assert f"web/{ASSET}/v360/seg_00000.ts" in left and f"web/{ASSET}/posters/p1.jpg" not in left
    _publish(store, buckets, "run2", _title(**{"v360/seg_00000.ts": b"take 2"}))
    left = set(store.list(buckets.distribution, f"web/{ASSET}/"))
    assert not [k for k in left if k.startswith(f"web/{ASSET}/v360/")] and any(v1 in k for k in left)


def test_a_sidecar_only_publish_adds_its_locale_in_a_new_version_from_the_previous_publish(s3):
    store, buckets = s3
    v1 = _publish(store, buckets, "run1", _title())
    before = _bytes(store, buckets)
    store.put_bytes(b"#EXTM3U subs", buckets.work, f"{ASSET}/run2/hls/subs_es-ES/index.m3u8")
    store.put_bytes(b"WEBVTT", buckets.work, f"{ASSET}/run2/hls/subs_es-ES/seg_00000.vtt")
    caption = {"kind": "captions", "locale": "es-ES", "file": "es.vtt", "status": "ok", "warnings": [], "reasons": [],
               "hls_uri": f"s3://{buckets.work}/{ASSET}/run2/hls/", "files": ["subs_es-ES/index.m3u8",
               "subs_es-ES/seg_00000.vtt"], "rendition": {"uri": "subs_es-ES/index.m3u8", "language": "es-ES",
               "name": "Español"}}  # fmt: skip
    sidecar = {**INGESTED, "delivery_id": "d2", "delivered_at": "2026-12-04T02:00:00Z"}
    out = flow.publish(store, buckets, ingested=sidecar, transcoded=None, localized=[caption])
    assert out["locales"] == {"es-ES": "published"}
    v2 = flow.published_state(store, buckets, ASSET)["version"]
    assert v2 != v1
    after = _bytes(store, buckets)
    assert sorted(k for k, data in before.items() if after.get(k) != data) == [f"web/{ASSET}/master.m3u8"]
    assert after[f"web/{ASSET}/{v2}/subs_es-ES/seg_00000.vtt"] == b"WEBVTT"
    assert after[f"web/{ASSET}/{v2}/v360/seg_00000.ts"] == b"video 0", "the ladder comes from the previous publish"
    master = _master(store, buckets)
    assert f'URI="{v2}/subs_es-ES/index.m3u8"' in master and f"\n{v2}/v360/index.m3u8\n" in master


@pytest.mark.parametrize("channels", [["web", "ott_partner"]])
def test_every_channel_gets_the_same_version(s3, channels):
    store, buckets = s3
    flow.publish(store, buckets, ingested={**INGESTED, "channels": channels},
                 transcoded=_transcode(store, buckets, "run1", _title()), localized=[])  # fmt: skip
    version = flow.published_state(store, buckets, ASSET)["version"]
    for ch in channels:
        assert f"{ch}/{ASSET}/{version}/v360/index.m3u8" in store.list(buckets.distribution, f"{ch}/{ASSET}/")


class _DiesAfterTheSwitch:
    """The store, except that the first listing of the whole title folder (publish's clean-up, after the master
    switch) fails, as when the worker dies there; the task's retry then runs on the plain store."""

    def __init__(self, store, prefix: str):
        self.store, self.prefix, self.died = store, prefix, False

    def __getattr__(self, name):
        return getattr(self.store, name)

    def list(self, bucket, prefix):
        if prefix == self.prefix and not self.died:
            self.died = True
            raise ConnectionError("worker died")
        return self.store.list(bucket, prefix)


def test_a_publish_retried_after_its_master_switch_still_keeps_the_previous_version(s3):
    store, buckets = s3
    _publish(store, buckets, "run1", _title())
    v2 = _publish(store, buckets, "run2", _title(**{"v360/seg_00000.ts": b"take 2"}))
    dying = _DiesAfterTheSwitch(store, f"web/{ASSET}/")
    with pytest.raises(ConnectionError):
        _publish(dying, buckets, "run3", _title(**{"v360/seg_00000.ts": b"take 3"}))
    v3 = _publish(store, buckets, "run3", _title(**{"v360/seg_00000.ts": b"take 3"}))  # Airflow's retry
    folders = {k.split("/")[2] for k in store.list(buckets.distribution, f"web/{ASSET}/") if k.count("/") > 2}
    assert folders == {v2, v3}, "the version live before this publish stays: players may still hold its master"
