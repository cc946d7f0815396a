"""The content batch: find the deliveries not yet processed in the landing bucket, validate their manifests as one
batch with a Great Expectations suite (include/gx/manifest_suite.json), quarantine the invalid ones, and plan one
value-stream run per valid delivery, highest priority first, up to a cap. Plain Python, no Airflow imports.

"Processed" is recorded per delivery in the reports bucket (`deliveries/<delivery_id>.json`): written before a run
is triggered (or when the delivery is quarantined), so a batch run again, a later batch, or the landing event for
the same delivery never starts the title twice. A marker left by a batch that died before triggering still names
its run id, so the next batch triggers exactly that run (the trigger itself is idempotent on the run id).
"""

from __future__ import annotations

import html
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

from mediaflow import flow, gx_suite
from mediaflow.manifest import KNOWN, MANIFEST_NAME, file_name_problem, named_files
from mediaflow.stages import instant, iso_z
from mediaflow.flow import REJECTION_FILE
from mediaflow.store import DELIVERIES, Buckets, Store, read_json

SUITE_PATH = Path(__file__).resolve().parent.parent / "gx" / "manifest_suite.json"
PRIORITIES = ("low", "normal", "high", "urgent")
INCOMPLETE_AFTER_S = 24 * 3600.0  # a delivery folder without manifest.json for this long is refused  # the trigger form's list, lowest first
COLUMNS = ("delivery_id", "parse_error", "unknown_keys", "type_errors", "asset_id", "title", "value_stream",
           "has_content", "territories", "priority", "delivered_at", "last_modified")  # fmt: skip
CLAIMS = "claims"  # reports bucket: a run about to be triggered for a delivery (see claim())


def processed_key(delivery_id: str) -> str:
    return f"{DELIVERIES}/{delivery_id}.json"


def claim_key(delivery_id: str) -> str:
    return f"{CLAIMS}/{delivery_id}.json"


def run_id_for(batch_kind: str, day: str, delivery_id: str) -> str:
    """Deterministic: the same batch on the same day names the same run, so it can never start twice."""
    return f"{batch_kind}__{day}__{delivery_id}"


def _now() -> str:
    return iso_z(datetime.now(timezone.utc))


# ---------------------------------------------------------------- find
def pending_deliveries(store: Store, buckets: Buckets) -> tuple[list[str], list[dict]]:
    """(new delivery ids, claims to finish): deliveries in landing with no processed marker; of those, the ones a
    batch claimed but did not see triggered (it died in between) come back as their claim, run id included.
    Three paginated listings, so thousands of deliveries are fine."""
    landed = sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in store.list_folders(buckets.landing, f"{DELIVERIES}/"))
    processed = _ids(store.list(buckets.reports, f"{DELIVERIES}/"), DELIVERIES)
    claimed = _ids(store.list(buckets.reports, f"{CLAIMS}/"), CLAIMS)
    todo = [d for d in landed if d not in processed]
    claims = [json.loads(store.get_bytes(buckets.reports, claim_key(d))) for d in todo if d in claimed]
    return [d for d in todo if d not in claimed], claims


def _ids(keys, folder: str) -> set[str]:
    """Delivery ids from `<folder>/<id>.json` keys (not deeper ones)."""
    out = set()
    for key in keys:
        rest = key[len(folder) + 1 :]
        if rest.endswith(".json") and "/" not in rest:
            out.add(rest[: -len(".json")])
    return out


def read_marker(store: Store, buckets: Buckets, delivery_id: str) -> dict | None:
    """The processed marker of a delivery (what happened to it), None when it was never processed."""
    return read_json(store, buckets.reports, processed_key(delivery_id))


