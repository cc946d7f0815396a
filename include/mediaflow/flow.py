"""The value stream's steps as plain functions over a Store: ingest, transcode, publish, outcome.

Each step is a transaction: inputs are URIs, outputs go to deterministic keys from the asset id and the run,
and running a step again gives the same objects. Bad input never raises: ingest returns `rejected` with
reasons (naming the file, field or check) after copying the delivery to quarantine. Anything raised is a
system fault, for Airflow to retry.
"""

from __future__ import annotations

import json
import logging
import subprocess
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from mediaflow import ladder, media
from mediaflow.manifest import MANIFEST_NAME, ManifestError, missing_files, parse_manifest
from mediaflow.spec import StreamSpec
from mediaflow.store import (
    Buckets,
    Store,
    delivery_location,
    distribution_prefix,
    quarantine_prefix,
    work_prefix,
)

log = logging.getLogger(__name__)
REJECTION_FILE = "_rejection.json"


def _utc(ts: datetime | str | None) -> str | None:
    if ts is None:
        return None
    if isinstance(ts, str):
        ts = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    return ts.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


# ---------------------------------------------------------------- ingest


def ingest(
    store: Store,
    buckets: Buckets,
    *,
    delivery: str,
    spec: StreamSpec,
    known_streams: set[str],
    run_id: str,
) -> dict:
    """Fetch and check a delivery. Returns {'status': 'accepted', ...facts} or {'status': 'rejected', reasons}."""
    result: dict = {"delivery": delivery, "delivery_id": None, "asset_id": None, "value_stream": spec.name}
    try:
        bucket, prefix, delivery_id = delivery_location(delivery, buckets)
    except ValueError as e:
        return {**result, "status": "rejected", "reasons": [str(e)], "quarantine_uri": None}
    result["delivery_id"] = delivery_id
    objects = store.list(bucket, prefix)
    present = {key[len(prefix):]: meta for key, meta in objects.items()}
    if not present:
        return {**result, "status": "rejected", "quarantine_uri": None,
                "reasons": [f"delivery {delivery_id}: nothing found at s3://{bucket}/{prefix}"]}  # fmt: skip

    reasons: list[str] = []
    manifest = None
    if MANIFEST_NAME not in present:
        reasons.append(f"{MANIFEST_NAME}: missing from the delivery")
    else:
        try:
            manifest = parse_manifest(store.get_bytes(bucket, prefix + MANIFEST_NAME), known_streams=known_streams)
        except ManifestError as e:
            reasons += e.problems
    if manifest:
        result["asset_id"] = manifest.asset_id
        if manifest.value_stream != spec.name:
            reasons.append(
                f"{MANIFEST_NAME}: field 'value_stream' is {manifest.value_stream!r} but this run is the "
                f"{spec.name!r} stream"
            )
        reasons += missing_files(manifest, set(present))

    facts = None
    if manifest and not reasons:
        with tempfile.TemporaryDirectory(prefix="mediaflow-ingest-") as tmp:
            local = Path(tmp) / PurePosixPath(manifest.source_file).name
            store.download(bucket, prefix + manifest.source_file, str(local))
            if manifest.source_sha256:
                actual = media.sha256_file(local)
                if actual != manifest.source_sha256:
                    reasons.append(
                        f"{manifest.source_file}: sha256 fixity check failed (manifest {manifest.source_sha256}, "
                        f"file {actual})"
                    )
            if not reasons:
                try:
                    facts = media.inspect_source(local, min_duration_s=spec.min_duration_s)
                except media.MediaError as e:
                    reasons.append(str(e))

    if reasons:
        qprefix = quarantine_prefix(delivery_id)
        for key in objects:  # originals kept as delivered; landing is left untouched
            store.copy(bucket, key, buckets.quarantine, qprefix + key[len(prefix):])
        record = {"delivery": delivery, "delivery_id": delivery_id, "run_id": run_id, "reasons": reasons,
                  "rejected_at": _utc(datetime.now(timezone.utc))}  # fmt: skip
        store.put_bytes(json.dumps(record, indent=2).encode(), buckets.quarantine, qprefix + REJECTION_FILE)
        log.warning("delivery %s rejected: %s", delivery_id, "; ".join(reasons))
        return {**result, "status": "rejected", "reasons": reasons,
                "quarantine_uri": f"s3://{buckets.quarantine}/{qprefix}"}  # fmt: skip

    # Freeze the exact bytes we checked: later steps read this copy, never the landing zone.
    src_key = work_prefix(manifest.asset_id, run_id) + "source/" + PurePosixPath(manifest.source_file).name
    store.copy(bucket, prefix + manifest.source_file, buckets.work, src_key)
    arrival = manifest.delivered_at or present[MANIFEST_NAME].get("last_modified")
    return {
        **result,
        "status": "accepted",
        "reasons": [],
        "title": manifest.title,
        "source_uri": f"s3://{buckets.work}/{src_key}",
        "source": facts,
        "territories": list(manifest.territories),
        "channels": [c for c in (manifest.channels or spec.channels) if c in spec.channels] or list(spec.channels),
        "delivered_at": _utc(arrival),
    }


