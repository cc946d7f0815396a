"""The value stream end to end on the real stack, through the same path as `make run`:
deliveries uploaded to the S3 API, runs triggered through Airflow's REST API and executed by its scheduler,
real ffmpeg, published objects checked with ffprobe."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path

import pytest

from mediaflow.ledger import Ledger
from mediaflow.spec import load_specs
from mediaflow.store import Buckets
from mediaflow_dev import runner, samples

pytestmark = pytest.mark.integration

GOOD = {
    # delivery id: (stream, expected (width, height) of each rung, highest first; [] = audio only)
    "sample-feature-1080p": ("feature_film", [(1920, 1080), (1280, 720), (854, 480), (640, 360)]),
    "sample-episode-review": ("series_episode", [(640, 360)]),  # after a person approved its legal review
    "sample-rights-closed-gb": ("news_clip", [(640, 360)]),
    "sample-news-720p": ("news_clip", [(1280, 720), (640, 360)]),
    "sample-vertical-portrait": ("news_clip", [(720, 1280), (360, 640)]),
    "sample-podcast-audio": ("news_clip", []),
    "edge-interlaced-576i": ("news_clip", [(640, 360)]),  # PAL 16:9: 720x576 at SAR 64:45
    "edge-vfr": ("news_clip", [(640, 360)]),
    "edge-embedded-cc": ("news_clip", [(640, 360)]),
}


def _manifest(folder: Path, **overrides) -> None:
    body = {
        "asset_id": folder.name,
        "title": f"Test {folder.name}",
        "value_stream": "news_clip",
        "source": {"file": "clip.mp4"},
        "territories": ["US"],
        "channels": ["web"],
    }
    body.update(overrides)
    body = {k: v for k, v in body.items() if v is not None}
    (folder / "manifest.json").write_text(json.dumps(body, indent=2))


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def _deliveries(root: Path) -> Path:
    d = root / "deliveries"
    samples.generate(d, seconds=6)
    clip = root / "clip.mp4"
    samples.make_video(clip, width=320, height=240, fps=25, seconds=2)

    def folder(name: str, *, source: bool = True) -> Path:
        f = d / name
        f.mkdir(parents=True)
        if source:
            shutil.copy(clip, f / "clip.mp4")
        return f

    _manifest(folder("bad-missing-field"), territories=None)
    _manifest(folder("bad-unknown-stream"), value_stream="telenovela")
    _manifest(folder("bad-unknown-key"), priority=1)
    _manifest(folder("bad-asset-id"), asset_id="shows/../secret")
    _manifest(folder("bad-missing-file", source=False))
    _manifest(folder("bad-fixity"), source={"file": "clip.mp4", "sha256": "0" * 64})
    zero = folder("bad-zero-byte", source=False)
    (zero / "clip.mp4").write_bytes(b"")
    _manifest(zero)
    short = folder("bad-too-short", source=False)
    samples.make_video(short / "clip.mp4", width=320, height=240, fps=25, seconds=0.4)
    _manifest(short)
    inter = folder("edge-interlaced-576i", source=False)
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=720x576:rate=25:duration=3", "-f", "lavfi", "-i", "sine=duration=3",
            "-vf", "setsar=64/45", "-c:v", "libx264", "-preset", "ultrafast", "-flags", "+ildct+ilme", "-x264opts", "tff=1",
            "-field_order", "tt", "-c:a", "aac", "-ac", "2", str(inter / "clip.mp4"))  # fmt: skip
    _manifest(inter)
    vfr = folder("edge-vfr", source=False)
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30:duration=3",
            "-vf", r"select='not(eq(mod(n\,5)\,0))+lt(n\,30)'", "-fps_mode", "vfr",
            "-c:v", "libx264", "-preset", "ultrafast", str(vfr / "clip.mp4"))  # fmt: skip
    _manifest(vfr)
    cc = folder("edge-embedded-cc", source=False)
    (root / "cc.scc").write_text(SCC)
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30000/1001:duration=4", "-f", "lavfi", "-i", "sine=duration=4",
            "-i", str(root / "cc.scc"), "-map", "0", "-map", "1", "-map", "2", "-c:v", "libx264", "-preset", "ultrafast",
            "-c:a", "aac", "-c:s", "copy", str(cc / "clip.mov"))  # fmt: skip
    _manifest(cc, source={"file": "clip.mov"})
    rejected = folder("review-reject")
    _manifest(rejected, value_stream="series_episode")  # legal: human in this stream's spec
    # rights for the test titles (the samples' rows come from include/rights/avails.csv, seeded at stack start)
    rows = [f"{p.name},US,web,2026-01-01T00:00:00Z,2030-01-01T00:00:00Z,false" for p in sorted(d.iterdir())
            if p.is_dir() and not p.name.startswith("sample-")]  # fmt: skip
    (d / "avails.csv").write_text(
        "asset_id,territory,channel,window_start,window_end,exclusive\n" + "\n".join(rows) + "\n"
    )
    return d


# A broadcast-style c608 caption track: pop-on "HELLO WORLD" at 1 s (CEA-608 pairs with odd parity)
SCC = """Scenarist_SCC V1.0

