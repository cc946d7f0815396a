"""Audience feedback I/O through the Store: event drops read from s3://<landing>/viewing-events/ and validated
with the Great Expectations suite include/gx/feedback/events.json (bad rows to quarantine with their reasons),
validated events loaded back, each title's catalog entry from its published state, and the figures written to
s3://<reports>/feedback/runs/<run>/ and feedback/latest/ (read back by the batch and the dashboard)."""

from __future__ import annotations

import pandas as pd

from mediaflow.feedback.render import report_html
from mediaflow.feedback.stats import ALPHA, COLUMNS, EVENTS, MIN_IMPRESSIONS, REQUIRED, catalog_entry

# ---------------------------------------------------------------- ingest: validate, quarantine bad rows
SUITE_PATH = __import__("pathlib").Path(__file__).resolve().parents[2] / "gx" / "feedback" / "events.json"
DROPS = "viewing-events"  # landing bucket: CSV or Parquet drops of viewing events
FEEDBACK = "feedback"  # reports bucket: feedback/events/ (valid rows), feedback/ingested/ (markers), feedback/latest/


def read_events(data: bytes, name: str) -> pd.DataFrame:
    """A drop as strings (CSV) or as stored (Parquet); ValueError naming the file when it cannot be read at all."""
    import io

    try:
        if name.endswith(".parquet"):
            return pd.read_parquet(io.BytesIO(data))
        if name.endswith(".csv"):
            return pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, na_values=[""])
    except Exception as e:  # noqa: BLE001 - pandas/pyarrow raise many types for a broken file
        raise ValueError(f"{name}: not readable as {name.rsplit('.', 1)[-1]}: {e}") from None
    raise ValueError(f"{name}: not a .csv or .parquet file")


def _as_text(col: pd.Series) -> pd.Series:
    return col.astype("object").where(col.notna(), None).map(lambda v: v if v is None else str(v))


def validate_events(raw: pd.DataFrame, *, suite_path=SUITE_PATH) -> dict:
    """{"valid": typed events (COLUMNS, timestamp as UTC instants), "bad": the raw rows that failed with a
    `reasons` column, "counts": {reason template: rows}, "rows": n, "suite": summary}. Every input row is in
    exactly one of valid and bad."""
    from mediaflow import gx_suite

    raw = raw.reset_index(drop=True)
    missing = [c for c in REQUIRED if c not in raw.columns]
    checked = pd.DataFrame({c: _as_text(raw[c]) if c in raw.columns else pd.Series([None] * len(raw), dtype="object")
                            for c in COLUMNS if c != "position_s"})  # fmt: skip
    checked["position_s"] = pd.to_numeric(raw["position_s"], errors="coerce") if "position_s" in raw else float("nan")
    stamps = checked["timestamp"].where(checked["timestamp"].notna(), None)
    checked["timestamp_utc"] = pd.to_datetime(stamps, utc=True, errors="coerce", format="ISO8601")
    checked["missing_columns"] = ", ".join(missing) or None
    summary = gx_suite.run(
        checked, suite_path=suite_path, asset_name="viewing_events", parameters={"events": list(EVENTS)}
    )
    reasons: dict[int, list[str]] = {}
    counts: dict[str, int] = {}
    for failure in summary["failed"]:
        if "error" in failure:
            raise RuntimeError(f"{suite_path}: {failure['expectation']} on {failure['column']}: {failure['error']}")
        template = failure["meta"].get("reason") or failure["description"]
        counts[template] = counts.get(template, 0) + len(failure["rows"])
        for i in failure["rows"]:
            value = checked.at[i, failure["column"]]
            try:
                reasons.setdefault(i, []).append(template.format(value=value))
            except (KeyError, IndexError, ValueError):
                reasons.setdefault(i, []).append(template)
    bad_index = sorted(reasons)
    bad = raw.loc[bad_index].assign(reasons=["; ".join(reasons[i]) for i in bad_index])
    valid = checked.drop(index=bad_index)
    valid = valid.assign(timestamp=valid["timestamp_utc"])[list(COLUMNS)].reset_index(drop=True)
    suite = {k: summary[k] for k in ("suite", "suite_version", "success", "evaluated", "successful")}
    return {"valid": valid, "bad": bad, "counts": counts, "rows": len(raw), "suite": suite}


def _stem(key: str) -> str:
    return key[len(DROPS) + 1 :].replace("/", "__")


def pending_drops(store, buckets) -> list[str]:
    """Event files in s3://<landing>/viewing-events/ not ingested yet (no marker in feedback/ingested/)."""
    drops = sorted(k for k in store.list(buckets.landing, f"{DROPS}/") if k.endswith((".csv", ".parquet")))
    done = set(store.list(buckets.reports, f"{FEEDBACK}/ingested/"))
    return [k for k in drops if f"{FEEDBACK}/ingested/{_stem(k)}.json" not in done]


