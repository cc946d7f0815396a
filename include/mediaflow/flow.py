"""The value stream's steps as plain functions over a Store: ingest, transcode, publish, outcome.

Each step is a transaction: inputs are URIs, outputs go to deterministic keys from the asset id and the run,
and running a step again gives the same objects. Bad input never raises: ingest returns `rejected` with
reasons (naming the file, field or check) after copying the delivery to quarantine. Anything raised is a
system fault, for Airflow to retry.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import html
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from mediaflow import (
    capacity,
    captions,
    complexity,
    compliance,
    decisions,
    ffrun,
    ladder,
    localcache,
    localize,
    loudness,
    media,
    names,
    posters,
    quality,
    trigger_form,
)
from mediaflow import progress as progress_
from mediaflow.manifest import MANIFEST_NAME, ManifestError, parse_manifest
from mediaflow.results import UNSET, Ingested, Localized, Published, Review, SummaryEntry, Transcoded
from mediaflow.spec import StreamSpec
from mediaflow.stages import instant, iso_z
from mediaflow.store import (
    IMMUTABLE,
    SWITCH,
    Buckets,
    Store,
    delivery_location,
    distribution_prefix,
    each,
    parse_s3_uri,
    published_state,
    published_state_key,
    quarantine_prefix,
    work_prefix,
)

log = logging.getLogger(__name__)
REJECTION_FILE = "_rejection.json"


# ---------------------------------------------------------------- ingest


def quarantine_delivery(store: Store, buckets: Buckets, *, source_bucket: str, prefix: str, delivery_id: str,
                        record: dict) -> str:  # fmt: skip
    """Copy a delivery as delivered into quarantine with `_rejection.json` (record + when) beside it; the
    landing copy is left untouched, so nothing is ever lost. Returns the quarantine URI."""
    qprefix = quarantine_prefix(delivery_id)
    for key in store.list(source_bucket, prefix):
        store.copy(source_bucket, key, buckets.quarantine, qprefix + key[len(prefix) :])
    record = {"delivery_id": delivery_id, **record, "rejected_at": iso_z(datetime.now(UTC))}
    store.put_bytes(json.dumps(record, indent=2).encode(), buckets.quarantine, qprefix + REJECTION_FILE)
    return f"s3://{buckets.quarantine}/{qprefix}"


def ingest(
    store: Store,
    buckets: Buckets,
    *,
    delivery: str,
    spec: StreamSpec,
    known_streams: set[str],
    run_id: str,
    locales: list[str] | None = None,
) -> dict:
    """Fetch and check a delivery. Returns {'status': 'accepted', ...facts} or {'status': 'rejected', reasons}.

    `locales` (the trigger form's subset, e.g. ["es-ES"]) keeps only those caption/audio locales; None or empty
    keeps all. A wanted locale the delivery lacks selects nothing; the locales left out are `locales_skipped`.
    The source's local copy the checks read is kept in the machine's local cache (mediaflow.localcache) for
    transcode and QC.
    """
    with tempfile.TemporaryDirectory(prefix="mediaflow-ingest-") as tmp:
        return _ingest(store, buckets, delivery=delivery, spec=spec, known_streams=known_streams, run_id=run_id,
                       locales=locales, tmp=Path(tmp))  # fmt: skip


# long: ingest's checks in the order a delivery fails them, each returning a rejection with its reason
def _ingest(store: Store, buckets: Buckets, *, delivery: str, spec: StreamSpec, known_streams: set[str], run_id: str,
            locales: list[str] | None, tmp: Path) -> dict:  # fmt: skip
    known: dict = {"delivery": delivery, "delivery_id": None, "asset_id": None, "value_stream": spec.name}

    def rejected(reasons: list[str], quarantine_uri: str | None = None) -> dict:
        return Ingested(**known, status="rejected", reasons=reasons, quarantine_uri=quarantine_uri).to_dict()

    try:
        bucket, prefix, delivery_id = delivery_location(delivery, buckets)
    except ValueError as e:
        return rejected([str(e)])
    known["delivery_id"] = delivery_id
    objects = store.list(bucket, prefix)
    present = {key[len(prefix) :]: meta for key, meta in objects.items()}
    if not present:  # reasons after quarantine_uri: the key order this payload has always had on XCom
        return {**Ingested(**known, status="rejected", quarantine_uri=None).to_dict(),
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
        known["asset_id"] = manifest.asset_id
        if manifest.value_stream != spec.name:
            reasons.append(
                f"{MANIFEST_NAME}: field 'value_stream' is {manifest.value_stream!r} but this run is the "
                f"{spec.name!r} stream"
            )
        # A missing source rejects the title; a missing sidecar only rejects its locale (see locale_items).
        if manifest.source_file and manifest.source_file not in present:
            reasons.append(f"{manifest.source_file}: named in manifest.json as source.file but not in the delivery")

    facts = None
    previous = None
    checked = None  # the local copy of the source the checks read
    warnings: list[str] = []  # what did not stop the title (frames skipped before the first keyframe, ...)
    if manifest and not reasons and manifest.sidecar_only:
        previous = published_state(store, buckets, manifest.asset_id)
        if previous is None:
            reasons.append(
                f"{MANIFEST_NAME}: no 'source', and asset {manifest.asset_id!r} has not been published yet "
                "(a delivery of only captions/audio adds locales to a published title)"
            )
        else:
            facts = previous["source"]
    if manifest and not reasons and not manifest.sidecar_only:
        checked = tmp / PurePosixPath(manifest.source_file).name
        store.download(bucket, prefix + manifest.source_file, str(checked))
        if manifest.source_sha256:
            actual = media.sha256_file(checked)
            if actual != manifest.source_sha256:
                reasons.append(
                    f"{manifest.source_file}: sha256 fixity check failed (manifest {manifest.source_sha256}, "
                    f"file {actual})"
                )
        if not reasons:
            prepared_dir = tmp / "prepared"
            prepared_dir.mkdir()
            try:
                facts = media.inspect_source(checked, min_duration_s=spec.min_duration_s, workdir=prepared_dir)
            except media.MediaError as e:
                reasons.append(str(e))
            else:  # a recording that starts mid-GOP, a transport stream of several programmes: its prepared copy
                warnings += facts.pop("warnings", [])
                if facts.get("prepared"):
                    checked = prepared_dir / facts["prepared"]

    if reasons:
        uri = quarantine_delivery(store, buckets, source_bucket=bucket, prefix=prefix, delivery_id=delivery_id,
                                  record={"delivery": delivery, "run_id": run_id, "reasons": reasons})  # fmt: skip
        log.warning("delivery %s rejected: %s", delivery_id, "; ".join(reasons))
        return rejected(reasons, uri)

    # Freeze the exact bytes we checked: later steps read these copies, never the landing zone.
    wprefix = work_prefix(manifest.asset_id, run_id)
    source_uri = None
    if manifest.source_file:
        if facts and facts.get(
            "prepared"
        ):  # the prepared copy is what the next steps read (landing keeps the original)
            src_key = wprefix + "source/" + facts["prepared"]
            store.upload(str(checked), buckets.work, src_key)
        else:
            src_key = wprefix + "source/" + PurePosixPath(manifest.source_file).name
            store.copy(bucket, prefix + manifest.source_file, buckets.work, src_key)
        source_uri = f"s3://{buckets.work}/{src_key}"
        if checked is not None:  # transcode and QC on this machine read these checked bytes from the local cache
            localcache.keep(checked, buckets.work, src_key)
    arrival = manifest.delivered_at or present[MANIFEST_NAME].get("last_modified")
    items = locale_items(store, buckets, manifest, bucket=bucket, prefix=prefix, present=set(present), work=wprefix)
    embedded = embedded_caption_item(manifest, facts, source_uri) if source_uri else None
    if embedded:
        items.append(embedded)
    items, skipped = trigger_form.select_locales(items, locales)
    return Ingested(
        **known,
        status="accepted",
        mode="sidecars" if manifest.sidecar_only else "full",
        reasons=[],
        warnings=warnings,
        title=manifest.title,
        source_uri=source_uri,
        source=facts,
        previous=previous,
        locales=items,
        locales_skipped=skipped,
        territories=list(manifest.territories),
        channels=[c for c in (manifest.channels or spec.channels) if c in spec.channels] or list(spec.channels),
        delivered_at=iso_z(arrival),
    ).to_dict()


def locale_items(store: Store, buckets: Buckets, manifest, *, bucket: str, prefix: str, present: set[str],
                 work: str) -> list[dict]:  # fmt: skip
    """One work item per caption/audio locale, its file copied to the work bucket; a problem rejects that locale only."""
    items = []
    for kind, entries in (("captions", manifest.captions), ("audio", manifest.audio)):
        for i, entry in enumerate(entries):
            item = {"kind": kind, "locale": str(entry["locale"]), "file": entry["file"], "uri": None, "problem": None}
            if not localize.valid_locale(item["locale"]):
                item["problem"] = (
                    f"{MANIFEST_NAME}: field '{kind}[{i}].locale' {item['locale']!r} is not a valid BCP-47 language tag"
                )
            elif entry["file"] not in present:
                item["problem"] = f"{entry['file']}: named in manifest.json ({kind}[{i}]) but not in the delivery"
            else:
                key = f"{work}sidecars/{kind}/{entry['file']}"
                store.copy(bucket, prefix + entry["file"], buckets.work, key)
                item["uri"] = f"s3://{buckets.work}/{key}"
            items.append(item)
    return items


def embedded_caption_item(manifest, facts: dict, source_uri: str) -> dict | None:
    """CEA-608/708 captions carried in the source become a caption locale when the manifest has none for the
    source language (manifest metadata.source_language, default en-US: 608's CC1 is the programme language)."""
    if not facts.get("embedded_captions"):
        return None
    language = str(manifest.metadata.get("source_language") or "en-US")
    if any(str(c["locale"]).lower() == language.lower() for c in manifest.captions):
        return None
    return {"kind": "captions", "locale": language, "file": f"{manifest.source_file} (embedded CEA-608)",
            "uri": source_uri, "problem": None, "embedded": facts["embedded_captions"]}  # fmt: skip


# ---------------------------------------------------------------- transcode


def _codec_of(segment: Path) -> str:
    """RFC 6381 codec string of an encoded segment, from its real profile and level."""
    proc = ffrun.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=profile,level",
                      "-of", "json", str(segment)], purpose="codec level", timeout=ffrun.PROBE_TIMEOUT_S, check=True)  # fmt: skip
    stream = (json.loads(proc.stdout).get("streams") or [{}])[0]
    return ladder.avc_codec(stream.get("profile"), stream.get("level"))