00:00:01:00\t9420 9420 94ae 94ae 9452 9452 c845 4c4c 4f20 574f 524c c480 942c 942c 942f 942f

00:00:03:00\t942c 942c

"""


REVIEWER_REJECTS = {"review-reject": "music licence unclear"}
FIRST_SUMMARY: dict = {}  # the batch as it stood before any review was answered


def _review_and_finish(stack, api, runs) -> tuple[dict, dict]:
    """As a reviewer would: wait until runs end or wait for review, answer every review through the REST API
    (approve, except the deliveries in REVIEWER_REJECTS), wait for the end. Returns (first summary, final summary)."""
    done = runner.wait(stack, runs, timeout_s=900)
    first = runner.summarize(stack, runs, done)
    answered = 0
    waiting = [ti for _, _, run_id, _ in runs for ti in done[run_id][1] if ti["state"] == runner.AWAITING]
    # Airflow 3.3.2 takes an answer given before the scheduler saw the pausing worker exit for "killed externally"
    # (a retry, and the question asked again): wait for those workers to exit first, as a person always does
    deadline = time.monotonic() + 60
    while any(ti.get("pid") and Path(f"/proc/{ti['pid']}").exists() for ti in waiting) and time.monotonic() < deadline:
        time.sleep(0.5)
    if waiting:
        time.sleep(3)
    for delivery_id, dag_id, run_id, _ in runs:
        for ti in done[run_id][1]:
            if ti["state"] == runner.AWAITING:
                comment = REVIEWER_REJECTS.get(delivery_id, "looks good")
                api.answer_review(dag_id, run_id, ti["task_id"], approve=delivery_id not in REVIEWER_REJECTS,
                                  comment=comment)  # fmt: skip
                answered += 1
    if not answered:
        return first, first
    done = runner.wait(stack, runs, timeout_s=900, settle_on_review=False)
    return first, runner.summarize(stack, runs, done)


def _run(stack, api, deliveries: Path) -> dict:
    return _review_and_finish(stack, api, runner.submit(stack, deliveries))[1]


@pytest.fixture(scope="module")
def batch(stack, api, tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    deliveries = _deliveries(root)
    first, final = _review_and_finish(stack, api, runner.submit(stack, deliveries))
    FIRST_SUMMARY.update({a["delivery_id"]: a for a in first["assets"]})
    return {a["delivery_id"]: a for a in final["assets"]}, deliveries


def _ffprobe(path: Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout)


def _download(s3, bucket: str, prefix: str, dest: Path) -> dict[str, dict]:
    listing = {}
    for obj in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
        rel = obj["Key"][len(prefix) :]
        listing[rel] = {"size": obj["Size"], "etag": obj["ETag"]}
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, obj["Key"], str(dest / rel))
    return listing


def test_summary_has_every_delivery_and_no_failures(batch, stack):
    results, deliveries = batch
    assert set(results) == {p.name for p in deliveries.iterdir() if p.is_dir()}
    assert [d for d, a in results.items() if a["status"] == "awaiting_review"] == []
    assert not [d for d, a in results.items() if a["status"] == "failed"], results
    summary = json.loads((stack.out_dir / "summary.json").read_text())
    for entry in summary["assets"]:
        for key in ("asset_id", "delivery_id", "value_stream", "status", "reasons", "dag_run_id", "lead_time_s",
                    "source", "stages", "locales", "published"):  # fmt: skip
            assert key in entry, f"summary.json entry lacks {key}"


@pytest.mark.parametrize("delivery_id", sorted(GOOD))
def test_good_delivery_published_with_every_rung(batch, s3, tmp_path, delivery_id):
    results, _ = batch
    entry = results[delivery_id]
    stream, expected = GOOD[delivery_id]
    assert entry["status"] == "published", entry["reasons"]
    assert entry["value_stream"] == stream
    assert [p["channel"] for p in entry["published"]] == ["web"]
    assert entry["lead_time_s"] > 0
    expected_stages = (["ingest", "transcode"] + (["localize"] if entry["locales"] else [])
                       + ["compliance", "review", "publish"])  # fmt: skip
    assert [s["stage"] for s in entry["stages"]] == expected_stages
    source_duration = entry["source"]["duration_s"]

    bucket = Buckets.from_env().distribution
    listing = _download(s3, bucket, f"web/{entry['asset_id']}/", tmp_path)
    master = (tmp_path / "master.m3u8").read_text()
    variant_uris = [ln for ln in master.splitlines() if ln and not ln.startswith("#")]
    (version,) = {_version(uri) for uri in variant_uris}  # every object under the publish's version folder

    if not expected:  # audio-only: the master lists the audio playlist itself
        assert variant_uris == [f"{version}/audio/index.m3u8"]
        probe = _ffprobe(tmp_path / version / "audio" / "index.m3u8")
        assert [s["codec_name"] for s in probe["streams"]] == ["aac"]
        assert abs(float(probe["format"]["duration"]) - source_duration) <= 0.5
        return

    assert variant_uris == [f"{version}/v{min(w, h)}/index.m3u8" for w, h in expected]
    assert "TYPE=AUDIO" in master if entry["source"]["audio_streams"] else "TYPE=AUDIO" not in master
    for (width, height), uri in zip(expected, variant_uris, strict=False):
        assert f"RESOLUTION={width}x{height}" in master
        probe = _ffprobe(tmp_path / uri)
        video = [s for s in probe["streams"] if s["codec_type"] == "video"]
        assert len(video) == 1
        v = video[0]
        assert (v["codec_name"], v["width"], v["height"]) == ("h264", width, height), uri
        assert v.get("field_order", "progressive") == "progressive", f"{uri} is still interlaced"
        assert v["r_frame_rate"] == v["avg_frame_rate"], f"{uri} is not constant frame rate"
        assert abs(float(probe["format"]["duration"]) - source_duration) <= 0.5, uri
    assert "poster.jpg" in listing and f"{version}/poster.jpg" in listing
    assert all(meta["size"] > 0 for meta in listing.values())


REJECTED = {
    "sample-broken-truncated": ["broken.mp4", "does not decode"],
    "bad-zero-byte": ["clip.mp4", "empty"],
    "bad-too-short": ["clip.mp4", "shorter than", "min_duration_s"],
    "bad-missing-field": ["manifest.json", "'territories'", "missing"],
    "bad-unknown-stream": ["manifest.json", "'value_stream'", "telenovela"],
    "bad-unknown-key": ["manifest.json", "unknown top-level key 'priority'"],
    "bad-asset-id": ["manifest.json", "'asset_id'"],
    "bad-missing-file": ["clip.mp4", "not in the delivery"],
    "bad-fixity": ["clip.mp4", "sha256"],
}


@pytest.mark.parametrize("delivery_id", sorted(REJECTED))
def test_bad_delivery_rejected_with_reason_and_quarantined(batch, s3, delivery_id):
    results, deliveries = batch
    entry = results[delivery_id]
    assert entry["status"] == "rejected"
    text = " ".join(entry["reasons"])
    for fragment in REJECTED[delivery_id]:
        assert fragment in text, f"reason {text!r} should mention {fragment!r}"
    assert entry["published"] == []

    buckets = Buckets.from_env()
    quarantined = {o["Key"]: o["Size"] for o in
                   s3.list_objects_v2(Bucket=buckets.quarantine, Prefix=f"deliveries/{delivery_id}/").get("Contents", [])}  # fmt: skip
    originals = {f"deliveries/{delivery_id}/{p.name}": p.stat().st_size for p in (deliveries / delivery_id).iterdir()}
    for key, size in originals.items():
        assert quarantined.get(key) == size, f"{key} not kept in quarantine as delivered"
    reason_file = json.loads(
        s3.get_object(Bucket=buckets.quarantine, Key=f"deliveries/{delivery_id}/_rejection.json")["Body"].read()
    )
    assert reason_file["reasons"] == entry["reasons"]
    # nothing of a rejected delivery reaches the distribution bucket
    asset = entry["asset_id"] or delivery_id
    for channel in ("web", "ott_partner", "social"):
        assert not s3.list_objects_v2(Bucket=buckets.distribution, Prefix=f"{channel}/{asset}/").get("Contents")


def test_published_objects_exported_to_out(batch, stack):
    results, _ = batch
    for delivery_id in GOOD:
        local = results[delivery_id]["published"][0]["local_path"]
        assert Path(local).is_absolute() or (runner.PROJECT / local).exists()
        path = Path(local) if Path(local).is_absolute() else runner.PROJECT / local
        assert path.read_text().startswith("#EXTM3U")


def test_running_again_changes_no_published_url_and_switches_the_master_last(batch, stack, s3, api, tmp_path):
    """A re-run transcodes again, and x264 under VBV is not bit-exact run to run: every URL published before keeps
    its bytes (the master excepted: the switch point); new bytes are under a new version the master now names."""
    results, deliveries = batch
    bucket = Buckets.from_env().distribution
    prefix = "web/sample-feature-1080p/"

    def published() -> dict[str, bytes]:
        keys = [o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
                for o in p.get("Contents", [])]  # fmt: skip
        return {k: s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}

    before = published()
    # the batch never starts a processed delivery twice: a person re-runs it from the trigger form
    runs = runner.rerun(stack, ["sample-feature-1080p"], ["feature_film"])
    (entry,) = runner.summarize(stack, runs, runner.wait(stack, runs, timeout_s=900))["assets"]
    assert entry["status"] == "published"
    assert entry["dag_run_id"] != results["sample-feature-1080p"]["dag_run_id"]
    after = published()
    assert [k for k in before if k != prefix + "master.m3u8" and after.get(k) != before[k]] == []
    old, new = (_version(_master(s3, "sample-feature-1080p", body=x[prefix + "master.m3u8"]).playlists[0].uri)
                for x in (before, after))  # fmt: skip
    new_keys = sorted(set(after) - set(before))
    assert (new_keys == [] and new == old) or {k.split("/")[2] for k in new_keys} == {new} != {old}, new_keys


def test_the_same_batch_three_times_publishes_nothing_new_and_mails_nobody(batch, stack, s3, api):
    """The batch again twice (the second time its deliveries land again, same bytes): the published objects are
    identical (keys, sizes, ETags), the ledger has no new run or attempt for its deliveries, Airflow started no
    value-stream run, and nobody got a second mail."""
    import sqlalchemy as sa

    from mediaflow import ledger as ledger_mod

    results, deliveries = batch
    ids = sorted(results)
    assets = {a["asset_id"] for a in results.values() if a.get("asset_id")}
    streams = {a["value_stream"] for a in results.values() if a.get("value_stream") in load_specs()}
    buckets, led = Buckets.from_env(), Ledger(stack.ledger_url)

    def snapshot() -> dict:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=buckets.distribution)
        published = {o["Key"]: (o["Size"], o["ETag"]) for p in pages for o in p.get("Contents", [])
                     if o["Key"].split("/")[1] in assets}  # fmt: skip
        runs_q = sa.select(ledger_mod.runs.c.dag_id, ledger_mod.runs.c.run_id).where(
            ledger_mod.runs.c.delivery_id.in_(ids)
        )
        with led.engine.connect() as c:
            ledger_runs = sorted(tuple(r) for r in c.execute(runs_q))
            attempts = c.execute(sa.select(sa.func.count()).select_from(ledger_mod.attempts).where(
                sa.tuple_(ledger_mod.attempts.c.dag_id, ledger_mod.attempts.c.run_id).in_(runs_q))).scalar_one()  # fmt: skip
        airflow_runs = sorted(r["dag_run_id"] for st in streams
                              for r in api.request("GET", f"/api/v2/dags/value_stream__{st}/dagRuns?limit=1000")["dag_runs"]
                              if (r.get("conf") or {}).get("delivery") in ids)  # fmt: skip
        mails = sorted(p.name for p in (stack.out_dir / "mail").glob("*.eml")
                       if any(x in (BytesParser(policy=default_policy).parsebytes(p.read_bytes())["Subject"] or "")
                              for x in [*assets, *ids, "[BATCH]"]))  # fmt: skip
        return {"published": published, "ledger runs": ledger_runs, "ledger attempts": attempts,
                "airflow runs": airflow_runs, "mails": mails}  # fmt: skip

    before = snapshot()
    assert len(before["published"]) > 50 and before["ledger runs"] and before["mails"]
    runner.upload(stack, deliveries)  # the same deliveries land again
    runner.run_content_batch(stack)
    runner.run_content_batch(stack)
    time.sleep(5)  # a run wrongly started would show in Airflow and the ledger by now
    after = snapshot()
    for what in before:
        assert after[what] == before[what], f"{what} changed when the same batch ran again"


# ---------------------------------------------------------------- localize


def _master(s3, asset: str, channel: str = "web", *, body: bytes | None = None):
    import m3u8

    if body is None:
        key = f"{channel}/{asset}/master.m3u8"
        body = s3.get_object(Bucket=Buckets.from_env().distribution, Key=key)["Body"].read()
    return m3u8.loads(body.decode())


def _version(uri: str) -> str:
    """The version folder a master's URI points into (its first path segment)."""
    return uri.split("/", 1)[0]


