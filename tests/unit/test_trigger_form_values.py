"""The trigger form's choices as plain functions: locale subset, reviewer override, and ingest honouring them."""

from __future__ import annotations

import json
import re

import pytest

from mediaflow import flow, trigger_form
from mediaflow.spec import load_specs
from mediaflow.store import Buckets, published_state_key


def items(*locales):
    return [{"kind": "captions", "locale": loc, "file": f"{loc}.vtt"} for loc in locales]


@pytest.mark.parametrize("value, expected", [
    (None, None), ([], None), ([""], None), (["", " "], None), ("", None),
    (["es-ES"], ["es-ES"]), (["es-ES", "", "fr"], ["es-ES", "fr"]), ("es-ES\nfr", ["es-ES", "fr"]), ("es-ES, fr", ["es-ES", "fr"]),
])  # fmt: skip
def test_wanted_locales_empty_means_all(value, expected):
    assert trigger_form.wanted_locales(value) == expected


def test_select_locales_exact_and_language_prefix_case_insensitive():
    all_items = items("en-US", "es-ES", "es-419", "pt-BR", "zh-Hant-TW")
    kept, skipped = trigger_form.select_locales(all_items, ["es"])
    assert [i["locale"] for i in kept] == ["es-ES", "es-419"]
    assert skipped == ["en-US", "pt-BR", "zh-Hant-TW"]
    kept, _ = trigger_form.select_locales(all_items, ["ES-es", "zh-Hant"])
    assert [i["locale"] for i in kept] == ["es-ES", "zh-Hant-TW"]
    # "es" selects es-*, but "e" is no prefix of a tag: only whole subtags match
    assert trigger_form.select_locales(all_items, ["e"])[0] == []


def test_select_locales_empty_keeps_all_and_missing_locale_selects_nothing():
    all_items = items("en-US", "es-ES")
    assert trigger_form.select_locales(all_items, None) == (all_items, [])
    assert trigger_form.select_locales(all_items, []) == (all_items, [])
    assert trigger_form.select_locales(all_items, ["de-DE"]) == ([], ["en-US", "es-ES"])


@pytest.mark.parametrize("tag", ["en", "es-ES", "pt-BR", "es-419", "zh-Hant-TW", "fil"])
def test_locale_pattern_accepts_bcp47_tags(tag):
    assert re.fullmatch(trigger_form.LOCALE_PATTERN, tag)


@pytest.mark.parametrize("tag", ["", "e", "es_ES", "es-", "english", "es-ES-x", "../etc", "es ES"])
def test_locale_pattern_refuses_other_strings(tag):
    assert not re.fullmatch(trigger_form.LOCALE_PATTERN, tag)


@pytest.mark.parametrize("name", ["", "admin", "jane.doe", "ops-reviewer", "a.b@example.com"])
def test_reviewer_pattern_accepts_user_names_or_empty(name):
    assert re.fullmatch(trigger_form.REVIEWER_PATTERN, name)


@pytest.mark.parametrize("name", [" admin", "a b", "-x", "x" * 129, "root;rm"])
def test_reviewer_pattern_refuses_other_strings(name):
    assert not re.fullmatch(trigger_form.REVIEWER_PATTERN, name)


def test_review_assignees_override_then_spec_then_anyone():
    assert trigger_form.review_assignees("jane", ["legal-team"]) == [{"id": "jane", "name": "jane"}]
    assert trigger_form.review_assignees(None, ["a", "b"]) == [{"id": "a", "name": "a"}, {"id": "b", "name": "b"}]
    assert trigger_form.review_assignees("  ", ("a",)) == [{"id": "a", "name": "a"}]
    assert trigger_form.review_assignees("", []) is None


class MemoryStore:
    """Just enough of the Store protocol for ingest of a sidecar-only delivery (no media to probe)."""

    def __init__(self):
        self.objects: dict[tuple[str, str], bytes] = {}

    def list(self, bucket, prefix):
        return {k: {"size": len(v), "etag": "x", "last_modified": "2026-11-28T01:00:00Z"}
                for (b, k), v in self.objects.items() if b == bucket and k.startswith(prefix)}  # fmt: skip

    def get_bytes(self, bucket, key):
        return self.objects[(bucket, key)]

    def put_bytes(self, data, bucket, key, *, cache_control=None):
        self.objects[(bucket, key)] = data

    def copy(self, src_bucket, src_key, dst_bucket, dst_key, *, cache_control=None):
        self.objects[(dst_bucket, dst_key)] = self.objects[(src_bucket, src_key)]

    def delete(self, bucket, keys):
        for k in keys:
            self.objects.pop((bucket, k), None)


@pytest.fixture
def sidecar_delivery():
    """A captions/audio-only delivery for a title already published: ingest accepts it without probing media."""
    store, buckets = MemoryStore(), Buckets("landing", "work", "dist", "quarantine", "reports")
    manifest = {
        "asset_id": "clip-1", "title": "Clip", "value_stream": "news_clip", "territories": ["US"],
        "captions": [{"locale": "es-ES", "file": "es.vtt"}, {"locale": "pt-BR", "file": "pt.vtt"}],
        "audio": [{"locale": "es-ES", "file": "es.wav"}, {"locale": "fr-FR", "file": "fr.wav"}],
        "delivered_at": "2026-11-28T01:00:00Z",
    }  # fmt: skip
    store.put_bytes(json.dumps(manifest).encode(), "landing", "deliveries/d1/manifest.json")
    for name in ("es.vtt", "pt.vtt", "es.wav", "fr.wav"):
        store.put_bytes(b"x", "landing", f"deliveries/d1/{name}")
    store.put_bytes(json.dumps({"source": {"duration_s": 10.0}, "locales": {}}).encode(), "reports",
                    published_state_key("clip-1"))  # fmt: skip
    specs = load_specs()
    return store, buckets, specs


@pytest.mark.parametrize("wanted, kept, skipped", [
    (None, ["es-ES", "pt-BR", "es-ES", "fr-FR"], []),
    ([], ["es-ES", "pt-BR", "es-ES", "fr-FR"], []),
    (["es-ES"], ["es-ES", "es-ES"], ["fr-FR", "pt-BR"]),
    (["fr", "de-DE"], ["fr-FR"], ["es-ES", "pt-BR"]),  # de-DE is not in the delivery: nothing, no error
    (["de-DE"], [], ["es-ES", "fr-FR", "pt-BR"]),
])  # fmt: skip
def test_ingest_keeps_only_the_runs_locales(sidecar_delivery, wanted, kept, skipped):
    store, buckets, specs = sidecar_delivery
    result = flow.ingest(store, buckets, delivery="d1", spec=specs["news_clip"], known_streams=set(specs),
                         run_id="manual__1", locales=wanted)  # fmt: skip
    assert result["status"] == "accepted", result["reasons"]
    assert result["mode"] == "sidecars"
    assert [i["locale"] for i in result["locales"]] == kept
    assert result["locales_skipped"] == skipped
