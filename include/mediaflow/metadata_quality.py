"""Metadata quality: one flat row per title (manifest + probed facts) validated by a versioned Great
Expectations 1.x suite (include/gx/metadata_suite.json).

GX is used directly, without the Airflow provider: an ephemeral, in-memory context; a pandas datasource with a
dataframe asset and a whole-dataframe batch definition; the suite read from its JSON file. The value stream set
is an expectation parameter ({"$PARAMETER": "known_streams"}) filled at run time from the stream specs.

Audio-only titles: the fps/width/height expectations carry the row condition ``has_video == True``, so those
rows are skipped by the video checks rather than filled with made-up values.

great_expectations is imported inside validate(): importing it takes seconds and logs, and DAG files import
this module at parse time.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

SUITE_PATH = Path(__file__).resolve().parent.parent / "gx" / "metadata_suite.json"
COLUMNS = ("asset_id", "title", "value_stream", "territories", "n_territories", "duration_s", "width", "height",
           "fps", "interlaced", "audio_streams", "has_video")  # fmt: skip
_SUITE_KEYS = ("name", "expectations", "meta", "notes")


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


def load_suite_dict(path: str | Path = SUITE_PATH) -> dict:
    """The suite JSON; ValueError naming the file when it is not a versioned suite."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ValueError(f"{path}: not valid JSON: {e}") from None
    version = (data.get("meta") or {}).get("version") if isinstance(data, dict) else None
    if not isinstance(version, int) or not data.get("name") or not isinstance(data.get("expectations"), list):
        raise ValueError(f"{path}: must be a GX ExpectationSuite with name, expectations and meta.version (int)")
    return data


def _plain(value):
    """JSON-safe scalar: numpy -> python, NaN -> None."""
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        try:
            value = value.item()
        except (ValueError, TypeError):
            pass
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _exception_message(info) -> str | None:
    if not info:
        return None
    if "raised_exception" in info:
        return info.get("exception_message") if info.get("raised_exception") else None
    for nested in info.values():  # keyed by metric id
        if isinstance(nested, dict) and nested.get("raised_exception"):
            return nested.get("exception_message")
    return None


def validate(rows: list[dict], *, known_streams: list[str], suite_path: str | Path = SUITE_PATH) -> dict:
    """Validate rows (from facts_row) against the suite; a JSON-serialisable summary.

    {"suite", "suite_version", "success", "evaluated", "successful",
     "failed": [{"expectation", "column", "unexpected": first 5 values, "asset_ids": of those rows}]}
    """
    import great_expectations as gx  # slow and chatty: only when validating
    import pandas as pd
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    data = load_suite_dict(suite_path)
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    batch_definition = (
        context.data_sources.add_pandas("mediaflow")
        .add_dataframe_asset("metadata_rows")
        .add_batch_definition_whole_dataframe("all_rows")
    )
    suite = context.suites.add(gx.ExpectationSuite(**{k: data[k] for k in _SUITE_KEYS if k in data}))

    frame = pd.DataFrame([{c: row.get(c) for c in COLUMNS} for row in rows], columns=list(COLUMNS))
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    result = batch.validate(
        suite, result_format="COMPLETE", expectation_parameters={"known_streams": sorted(known_streams)}
    )

    asset_ids = [row.get("asset_id") for row in rows]
    failed = []
    for res in result.results:
        if res.success:
            continue
        config_ = res.expectation_config
        detail = res.result or {}
        indices = [i for i in (detail.get("unexpected_index_list") or []) if isinstance(i, int)]
        entry = {
            "expectation": config_.type,
            "column": config_.kwargs.get("column"),
            "unexpected": [_plain(v) for v in (detail.get("partial_unexpected_list") or [])[:5]],
            "asset_ids": [_plain(asset_ids[i]) for i in indices[:5] if 0 <= i < len(asset_ids)],
        }
        error = _exception_message(res.exception_info)
        if error:
            entry["error"] = error
        failed.append(entry)
    stats = result.statistics
    return {
        "suite": suite.name,
        "suite_version": data["meta"]["version"],
        "success": bool(result.success),
        "evaluated": int(stats["evaluated_expectations"]),
        "successful": int(stats["successful_expectations"]),
        "failed": failed,
    }