def _in_version(uri: str) -> str:
    """A master's URI relative to its version folder."""
    return uri.split("/", 1)[1]


def test_localize_runs_one_task_per_locale_named_by_locale(batch, api):
    results, _ = batch
    entry = results["sample-feature-1080p"]
    tis = [t for t in api.task_instances("value_stream__feature_film", entry["dag_run_id"])
           if t["task_id"] == "localize.localize_locale"]  # fmt: skip
    assert sorted(t["rendered_map_index"] for t in tis) == [
        "de-DE captions", "en-US captions", "es-ES captions", "fr-FR audio"]  # fmt: skip
    assert all(t["state"] == "success" for t in tis)


def test_captions_and_extra_audio_published_as_hls_renditions(batch, s3, tmp_path):
    results, _ = batch
    entry = results["sample-feature-1080p"]
    assert entry["locales"] == {"en-US": "published", "es-ES": "published", "de-DE": "published",
                                "fr-FR": "published"}  # fmt: skip
    master = _master(s3, "sample-feature-1080p")
    version = _version(master.playlists[0].uri)
    subs = {m.language: _in_version(m.uri) for m in master.media if m.type == "SUBTITLES"}
    assert subs == {
        "de-DE": "subs_de-DE/index.m3u8",
        "en-US": "subs_en-US/index.m3u8",
        "es-ES": "subs_es-ES/index.m3u8",
    }
    audio = {m.language: (_in_version(m.uri), m.default) for m in master.media if m.type == "AUDIO"}
    assert {_version(m.uri) for m in master.media} == {version}
    assert audio == {"und": ("audio/index.m3u8", "YES"), "fr-FR": ("audio_fr-FR/index.m3u8", "NO")}
    assert all(p.stream_info.subtitles == "subs" and p.stream_info.audio == "aud" for p in master.playlists)

    listing = _download(s3, Buckets.from_env().distribution, f"web/sample-feature-1080p/{version}/", tmp_path)
    probe = _ffprobe(tmp_path / "audio_fr-FR" / "index.m3u8")
    assert [s["codec_name"] for s in probe["streams"]] == ["aac"]
    assert abs(float(probe["format"]["duration"]) - entry["source"]["duration_s"]) <= 0.5
    # the Windows-1252 SRT comes out as correct UTF-8 WebVTT, whole and segmented
    whole = (tmp_path / "subs_es-ES" / "es-ES.vtt").read_text(encoding="utf-8")
    assert whole.startswith("WEBVTT") and "¿Dónde está el niño?" in whole
    segments = [
        k for k in listing if k.startswith("subs_es-ES/") and k.endswith(".vtt") and k != "subs_es-ES/es-ES.vtt"
    ]
    assert segments and all((tmp_path / k).read_text(encoding="utf-8").startswith("WEBVTT") for k in segments)


