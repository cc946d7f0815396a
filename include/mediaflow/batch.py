"""The content batch: find the deliveries not yet processed in the landing bucket, validate their manifests as one
batch with a Great Expectations suite (include/gx/manifest_suite.json), quarantine the invalid ones, and plan one
value-stream run per valid delivery, highest priority first, up to a cap. Plain Python, no Airflow imports.

"Processed" is recorded per delivery in the reports bucket (`deliveries/<delivery_id>.json`): written once its run
exists (or when the delivery is quarantined), so a batch run again, a later batch, or the landing event for the
same delivery never starts the title twice. Before triggering, the batch claims the delivery
(`claims/<delivery_id>.json`, naming its run id): a batch that died before triggering, or whose trigger kept failing
(the claim then says `pending` and why), leaves the claim, and the next batch triggers exactly that run (the
trigger itself is idempotent on the run id).
"""

from __future__ import annotations

import html
import json
import logging
import os
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from mediaflow import flow, gx_suite
from mediaflow.flow import REJECTION_FILE
from mediaflow.manifest import KNOWN, MANIFEST_NAME, file_name_problem, named_files
from mediaflow.stages import instant, iso_z
from mediaflow.store import DELIVERIES, Buckets, Store, read_json

SUITE_PATH = Path(__file__).resolve().parent.parent / "gx" / "manifest_suite.json"
PRIORITIES = ("low", "normal", "high", "urgent")
INCOMPLETE_AFTER_S = (
    24 * 3600.0
)  # a delivery folder without manifest.json for this long is refused  # the trigger form's list, lowest first
COLUMNS = ("delivery_id", "parse_error", "unknown_keys", "type_errors", "asset_id", "title", "value_stream",
           "has_content", "territories", "priority", "delivered_at", "last_modified")  # fmt: skip
CLAIMS = "claims"  # reports bucket: a run about to be triggered for a delivery (see claim())
PENDING = "pending"  # a claim's status when its trigger kept failing: the next batch tries it again
# a trigger's retries (exponential backoff, full jitter) stop when the batch's trigger budget is spent
DEFAULT_TRIGGER_BUDGET_S = (
    120.0  # MEDIAFLOW_TRIGGER_RETRY_BUDGET_S: a DAG re-parsed after being deactivated is back within it
)
# MEDIAFLOW_TRIGGER_WORKERS: triggers in flight at once over one token. On PostgreSQL 4 halve a 270-delivery batch's
# trigger time (60.9 s -> 30.9 s); on SQLite use 1: two trigger transactions at once waited on each other's lock for
# the whole busy timeout (the stack froze for 2 minutes)
DEFAULT_TRIGGER_WORKERS = 4
RETRYABLE_HTTP = frozenset({404, 408, 409, 425, 429})  # and every 5xx: see trigger_retryable()
DOWN_AFTER_FAILURES = 3  # this many failed triggers in a row, none succeeding for the budget: the API server is down

log = logging.getLogger(__name__)


def processed_key(delivery_id: str) -> str:
    return f"{DELIVERIES}/{delivery_id}.json"


def claim_key(delivery_id: str) -> str:
    return f"{CLAIMS}/{delivery_id}.json"


def run_id_for(batch_kind: str, day: str, delivery_id: str) -> str:
    """Deterministic: the same batch on the same day names the same run, so it can never start twice."""
    return f"{batch_kind}__{day}__{delivery_id}"


def _now() -> str:
    return iso_z(datetime.now(UTC))


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
        row["parse_error"] = (
            f"{MANIFEST_NAME}: missing from the delivery (no manifest {INCOMPLETE_AFTER_S / 3600:g} h after its files)"
        )
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
    now = now or datetime.now(UTC)

    def one(delivery_id: str) -> dict | None:
        prefix = f"{DELIVERIES}/{delivery_id}/"
        objects = store.list(buckets.landing, prefix)
        meta = objects.get(prefix + MANIFEST_NAME)
        if meta is None:
            newest = max((datetime.fromisoformat(o["last_modified"]) for o in objects.values()), default=now)
            if (now - newest).total_seconds() < incomplete_after_s:
                return None  # still arriving
            return manifest_row(delivery_id, None)
        return manifest_row(
            delivery_id, store.get_bytes(buckets.landing, prefix + MANIFEST_NAME), meta.get("last_modified")
        )

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
    """The delivery's run exists: it is processed; no batch or landing event starts it again. A delivery that was
    pending keeps `pending_since` in its marker; the reason of the last failed trigger goes."""
    marker = {k: v for k, v in record.items() if k not in _PENDING_FIELDS} | {
        "status": "triggered",
        "triggered_at": _now(),
    }
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


# ---------------------------------------------------------------- trigger
_PENDING_FIELDS = ("reason", "attempts", "http_status", "tried_by", "last_try_at")


def trigger_budget_s() -> float:
    """How long one batch keeps retrying failed triggers (MEDIAFLOW_TRIGGER_RETRY_BUDGET_S, default 120 s)."""
    return float(os.environ.get("MEDIAFLOW_TRIGGER_RETRY_BUDGET_S") or DEFAULT_TRIGGER_BUDGET_S)