# ---------------------------------------------------------------- transcode


def _codec_of(segment: Path) -> str:
    """RFC 6381 codec string of an encoded segment, from its real profile and level."""
    proc = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=profile,level",
         "-of", "json", str(segment)], capture_output=True, text=True, check=True,
    )  # fmt: skip
    stream = (json.loads(proc.stdout).get("streams") or [{}])[0]
    return ladder.avc_codec(stream.get("profile"), stream.get("level"))


def _bandwidth(playlist: Path) -> tuple[int, int]:
    segs = ladder.playlist_segments(playlist.read_text())
    return ladder.measured_bandwidth([(d, (playlist.parent / uri).stat().st_size) for d, uri in segs])


def package(out_dir: Path, renditions: list[ladder.Rendition], *, fps: float, has_audio: bool) -> dict:
    """Write master.m3u8 from what was actually encoded (measured bandwidth, real codec level)."""
    variants = []
    for r in renditions:
        pl = out_dir / r.name / "index.m3u8"
        peak, avg = _bandwidth(pl)
        first = out_dir / r.name / ladder.playlist_segments(pl.read_text())[0][1]
        variants.append({"uri": f"{r.name}/index.m3u8", "width": r.width, "height": r.height, "fps": fps,
                         "peak_bps": peak, "avg_bps": avg, "codec": _codec_of(first)})  # fmt: skip
    audio = None
    if has_audio:
        peak, avg = _bandwidth(out_dir / ladder.AUDIO_DIR / "index.m3u8")
        audio = {"uri": f"{ladder.AUDIO_DIR}/index.m3u8", "peak_bps": peak, "avg_bps": avg,
                 "language": "und", "name": "Main"}  # fmt: skip
    (out_dir / ladder.MASTER).write_text(ladder.master_playlist(variants, audio))
    return {"variants": variants, "audio": audio}