def test_a_bad_locale_is_rejected_alone_and_owners_are_mailed(batch, stack, s3):
    results, _ = batch
    entry = results["sample-news-720p"]
    assert entry["status"] == "published"
    assert entry["locales"]["pt-BR"].startswith("rejected: ")
    assert "pt-BR.srt" in entry["locales"]["pt-BR"] and "cue 2" in entry["locales"]["pt-BR"]
    assert any("pt-BR" in r and "pt-BR.srt" in r for r in entry["reasons"])
    master = _master(s3, "sample-news-720p")
    assert not [m for m in master.media if m.type == "SUBTITLES"]
    mails = [
        BytesParser(policy=default_policy).parsebytes(p.read_bytes()) for p in (stack.out_dir / "mail").glob("*.eml")
    ]
    about = [m for m in mails if "sample-news-720p" in m["Subject"] and "pt-BR" in m["Subject"]]
    assert len(about) == 1, [m["Subject"] for m in mails]
    assert "newsdesk-ops@example.com" in about[0]["To"]


def test_late_sidecars_add_a_locale_without_transcoding(batch, stack, s3, api, tmp_path):
    before = _master(s3, "sample-feature-1080p")
    late = tmp_path / "late" / "late-feature-it"
    late.mkdir(parents=True)
    (late / "it-IT.srt").write_text("1\n00:00:01,000 --> 00:00:02,500\nBuonasera.\n", encoding="utf-8")
    _manifest(late, asset_id="sample-feature-1080p", value_stream="feature_film", source=None,
              captions=[{"locale": "it-IT", "file": "it-IT.srt"}])  # fmt: skip
    (entry,) = _run(stack, api, late.parent)["assets"]
    assert entry["status"] == "published", entry["reasons"]
    assert entry["locales"]["it-IT"] == "published"
    states = {t["task_id"]: t["state"] for t in api.task_instances("value_stream__feature_film", entry["dag_run_id"])}
    assert states["transcode.transcode_ladder"] == "skipped", "a sidecar-only delivery must not transcode"
    after = _master(s3, "sample-feature-1080p")
    assert sorted(m.language for m in after.media if m.type == "SUBTITLES") == ["de-DE", "en-US", "es-ES", "it-IT"]
    assert [m.language for m in after.media if m.type == "AUDIO"] == [
        m.language for m in before.media if m.type == "AUDIO"
    ]
    # the same ladder under the sidecar publish's new version: the same bytes as before, not a new encode
    assert [_in_version(p.uri) for p in after.playlists] == [_in_version(p.uri) for p in before.playlists]
    old, new = _version(before.playlists[0].uri), _version(after.playlists[0].uri)
    assert new != old
    bucket = Buckets.from_env().distribution
    ladder = {v: {o["Key"].split("/", 3)[3]: o["ETag"] for o in s3.list_objects_v2(
        Bucket=bucket, Prefix=f"web/sample-feature-1080p/{v}/v")["Contents"]} for v in (old, new)}  # fmt: skip
    assert ladder[new] == ladder[old]