# ---------------------------------------------------------------- validate
def _text(value) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def manifest_row(delivery_id: str, raw: bytes | None, last_modified: str | None = None) -> dict:
    """One DataFrame row per delivery for the suite. Problems found while flattening are columns the suite checks
    (parse_error, unknown_keys, type_errors), so every finding comes out of the one GX validation."""
    row = dict.fromkeys(COLUMNS)
    row.update(delivery_id=delivery_id, last_modified=last_modified, has_content=False, priority="normal")
    if raw is None:
        row["parse_error"] = f"{MANIFEST_NAME}: missing from the delivery (no manifest {INCOMPLETE_AFTER_S / 3600:g} h after its files)"
        return row
    try:
        doc = json.loads(raw)
    except ValueError as e:
        row["parse_error"] = f"{MANIFEST_NAME}: not valid JSON ({e})"
        return row
    except RecursionError:
        row["parse_error"] = f"{MANIFEST_NAME}: not valid JSON (nested too deeply)"
        return row
    if not isinstance(doc, dict):
        row["parse_error"] = f"{MANIFEST_NAME}: must be a JSON object, got {type(doc).__name__}"
        return row
    unknown = sorted(set(doc) - KNOWN)
    row["unknown_keys"] = ", ".join(repr(k) for k in unknown) or None
    types = []
    for name in ("asset_id", "title", "value_stream"):
        value = doc.get(name)
        if value is not None and not isinstance(value, str):
            types.append(f"field '{name}' must be a string, got {type(value).__name__}")
        row[name] = _text(value)
    source, captions, audio = doc.get("source"), doc.get("captions"), doc.get("audio")
    if source is not None and not (isinstance(source, dict) and _text(source.get("file"))):
        types.append("field 'source' must be an object with a 'file'")
    row["has_content"] = bool(isinstance(source, dict) and _text(source.get("file"))) or bool(captions) or bool(audio)
    # an unsafe file name (traversal, shell or look-alike characters) is refused here, before any run starts
    types += [p for f, name in named_files(doc) if _text(name) and (p := file_name_problem(f, name))]
    territories = doc.get("territories")
    if territories is not None:
        if isinstance(territories, list) and territories and all(isinstance(t, str) for t in territories):
            row["territories"] = ",".join(territories)
        else:
            row["territories"] = json.dumps(territories)  # fails the suite's regex, and the reason shows it
    metadata = doc.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        types.append("field 'metadata' must be an object")
    elif isinstance(metadata, dict) and "priority" in metadata:
        row["priority"] = metadata["priority"] if isinstance(metadata["priority"], str) else repr(metadata["priority"])
    row["delivered_at"] = _text(doc.get("delivered_at"))
    row["type_errors"] = "; ".join(types) or None
    return row


def read_manifests(store: Store, buckets: Buckets, delivery_ids: list[str], *, workers: int = 8,
                   incomplete_after_s: float = INCOMPLETE_AFTER_S, now: datetime | None = None) -> list[dict]:  # fmt: skip
    """Rows for the deliveries that are complete: manifest.json is uploaded last, so a folder without one is
    still arriving and is left for a later batch; after `incomplete_after_s` without a manifest it is refused.
    Manifests are fetched in parallel (S3 latency, not CPU, is the cost)."""
    now = now or datetime.now(timezone.utc)

    def one(delivery_id: str) -> dict | None:
        prefix = f"{DELIVERIES}/{delivery_id}/"
        objects = store.list(buckets.landing, prefix)
        meta = objects.get(prefix + MANIFEST_NAME)
        if meta is None:
            newest = max((datetime.fromisoformat(o["last_modified"]) for o in objects.values()), default=now)
            if (now - newest).total_seconds() < incomplete_after_s:
                return None  # still arriving
            return manifest_row(delivery_id, None)
        return manifest_row(delivery_id, store.get_bytes(buckets.landing, prefix + MANIFEST_NAME), meta.get("last_modified"))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return [row for row in pool.map(one, delivery_ids) if row is not None]


def _reason(template: str, value) -> str:
    try:
        return template.format(value=value)
    except (KeyError, IndexError, ValueError):
        return f"{template} ({value!r})"


def validate(rows: list[dict], *, known_streams: list[str], suite_path: str | Path = SUITE_PATH) -> dict:
    """{"valid": [rows], "invalid": {delivery_id: [reasons]}, "suite": GX summary without row indices}.

    A row that could not be read at all gets only that reason: its other columns are empty for that cause."""
    import pandas as pd

    frame = pd.DataFrame([{c: r.get(c) for c in COLUMNS} for r in rows], columns=list(COLUMNS))
    summary = gx_suite.run(frame, suite_path=suite_path, asset_name="manifests",
                           parameters={"known_streams": sorted(known_streams), "priorities": list(PRIORITIES)})  # fmt: skip
    reasons: dict[int, list[str]] = {}
    for failure in summary["failed"]:
        if "error" in failure:  # the suite itself broke: that is not the deliveries' fault
            raise RuntimeError(f"{suite_path}: {failure['expectation']} on {failure['column']}: {failure['error']}")
        template = failure["meta"].get("reason") or f"{failure['description']} ({failure['expectation']})"
        for i in failure["rows"]:
            if rows[i].get("parse_error") and failure["column"] != "parse_error":
                continue
            reasons.setdefault(i, []).append(_reason(template, rows[i].get(failure["column"])))
    invalid = {rows[i]["delivery_id"]: found for i, found in sorted(reasons.items())}
    valid = [r for i, r in enumerate(rows) if i not in reasons]
    suite = {k: summary[k] for k in ("suite", "suite_version", "success", "evaluated", "successful")}
    suite["failed"] = [{k: f[k] for k in ("expectation", "column", "unexpected")} | {"count": len(f["rows"])}
                       for f in summary["failed"]]  # fmt: skip
    return {"valid": valid, "invalid": invalid, "suite": suite}