def package(out_dir: Path, renditions: list[ladder.Rendition], *, fps: float, has_audio: bool) -> dict:
    """Describe what was actually encoded (measured bandwidth, real codec level) for the master playlist."""
    variants = []
    for r in renditions:
        pl = out_dir / r.name / "index.m3u8"
        peak, avg = ladder.playlist_bandwidth(pl)
        first = out_dir / r.name / ladder.playlist_segments(pl.read_text())[0][1]
        variants.append({"uri": f"{r.name}/index.m3u8", "width": r.width, "height": r.height, "fps": fps,
                         "peak_bps": peak, "avg_bps": avg, "codec": _codec_of(first)})  # fmt: skip
    audios = []
    if has_audio:
        peak, avg = ladder.playlist_bandwidth(out_dir / ladder.AUDIO_DIR / "index.m3u8")
        audios.append({"uri": f"{ladder.AUDIO_DIR}/index.m3u8", "peak_bps": peak, "avg_bps": avg,
                       "language": "und", "name": "Main"})  # fmt: skip
    return {"variants": variants, "audios": audios}


def segments_written_s(out: Path, renditions: list[ladder.Rendition], has_audio: bool) -> float | None:
    """Seconds of the source every HLS output of the transcode has written, from the segments on disk (the one each
    output is writing not counted): the encode's figure while ffmpeg's own -progress says nothing yet."""
    dirs = [out / r.name for r in renditions] + ([out / ladder.AUDIO_DIR] if has_audio else [])
    try:
        started = [sum(1 for e in os.scandir(d) if e.name.endswith(".ts")) for d in dirs]
    except FileNotFoundError:
        return None
    return float(max(0, min(started) - 1) * ladder.SEGMENT_S) if started else None