def test_late_sidecars_for_an_unpublished_asset_are_rejected(batch, stack, api, tmp_path):
    late = tmp_path / "late" / "late-unknown"
    late.mkdir(parents=True)
    (late / "it-IT.srt").write_text("1\n00:00:01,000 --> 00:00:02,500\nCiao.\n", encoding="utf-8")
    _manifest(late, asset_id="never-published", source=None, captions=[{"locale": "it-IT", "file": "it-IT.srt"}])
    (entry,) = _run(stack, api, late.parent)["assets"]
    assert entry["status"] == "rejected"
    assert "has not been published" in " ".join(entry["reasons"])


def test_embedded_cea608_captions_become_a_subtitle_locale(batch, s3, tmp_path):
    results, _ = batch
    entry = results["edge-embedded-cc"]
    assert entry["locales"] == {"en-US": "published"}, entry
    master = _master(s3, "edge-embedded-cc")
    subs = [(m.language, m.uri) for m in master.media if m.type == "SUBTITLES"]
    version = _version(master.playlists[0].uri)
    assert subs == [("en-US", f"{version}/subs_en-US/index.m3u8")]
    key = f"web/edge-embedded-cc/{version}/subs_en-US/en-US.vtt"
    vtt = s3.get_object(Bucket=Buckets.from_env().distribution, Key=key)["Body"].read().decode()
    assert "HELLO WORLD" in vtt


