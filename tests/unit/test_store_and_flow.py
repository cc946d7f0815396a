"""Keys and buckets, publish order, run outcomes, stage spans, and media facts."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from mediaflow import flow, media
from mediaflow.stages import stage_spans, union_seconds
from mediaflow.store import Buckets, delivery_location, outcome_key, run_key, work_prefix

BUCKETS = Buckets(landing="land", work="work", distribution="dist", quarantine="quar", reports="rep")

# ---------------------------------------------------------------- store


def test_delivery_id_resolves_to_the_landing_bucket():
    assert delivery_location("bbb-s01e01", BUCKETS) == ("land", "deliveries/bbb-s01e01/", "bbb-s01e01")
    assert delivery_location("  d1 ", BUCKETS) == ("land", "deliveries/d1/", "d1")


@pytest.mark.parametrize(
    "ref,expected",
    [
        ("s3://b/some/prefix/d1/", ("b", "some/prefix/d1/", "d1")),
        ("s3://b/some/prefix/d1", ("b", "some/prefix/d1/", "d1")),
        ("s3://other-bucket/d2/", ("other-bucket", "d2/", "d2")),
    ],
)
def test_s3_prefix_resolves_to_its_bucket_and_last_folder(ref, expected):
    assert delivery_location(ref, BUCKETS) == expected


@pytest.mark.parametrize("ref", ["../x", "a/b", "", "   ", "s3://", "s3://b", "s3://b/", "..", "-lead", "a b", None])
def test_invalid_delivery_refs_raise_with_a_message(ref):
    with pytest.raises(ValueError) as err:
        delivery_location(ref, BUCKETS)
    assert "delivery" in str(err.value) or "s3://" in str(err.value), str(err.value)
    assert len(str(err.value)) > 20


def test_run_key_is_safe_and_deterministic():
    run_id = "manual__2026-11-28T01:00:00+00:00"
    key = run_key(run_id)
    assert re.fullmatch(r"[A-Za-z0-9._-]+", key), key
    assert key == run_key(run_id)
    assert key.startswith("manual__2026-11-28T01")
    assert run_key("scheduled__2026-11-28T01:00:00+00:00") != key
    assert work_prefix("bbb-s01e01", run_id) == f"bbb-s01e01/{key}/"
    assert outcome_key("value_stream__news_clip", run_id) == f"outcomes/value_stream__news_clip/{key}.json"


def test_buckets_default_prefix(monkeypatch):
    for role in Buckets.roles():
        monkeypatch.delenv(f"MEDIAFLOW_BUCKET_{role.upper()}", raising=False)
    monkeypatch.delenv("MEDIAFLOW_BUCKET_PREFIX", raising=False)
    b = Buckets.from_env()
    assert b.all() == [
        "mediaflow-landing",
        "mediaflow-work",
        "mediaflow-distribution",
        "mediaflow-quarantine",
        "mediaflow-reports",
    ]


def test_buckets_honour_prefix_and_per_role_override(monkeypatch):
    for role in Buckets.roles():
        monkeypatch.delenv(f"MEDIAFLOW_BUCKET_{role.upper()}", raising=False)
    monkeypatch.setenv("MEDIAFLOW_BUCKET_PREFIX", "acme")
    monkeypatch.setenv("MEDIAFLOW_BUCKET_DISTRIBUTION", "cdn-origin")
    b = Buckets.from_env()
    assert b.landing == "acme-landing"
    assert b.work == "acme-work"
    assert b.distribution == "cdn-origin"
    assert b.quarantine == "acme-quarantine"
    assert b.reports == "acme-reports"


# ---------------------------------------------------------------- publish order


def test_publish_order_segments_then_media_playlists_then_master_last():
    files = [
        "master.m3u8",
        "v720/index.m3u8",
        "audio/index.m3u8",
        "v720/seg_00001.ts",
        "poster.jpg",
        "v720/seg_00000.ts",
        "audio/seg_00000.ts",
        "v360/index.m3u8",
        "v360/seg_00000.ts",
    ]
    order = flow.publish_order(files)
    assert sorted(order) == sorted(files), "nothing dropped or added"
    assert order[-1] == "master.m3u8"
    last_media = max(i for i, f in enumerate(order) if not f.endswith(".m3u8"))
    first_playlist = min(i for i, f in enumerate(order) if f.endswith(".m3u8"))
    assert last_media < first_playlist, order
    for pl in ("v720/index.m3u8", "v360/index.m3u8", "audio/index.m3u8"):
        folder = pl.split("/")[0]
        segs = [i for i, f in enumerate(order) if f.startswith(folder + "/") and f.endswith(".ts")]
        assert max(segs) < order.index(pl)


# ---------------------------------------------------------------- outcome

FINISHED = datetime(2026, 11, 28, 3, 30, tzinfo=UTC)
ACCEPTED = {
    "status": "accepted",
    "reasons": [],
    "asset_id": "bbb-s01e01",
    "delivery_id": "bbb-s01e01",
    "delivered_at": "2026-11-28T01:00:00Z",
    "source": {"duration_s": 8.0},
    "quarantine_uri": None,
}
PUBLISHED = [
    {"channel": "web", "territories": ["US"], "uri": "s3://dist/web/bbb-s01e01/master.m3u8", "local_path": None}
]


def run_outcome(ingested, published, failed, locales=None, reasons=None):
    result = {"published": published, "locales": locales or {}, "reasons": reasons or [], "warnings": []}
    return flow.outcome(
        dag_run_id="manual__1",
        value_stream="series_episode",
        ingested=ingested,
        published=result if published is not None else None,
        failed_tasks=failed,
        finished_at=FINISHED,
    )


def test_outcome_with_a_rejected_locale_is_still_published_and_says_why():
    reason = "locale pt-BR (captions) rejected: pt-BR.srt: cue 2 (line 6): unparseable timestamp"
    out = run_outcome(
        ACCEPTED, PUBLISHED, [], locales={"es-ES": "published", "pt-BR": "rejected: pt-BR.srt: cue 2"}, reasons=[reason]
    )
    assert out["status"] == "published"
    assert out["locales"] == {"es-ES": "published", "pt-BR": "rejected: pt-BR.srt: cue 2"}
    assert out["reasons"] == [reason]
    mail = flow.locale_rejection_mail(out, owners=["vs-owner@example.com"])
    assert mail["to"] == ["vs-owner@example.com"]
    assert "bbb-s01e01" in mail["subject"] and "pt-BR" in mail["subject"] and "es-ES" not in mail["subject"]
    assert "cue 2" in mail["html"]
    assert flow.locale_rejection_mail(run_outcome(ACCEPTED, PUBLISHED, []), owners=["x@example.com"]) is None


def test_outcome_rejected_keeps_the_reasons():
    ingested = {
        "status": "rejected",
        "reasons": ["manifest.json: required field 'title' is missing"],
        "asset_id": None,
        "delivery_id": "d1",
        "quarantine_uri": "s3://quar/deliveries/d1/",
    }
    out = run_outcome(ingested, None, ["transcode.transcode_ladder"])
    assert out["status"] == "rejected"
    assert out["reasons"] == ["manifest.json: required field 'title' is missing"]
    assert out["quarantine_uri"] == "s3://quar/deliveries/d1/"
    assert out["published"] == [] and out["lead_time_s"] is None
    assert out["delivery_id"] == "d1"


def test_outcome_published_with_lead_time_from_delivery():
    out = run_outcome(ACCEPTED, PUBLISHED, [])
    assert out["status"] == "published" and out["reasons"] == []
    assert out["lead_time_s"] == 2.5 * 3600
    assert out["published"] == PUBLISHED
    assert out["asset_id"] == "bbb-s01e01" and out["value_stream"] == "series_episode"
    assert out["dag_run_id"] == "manual__1"


def test_outcome_failed_task_names_the_task():
    out = run_outcome(ACCEPTED, PUBLISHED, ["transcode.transcode_ladder"])
    assert out["status"] == "failed"
    assert any("transcode.transcode_ladder" in r for r in out["reasons"]), out["reasons"]
    assert out["lead_time_s"] is None


def test_outcome_without_ingest_result_is_failed_with_a_reason():
    out = run_outcome(None, None, [])
    assert out["status"] == "failed" and out["reasons"]


# ---------------------------------------------------------------- stage spans

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def test_union_seconds_merges_overlaps_and_keeps_gaps():
    iv = [(T0 + timedelta(minutes=a), T0 + timedelta(minutes=b)) for a, b in [(3, 8), (0, 5), (10, 12), (4, 6)]]
    assert union_seconds(iv) == 10 * 60
    assert union_seconds([]) == 0


def test_stage_spans():
    attempts = [
        {"stage": "transcode", "start": at(12), "end": at(17), "try_number": 1},
        {"stage": "transcode", "start": at(15), "end": at(20), "try_number": 1},
        {"stage": "transcode", "start": at(25), "end": at(27), "try_number": 2},  # a retry after a gap
        {"stage": "ingest", "start": at(1), "end": at(3), "try_number": 1},
        {"stage": "ingest", "start": at(2), "end": at(4), "try_number": 1},
        {"stage": "publish", "start": at(30), "end": None, "try_number": 1},  # still running: an open span
    ]
    spans = stage_spans(
        attempts,
        stage_order=["ingest", "transcode", "publish"],
        queued_at=at(0),
        slas_s={"ingest": 10 * 60, "transcode": 10 * 60},
        now=T0 + timedelta(minutes=31),
    )
    assert [s["stage"] for s in spans] == ["ingest", "transcode", "publish"]
    ingest, transcode, publish = spans
    assert publish["ended_at"] is None and publish["active_s"] == 60 and publish["wait_s"] == 3 * 60
    assert ingest["started_at"] == at(1) and ingest["ended_at"] == at(4)
    assert ingest["active_s"] == 3 * 60
    assert ingest["wait_s"] == 60, "first stage waits from the run's queue time"
    assert ingest["attempts"] == 1
    assert ingest["sla_missed"] is False and ingest["sla_s"] == 600

    assert transcode["active_s"] == (8 + 2) * 60, "overlaps counted once, gaps not counted"
    assert transcode["wait_s"] == (12 - 4) * 60, "wait = start minus the previous stage's end"
    assert transcode["attempts"] == 2
    assert transcode["sla_missed"] is True, "12..27 is 15 min against a 10 min SLA"


def test_stage_spans_without_queue_time_or_sla():
    spans = stage_spans(
        [{"stage": "custom", "start": at(0), "end": at(1)}], stage_order=["ingest"], queued_at=None, slas_s={}
    )
    assert spans == [
        {
            "stage": "custom",
            "started_at": at(0),
            "ended_at": at(1),
            "active_s": 60.0,
            "wait_s": None,
            "attempts": 1,
            "sla_s": None,
            "sla_missed": None,
        }
    ]


# ---------------------------------------------------------------- media

DECODE_LOG = """\
[info] Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'broken.mp4':
[h264 @ 0x5581] [error] Invalid NAL unit size (1234 > 567).
[h264 @ 0x5581] [error] Error splitting the input into NAL units.
[h264 @ 0x5581] [error] Invalid NAL unit size (1234 > 567).
[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55] [warning] stream 0, offset 0x1234: partial file
[Parsed_ebur128_0 @ 0x5590] [info] Summary:

  Integrated loudness:
    I:         -99.0 LUFS