def trigger_workers() -> int:
    """Triggers in flight at once (MEDIAFLOW_TRIGGER_WORKERS, default 4)."""
    return max(1, int(os.environ.get("MEDIAFLOW_TRIGGER_WORKERS") or DEFAULT_TRIGGER_WORKERS))


def trigger_retryable(exc: BaseException) -> bool:
    """Worth another try within the batch's budget: no answer at all (a time-out, a refused or cut connection:
    the error carries no HTTP status), 404 (the DAG is not in the API server's view while it is re-parsed after
    being deactivated), 408/425/429, 409 (a race with another trigger of the same run id) and every 5xx. Not: a
    400/422 (a conf the DAG refuses) or 401/403 (the service account may not trigger): those fail again the same
    way, and neither is retried; the delivery is left pending with the reason either way."""
    status = getattr(exc, "status", None)
    if status is None:
        return hasattr(exc, "status") or isinstance(exc, (OSError, TimeoutError, ConnectionError))
    return status in RETRYABLE_HTTP or status >= 500


def _short(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def retry_delay(
    round_no: int, *, base_s: float = 1.0, cap_s: float = 20.0, rand: Callable[[], float] = random.random
) -> float:
    """Seconds before retry round `round_no` (1, 2, ...): exponential (base x 2^(round-1), at most `cap_s`) with
    jitter (a random half to all of it), so a batch's retries do not land on a recovering API server in step."""
    return min(cap_s, base_s * 2 ** (round_no - 1)) * (0.5 + 0.5 * rand())


def pending_reason(record: dict, exc: BaseException | None, *, attempts: int, seconds: float) -> str:
    """Why a delivery was left pending, for the claim, the batch's return value, the mail and `make run`."""
    last = _short(exc) if exc is not None else "none"
    if attempts == 0:
        return (f"trigger of {record['dag_id']} run {record['run_id']} not tried: the API server looked down (the last "
                f"{DOWN_AFTER_FAILURES}+ triggers failed, none succeeded for {seconds:.0f} s; last error: {last}); the "
                "next batch tries it again")  # fmt: skip
    kind = "transient error, retry budget spent" if trigger_retryable(exc) else "not retryable"
    return (f"trigger of {record['dag_id']} run {record['run_id']} failed {attempts} time{'s' if attempts != 1 else ''} "
            f"in {seconds:.0f} s ({kind}): {last}; the next batch tries it again")  # fmt: skip


def leave_pending(store: Store, buckets: Buckets, record: dict, *, reason: str, attempts: int, http_status: int | None,
                  batch_run_id: str) -> dict:  # fmt: skip
    """Its run could not be started: the claim stays (same DAG and run id, so whichever batch triggers it next starts
    exactly that run, once) and says why. pending_deliveries() hands it to the next batch."""
    now = _now()
    pending = {**record, "status": PENDING, "reason": reason, "attempts": attempts, "http_status": http_status,
               "tried_by": batch_run_id, "last_try_at": now, "pending_since": record.get("pending_since") or now}  # fmt: skip
    store.put_bytes(json.dumps(pending, indent=2).encode(), buckets.reports, claim_key(record["delivery_id"]))
    return pending


# long: the retry budget, the thread pool and the per-record state share one lock; split, they would share globals
def trigger_all(store: Store, buckets: Buckets, records: list[dict], *, trigger: Callable, batch_run_id: str,
                budget_s: float | None = None, workers: int | None = None, sleep: Callable[[float], None] = time.sleep,
                clock: Callable[[], float] = time.monotonic, rand: Callable[[], float] = random.random) -> list[dict]:  # fmt: skip
    """Start the run each claim names. `trigger(dag_id, run_id, conf)` -> (run, created) makes one attempt.

    First every delivery gets one try, in the records' order (`workers` at a time). Then the ones that failed for a
    retryable reason (trigger_retryable) are tried again in rounds, after exponential, jittered delays
    (retry_delay), until they start or `budget_s` (MEDIAFLOW_TRIGGER_RETRY_BUDGET_S) has passed since the first
    round began: a batch of any size spends at most the budget on retries. If the API server looks down (the
    last DOWN_AFTER_FAILURES tries failed and none succeeded for the whole budget: each try may be a 90 s
    time-out), the deliveries not tried yet are not tried. One slow failure (a lock held for a minute) is not that.

    A run that exists is marked processed (mark_triggered); a delivery whose trigger did not succeed is left
    pending (leave_pending) with the reason; the others go on. One entry per record, in the records' order:
    {delivery_id, value_stream, dag_id, run_id, priority, created, status: triggered|pending[, reason, attempts]}."""
    import threading

    budget = trigger_budget_s() if budget_s is None else budget_s
    lock = threading.Lock()
    last_ok = clock()
    failing = 0  # failed tries since the last success
    tries, errors, first_try = [0] * len(records), [None] * len(records), [0.0] * len(records)
    results: list[dict | None] = [None] * len(records)
    settled = [False] * len(records)  # triggered, or failed for good
    last_error: list[BaseException | None] = [None]

    def entry(i: int) -> dict:
        return {k: records[i][k] for k in ("delivery_id", "value_stream", "dag_id", "run_id", "priority")}

    def attempt(i: int) -> None:
        nonlocal last_ok, failing
        rec = records[i]
        if tries[i] == 0 and failing >= DOWN_AFTER_FAILURES and clock() - last_ok > budget:
            return  # the API has failed every trigger for the whole budget: leave it untried
        tries[i] += 1
        first_try[i] = first_try[i] or clock()
        try:
            _, created = trigger(
                rec["dag_id"], rec["run_id"], {"delivery": rec["delivery_id"], "priority": rec["priority"]}
            )
        except Exception as e:  # noqa: BLE001  one delivery's trouble never fails the batch
            errors[i] = e
            with lock:
                last_error[0] = e
                failing += 1
            settled[i] = not trigger_retryable(e)
            log.warning("trigger %s %s failed (try %d): %s", rec["dag_id"], rec["run_id"], tries[i], _short(e))
            return
        mark_triggered(store, buckets, rec)
        results[i], settled[i] = entry(i) | {"created": created, "status": "triggered"}, True
        with lock:
            last_ok, failing = clock(), 0

    def each(indices: list[int]) -> None:
        n = workers or trigger_workers()
        if n == 1:
            for i in indices:
                attempt(i)
            return
        with ThreadPoolExecutor(max_workers=n) as pool:
            list(pool.map(attempt, indices))

    each(list(range(len(records))))
    retry_began, round_no = clock(), 0
    while todo := [i for i in range(len(records)) if not settled[i] and tries[i] > 0]:
        round_no += 1
        delay = retry_delay(round_no, rand=rand)
        if clock() + delay - retry_began > budget:
            break
        log.info("retry round %d in %.1f s: %d trigger(s)", round_no, delay, len(todo))
        sleep(delay)
        each(todo)
    for i, rec in enumerate(records):
        if results[i] is None:
            error = errors[i] or last_error[0]
            reason = pending_reason(rec, error, attempts=tries[i], seconds=clock() - (first_try[i] or last_ok))
            log.error("%s left pending: %s", rec["delivery_id"], reason)
            leave_pending(store, buckets, rec, reason=reason, attempts=tries[i], http_status=getattr(error, "status", None),
                          batch_run_id=batch_run_id)  # fmt: skip
            results[i] = entry(i) | {"created": False, "status": PENDING, "reason": reason, "attempts": tries[i]}
    return results


def pending_mail(pending: list[dict], *, batch_run_id: str) -> dict | None:
    """One mail per batch for every delivery whose run could not be started (entries of trigger_all, status
    pending): which, and why. None when every run started."""
    if not pending:
        return None
    items = "".join(f"<li><b>{html.escape(p['delivery_id'])}</b> ({html.escape(p['dag_id'])}, run "
                    f"<code>{html.escape(p['run_id'])}</code>)<ul><li>{html.escape(p['reason'])}</li></ul></li>"
                    for p in pending)  # fmt: skip
    n = len(pending)
    return {
        "subject": f"[BATCH] {n} deliver{'ies' if n != 1 else 'y'} left pending: run not started ({batch_run_id})",
        "html": f"<p>The content batch <code>{html.escape(batch_run_id)}</code> could not start the value-stream run of "
        f"{n} deliver{'ies' if n != 1 else 'y'}, retrying for {trigger_budget_s():.0f} s. The other deliveries "
        "started. Each one below stays claimed under the same run id, and the next batch starts it (once); if it "
        "keeps failing, check the Airflow API server and that the DAG is active.</p>"
        f"<ul>{items}</ul>",
    }


def pending_status(delivery_id: str, marker: dict | None, claim: dict | None) -> dict | None:
    """What `make run` says of a delivery that has no run: None when a run took it or it was refused (it has a
    marker), else {delivery_id, status: pending, reason, value_stream, dag_id, run_id, ...}: its trigger kept
    failing (the claim says why), its batch ended between claim and trigger, or no batch took it yet."""
    if marker is not None:
        return None
    out = {"delivery_id": delivery_id, "status": PENDING, "value_stream": None, "dag_id": None, "run_id": None}
    if claim is None:
        return out | {"reason": "not taken by the batch (over its max_runs, or its manifest.json had not arrived); "
                                "the next batch takes it"}  # fmt: skip
    out |= {k: claim.get(k) for k in ("value_stream", "dag_id", "run_id")}
    if claim.get("status") == PENDING:
        return out | {"reason": claim["reason"], "attempts": claim.get("attempts"),
                      "pending_since": claim.get("pending_since"), "batch_run_id": claim.get("tried_by")}  # fmt: skip
    return out | {"batch_run_id": claim.get("batch_run_id"),
                  "reason": f"claimed by batch {claim.get('batch_run_id')}, which ended before starting its run; "
                            "the next batch starts it"}  # fmt: skip


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
    return (instant(ts) or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%d")