# ---------------------------------------------------------------- compliance and review


def test_human_review_waits_then_publishes_when_approved(batch):
    results, _ = batch
    first = FIRST_SUMMARY["sample-episode-review"]
    assert first["status"] == "awaiting_review"
    assert any("legal review waits for a person" in r and "Required Actions" in r for r in first["reasons"])
    assert first["published"] == []
    final = results["sample-episode-review"]
    assert final["status"] == "published"
    legal = [r for r in final["reviews"] if r["branch"] == "legal"]
    assert legal == [{"branch": "legal", "decision": "approved", "by": "admin", "comment": "looks good"}]
    assert {r["branch"]: r["by"] for r in final["reviews"]}["editorial"] == "auto"


def test_a_title_rejected_by_its_reviewer_is_not_published(batch, s3):
    results, _ = batch
    entry = results["review-reject"]
    assert entry["status"] == "rejected"
    assert entry["reasons"] == ["legal review rejected by admin: music licence unclear"]
    assert entry["published"] == []
    assert not s3.list_objects_v2(Bucket=Buckets.from_env().distribution, Prefix="web/review-reject/").get("Contents")


def test_closed_window_territory_is_not_published_the_rest_is(batch):
    results, _ = batch
    first = FIRST_SUMMARY["sample-rights-closed-gb"]
    assert first["status"] == "awaiting_review", "a rights problem sends the title to legal review"
    assert any(r.startswith("legal review: rights web/GB: ") for r in first["reasons"]), "the why, not only the how"
    entry = results["sample-rights-closed-gb"]
    assert entry["status"] == "published"
    assert [(p["channel"], p["territories"]) for p in entry["published"]] == [("web", ["US"])]
    decisions = {(d["channel"], d["territory"]): d for d in entry["compliance"]["rights"]}
    assert decisions[("web", "GB")]["publishable"] is False and "closed" in decisions[("web", "GB")]["reason"]
    assert any("web/GB" in r for r in entry["reasons"])


