"""Metadata quality: one flat row per title (manifest + probed facts) validated by a versioned Great
Expectations 1.x suite (include/gx/metadata_suite.json), run by mediaflow.gx_suite. The value stream set is an
expectation parameter ({"$PARAMETER": "known_streams"}) filled at run time from the stream specs.

Audio-only titles: the fps/width/height expectations carry the row condition ``has_video == True``, so those
rows are skipped by the video checks rather than filled with made-up values.
"""

from __future__ import annotations

from pathlib import Path

from mediaflow import gx_suite

SUITE_PATH = Path(__file__).resolve().parent.parent / "gx" / "metadata_suite.json"
COLUMNS = ("asset_id", "title", "value_stream", "territories", "n_territories", "duration_s", "width", "height",
           "fps", "interlaced", "audio_streams", "has_video")  # fmt: skip


def _field(manifest, key: str, default=None):
    if isinstance(manifest, dict):
        return manifest.get(key, default)
    return getattr(manifest, key, default)  # a mediaflow.manifest.Manifest works too


def facts_row(manifest: dict, facts: dict) -> dict:
    """The flat row the suite checks. `manifest` is the manifest JSON (or a Manifest), `facts` media's facts."""
    facts = facts or {}
    video = facts.get("video") or None
    territories = list(_field(manifest, "territories") or [])
    duration = facts.get("duration_s")
    return {
        "asset_id": _field(manifest, "asset_id"),
        "title": _field(manifest, "title"),
        "value_stream": _field(manifest, "value_stream"),
        "territories": ",".join(str(t) for t in territories),
        "n_territories": len(territories),
        "duration_s": float(duration) if duration is not None else None,
        "width": int(video["width"]) if video and video.get("width") is not None else None,
        "height": int(video["height"]) if video and video.get("height") is not None else None,
        "fps": float(video["fps"]) if video and video.get("fps") is not None else None,
        "interlaced": bool(video.get("interlaced")) if video else None,
        "audio_streams": int(facts.get("audio_streams") or 0),
        "has_video": video is not None,
    }


def validate(rows: list[dict], *, known_streams: list[str], suite_path: str | Path = SUITE_PATH) -> dict:
    """Validate rows (from facts_row) against the suite; a JSON-serialisable summary.

    {"suite", "suite_version", "success", "evaluated", "successful",
     "failed": [{"expectation", "column", "unexpected": first 5 values, "asset_ids": of those rows}]}
    """
    import pandas as pd

    frame = pd.DataFrame([{c: row.get(c) for c in COLUMNS} for row in rows], columns=list(COLUMNS))
    summary = gx_suite.run(frame, suite_path=suite_path, parameters={"known_streams": sorted(known_streams)},
                           asset_name="metadata_rows")  # fmt: skip
    asset_ids = [row.get("asset_id") for row in rows]
    failed = []
    for f in summary["failed"]:
        entry = {"expectation": f["expectation"], "column": f["column"], "unexpected": f["unexpected"],
                 "asset_ids": [gx_suite.plain(asset_ids[i]) for i in f["rows"][:5] if 0 <= i < len(asset_ids)]}  # fmt: skip
        if "error" in f:
            entry["error"] = f["error"]
        failed.append(entry)
    return {
        **{k: summary[k] for k in ("suite", "suite_version", "success", "evaluated", "successful")},
        "failed": failed,
    }