def encode_groups(groups: list[tuple[ladder.Group, list[str]]], *, workdir: Path, out: Path, total_s: float,
                  report: progress_.Report, run_ffmpeg: Callable[[list[str]], None],
                  kill_ffmpeg: Callable[[], object] | None = None) -> None:  # fmt: skip
    """The ladder's groups (ladder.group_argvs) at once, each through run_ffmpeg with a -progress file of its own;
    the progress reported is the slowest group's. The first group to fail ends the others (kill_ffmpeg) and its
    error, naming the group's rungs, fails the transcode."""
    slowest = progress_.Slowest(report, parts=len(groups))

    def run(i: int, group: ladder.Group, argv: list[str]) -> None:
        try:
            run_ffmpeg(argv)
        except ffrun.FFmpegError as e:
            if len(groups) == 1 or isinstance(e, ffrun.FFmpegKilled):
                raise
            what = ", ".join([r.name for r in group.renditions] + ["audio"] * group.audio + ["posters"] * group.posters)
            raise ffrun.FFmpegError(f"transcode group {i + 1} of {len(groups)} ({what}): {e}", argv=e.argv,
                                    returncode=e.returncode, stderr=e.stderr) from e  # fmt: skip

    with contextlib.ExitStack() as stack:
        calls = []
        for i, (group, argv) in enumerate(groups):
            watched = stack.enter_context(progress_.FFmpegProgress(
                workdir / f"progress-{i}.txt", total_s=total_s, report=slowest.part(i), stage=names.TRANSCODE,
                poll_s=1.0, fallback=functools.partial(segments_written_s, out, list(group.renditions), group.audio)))  # fmt: skip
            calls.append(functools.partial(run, i, group, progress_.with_progress(argv, watched.path)))
        ffrun.run_together(calls, kill=kill_ffmpeg)