def ingest_drop(store, buckets, key: str) -> dict:
    """Validate one drop: valid rows to s3://<reports>/feedback/events/<file>.parquet, bad rows with their
    reasons to s3://<quarantine>/viewing-events/<file>.rejected.csv plus counts per reason, then the marker
    (last: a retry redoes the same keys). An unreadable file goes to quarantine whole."""
    import json

    stem, marker = _stem(key), f"{FEEDBACK}/ingested/{_stem(key)}.json"
    record = {"key": key, "uri": f"s3://{buckets.landing}/{key}"}
    try:
        result = validate_events(read_events(store.get_bytes(buckets.landing, key), key))
    except ValueError as e:
        store.copy(buckets.landing, key, buckets.quarantine, f"{DROPS}/{stem}")
        record |= {"rows": None, "valid": 0, "quarantined": None, "counts": {str(e): 1}, "file_rejected": str(e)}
        store.put_bytes(json.dumps(record, indent=2).encode(), buckets.quarantine, f"{DROPS}/{stem}.counts.json")
        store.put_bytes(json.dumps(record, indent=2).encode(), buckets.reports, marker)
        return record
    import io

    buf = io.BytesIO()
    result["valid"].to_parquet(buf, index=False)
    store.put_bytes(buf.getvalue(), buckets.reports, f"{FEEDBACK}/events/{stem}.parquet")
    record |= {"rows": result["rows"], "valid": len(result["valid"]), "quarantined": len(result["bad"]),
               "counts": result["counts"], "suite": result["suite"]}  # fmt: skip
    if len(result["bad"]):
        store.put_bytes(result["bad"].to_csv(index=False).encode(), buckets.quarantine, f"{DROPS}/{stem}.rejected.csv")
        store.put_bytes(json.dumps(record, indent=2).encode(), buckets.quarantine, f"{DROPS}/{stem}.counts.json")
        record["quarantine_uri"] = f"s3://{buckets.quarantine}/{DROPS}/{stem}.rejected.csv"
    store.put_bytes(json.dumps(record, indent=2).encode(), buckets.reports, marker)
    return record


def load_events(store, buckets) -> pd.DataFrame:
    """Every validated event ingested so far."""
    import io

    keys = sorted(k for k in store.list(buckets.reports, f"{FEEDBACK}/events/") if k.endswith(".parquet"))
    frames = [pd.read_parquet(io.BytesIO(store.get_bytes(buckets.reports, k))) for k in keys]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(COLUMNS))


def catalog_for(store, buckets, titles, *, original_locale: str | None = None) -> dict[str, dict]:
    """Duration and available locales of each title, from its published state (a title never published: unknown
    duration, only the original locale)."""
    from mediaflow.store import published_state

    return {
        title: catalog_entry(published_state(store, buckets, title), original_locale=original_locale)
        for title in sorted(set(titles))
    }


def latest_key(name: str) -> str:
    return f"{FEEDBACK}/latest/{name}"


def publish(store, buckets, result: dict, *, run: str, generated_at: str, ingested: list[dict] | None = None) -> dict:
    """Write the figures to s3://<reports>/feedback/runs/<run>/, then copy them to feedback/latest/ (priorities.json
    last: the batch reads it). Returns {name: latest uri}."""
    import io
    import json

    from mediaflow.store import run_key

    prefix = f"{FEEDBACK}/runs/{run_key(run)}/"
    names = []
    for name in ("figures", "retention", "demand", "variants"):
        buf = io.BytesIO()
        result[name].to_parquet(buf, index=False)
        store.put_bytes(buf.getvalue(), buckets.reports, prefix + f"{name}.parquet")
        names.append(f"{name}.parquet")
    docs = {
        "recommendations.json": {"generated_at": generated_at, "recommendations": result["recommendations"]},
        "ab.json": {
            "generated_at": generated_at,
            "run": run,
            "alpha": ALPHA,
            "min_impressions": MIN_IMPRESSIONS,
            "titles": result["ab"],
        },
        "ingested.json": {"generated_at": generated_at, "drops": ingested or []},
        "priorities.json": {"generated_at": generated_at, **result["priorities"]},
    }
    for name, doc in docs.items():
        store.put_bytes(json.dumps(doc, indent=2, default=str).encode(), buckets.reports, prefix + name)
        names.append(name)
    store.put_bytes(report_html(result, generated_at=generated_at).encode(), buckets.reports, prefix + "index.html")
    names.insert(0, "index.html")
    for name in names:
        store.copy(buckets.reports, prefix + name, buckets.reports, latest_key(name))
    return {name: f"s3://{buckets.reports}/{latest_key(name)}" for name in names}


def read_latest(store, buckets, name: str) -> dict | None:
    """feedback/latest/<name> (a JSON document), None when the feedback loop has not written it yet."""
    from mediaflow.store import read_json

    return read_json(store, buckets.reports, latest_key(name))


def read_priorities(store, buckets) -> dict | None:
    """The latest priorities table, None when the feedback loop has not run (the batch keeps its own order)."""
    return read_latest(store, buckets, "priorities.json")


def read_recommendations(store, buckets) -> list[dict]:
    """The latest localization recommendations (empty before the feedback loop has run)."""
    return (read_latest(store, buckets, "recommendations.json") or {}).get("recommendations") or []
