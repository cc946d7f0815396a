"""Viewing-event drops through the GX suite on a real S3 API: bad rows quarantined with counts, never dropped."""

from __future__ import annotations

import io
import json

import pandas as pd

from mediaflow import feedback as fb

GOOD = "title,territory,locale,session,position_s,event,timestamp,poster\n"
ROWS = [
    "film,US,en-US,s1,0,impression,2026-11-27T20:00:00Z,a",
    "film,US,en-US,s1,0,play,2026-11-27T20:00:05Z,",
    "film,US,en-US,s1,42.5,stop,2026-11-27T20:00:47Z,",
    "film,usa,en-US,s2,0,play,2026-11-27T20:01:00Z,",  # territory
    "film,US,en-US,s3,-4,play,2026-11-27T20:01:00Z,",  # negative position
    "film,US,en-US,s4,0,rewind,2026-11-27T20:01:00Z,",  # unknown event
    "film,US,en-US,s5,abc,play,yesterday,",  # position and timestamp
    ",US,english,s6,0,play,2026-11-27T20:01:00Z,",  # title missing, bad locale
]


def test_suite_keeps_good_rows_and_names_every_reason_for_the_bad():
    result = fb.validate_events(
        pd.read_csv(io.StringIO(GOOD + "\n".join(ROWS)), dtype=str, keep_default_na=False, na_values=[""])
    )
    assert len(result["valid"]) == 3 and len(result["bad"]) == 5 and result["rows"] == 8
    assert result["valid"]["position_s"].tolist() == [0.0, 0.0, 42.5]
    assert str(result["valid"]["timestamp"].dt.tz) == "UTC"
    reasons = dict(zip(result["bad"]["session"], result["bad"]["reasons"], strict=False))
    assert reasons["s2"] == "territory 'usa' is not ISO 3166-1 alpha-2"
    assert reasons["s3"] == "position_s -4.0 is negative"
    assert "event 'rewind' is not one of" in reasons["s4"]
    assert (
        "position_s is missing or not a number" in reasons["s5"]
        and "timestamp is missing or does not parse" in reasons["s5"]
    )
    assert "title is missing" in reasons["s6"] and "locale 'english' is not a BCP 47 tag" in reasons["s6"]
    assert result["counts"]["position_s {value} is negative"] == 1
    assert sum(result["counts"].values()) == 7  # s5 and s6 fail two checks each


def test_a_file_without_a_required_column_quarantines_every_row():
    result = fb.validate_events(
        pd.DataFrame({"title": ["film"], "territory": ["US"], "session": ["s"], "event": ["play"]})
    )
    assert result["valid"].empty and len(result["bad"]) == 1
    assert "file lacks required column(s) locale, position_s, timestamp" in result["bad"]["reasons"].iloc[0]


def test_drops_are_ingested_once_with_bad_rows_in_quarantine(s3):
    store, buckets = s3
    store.put_bytes((GOOD + "\n".join(ROWS)).encode(), buckets.landing, "viewing-events/2026-11-27/a.csv")
    parquet = io.BytesIO()
    fb.synthetic_events([{"asset_id": "film", "duration_s": 60, "territories": ["US"], "locales": ["en-US"]}],
                        sessions_per_title=10).to_parquet(parquet)  # fmt: skip
    store.put_bytes(parquet.getvalue(), buckets.landing, "viewing-events/2026-11-27/b.parquet")
    store.put_bytes(b"\x00not parquet", buckets.landing, "viewing-events/2026-11-27/c.parquet")
    assert fb.pending_drops(store, buckets) == [
        f"viewing-events/2026-11-27/{n}" for n in ("a.csv", "b.parquet", "c.parquet")
    ]

    records = {k.rsplit("/", 1)[-1]: fb.ingest_drop(store, buckets, k) for k in fb.pending_drops(store, buckets)}
    assert (records["a.csv"]["valid"], records["a.csv"]["quarantined"]) == (3, 5)
    assert records["b.parquet"]["quarantined"] == 0 and records["b.parquet"]["valid"] == 40
    assert "not readable" in records["c.parquet"]["file_rejected"]
    assert fb.pending_drops(store, buckets) == []

    bad = pd.read_csv(io.BytesIO(store.get_bytes(buckets.quarantine, "viewing-events/2026-11-27__a.csv.rejected.csv")))
    assert sorted(bad["session"]) == ["s2", "s3", "s4", "s5", "s6"] and bad["reasons"].notna().all()
    counts = json.loads(store.get_bytes(buckets.quarantine, "viewing-events/2026-11-27__a.csv.counts.json"))
    assert counts["quarantined"] == 5 and counts["counts"]["territory {value!r} is not ISO 3166-1 alpha-2"] == 1
    assert "viewing-events/2026-11-27__c.parquet" in store.list(buckets.quarantine, "viewing-events/")
    assert len(fb.load_events(store, buckets)) == 43