# long: the ladder's ffmpeg runs with their progress, uploads and poster picks; the steps share their state
def transcode(
    store: Store,
    buckets: Buckets,
    *,
    ingested: Ingested | dict,
    spec: StreamSpec,
    run_id: str,
    run_ffmpeg: Callable[[list[str]], None],
    workdir: str | None = None,
    progress: progress_.Report | None = None,
    kill_ffmpeg: Callable[[], object] | None = None,
) -> dict:
    """Source -> HLS ladder + audio rendition + poster + poster candidates, uploaded under the run's work prefix.

    The ladder runs as one ffmpeg per group of rungs at once (ladder.plan_groups, capacity's ladder_groups): see
    encode_groups. `kill_ffmpeg` ends every ffmpeg `run_ffmpeg` has running (FFmpegHook.send_sigterm).

    `progress` hears how far the encode is (seconds of the source, read from ffmpeg's -progress output while it
    runs), then how many of the files are uploaded (phase "upload").

    posters: [{variant, file, time_s, picked_by}] the candidates (ladder.poster_plan) in time order, p1 first:
    scene cuts the single graph picked, then a frame each at even spacing for those a title has no cut for."""
    ingested = Ingested.from_dict(ingested)
    src_bucket, src_key = parse_s3_uri(ingested.source_uri)
    facts = ingested.source
    video = facts.get("video")
    has_audio = facts.get("audio_streams", 0) > 0
    renditions = (
        ladder.select_renditions(spec.ladder, round(video["width"] * video.get("sar", 1.0)), video["height"])
        if video
        else []
    )
    fps = ladder.output_fps(video["fps"]) if video else 0.0
    out_prefix = work_prefix(ingested.asset_id, run_id) + "hls/"
    with tempfile.TemporaryDirectory(prefix="mediaflow-transcode-", dir=workdir) as tmp:
        src = Path(tmp) / PurePosixPath(src_key).name
        out = Path(tmp) / "hls"
        localcache.fetch(store, src_bucket, src_key, src)
        interlaced = bool(video and video["interlaced"])
        fitted = None  # opt-in: each rung's bitrate (and whether it is kept) from a probe of the source
        if renditions and spec.ladder_mode == complexity.CONTENT_AWARE:
            fitted = complexity.fit(src, renditions, fps=fps, interlaced=interlaced, duration_s=facts["duration_s"],
                                    target_vmaf=spec.target_vmaf, run_ffmpeg=run_ffmpeg, workdir=Path(tmp) / "probe")  # fmt: skip
            renditions = fitted.renditions
        ladder.output_dirs(out, renditions, has_audio)
        first = normalised = None
        if has_audio:  # the loudness normaliser's first pass, from the source as it will be heard (stereo)
            measured = loudness.measure(src, chain=loudness.DOWNMIX, name=src.name, duration_s=facts["duration_s"])
            first = loudness.first_pass(measured, target_lufs=spec.loudness.target_lufs,
                                        true_peak_dbtp=spec.loudness.true_peak_dbtp)  # fmt: skip
        groups = ladder.group_argvs(
            src, out, renditions, groups=capacity.capacity().ladder_groups, fps=fps, interlaced=interlaced,
            has_audio=has_audio, loudness=spec.loudness, duration_s=facts["duration_s"],
            audio_filter=loudness.audio_filter(first, target_lufs=spec.loudness.target_lufs) if first else None,
        )  # fmt: skip
        report = progress or progress_.ignore
        encode_groups(groups, workdir=Path(tmp), out=out, total_s=facts["duration_s"], report=report,
                      run_ffmpeg=run_ffmpeg, kill_ffmpeg=kill_ffmpeg)  # fmt: skip
        if has_audio:  # the encoded audio measured, and encoded again (alone) until it lands
            normalised = loudness.normalise_rendition(
                out / ladder.AUDIO_DIR, first=first, source=measured, target_lufs=spec.loudness.target_lufs,
                true_peak_dbtp=spec.loudness.true_peak_dbtp, run_ffmpeg=run_ffmpeg, first_encoded=True,
                make_argv=lambda d, f: ladder.audio_argv(src, d, audio_filter=f),
            )  # fmt: skip
        candidates = []
        if renditions:
            staged = out / ladder.POSTERS_DIR
            picks = ladder.scene_frames(p.name for p in staged.iterdir())
            scenes = [ladder.frame_time(n, fps) for n in picks]
            candidates = ladder.poster_plan(scenes, duration_s=facts["duration_s"], fps=fps)
            for c in candidates:
                if c["scene"]:
                    (staged / (ladder.SCENE_FRAME % picks[c["scene"] - 1])).replace(out / c["file"])
                else:
                    run_ffmpeg(ladder.poster_frame_argv(src, out / c["file"], renditions[0], time_s=c["time_s"],
                                                        fps=fps, interlaced=interlaced))  # fmt: skip
            made = sorted(p.relative_to(out).as_posix() for p in staged.iterdir())
            if made != sorted(c["file"] for c in candidates):
                raise RuntimeError(f"poster candidates: expected {[c['file'] for c in candidates]}, found {made}")
        packaged = package(out, renditions, fps=fps, has_audio=has_audio)
        # each rung against the source scaled the same way (VMAF, PSNR, SSIM on sampled windows): the quality gate's
        # figures, kept out of the uploaded folder
        # (a transport stream's timeline starts at the earliest stream its command read: the rungs that shared a
        # process with the audio are scored on that timeline)
        scores = quality.score_ladder(src, out, renditions, fps=fps, interlaced=interlaced,
                                      duration_s=facts["duration_s"], run_ffmpeg=run_ffmpeg, workdir=Path(tmp),
                                      audio_with={r.name for g, _ in groups if g.audio for r in g.renditions},
                                      ) if renditions else None  # fmt: skip
        files = sorted(p for p in out.rglob("*") if p.is_file())
        uploaded = progress_.Count(report, stage=names.TRANSCODE, phase="upload", total=len(files))
        each(uploaded.wrap(lambda path: store.upload(str(path), buckets.work, out_prefix + path.relative_to(out).as_posix())),
             files)  # fmt: skip
    return Transcoded(
        hls_uri=f"s3://{buckets.work}/{out_prefix}",
        files=[p.relative_to(out).as_posix() for p in files],
        variants=packaged["variants"],
        audios=packaged["audios"],
        fps=fps,
        posters=[{k: c[k] for k in ("variant", "file", "time_s", "picked_by")} for c in candidates],
        loudness=normalised,
        renditions=scored_rungs([s.to_dict() for s in scores], packaged["variants"]) if scores is not None else UNSET,
        ladder=fitted.figures() if fitted else UNSET,
    ).to_dict()