def test_compliance_results_are_in_the_summary(batch):
    results, _ = batch
    c = results["sample-feature-1080p"]["compliance"]
    assert abs(c["loudness"]["renditions"]["audio"]["integrated_lufs"] - (-23.0)) <= 1.0
    assert abs(c["loudness"]["renditions"]["audio_fr-FR"]["integrated_lufs"] - (-23.0)) <= 1.0
    for rendition in ("audio", "audio_fr-FR"):  # how the normaliser got there: its mode and passes, in the summary
        assert c["loudness"]["renditions"][rendition]["true_peak_dbtp"] < -1.0
        normalised = c["loudness"]["normalisation"][rendition]
        assert normalised["mode"] in ("linear", "dynamic") and normalised["reason"] is None, normalised
        assert normalised["passes"] and abs(normalised["output"]["integrated_lufs"] - (-23.0)) <= 0.5
    assert c["technical_qc"]["findings"] == []
    assert c["metadata"]["success"] is True and c["metadata"]["uri"].startswith("s3://")


def test_value_stream_report_digest_and_metrics_agree_with_the_runs(batch, stack):
    """value_stream_metrics on the real stack, as `make run` ends: the report with its charts and the value stream
    map, opening offline; Parquet whose per-title stages equal summary.json's (the vectorised metrics against the
    per-run reference, on real runs); each outcome recorded on the ledger; one digest mail however many runs."""
    import pandas as pd

    results, _ = batch
    report = runner.write_report(stack)  # a manual run of value_stream_metrics; fails if its GX validation fails
    html = report.read_text()
    assert report == stack.out_dir / "reports" / "index.html"
    assert html.count("<svg") >= 5, "charts and the value stream map are inline SVG"
    for external in ('src="http', "src='http", 'href="http', "<script", "@import", "url(http"):
        assert external not in html, f"the report must open offline: found {external!r}"
    published_streams = {a["value_stream"] for a in results.values() if a["status"] == "published"}
    assert published_streams and all(s in html for s in published_streams)

    data = report.parent / "data"
    meta = json.loads((report.parent / "meta.json").read_text())
    runs = pd.read_parquet(data / "runs.parquet").set_index("run_id")
    spans = pd.read_parquet(data / "spans.parquet")
    assert meta["rows"]["runs"] == meta["expected"]["runs"] == len(runs)
    assert meta["rows"]["spans"] == meta["expected"]["spans"] == len(spans)
    for a in results.values():
        if not a.get("dag_run_id") or a["value_stream"] is None or a["dag_run_id"] not in runs.index:
            continue
        assert runs.loc[a["dag_run_id"], "status"] == a["status"], f"{a['delivery_id']}: the outcome on the ledger row"
        ours = spans[spans["run_id"] == a["dag_run_id"]].set_index("stage")
        for st in a["stages"] or []:
            if st["ended_at"] is None:
                continue
            row = ours.loc[st["stage"]]
            assert row["active_s"] == pytest.approx(st["active_s"], abs=0.01), (a["delivery_id"], st["stage"])
            assert row["attempts"] == st["attempts"]
            if st["wait_s"] is not None:
                assert row["wait_s"] == pytest.approx(st["wait_s"], abs=0.01), (a["delivery_id"], st["stage"])
    checked = [a for a in results.values() if a.get("dag_run_id") in runs.index and a["status"] == "published"]
    assert len(checked) >= 5

    mails = [
        BytesParser(policy=default_policy).parsebytes(p.read_bytes()) for p in (stack.out_dir / "mail").glob("*.eml")
    ]
    digests = [m for m in mails if "digest" in m["Subject"].lower()]
    subjects = [m["Subject"] for m in digests]
    days = [re.search(r"digest (\d{4}-\d{2}-\d{2})", s).group(1) for s in subjects]
    # asset-triggered runs too, but one digest a day (a run crossing midnight UTC rightly sends two days' digests)
    assert digests and len(days) == len(set(days)), subjects
    assert all("newsdesk-ops@example.com" in m["To"] for m in digests)