def transcode(
    store: Store,
    buckets: Buckets,
    *,
    ingested: dict,
    spec: StreamSpec,
    run_id: str,
    run_ffmpeg: Callable[[list[str]], None],
    workdir: str | None = None,
) -> dict:
    """Source -> HLS ladder + audio rendition + poster + master, uploaded under the run's work prefix."""
    src_bucket, src_key = ingested["source_uri"][5:].split("/", 1)
    facts = ingested["source"]
    video = facts.get("video")
    has_audio = facts.get("audio_streams", 0) > 0
    renditions = (
        ladder.select_renditions(spec.ladder, round(video["width"] * video.get("sar", 1.0)), video["height"])
        if video
        else []
    )
    fps = ladder.output_fps(video["fps"]) if video else 0.0
    out_prefix = work_prefix(ingested["asset_id"], run_id) + "hls/"
    with tempfile.TemporaryDirectory(prefix="mediaflow-transcode-", dir=workdir) as tmp:
        src = Path(tmp) / PurePosixPath(src_key).name
        out = Path(tmp) / "hls"
        store.download(src_bucket, src_key, str(src))
        ladder.output_dirs(out, renditions, has_audio)
        argv = ladder.transcode_argv(
            src, out, renditions, fps=fps, interlaced=bool(video and video["interlaced"]), has_audio=has_audio,
            loudness=spec.loudness, duration_s=facts["duration_s"],
        )  # fmt: skip
        run_ffmpeg(argv)
        packaged = package(out, renditions, fps=fps, has_audio=has_audio)
        files = sorted(p for p in out.rglob("*") if p.is_file())
        for path in files:
            store.upload(str(path), buckets.work, out_prefix + path.relative_to(out).as_posix())
    return {
        "hls_uri": f"s3://{buckets.work}/{out_prefix}",
        "files": [p.relative_to(out).as_posix() for p in files],
        "renditions": [{"name": r.name, "width": r.width, "height": r.height, "video_kbps": r.video_kbps}
                       for r in renditions],  # fmt: skip
        "audio": packaged["audio"] is not None,
        "fps": fps,
    }


# ---------------------------------------------------------------- publish


def publish_order(files: list[str]) -> list[str]:
    """Media first, then media playlists, the master last: a reader never finds a playlist before its segments."""

    def rank(name: str) -> int:
        if name == ladder.MASTER:
            return 2
        return 1 if name.endswith(".m3u8") else 0

    return sorted(files, key=lambda f: (rank(f), f))


def publish(store: Store, buckets: Buckets, *, ingested: dict, transcoded: dict) -> list[dict]:
    """Copy the packaged title to every channel under <channel>/<asset_id>/; stale objects removed last."""
    src_bucket, src_prefix = transcoded["hls_uri"][5:].split("/", 1)
    published = []
    for channel in ingested["channels"]:
        prefix = distribution_prefix(channel, ingested["asset_id"])
        wanted = {prefix + f for f in transcoded["files"]}
        for name in publish_order(transcoded["files"]):
            store.copy(src_bucket, src_prefix + name, buckets.distribution, prefix + name)
        stale = sorted(set(store.list(buckets.distribution, prefix)) - wanted)
        if stale:  # a re-delivery with fewer rungs: drop what the new master no longer lists
            store.delete(buckets.distribution, stale)
        published.append({
            "channel": channel,
            "territories": ingested["territories"],
            "uri": f"s3://{buckets.distribution}/{prefix}{ladder.MASTER}",
            "local_path": None,
        })  # fmt: skip
    return published


# ---------------------------------------------------------------- outcome


def outcome(
    *,
    dag_run_id: str,
    value_stream: str,
    ingested: dict | None,
    published: list[dict] | None,
    failed_tasks: list[str],
    finished_at: datetime,
) -> dict:
    """One summary.json asset entry (v1) for this run. Fields not built yet are None."""
    ingested = ingested or {}
    if ingested.get("status") == "rejected":
        status, reasons = "rejected", list(ingested.get("reasons", []))
    elif published and not failed_tasks:
        status, reasons = "published", []
    else:
        status = "failed"
        reasons = [f"task {t} failed: see its log in the Airflow UI" for t in failed_tasks] or [
            "the run ended before publishing (no task reported a failure)"
        ]
    lead = None
    if status == "published" and ingested.get("delivered_at"):
        arrived = datetime.fromisoformat(ingested["delivered_at"].replace("Z", "+00:00"))
        lead = round((finished_at - arrived).total_seconds(), 3)
    return {
        "asset_id": ingested.get("asset_id"),
        "delivery_id": ingested.get("delivery_id"),
        "value_stream": value_stream,
        "status": status,
        "reasons": reasons,
        "dag_run_id": dag_run_id,
        "lead_time_s": lead,
        "source": ingested.get("source"),
        "stages": None,
        "locales": None,
        "published": published or [],
        "quarantine_uri": ingested.get("quarantine_uri"),
    }