def test_the_feedback_pass_publishes_figures_and_priorities_from_published_state(s3):
    """What compute_feedback does: events + published state -> feedback/latest/, which the batch then reads."""
    store, buckets = s3
    assert fb.read_priorities(store, buckets) is None  # no feedback yet: the batch keeps its own order
    state = {"asset_id": "show-s01e01", "source": {"duration_s": 60.0}, "locales": {"captions:es-ES": {}}}
    store.put_bytes(json.dumps(state).encode(), buckets.reports, "published/show-s01e01.json")
    spec = {"asset_id": "show-s01e01", "duration_s": 60, "territories": ["BR"], "locales": ["pt-BR", "es-ES"]}
    buf = io.BytesIO()
    fb.synthetic_events([spec], seed=5, sessions_per_title=200).to_parquet(buf)
    store.put_bytes(buf.getvalue(), buckets.landing, "viewing-events/d1.parquet")
    ingested = [fb.ingest_drop(store, buckets, k) for k in fb.pending_drops(store, buckets)]

    events = fb.load_events(store, buckets)
    catalog = fb.catalog_for(store, buckets, events["title"].unique(), original_locale="en-US")
    assert catalog == {"show-s01e01": {"duration_s": 60.0, "locales": ["en-US", "es-ES"]}}
    uris = fb.publish(store, buckets, fb.compute(events, catalog), run="manual__1", generated_at="2026-11-28T00:00:00Z",
                      ingested=ingested)  # fmt: skip
    assert uris["priorities.json"] == f"s3://{buckets.reports}/feedback/latest/priorities.json"
    page = store.get_bytes(buckets.reports, "feedback/latest/index.html").decode()
    assert "<polyline" in page and "show-s01e01" in page  # the retention chart
    table = fb.read_priorities(store, buckets)
    assert set(table["titles"]) == {"show-s01e01"} and set(table["series"]) == {"show"}
    recs = json.loads(store.get_bytes(buckets.reports, "feedback/latest/recommendations.json"))["recommendations"]
    assert [(r["asset_id"], r["territory"], r["locale"]) for r in recs] == [("show-s01e01", "BR", "pt-BR")]
    figures = pd.read_parquet(io.BytesIO(store.get_bytes(buckets.reports, "feedback/latest/figures.parquet")))
    assert (
        figures[["title", "territory"]].values.tolist() == [["show-s01e01", "BR"]] and figures["starts"].iloc[0] > 100
    )


def test_the_daily_digest_lists_the_localization_recommendations(s3):
    from mediaflow import report

    store, buckets = s3
    assert fb.read_recommendations(store, buckets) == []
    recs = [{"asset_id": "film", "territory": "BR", "locale": "pt-BR", "starts": 25, "share": 1.0,
             "action": "add captions or audio in pt-BR"}]  # fmt: skip
    store.put_bytes(
        json.dumps({"recommendations": recs}).encode(), buckets.reports, "feedback/latest/recommendations.json"
    )
    mail = report.digest_mail({}, owners=["o@example.com"], day="2026-11-28", report_link=None,
                              recommendations=fb.read_recommendations(store, buckets))  # fmt: skip
    assert "Localization recommendations (1)" in mail["html"]
    assert '<td>film</td><td>BR</td><td>pt-BR</td><td align="right">25</td>' in mail["html"]
    assert (
        "Localization recommendations"
        not in report.digest_mail({}, owners=[], day="2026-11-28", report_link=None)["html"]
    )