# ---------------------------------------------------------------- plan
def plan(valid: list[dict], *, cap: int, priorities: dict | None = None) -> tuple[list[dict], list[dict]]:
    """(to start now, left for the next batch): urgent first, then high, normal, low; within a priority the
    highest audience-feedback score first when a priorities table is given (mediaflow.feedback: the title's own
    score, else its series'; no score counts as 0), then the earliest delivered (manifest delivered_at, else when
    it landed), then by delivery id."""
    rank = {p: i for i, p in enumerate(reversed(PRIORITIES))}
    score = lambda r: 0.0  # noqa: E731
    if priorities:
        from mediaflow.feedback import score_of

        score = lambda r: score_of(priorities, r.get("asset_id")) or 0.0  # noqa: E731
    ordered = sorted(valid, key=lambda r: (rank.get(r["priority"], len(rank)), -score(r),
                                           r.get("delivered_at") or r.get("last_modified") or "", r["delivery_id"]))  # fmt: skip
    return ordered[:cap], ordered[cap:]


def claim(store: Store, buckets: Buckets, row: dict, *, dag_id: str, run_id: str, batch_run_id: str) -> dict:
    """Before triggering: record which run this delivery gets, so a batch that dies before `mark_triggered` is
    finished by the next one with the same run id (the trigger is idempotent on it)."""
    record = {"delivery_id": row["delivery_id"], "asset_id": row.get("asset_id"), "value_stream": row["value_stream"],
              "priority": row.get("priority") or "normal", "dag_id": dag_id, "run_id": run_id,
              "batch_run_id": batch_run_id, "claimed_at": _now()}  # fmt: skip
    store.put_bytes(json.dumps(record, indent=2).encode(), buckets.reports, claim_key(row["delivery_id"]))
    return record


def mark_triggered(store: Store, buckets: Buckets, record: dict) -> None:
    """The delivery's run exists: it is processed; no batch or landing event starts it again."""
    marker = {**record, "status": "triggered", "triggered_at": _now()}
    store.put_bytes(json.dumps(marker, indent=2).encode(), buckets.reports, processed_key(record["delivery_id"]))
    store.delete(buckets.reports, [claim_key(record["delivery_id"])])


def mark_taken_by_run(store: Store, buckets: Buckets, delivery_id: str, *, dag_id: str, run_id: str) -> bool:
    """A run started outside a batch (the trigger form, the REST API) took this delivery: mark it processed unless
    a batch already did, so no later batch starts the title a second time. True when this call marked it."""
    if read_marker(store, buckets, delivery_id) is not None:
        return False
    marker = {"delivery_id": delivery_id, "status": "triggered", "dag_id": dag_id, "run_id": run_id,
              "batch_run_id": None, "taken_by": "run", "triggered_at": _now()}  # fmt: skip
    store.put_bytes(json.dumps(marker, indent=2).encode(), buckets.reports, processed_key(delivery_id))
    return True


# ---------------------------------------------------------------- quarantine
def quarantine(store: Store, buckets: Buckets, delivery_id: str, reasons: list[str], *, batch_run_id: str) -> str:
    """Quarantine a delivery refused at validation (originals kept, reasons beside them) and mark it processed."""
    uri = flow.quarantine_delivery(store, buckets, source_bucket=buckets.landing, prefix=f"{DELIVERIES}/{delivery_id}/",
                                   delivery_id=delivery_id, record={"delivery": delivery_id, "run_id": batch_run_id,
                                   "reasons": reasons, "rejected_by": "manifest batch validation (include/gx/manifest_suite.json)"})  # fmt: skip
    marker = {"delivery_id": delivery_id, "status": "rejected", "reasons": reasons, "quarantine_uri": uri,
              "batch_run_id": batch_run_id, "at": _now()}  # fmt: skip
    store.put_bytes(json.dumps(marker, indent=2).encode(), buckets.reports, processed_key(delivery_id))
    return uri


def rejection_mail(invalid: dict[str, list[str]], quarantined: dict[str, str], *, batch_run_id: str) -> dict | None:
    """One summary mail per batch for every delivery refused at validation."""
    if not invalid:
        return None
    items = "".join(
        f"<li><b>{html.escape(d)}</b> ({html.escape(quarantined.get(d, ''))})<ul>"
        + "".join(f"<li>{html.escape(r)}</li>" for r in reasons)
        + "</ul></li>"
        for d, reasons in invalid.items()
    )
    n = len(invalid)
    return {
        "subject": f"[BATCH] {n} delivery manifest{'s' if n != 1 else ''} rejected ({batch_run_id})",
        "html": f"<p>The content batch <code>{html.escape(batch_run_id)}</code> refused {n} deliver{'ies' if n != 1 else 'y'} "
        f"at manifest validation. Each is kept in quarantine with a <code>{REJECTION_FILE}</code>; nothing of "
        f"it was processed. Fix the manifest and deliver it again under a new delivery id.</p><ul>{items}</ul>",
    }


def day_of(ts: str | datetime | None) -> str:
    return (instant(ts) or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y-%m-%d")
