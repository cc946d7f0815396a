"""The value stream end to end on the real stack, through the same path as `make run`:
deliveries uploaded to the S3 API, runs triggered through Airflow's REST API and executed by its scheduler,
real ffmpeg, published objects checked with ffprobe."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from mediaflow import runner, samples
from mediaflow.store import Buckets

pytestmark = pytest.mark.integration

GOOD = {
    # delivery id: (stream, expected (width, height) of each rung, highest first; [] = audio only)
    "sample-feature-1080p": ("series_episode", [(1920, 1080), (1280, 720), (854, 480), (640, 360)]),
    "sample-news-720p": ("news_clip", [(1280, 720), (640, 360)]),
    "sample-vertical-portrait": ("news_clip", [(720, 1280), (360, 640)]),
    "sample-podcast-audio": ("series_episode", []),
    "edge-interlaced-576i": ("news_clip", [(640, 360)]),  # PAL 16:9: 720x576 at SAR 64:45
    "edge-vfr": ("news_clip", [(640, 360)]),
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
    return d


@pytest.fixture(scope="module")
def batch(stack, tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    deliveries = _deliveries(root)
    summary = runner.run_batch(stack, deliveries, timeout_s=900)
    return {a["delivery_id"]: a for a in summary["assets"]}, deliveries


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
    assert set(results) == {p.name for p in deliveries.iterdir()}
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
    assert [s["stage"] for s in entry["stages"]] == ["ingest", "transcode", "publish"]
    source_duration = entry["source"]["duration_s"]

    bucket = Buckets.from_env().distribution
    listing = _download(s3, bucket, f"web/{entry['asset_id']}/", tmp_path)
    master = (tmp_path / "master.m3u8").read_text()
    variant_uris = [ln for ln in master.splitlines() if ln and not ln.startswith("#")]

    if not expected:  # audio-only: the master lists the audio playlist itself
        assert variant_uris == ["audio/index.m3u8"]
        probe = _ffprobe(tmp_path / "audio" / "index.m3u8")
        assert [s["codec_name"] for s in probe["streams"]] == ["aac"]
        assert abs(float(probe["format"]["duration"]) - source_duration) <= 0.5
        return

    assert variant_uris == [f"v{min(w, h)}/index.m3u8" for w, h in expected]
    assert 'TYPE=AUDIO' in master if entry["source"]["audio_streams"] else 'TYPE=AUDIO' not in master
    for (width, height), uri in zip(expected, variant_uris):
        assert f"RESOLUTION={width}x{height}" in master
        probe = _ffprobe(tmp_path / uri)
        video = [s for s in probe["streams"] if s["codec_type"] == "video"]
        assert len(video) == 1
        v = video[0]
        assert (v["codec_name"], v["width"], v["height"]) == ("h264", width, height), uri
        assert v.get("field_order", "progressive") == "progressive", f"{uri} is still interlaced"
        assert v["r_frame_rate"] == v["avg_frame_rate"], f"{uri} is not constant frame rate"
        assert abs(float(probe["format"]["duration"]) - source_duration) <= 0.5, uri
    assert "poster.jpg" in listing
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


def test_running_again_publishes_the_same_objects(batch, stack, s3, tmp_path):
    results, deliveries = batch
    bucket = Buckets.from_env().distribution
    prefix = "web/sample-feature-1080p/"

    def listing():
        return {o["Key"]: (o["Size"], o["ETag"]) for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]}

    before = listing()
    again = tmp_path / "again"
    shutil.copytree(deliveries / "sample-feature-1080p", again / "sample-feature-1080p")
    summary = runner.run_batch(stack, again, timeout_s=600)
    (entry,) = summary["assets"]
    assert entry["status"] == "published"
    assert entry["dag_run_id"] != results["sample-feature-1080p"]["dag_run_id"]
    assert listing() == before