# ---------------------------------------------------------------- localize


def localize_locale(
    store: Store,
    buckets: Buckets,
    *,
    ingested: Ingested | dict,
    item: dict,
    spec: StreamSpec,
    run_id: str,
    run_ffmpeg: Callable[[list[str]], None],
) -> dict:
    """One caption or audio locale -> its HLS rendition under the run's work prefix, or `rejected` with reasons.

    Bad input in one locale never raises (the title publishes without it); storage or ffmpeg trouble does.
    """
    which = {"kind": item["kind"], "locale": item["locale"], "file": item["file"]}
    if item.get("problem"):
        return Localized(**which, reasons=[item["problem"]]).to_dict()
    ingested = Ingested.from_dict(ingested)
    out_prefix = work_prefix(ingested.asset_id, run_id) + "hls/"
    duration = ingested.source["duration_s"]
    with tempfile.TemporaryDirectory(prefix="mediaflow-localize-") as tmp:
        src = Path(tmp) / "in" / PurePosixPath(item["uri"]).name
        src.parent.mkdir()
        bucket, key = parse_s3_uri(item["uri"])
        store.download(bucket, key, str(src))
        out = Path(tmp) / "hls"
        try:
            if item.get("embedded"):
                extracted = src.with_name(f"{item['locale']}.cea608.vtt")
                run_ffmpeg(media.extract_captions_argv(src, extracted, item["embedded"]))
                src = extracted
            if item["kind"] == "captions":
                done = localize.captions_to_hls(src, out, locale=item["locale"], duration_s=duration)
            else:
                done = localize.audio_to_hls(src, out, locale=item["locale"], duration_s=duration,
                                             loudness=spec.loudness, run_ffmpeg=run_ffmpeg)  # fmt: skip
        except (captions.CaptionError, media.MediaError) as e:
            log.warning("locale %s (%s) rejected: %s", item["locale"], item["file"], e)
            return Localized(**which, reasons=[str(e)]).to_dict()
        files = sorted(p for p in out.rglob("*") if p.is_file())
        for path in files:
            store.upload(str(path), buckets.work, out_prefix + path.relative_to(out).as_posix())
    return Localized(**which, status="ok", warnings=done["warnings"], hls_uri=f"s3://{buckets.work}/{out_prefix}",
                     files=[p.relative_to(out).as_posix() for p in files], rendition=done["rendition"],
                     loudness=done.get("normalised")).to_dict()  # fmt: skip


# ---------------------------------------------------------------- publish


def superseded_by(live: dict | None, ingested: Ingested | dict) -> str | None:
    """Why this delivery must not replace what is live: the live version comes from a delivery that arrived later
    (two deliveries of one asset in flight: the newest wins, whichever finishes first). None: go ahead."""
    if not live or not live.get("delivered_at") or not ingested.get("delivered_at"):
        return None
    if live.get("delivery_id") == ingested.get("delivery_id"):
        return None
    if instant(live["delivered_at"]) <= instant(ingested.get("delivered_at")):
        return None
    return (
        f"asset {ingested.get('asset_id')}: not published: the live version comes from delivery "
        f"{live.get('delivery_id')} (delivered {live['delivered_at']}), newer than this delivery "
        f"{ingested.get('delivery_id')} (delivered {ingested.get('delivered_at')}); the newer one stays live"
    )


def publish_rank(name: str) -> int:
    """0 media, 1 media playlists, 2 the master: a reader never finds a playlist before its segments."""
    if name == ladder.MASTER:
        return 2
    return 1 if name.endswith(".m3u8") else 0


def publish_order(files: list[str]) -> list[str]:
    """Media first, then media playlists, the master last."""
    return sorted(files, key=lambda f: (publish_rank(f), f))


VERSION_CHARS = 12  # 48 bits of SHA-256: a title has a handful of versions, never billions


def publish_version(objects: dict[str, str]) -> str:
    """The version id of a publish: a short hash over every object it puts under the version (relative name ->
    content hash: the source object's ETag), in name order. The same bytes under the same names give the same id
    (publishing them again writes nothing); one byte more or less anywhere gives another."""
    digest = hashlib.sha256()
    for name in sorted(objects):
        digest.update(f"{name}\t{objects[name]}\n".encode())
    return digest.hexdigest()[:VERSION_CHARS]


def versioned(renditions: list[dict], version: str) -> list[dict]:
    """Master playlist entries whose URIs point into the version's folder."""
    return [{**r, "uri": f"{version}/{r['uri']}"} for r in renditions]


def referenced_folders(master: str | None) -> set[str]:
    """The top folders ('<version>/') a master playlist's URIs point into: what its players may still fetch.
    A master written before versions existed names rung folders ('v720/', 'audio/'): those are kept the same way."""
    uris = [ln for ln in (master or "").splitlines() if ln.strip() and not ln.startswith("#")]
    uris += re.findall(r'URI="([^"]+)"', master or "")
    return {u.split("/", 1)[0] + "/" for u in uris if "/" in u}


