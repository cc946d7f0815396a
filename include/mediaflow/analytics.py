"""The `value_stream_metrics` job, step by step (each step one task): compute the flow metrics over the ledger,
validate them with Great Expectations, publish the report, send the daily digest.

Steps hand over an S3 prefix, never DataFrames: `snapshot` writes one Parquet file per metrics table and a
meta.json under `s3://<reports>/value-streams/runs/<run>/`; `publish_report` renders index.html there and copies
the run's folder to `value-streams/latest/`, which people open and `make run` exports to out/reports/.
"""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mediaflow import names
from mediaflow.stages import instant, iso_z
from mediaflow.store import Buckets, Store, run_key

PREFIX = "value-streams"
LATEST = f"{PREFIX}/latest"
SUITES = Path(__file__).resolve().parent.parent / "gx" / "metrics"
VALIDATED = ("spans", "runs", "stages")  # the tables with a suite of their own: include/gx/metrics/<table>.json
DIGEST_DAG = names.METRICS_DAG  # the digest's outbox rows live under this dag id, one per UTC day


class MetricsInvalid(ValueError):
    """The metrics broke a validation rule: nothing is reported from them."""


def run_prefix(run_id: str) -> str:
    return f"{PREFIX}/runs/{run_key(run_id)}"


def read_window(ledger, since: datetime, until: datetime, *, tries: int = 10):
    """(attempts, runs, counts) read while the ledger stood still: runs and spans only ever grow, so equal SQL
    counts before and after the read mean the frames hold exactly what was counted (the ledger is live)."""
    from mediaflow import metrics

    counts = ledger.counts(since, until)
    for _ in range(tries):
        attempts, runs = ledger.frames(metrics.history_start(since, until), until)
        after = ledger.counts(since, until)
        if after == counts:
            return attempts, runs, counts
        counts = after
    raise RuntimeError(f"the ledger kept changing while it was read ({tries} tries); the task's retry reads it again")


def snapshot(ledger, store: Store, buckets: Buckets, *, slas_s: dict, run_id: str, now: datetime, days: float,
             slots: dict[str, int] | None = None) -> dict:  # fmt: skip
    """Metrics for the `days` before `now`, and the batch forecast as it stands (mediaflow.outlook.tables, with
    `slots` per pool: the machine's capacity unless given), as Parquet + meta.json under the run's prefix.
    Returns meta."""
    from mediaflow import capacity, forecast, metrics, outlook, report

    until = instant(now)
    since = until - timedelta(days=days)
    attempts, runs, counts = read_window(ledger, since, until)
    tables = metrics.compute(attempts, runs, slas_s, since=since, until=until, now=until)
    slots = forecast.slots_of(capacity.capacity()) if slots is None else slots
    tables.update(outlook.tables(attempts, runs, slots=slots, now=until))
    prefix = run_prefix(run_id)
    meta = {"generated_at": iso_z(until), "window": {"since": iso_z(since), "until": iso_z(until), "days": days},
            "expected": counts, "rows": {name: len(t) for name, t in tables.items()},
            "uri": f"s3://{buckets.reports}/{prefix}/"}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in report.write_parquet(tables, Path(tmp) / "data").items():
            store.upload(str(path), buckets.reports, f"{prefix}/data/{name}.parquet")
    store.put_bytes(json.dumps(meta, indent=2).encode(), buckets.reports, f"{prefix}/meta.json")
    return meta


def load(store: Store, buckets: Buckets, prefix: str) -> tuple[dict, dict]:
    """(tables, meta) back from a snapshot prefix."""
    import io

    import pandas as pd

    meta = json.loads(store.get_bytes(buckets.reports, f"{prefix}/meta.json"))
    tables = {name: pd.read_parquet(io.BytesIO(store.get_bytes(buckets.reports, f"{prefix}/data/{name}.parquet")))
              for name in meta["rows"]}  # fmt: skip
    return tables, meta


def validate(tables: dict, expected: dict) -> dict:
    """Each validated table against its GX suite; the row counts must match what SQL counted in the ledger.
    Returns {table: result}; raises MetricsInvalid naming the table, column and check of every failure."""
    from mediaflow import gx_suite

    params = {"expected_spans": expected["spans"], "expected_runs": expected["runs"]}
    results = {name: gx_suite.run(tables[name], suite_path=SUITES / f"{name}.json", parameters=params, asset_name=name)
               for name in VALIDATED}  # fmt: skip
    problems = [f"{name}: {f['description']} ({f['expectation']}"
                + (f" on {f['column']}" if f["column"] else "") + (f"; e.g. {f['unexpected'][:3]}" if f["unexpected"] else "")
                + (f"; {f['error']}" if f.get("error") else "") + ")"
                for name, r in results.items() for f in r["failed"]]  # fmt: skip
    if problems:
        raise MetricsInvalid("value-stream metrics failed validation: " + " | ".join(problems))
    return results


def publish_report(store: Store, buckets: Buckets, prefix: str) -> str:
    """index.html for the snapshot, then the whole snapshot copied to value-streams/latest/. Returns its URI."""
    from mediaflow import report

    tables, meta = load(store, buckets, prefix)
    html = report.render_html(tables, generated_at=meta["generated_at"], window=meta["window"])
    store.put_bytes(html.encode(), buckets.reports, f"{prefix}/index.html")
    # latest/ is replaced file by file, index.html last, so a reader never sees a page without its data
    keys = sorted(store.list(buckets.reports, f"{prefix}/"), key=lambda k: k.endswith("index.html"))
    for key in keys:
        store.copy(buckets.reports, key, buckets.reports, f"{LATEST}/{key[len(prefix) + 1 :]}")
    return f"s3://{buckets.reports}/{LATEST}/index.html"


def owners_of(specs: dict) -> list[str]:
    return sorted({o for spec in specs.values() for o in spec.owners})


def digest_day(now: datetime, hour: int) -> str | None:
    """The UTC day whose digest is due at `now` (from `hour` on), else None."""
    now = instant(now).astimezone(UTC)
    return now.strftime("%Y-%m-%d") if now.hour >= hour else None


def claim_digest(ledger, store: Store, buckets: Buckets, prefix: str, *, day: str, owners: list[str],
                 report_link: str | None) -> tuple[dict | None, str]:  # fmt: skip
    """The day's digest in the alert outbox (once per day, whichever run gets there first), or the pending one a
    failed delivery left. (alert to deliver or None, why). A window with no titles at all sends nothing yet: a
    later run of the same day sends the digest once there is something to say."""
    from mediaflow import report

    tables, _ = load(store, buckets, prefix)
    existing = next((a for a in ledger.alerts(DIGEST_DAG, day) if a["kind"] == "digest"), None)
    if existing is None and tables["runs"].empty and not tables["stages"]["wip"].sum():
        return None, "no titles in the window yet: no digest"
    if existing is None:
        from mediaflow.feedback import read_recommendations

        mail = report.digest_mail(tables, owners=owners, day=day, report_link=report_link,
                                  recommendations=read_recommendations(store, buckets))  # fmt: skip
        existing = ledger.claim_alert(dag_id=DIGEST_DAG, run_id=day, kind="digest", key=day, recipients=mail["to"],
                                      subject=mail["subject"], html=mail["html"])  # fmt: skip
        if existing is None:  # another run claimed it between our look and our claim
            existing = next(a for a in ledger.alerts(DIGEST_DAG, day) if a["kind"] == "digest")
    if existing["status"] != "pending":
        return None, f"the {day} digest was sent already"
    return existing, "due"