"""
# stdout: -progress blocks and ebur128's frame metadata (mediaflow.loudness.METER), one line each
DECODE_STDOUT = """\
frame:0    pts:0       pts_time:0
lavfi.r128.M=-23.000
lavfi.r128.I=-23.000
lavfi.r128.LRA=0.000
lavfi.r128.true_peak=0.891
out_time_us=100000
progress=end
"""


def test_parse_decode_log_errors_and_loudness():
    errors, loudness = media.parse_decode_log(DECODE_LOG, DECODE_STDOUT)
    assert errors == ["Invalid NAL unit size (1234 > 567).", "Error splitting the input into NAL units."]
    assert loudness == {"integrated_lufs": -23.0, "lra_lu": 0.0, "true_peak_dbtp": -1.0, "threshold_lufs": None}, (
        "figures from the metadata, never from the log's summary"
    )


def test_parse_decode_log_clean_and_silent():
    assert media.parse_decode_log("[info] all good\n", "out_time_us=1\nprogress=end\n") == ([], None)
    silent = "lavfi.r128.M=-120.000\nlavfi.r128.I=-70.000\nlavfi.r128.LRA=0.000\nlavfi.r128.true_peak=0.000\n"
    _, loudness = media.parse_decode_log("", silent)
    assert loudness == {"integrated_lufs": None, "lra_lu": 0.0, "true_peak_dbtp": None, "threshold_lufs": None}


def probe_doc(*streams, duration="10.0"):
    return {"format": {"format_name": "mov,mp4", "duration": duration}, "streams": list(streams)}


VIDEO = {
    "codec_type": "video",
    "codec_name": "h264",
    "width": 1920,
    "height": 1080,
    "avg_frame_rate": "25/1",
    "r_frame_rate": "25/1",
    "field_order": "progressive",
}
AUDIO = {"codec_type": "audio", "codec_name": "aac", "channels": 2}


@pytest.mark.parametrize(
    "rotation_fields",
    [
        {"side_data_list": [{"side_data_type": "Display Matrix", "rotation": -90}]},
        {"side_data_list": [{"rotation": 90}]},
        {"tags": {"rotate": "90"}},
        {"tags": {"rotate": "270"}},
    ],
    ids=["display-matrix--90", "display-matrix-90", "tag-90", "tag-270"],
)
def test_facts_from_probe_rotation_swaps_width_and_height(rotation_fields):
    facts = media.facts_from_probe(probe_doc({**VIDEO, **rotation_fields}, AUDIO))
    assert (facts["video"]["width"], facts["video"]["height"]) == (1080, 1920)


def test_facts_from_probe_plain_video():
    facts = media.facts_from_probe(probe_doc(VIDEO, AUDIO))
    assert facts["video"] == {
        "codec": "h264",
        "width": 1920,
        "height": 1080,
        "fps": 25.0,
        "interlaced": False,
        "vfr": False,
        "sar": 1.0,
        "index": 0,
    }
    assert facts["audio_streams"] == 1 and facts["duration_s"] == 10.0
    assert facts["audio"] == {"codec": "aac", "channels": 2, "index": 1}


def test_a_broadcast_transport_stream_picks_the_largest_video_and_the_audio_of_its_programme():
    """Two programmes (an SD service and a bigger one), each with its audio; teletext and DVB subtitles beside them;
    an audio PID without packets (0 channels) listed first in the bigger programme."""
    streams = [
        {**VIDEO, "index": 0, "width": 352, "height": 288},
        {**AUDIO, "index": 1, "codec_name": "mp2"},
        {"index": 2, "codec_type": "subtitle", "codec_name": "dvb_teletext"},
        {**VIDEO, "index": 3, "width": 720, "height": 576, "codec_name": "mpeg2video"},
        {**AUDIO, "index": 4, "codec_name": "ac3", "channels": 0},
        {**AUDIO, "index": 5, "codec_name": "mp2"},
        {"index": 6, "codec_type": "subtitle", "codec_name": "dvb_subtitle"},
    ]
    doc = {
        "format": {"format_name": "mpegts", "duration": "10.0"},
        "streams": streams,
        "programs": [
            {"program_id": 1, "streams": [{"index": 0}, {"index": 1}, {"index": 2}]},
            {"program_id": 2, "streams": [{"index": 3}, {"index": 4}, {"index": 5}, {"index": 6}]},
        ],
    }
    facts = media.facts_from_probe(doc)
    assert (facts["video"]["index"], facts["video"]["width"]) == (3, 720)
    assert (facts["audio"]["index"], facts["audio"]["codec"]) == (5, "mp2"), "the first audio of the video's programme"
    assert facts["audio_streams"] == 3
    no_programs = media.facts_from_probe({**doc, "programs": []})
    assert no_programs["audio"]["index"] == 1, "without programmes: the first audio that has channels"


def test_facts_from_probe_non_square_pixels():
    facts = media.facts_from_probe(probe_doc({**VIDEO, "width": 720, "height": 576, "sample_aspect_ratio": "64:45"}))
    assert facts["video"]["sar"] == pytest.approx(64 / 45, abs=1e-6)
    unknown = media.facts_from_probe(probe_doc({**VIDEO, "sample_aspect_ratio": "0:1"}))
    assert unknown["video"]["sar"] == 1.0


@pytest.mark.parametrize(
    "order,interlaced",
    [("tt", True), ("bb", True), ("tb", True), ("progressive", False), ("unknown", False), (None, False)],
)
def test_facts_from_probe_field_order(order, interlaced):
    facts = media.facts_from_probe(probe_doc({**VIDEO, "field_order": order}))
    assert facts["video"]["interlaced"] is interlaced


def test_facts_from_probe_variable_frame_rate():
    facts = media.facts_from_probe(probe_doc({**VIDEO, "avg_frame_rate": "2997/100", "r_frame_rate": "30/1"}))
    assert facts["video"]["vfr"] is True and facts["video"]["fps"] == 29.97


def test_facts_from_probe_audio_only_and_cover_art():
    cover = {**VIDEO, "codec_name": "mjpeg", "disposition": {"attached_pic": 1}}
    facts = media.facts_from_probe(probe_doc(AUDIO, cover, duration="3600.5"))
    assert facts["video"] is None, "cover art is not a picture to encode"
    assert facts["audio_streams"] == 1 and facts["duration_s"] == 3600.5


def test_probe_empty_file_names_the_file(tmp_path):
    empty = tmp_path / "upload.mp4"
    empty.write_bytes(b"")
    with pytest.raises(media.MediaError) as err:
        media.probe(empty)
    assert "upload.mp4" in str(err.value) and "empty" in str(err.value)


def test_probe_garbage_file_names_the_file(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 100)
    with pytest.raises(media.MediaError) as err:
        media.probe(junk)
    assert "junk.mp4" in str(err.value)


# ---------------------------------------------------------------- spans on hand-built ledgers


def _row(stage, start, end, tries=1):
    return {"stage": stage, "start": at(start), "end": at(end) if end is not None else None, "try_number": tries}


def test_parallel_tasks_count_once_not_summed():
    rows = [_row("compliance", 0, 4), _row("compliance", 1, 3), _row("compliance", 2, 6)]
    (span,) = stage_spans(rows, stage_order=["compliance"], queued_at=None, slas_s={})
    assert span["active_s"] == 6 * 60 and span["started_at"] == at(0) and span["ended_at"] == at(6)


def test_mapped_locales_and_a_retry_keep_every_attempt():
    rows = [
        _row("localize", 10, 12),
        _row("localize", 10, 11),  # two map indexes in parallel
        _row("localize", 13, 14, tries=1),
        _row("localize", 15, 17, tries=2),
    ]  # a retry: both attempts count
    (span,) = stage_spans(rows, stage_order=["localize"], queued_at=None, slas_s={"localize": 5 * 60})
    assert span["attempts"] == 2
    assert span["active_s"] == (2 + 1 + 2) * 60, "the failed attempt's time is kept, not erased by the retry"
    assert span["sla_missed"] is True  # 10 -> 17 is 7 minutes


def test_review_rework_adds_time_instead_of_replacing_it():
    rows = [_row("review", 20, 30, tries=1), _row("review", 50, 55, tries=2)]  # rejected, reworked, approved
    spans = stage_spans(
        [_row("compliance", 10, 20)] + rows, stage_order=["compliance", "review"], queued_at=at(0), slas_s={}
    )
    review = spans[1]
    assert review["active_s"] == 15 * 60 and review["ended_at"] == at(55) and review["attempts"] == 2
    assert review["wait_s"] == 0.0 and spans[0]["wait_s"] == 10 * 60


def test_a_stage_still_running_is_open_and_can_already_miss_its_sla():
    now = T0 + timedelta(minutes=40)
    rows = [_row("ingest", 0, 2), _row("transcode", 3, None)]
    ingest, transcode = stage_spans(
        rows, stage_order=["ingest", "transcode"], queued_at=at(0), slas_s={"transcode": 30 * 60}, now=now
    )
    assert transcode["ended_at"] is None
    assert transcode["active_s"] == 37 * 60 and transcode["wait_s"] == 60
    assert transcode["sla_missed"] is True
    early = stage_spans(
        rows,
        stage_order=["ingest", "transcode"],
        queued_at=at(0),
        slas_s={"transcode": 30 * 60},
        now=T0 + timedelta(minutes=10),
    )[1]
    assert early["sla_missed"] is False and early["active_s"] == 7 * 60


def test_an_older_delivery_never_replaces_a_newer_live_one():
    live = {"asset_id": "bbb-s01e01", "delivery_id": "bbb-v2", "delivered_at": "2026-11-28T02:00:00Z"}
    older = {**ACCEPTED, "delivery_id": "bbb-v1", "delivered_at": "2026-11-28T01:00:00Z"}
    newer = {**ACCEPTED, "delivery_id": "bbb-v3", "delivered_at": "2026-11-28T03:00:00Z"}
    why = flow.superseded_by(live, older)
    assert why and "bbb-v2" in why and "bbb-v1" in why and "newer" in why
    assert flow.superseded_by(live, newer) is None
    assert flow.superseded_by(live, {**older, "delivery_id": "bbb-v2"}) is None, "its own re-run may publish again"
    assert flow.superseded_by(None, older) is None and flow.superseded_by({"asset_id": "x"}, older) is None
    out = run_outcome(older, [], [], reasons=[why])  # what publish returns: nothing published, the reason
    assert out["status"] == "rejected" and out["reasons"] == [why]


class SlowRecordingStore:
    """Copies take a few milliseconds, as on a real S3 API; every write is recorded in the order it completed."""

    def __init__(self, objects):
        import threading

        self.objects, self.writes, self.lock = dict(objects), [], threading.Lock()
        self.in_flight = self.most_in_flight = 0

    def list(self, bucket, prefix):
        return {k: {"size": len(v), "etag": "x", "last_modified": "2026-11-28T01:00:00Z"}
                for (b, k), v in self.objects.items() if b == bucket and k.startswith(prefix)}  # fmt: skip

    def get_bytes(self, bucket, key):
        return self.objects[(bucket, key)]

    def put_bytes(self, data, bucket, key, *, cache_control=None):
        with self.lock:
            self.objects[(bucket, key)] = data
            self.writes.append(key)

    def copy(self, src_bucket, src_key, dst_bucket, dst_key, *, cache_control=None):
        import time

        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        time.sleep(0.005)
        with self.lock:
            self.in_flight -= 1
            self.objects[(dst_bucket, dst_key)] = self.objects[(src_bucket, src_key)]
            self.writes.append(dst_key)

    def delete(self, bucket, keys):
        for k in keys:
            self.objects.pop((bucket, k), None)


def test_publish_copies_many_segments_at_once_and_still_no_playlist_before_its_segments():
    """A long title has thousands of segments: they are copied several at a time, yet a reader of the channel never
    finds a playlist whose segments are not there yet, nor the master before every playlist: the version's objects
    first (media, then playlists), then the switch points, the default poster and the master last."""
    files = [f"v{h}/seg_{i:05d}.ts" for h in (720, 360) for i in range(60)] + ["v720/index.m3u8", "v360/index.m3u8",
             "audio/seg_00000.ts", "audio/index.m3u8", "poster.jpg"]  # fmt: skip
    store = SlowRecordingStore({("work", f"a1/r/hls/{f}"): b"x" for f in files})
    variants = [{"uri": f"v{h}/index.m3u8", "width": h * 16 // 9, "height": h, "fps": 25.0, "peak_bps": 3_000_000,
                 "avg_bps": 2_500_000, "codec": "avc1.64001f"} for h in (720, 360)]  # fmt: skip
    transcoded = {"hls_uri": "s3://work/a1/r/hls/", "files": files, "variants": variants, "audios": [], "posters": []}
    ingested = {"asset_id": "a1", "delivery_id": "d1", "delivered_at": "2026-11-28T01:00:00Z", "source": {},
                "channels": ["web"], "territories": ["US"], "previous": None}  # fmt: skip
    result = flow.publish(store, BUCKETS, ingested=ingested, transcoded=transcoded, localized=[])
    assert [p["channel"] for p in result["published"]] == ["web"]
    written = [w for w in store.writes if w.startswith("web/a1/")]
    version = flow.published_state(store, BUCKETS, "a1")["version"]
    assert sorted(written) == sorted([f"web/a1/{version}/{f}" for f in files] + ["web/a1/poster.jpg",
                                                                                  "web/a1/master.m3u8"])  # fmt: skip
    assert written[-2:] == ["web/a1/poster.jpg", "web/a1/master.m3u8"]
    last_media = max(i for i, w in enumerate(written[:-2]) if not w.endswith(".m3u8"))
    first_playlist = min(i for i, w in enumerate(written[:-2]) if w.endswith(".m3u8"))
    assert last_media < first_playlist
    assert store.most_in_flight > 1, "segments were copied one at a time"


def test_each_makes_every_call_then_raises_the_first_error():
    from mediaflow.store import each

    done = []

    def call(i):
        if i == 3:
            raise RuntimeError("copy 3 failed")
        done.append(i)

    with pytest.raises(RuntimeError, match="copy 3 failed"):
        each(call, list(range(10)), workers=4)
    assert sorted(done) == [0, 1, 2, 4, 5, 6, 7, 8, 9]