def _source_etags(store: Store, parts: list[dict]) -> dict[tuple[str, str], str]:
    """(bucket, key) -> ETag of every object under the parts' source folders (one listing per folder)."""
    etags = {}
    for uri in sorted({p["hls_uri"] for p in parts}):
        bucket, prefix = parse_s3_uri(uri)
        etags.update({(bucket, k): meta["etag"] for k, meta in store.list(bucket, prefix).items()})
    return etags


def _switch(store: Store, buckets: Buckets, *, prefix: str, master: str, poster: tuple[str, str, str] | None,
            etags: dict) -> str | None:  # fmt: skip
    """Point the title at the new version: the default poster (when the title has pictures), then the master
    playlist, each only when its bytes change. Returns the master it replaced (None: there was none)."""
    dist, master_key = buckets.distribution, prefix + ladder.MASTER
    if poster:
        src_bucket, src_key, _ = poster
        live = store.list(dist, prefix + ladder.POSTER).get(prefix + ladder.POSTER)
        if not live or live["etag"] != etags[(src_bucket, src_key)]:
            store.copy(src_bucket, src_key, dist, prefix + ladder.POSTER, cache_control=SWITCH)
    old = store.get_bytes(dist, master_key).decode() if master_key in store.list(dist, master_key) else None
    if old != master:
        store.put_bytes(master.encode(), dist, master_key, cache_control=SWITCH)  # last: the title goes live
    return old


def _retire(store: Store, buckets: Buckets, *, prefix: str, version: str, replaced: str | None,
            recorded: str | None) -> None:  # fmt: skip
    """Delete what neither the new master nor the one it replaced refers to: versions older than the previous
    one (players and caches may still hold the previous master for its max-age, never an older one). `recorded`:
    the version the published state names (the previous one, also when a try of this publish died after its
    master switch, so the master it replaced is this one)."""
    keep = {f"{version}/"} | referenced_folders(replaced) | ({f"{recorded}/"} if recorded else set())
    switches = {prefix + ladder.MASTER, prefix + ladder.POSTER}
    stale = sorted(k for k in store.list(buckets.distribution, prefix)
                   if k not in switches and not any(k.startswith(prefix + f) for f in keep))  # fmt: skip
    if stale:
        log.info("publish: %d objects of older versions under %s deleted", len(stale), prefix)
        store.delete(buckets.distribution, stale)


