"""Compliance checks over a Store, and the review policy they feed.

Each check returns a mediaflow.results.CheckResult as its XCom dict {"check", "passed", "problems": [...],
...details}; a failed check never raises (it is a finding about the title), storage and ffmpeg trouble does. The review policy maps checks to branches:
editorial <- metadata quality, legal <- rights, qc <- loudness + technical QC. A branch whose policy is `auto`
is approved when its checks passed; otherwise a person decides.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict
from datetime import datetime
from pathlib import Path, PurePosixPath

from mediaflow import localcache, loudness, metadata_quality, names, qc, quality, rights
from mediaflow.results import CheckResult, Review
from mediaflow.spec import StreamSpec
from mediaflow.store import Buckets, Store, parse_s3_uri, run_key

RIGHTS_KEY = "rights/avails.csv"
BRANCHES = names.BRANCHES  # the review branches
CHECKS_OF = names.CHECKS_OF  # review branch -> the compliance checks that feed it


def load_catalog(store: Store, buckets: Buckets) -> list[rights.Avail]:
    name = f"s3://{buckets.reports}/{RIGHTS_KEY}"
    if RIGHTS_KEY not in store.list(buckets.reports, RIGHTS_KEY):
        return []  # no catalog: nothing is publishable, and legal review is required
    return rights.parse_catalog(store.get_bytes(buckets.reports, RIGHTS_KEY).decode("utf-8"), name=name)


def check_rights(store: Store, buckets: Buckets, *, ingested: dict, at: datetime) -> dict:
    decisions = rights.decide(load_catalog(store, buckets), asset_id=ingested["asset_id"],
                              channels=ingested["channels"], territories=ingested["territories"], at=at)  # fmt: skip
    problems = [f"rights {d.channel}/{d.territory}: {d.reason}" for d in decisions if not d.publishable]
    return CheckResult(
        check=names.RIGHTS, passed=not problems, problems=problems, extra={"decisions": [asdict(d) for d in decisions]}
    ).to_dict()


def _video_part(ingested: dict, transcoded: dict | None) -> dict | None:
    return transcoded or (ingested.get("previous") or {}).get("video")


def _download_rendition(store: Store, hls_uri: str, folder: str, files: list[str], dest: Path) -> Path:
    bucket, prefix = parse_s3_uri(hls_uri)
    for name in files:
        if name.startswith(folder + "/"):
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            store.download(bucket, prefix + name, str(target))
    return dest / folder / "index.m3u8"


def check_loudness(store: Store, buckets: Buckets, *, ingested: dict, transcoded: dict | None,
                   localized: list[dict], spec: StreamSpec) -> dict:  # fmt: skip
    """Every published audio rendition measured (EBU R128) against the spec's target and true-peak ceiling.
    `normalisation`: per rendition made in this run, how the normaliser brought it there (mode, passes, figures)."""
    parts, normalisation = [], {}
    video = _video_part(ingested, transcoded)
    if video and video.get("audios"):
        parts.append(("audio", video["hls_uri"], video["files"]))
        if transcoded and transcoded.get("loudness"):
            normalisation["audio"] = transcoded["loudness"]
    for r in localized:
        if r["status"] == "ok" and r["kind"] == "audio":
            folder = r["rendition"]["uri"].split("/", 1)[0]
            parts.append((folder, r["hls_uri"], r["files"]))
            if r.get("loudness"):
                normalisation[folder] = r["loudness"]
    renditions, problems = {}, []
    with tempfile.TemporaryDirectory(prefix="mediaflow-loudness-") as tmp:
        for folder, hls_uri, files in parts:
            playlist = _download_rendition(store, hls_uri, folder, files, Path(tmp) / folder.replace("/", "_"))
            measured = loudness.measure(playlist, name=f"{folder}/index.m3u8")
            renditions[folder] = measured
            problems += loudness.check(measured, target_lufs=spec.loudness.target_lufs,
                                       true_peak_dbtp=spec.loudness.true_peak_dbtp, name=f"{folder}/index.m3u8")  # fmt: skip
    return CheckResult(check=names.LOUDNESS, passed=not problems, problems=problems,
                       extra={"source": (ingested.get("source") or {}).get("loudness"), "renditions": renditions,
                              "normalisation": normalisation or None}).to_dict()  # fmt: skip


def check_technical_qc(store: Store, buckets: Buckets, *, ingested: dict, spec: StreamSpec,
                       transcoded: dict | None = None) -> dict:  # fmt: skip
    """Black frames, frozen video and silence in the source, as time ranges judged with the spec's head/tail
    allowances and mid-programme limits (mediaflow.qc): errors are `problems` (a person decides), warnings only
    listed. Then the quality gate: each rung's VMAF (scored by transcode, mediaflow.quality) against the stream's
    floor; a rung below it is a problem naming the rung and its score (`renditions`: every rung's scores)."""
    if not ingested.get("source_uri"):
        return CheckResult(
            check=names.TECHNICAL_QC,
            passed=True,
            problems=[],
            warnings=[],
            extra={"detections": None, "note": "sidecar-only delivery: the source was checked when it was published"},
        ).to_dict()
    facts = ingested["source"]
    bucket, key = parse_s3_uri(ingested["source_uri"])
    name = PurePosixPath(key).name
    with tempfile.TemporaryDirectory(prefix="mediaflow-qc-") as tmp:
        src = Path(tmp) / name
        localcache.fetch(store, bucket, key, src)
        detections = qc.detect(src, duration_s=facts["duration_s"], has_video=bool(facts.get("video")),
                               has_audio=facts.get("audio_streams", 0) > 0, thresholds=spec.qc,
                               video_index=(facts.get("video") or {}).get("index"),
                               audio_index=(facts.get("audio") or {}).get("index"))  # fmt: skip
    judged = qc.judge(detections, duration_s=facts["duration_s"], thresholds=spec.qc, name=name)
    problems = [f["message"] for f in judged if f["severity"] == "error"]
    warnings = [f["message"] for f in judged if f["severity"] == "warning"]
    scored = list((transcoded or {}).get("renditions") or [])
    gate = quality.gate(scored, spec.quality)
    extra = {"findings": judged, "detections": detections}
    if scored:
        extra["renditions"] = scored
        floors = {r["rendition"]: quality.floor_for(r["height"], spec.quality) for r in scored}
        extra["quality_gate"] = {"floors": floors, "failed": gate,
                                 "on_fail": spec.quality.on_fail if spec.quality else None}  # fmt: skip
    return CheckResult(
        check=names.TECHNICAL_QC,
        passed=not problems and not gate,
        problems=problems + gate,
        warnings=warnings,
        extra=extra,
    ).to_dict()


def check_metadata(store: Store, buckets: Buckets, *, ingested: dict, known_streams: list[str], run_id: str) -> dict:
    """The manifest and probe facts against the versioned GX suite; the validation result is kept with the asset."""
    row = metadata_quality.facts_row(ingested, ingested.get("source") or {})  # ingest carries the manifest fields
    summary = metadata_quality.validate([row], known_streams=known_streams)
    key = f"compliance/{ingested['asset_id']}/{run_key(run_id)}/metadata_gx.json"
    store.put_bytes(json.dumps(summary, indent=2, default=str).encode(), buckets.reports, key)
    problems = [
        f"metadata: {f['expectation']} failed on {f.get('column')}: unexpected {f.get('unexpected')}"
        for f in summary.get("failed", [])
    ]
    return CheckResult(
        check=names.METADATA,
        passed=bool(summary["success"]),
        problems=problems,
        extra={"gx": summary, "gx_uri": f"s3://{buckets.reports}/{key}"},
    ).to_dict()


def review_mode(branch: str, policy: str, checks: dict[str, dict]) -> tuple[str, list[str]]:
    """('auto' | 'human' | 'reject', why). A failed check forces a person whatever the policy (rights -> legal,
    QC -> qc); a rung below the stream's quality floor rejects the title outright when the stream says
    `quality.on_fail: reject` (technical QC's `quality_gate`), naming each rung and its score."""
    gate = (checks.get(names.TECHNICAL_QC) or {}).get("quality_gate") or {}
    if names.TECHNICAL_QC in CHECKS_OF[branch] and gate.get("failed") and gate.get("on_fail") == "reject":
        return "reject", list(gate["failed"])
    problems = [p for name in CHECKS_OF[branch] for p in (checks.get(name) or {}).get("problems", [])]
    if policy == "human":
        return "human", problems or [f"the stream's policy asks for {branch} review by a person"]
    if problems:
        return "human", problems
    return "auto", [f"{branch}: automated checks passed ({', '.join(CHECKS_OF[branch])})"]


def auto_approval(branch: str, why: list[str]) -> dict:
    """The review decision of a branch the automated checks approved (review_mode gave 'auto')."""
    return Review(branch=branch, decision="approved", by="auto", comment="; ".join(why)).to_dict()


QUALITY_GATE = "quality gate"  # who rejected a title whose rung fell below the stream's floor (on_fail: reject)


def auto_rejection(branch: str, why: list[str]) -> dict:
    """The review decision of a branch the quality gate rejected (review_mode gave 'reject')."""
    return Review(branch=branch, decision="rejected", by=QUALITY_GATE, comment="; ".join(why)).to_dict()


def refused_reviews(reviews: list[dict | None]) -> list[str]:
    """Why publish must not run: each branch an automatic decision rejected (the person's Reject skips publish
    itself), as the outcome words it."""
    refused = [Review.from_dict(r) for r in reviews if r and r.get("decision") == "rejected"]
    return [f"{r.branch} review rejected by {r.by}: {r.comment or 'no comment'}" for r in refused]


def publishable_territories(rights_check: dict | None, channel: str, territories: list[str]) -> list[str]:
    """Territories of a channel where a rights window is open; all of them when no rights check ran."""
    if not rights_check:
        return list(territories)
    return [d["territory"] for d in rights_check["decisions"] if d["channel"] == channel and d["publishable"]]