# long: the publish order (version objects, default poster, master last, older versions) reads as one sequence
def publish(
    store: Store,
    buckets: Buckets,
    *,
    ingested: Ingested | dict,
    transcoded: dict | None,
    localized: list[Localized | dict] | None,
    rights_check: dict | None = None,
    progress: progress_.Report | None = None,
) -> dict:
    """Publish the title to every channel under <channel>/<asset_id>/<version>/ (content-addressed: the same bytes
    give the same version and write nothing), then switch the stable <channel>/<asset_id>/master.m3u8 (and the
    default poster.jpg) to it, last. A published URL never changes its bytes except those two switch points.
    The version the replaced master named is kept; older ones are deleted.

    `progress` hears how many of the objects (every channel's) are published.

    A sidecar-only delivery re-publishes the title as the last publish left it plus its new locales (same
    locale: replaced). Returns {published: [...], locales: {locale: status}, reasons: [...], warnings: [...]}.
    """
    ingested = Ingested.from_dict(ingested)
    asset_id = ingested.asset_id
    live_now = published_state(store, buckets, asset_id)  # read again here: the lease makes this the latest
    newer = superseded_by(live_now, ingested)
    if newer:  # not Published(...): this payload has always had its keys in this order on XCom
        return {"published": [], "locales": {}, "warnings": [], "superseded_by": live_now.get("delivery_id"),
                "reasons": [newer]}  # fmt: skip
    # a sidecar-only delivery extends what is live now, not what was live when it was ingested
    previous = (live_now if not transcoded and live_now else ingested.get("previous")) or {}
    video = transcoded if transcoded else previous.get("video")
    if not video:
        raise RuntimeError(f"asset {asset_id}: nothing transcoded and no earlier publish to extend")
    video = {k: video[k] for k in ("hls_uri", "files", "variants", "audios", "posters") if k in video}
    # the same pictures again (sidecar-only): keep the default poster the A/B test chose; a new transcode resets it
    chosen = previous.get("poster") if not transcoded else None
    poster_from = posters.source_of_default(previous) if chosen else ladder.POSTER
    live = dict(previous.get("locales", {})) if not transcoded else {}
    statuses, reasons, warnings = {}, [], []
    for r in map(Localized.from_dict, localized or []):
        if r.ok:
            live[f"{r.kind}:{r.locale}"] = {"kind": r.kind, "locale": r.locale, "hls_uri": r.hls_uri, "files": r.files,
                                            "rendition": r.rendition}  # fmt: skip
            statuses[r.locale] = "published"
            warnings += r.warnings
        else:
            statuses[r.locale] = r.locale_status
            reasons += [f"locale {r.locale} ({r.kind}) rejected: {reason}" for reason in r.reasons]

    ordered = sorted(live.values(), key=lambda x: (x["kind"], x["locale"]))
    parts = [video] + ordered  # (hls_uri, files) to copy: the ladder, then each locale's rendition
    etags = _source_etags(store, parts)
    objects = []  # (rank, source bucket, source key, name under the version)
    for part in parts:
        src_bucket, src_prefix = parse_s3_uri(part["hls_uri"])
        for name in part["files"]:
            if name == ladder.MASTER:  # the title's master is written for the version, never copied into it
                continue
            if (src_bucket, src_prefix + name) not in etags:
                raise RuntimeError(f"asset {asset_id}: s3://{src_bucket}/{src_prefix}{name} is missing")
            objects.append((publish_rank(name), src_bucket, src_prefix + name, name))
    version = publish_version({name: etags[(b, k)] for _, b, k, name in objects})
    master = ladder.master_playlist(
        versioned(video["variants"], version),
        versioned(video["audios"] + [x["rendition"] for x in ordered if x["kind"] == "audio"], version),
        versioned([x["rendition"] for x in ordered if x["kind"] == "captions"], version),
    )
    video_bucket, video_prefix = parse_s3_uri(video["hls_uri"])
    # the default poster at the title's stable URL: the A/B test's choice, else the one transcode made
    poster = (video_bucket, video_prefix + poster_from, ladder.POSTER) if ladder.POSTER in video["files"] else None
    plans = []  # (channel, territories, prefix): where it goes out
    for channel in ingested.channels:
        territories = compliance.publishable_territories(rights_check, channel, ingested.territories)
        if territories:  # no open window anywhere on this channel: nothing goes out there
            plans.append((channel, territories, distribution_prefix(channel, asset_id)))
    switches = 1 + (poster is not None)  # the master, and the default poster when the title has pictures
    count = progress_.Count(progress or progress_.ignore, stage=names.PUBLISH,
                            total=len(plans) * (len(objects) + switches))  # fmt: skip
    published = []
    for channel, territories, prefix in plans:
        here = prefix + version + "/"
        there = store.list(buckets.distribution, here)  # the same version published before: those objects stay
        todo = [o for o in objects if here + o[3] not in there]
        if len(todo) < len(objects):
            count.add(len(objects) - len(todo))
        for rank in sorted({o[0] for o in todo}):  # every segment before any playlist: many at once within a rank
            each(count.wrap(lambda o, here=here: store.copy(o[1], o[2], buckets.distribution, here + o[3],
                                                            cache_control=IMMUTABLE)),
                 sorted(o for o in todo if o[0] == rank))  # fmt: skip
        replaced = _switch(store, buckets, prefix=prefix, master=master, poster=poster, etags=etags)
        for _ in range(switches):  # one object at a time, as the copies count
            count.add()
        _retire(store, buckets, prefix=prefix, version=version, replaced=replaced,
                recorded=(live_now or {}).get("version"))  # fmt: skip
        published.append({
            "channel": channel,
            "territories": territories,
            "uri": f"s3://{buckets.distribution}/{prefix}{ladder.MASTER}",
            "local_path": None,
        })  # fmt: skip
    state = {
        "asset_id": asset_id,
        "delivery_id": ingested.get("delivery_id"),
        "delivered_at": ingested.get("delivered_at"),
        "source": ingested.source,
        "channels": [p["channel"] for p in published],
        "territories": ingested.territories,
        "version": version,
        "video": video,
        "locales": live,
        **({"poster": chosen} if chosen else {}),
    }
    store.put_bytes(json.dumps(state, indent=2).encode(), buckets.reports, published_state_key(asset_id))
    if rights_check:
        reasons += rights_check["problems"]
    all_locales = {x["locale"]: "published" for x in ordered}
    all_locales.update(statuses)
    return Published(published=published, locales=all_locales, reasons=reasons, warnings=warnings).to_dict()


# ---------------------------------------------------------------- outcome


def outcome(
    *,
    dag_run_id: str,
    value_stream: str,
    ingested: dict | None,
    published: dict | None,
    failed_tasks: list[str],
    finished_at: datetime,
    task_errors: dict[str, str] | None = None,
    localized: list[dict] | None = None,
    reviews: list[Review | dict | None] | None = None,
    checks: dict | None = None,
) -> dict:
    """One summary.json asset entry (v1) for this run. Fields not built yet are None. `task_errors` (task id ->
    the error of its last failed attempt, from the ledger) makes a `failed` title say why. The status and its
    reasons are mediaflow.decisions.outcome_status; the entry is mediaflow.results.SummaryEntry."""
    ingested = ingested or {}
    published = published or {}
    locales = published.get("locales") or {r.locale: r.locale_status for r in map(Localized.from_dict, localized or [])}
    reviews = [Review.from_dict(r) for r in reviews or [] if r]
    status, reasons = decisions.outcome_status(ingested=ingested or None, published=published or None, reviews=reviews,
                                               failed_tasks=failed_tasks, task_errors=task_errors)  # fmt: skip
    return SummaryEntry(
        asset_id=ingested.get("asset_id"),
        delivery_id=ingested.get("delivery_id"),
        value_stream=value_stream,
        status=status,
        reasons=reasons,
        dag_run_id=dag_run_id,
        lead_time_s=decisions.lead_time_s(status, ingested.get("delivered_at"), finished_at),
        source=ingested.get("source"),
        stages=None,
        locales=locales or None,
        published=published.get("published", []),
        renditions=rendition_scores(checks),
        # what did not stop the title but a person may want to know: ingest's (e.g. frames skipped before the
        # first keyframe), technical QC's (black/silence/freeze within the allowances), localize's
        warnings=list(ingested.get("warnings") or [])
        + list(((checks or {}).get(names.TECHNICAL_QC) or {}).get("warnings") or [])
        + list(published.get("warnings", [])),
        reviews=reviews or None,
        compliance=compliance_summary(checks),
        quarantine_uri=ingested.get("quarantine_uri"),
    ).to_dict()


SUMMARY_RENDITION = ("rendition", "width", "height", "bitrate_kbps", "vmaf", "vmaf_min", "psnr", "ssim")


def scored_rungs(scores: list[dict], variants: list[dict]) -> list[dict]:
    """Each rung's scores (mediaflow.quality.RungScore dicts, every field kept: the gate reads them back) beside its
    bitrate measured from the segments (package's variants: average and peak, kb/s), in ladder order."""
    rates = {v["uri"].split("/", 1)[0]: v for v in variants}
    out = []
    for s in scores:
        rate = rates.get(s["rendition"], {})
        out.append({"rendition": s["rendition"], "width": s["width"], "height": s["height"],
                    "bitrate_kbps": round(rate["avg_bps"] / 1000) if rate else None,
                    "peak_kbps": round(rate["peak_bps"] / 1000) if rate else None,
                    **{k: s[k] for k in s if k not in ("rendition", "width", "height")}})  # fmt: skip
    return out


def rendition_scores(checks: dict | None) -> list[dict]:
    """summary.json's `renditions` (v1.1): each rung's scores as technical QC judged them; UNSET when the run scored
    none (no video, a sidecar-only delivery, a run that stopped before its checks)."""
    scored = ((checks or {}).get(names.TECHNICAL_QC) or {}).get("renditions")
    return [{k: r.get(k) for k in SUMMARY_RENDITION} for r in scored] if scored else UNSET


def quality_of(entry: dict) -> dict:
    """The scorecard's inputs from one summary.json asset entry (the run's outcome): its status, how many review
    answers there were and how many rejected, QC findings, locales delivered and rejected, each rung's scores and
    the lowest rung's VMAF."""
    renditions = list(entry.get("renditions") or [])
    reviews = [r for r in entry.get("reviews") or [] if r]
    qc = ((entry.get("compliance") or {}).get(names.TECHNICAL_QC) or {}).get("findings") or []
    locales = entry.get("locales") or {}
    return {
        "status": entry.get("status"),
        "reviews_total": len(reviews),
        "reviews_rejected": sum(1 for r in reviews if r.get("decision") == "rejected"),
        "qc_findings": len(qc),
        "locales_total": len(locales),
        "locales_rejected": sum(1 for v in locales.values() if str(v).startswith("rejected")),
        "warnings": list(entry.get("warnings") or []),
        "lowest_rung_vmaf": min((r["vmaf"] for r in renditions if r.get("vmaf") is not None), default=None),
        "renditions": renditions,
    }


def locale_rejection_mail(entry: dict, *, owners: list[str]) -> dict | None:
    """One email to the stream owners when locales of a title were rejected (None when none were)."""
    rejected = {loc: st for loc, st in (entry.get("locales") or {}).items() if st.startswith("rejected")}
    if not rejected:
        return None
    asset = entry.get("asset_id") or entry.get("delivery_id")
    rows = "".join(f"<li><b>{html.escape(loc)}</b>: {html.escape(st)}</li>" for loc, st in sorted(rejected.items()))
    return {
        "to": owners,
        "subject": f"[mediaflow] {asset}: localize rejected {len(rejected)} locale(s): {', '.join(sorted(rejected))}",
        "html": (
            f"<p>Value stream <b>{html.escape(entry['value_stream'])}</b>, asset <b>{html.escape(str(asset))}</b>, "
            f"run {html.escape(entry['dag_run_id'])}: status <b>{entry['status']}</b>. "
            f"These locales were not published:</p><ul>{rows}</ul>"
            "<p>Fix the files and deliver them again as a sidecar-only delivery (captions/audio, no source).</p>"
        ),
    }


def compliance_summary(checks: dict | None) -> dict | None:
    """What summary.json keeps of the checks: rights decisions, loudness per rendition, QC findings, GX result."""
    checks = {k: v for k, v in (checks or {}).items() if v}
    if not checks:
        return None
    rights_c, loud, tqc, meta = (checks.get(k) or {} for k in names.CHECKS)
    return {
        names.RIGHTS: rights_c.get("decisions"),
        names.LOUDNESS: {k: loud.get(k) for k in ("source", "renditions", "normalisation")} if loud else None,
        names.TECHNICAL_QC: {"findings": tqc.get("problems", []), "warnings": tqc.get("warnings", []),
                         "judged": tqc.get("findings"), "detections": tqc.get("detections")} if tqc else None,
        names.METADATA: {k: meta["gx"].get(k) for k in ("suite", "suite_version", "success", "evaluated", "successful",
                                                   "failed")} | {"uri": meta.get("gx_uri")} if meta else None,
        "problems": [p for c in checks.values() for p in c.get("problems", [])],
    }  # fmt: skip
