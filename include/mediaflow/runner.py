"""`make run`: deliveries through the value streams on the embedded stack, then out/summary.json.

Usage: python -m mediaflow.runner [--deliveries DIR] [--keep-up]

Starts the stack when it is not up (and stops it again at the end unless --keep-up / KEEP_UP=1), uploads each
delivery folder to the landing bucket, runs the nightly_content_batch DAG (which validates the manifests and
starts one value-stream run per delivery), shows progress per asset and stage, exports what was published to out/published/, writes out/summary.json and
prints a table. Exit 0 when the batch completed (rejected deliveries are a correct outcome); 1 when any run
failed or the system could not run it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path


from mediaflow import analytics, rights, samples
from mediaflow.airflow_api import AirflowApi, ApiError
from mediaflow.devstack import PROJECT, Stack, StackError
from mediaflow.batch import processed_key
from mediaflow.spec import STAGE_ORDER, load_specs
from mediaflow.alerts import WATCH_TASK, spans_of
from mediaflow.ledger import Ledger
from mediaflow.stages import iso_z
from mediaflow.store import DELIVERIES, Buckets, outcome_key, parse_s3_uri

TERMINAL = {"success", "failed"}
BATCH_DAG_ID = "nightly_content_batch"


def upload_delivery(s3, buckets: Buckets, folder: Path) -> str:
    """manifest.json goes last: its arrival is what makes a delivery complete for the batch."""
    delivery_id = folder.name
    for path in sorted((p for p in folder.rglob("*") if p.is_file()), key=lambda p: (p.name == "manifest.json", str(p))):
        s3.upload_file(str(path), buckets.landing, f"{DELIVERIES}/{delivery_id}/{path.relative_to(folder).as_posix()}")
    return delivery_id


def _work(ti_rows: list[dict]) -> list[dict]:
    """The run's task instances without the SLA watcher (it waits, deferred, until the rest has ended)."""
    return [t for t in ti_rows if t["task_id"] != WATCH_TASK]


def _progress_line(ti_rows: list[dict]) -> str:
    states: dict[str, list[str]] = {}
    for ti in _work(ti_rows):
        stage = ti["task_id"].split(".", 1)[0]
        states.setdefault(stage, []).append(ti["state"] or "scheduled")
    parts = []
    for stage in [s for s in STAGE_ORDER if s in states] + [s for s in states if s not in STAGE_ORDER]:
        s = states[stage]
        if all(x in ("success", "skipped") for x in s):
            word = "skipped" if all(x == "skipped" for x in s) else "done"
        elif any(x in ("failed", "upstream_failed") for x in s):
            word = "FAILED"
        elif any(x == "up_for_retry" for x in s):
            word = "retrying"
        elif any(x in ("running", "deferred", "queued") for x in s) or any(x == "success" for x in s):
            word = "running"
        else:
            word = "waiting"
        parts.append(f"{stage}:{word}")
    return "  ".join(parts)


def download_folder(s3, bucket: str, prefix: str, dest: Path, *, strip: str = "") -> None:
    """Every object under `prefix` to dest/<its key without `strip`>, sub-folders made as needed."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            target = dest / obj["Key"][len(strip) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, obj["Key"], str(target))


def export_published(s3, buckets: Buckets, entry: dict, out_dir: Path) -> None:
    for pub in entry.get("published", []):
        bucket, master_key = parse_s3_uri(pub["uri"])
        download_folder(s3, bucket, master_key.rsplit("/", 1)[0] + "/", out_dir / "published")
        local = out_dir / "published" / master_key
        try:
            pub["local_path"] = str(local.relative_to(PROJECT))
        except ValueError:
            pub["local_path"] = str(local)


ACTIVE = {"queued", "scheduled", "running", "up_for_retry", "up_for_reschedule", "restarting", "deferred"}
AWAITING = "awaiting_input"


def merge_avails(s3, buckets: Buckets, csv_path: Path) -> int:
    """Rows of DELIVERIES/avails.csv merged into the rights catalog in S3; returns how many rows it now has."""
    from mediaflow.compliance import RIGHTS_KEY

    try:
        current = s3.get_object(Bucket=buckets.reports, Key=RIGHTS_KEY)["Body"].read().decode("utf-8")
    except s3.exceptions.NoSuchKey:
        current = ",".join(rights.HEADER) + "\n"
    merged = rights.merge_catalogs(
        rights.parse_catalog(current, name=f"s3://{buckets.reports}/{RIGHTS_KEY}"),
        rights.parse_catalog(csv_path.read_text(encoding="utf-8"), name=str(csv_path)),
    )
    s3.put_object(Bucket=buckets.reports, Key=RIGHTS_KEY, Body=rights.to_csv(merged).encode())
    return len(merged)


def upload(stack: Stack, deliveries_dir: Path) -> list[str]:
    """Every delivery folder to the landing bucket (and DIR/avails.csv into the rights catalog). Delivery ids."""
    buckets, s3 = Buckets.from_env(), stack.s3_client()
    if (deliveries_dir / "avails.csv").exists():
        rows = merge_avails(s3, buckets, deliveries_dir / "avails.csv")
        print(f"[run] merged {deliveries_dir / 'avails.csv'} into the rights catalog ({rows} rows)")
    folders = sorted(p for p in deliveries_dir.iterdir() if p.is_dir())
    if not folders:
        raise SystemExit(f"no delivery folders in {deliveries_dir}")
    return [upload_delivery(s3, buckets, folder) for folder in folders]


def run_now(stack: Stack, dag_id: str, *, timeout_s: float = 900) -> tuple[str, dict]:
    """Trigger `dag_id` now (run id `make_run__<stamp>`) and wait for it. (run id, its run)."""
    api = _api(stack)
    run_id = f"make_run__{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S%fZ')}"
    api.trigger(dag_id, run_id, {})
    print(f"[run] triggered {dag_id} {run_id}")
    started = time.monotonic()
    while True:
        run = api.dag_run(dag_id, run_id)
        if run and run["state"] in TERMINAL:
            break
        if time.monotonic() - started > timeout_s:
            raise ApiError(f"{dag_id} {run_id} still {run and run['state']} after {timeout_s:.0f}s")
        time.sleep(2)
    if run["state"] != "success":
        failed = [t["task_id"] for t in api.task_instances(dag_id, run_id) if t["state"] in ("failed", "upstream_failed")]
        raise ApiError(f"{dag_id} {run_id} failed (tasks: {', '.join(failed)}); see its logs in the Airflow UI")
    print(f"[run] {dag_id} done in {time.monotonic() - started:.0f}s")
    return run_id, run


def run_content_batch(stack: Stack, *, timeout_s: float = 900) -> tuple[str, dict]:
    """Trigger the nightly_content_batch DAG now and wait for it. (batch run id, its run)."""
    return run_now(stack, BATCH_DAG_ID, timeout_s=timeout_s)


def feedback_pass(stack: Stack, summary: dict) -> bool:
    """A synthetic audience for the published titles (one drop of viewing events in landing viewing-events/) and
    the audience_feedback DAG once. False: nothing published, nothing to watch."""
    from mediaflow import feedback

    titles = feedback.demo_titles(summary["assets"])
    if not titles:
        return False
    buckets, s3 = Buckets.from_env(), stack.s3_client()
    events = feedback.synthetic_events(titles, seed=7, sessions_per_title=400)
    key = f"{feedback.DROPS}/make-run-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}.csv"
    s3.put_object(Bucket=buckets.landing, Key=key, Body=events.to_csv(index=False).encode())
    print(f"[run] {len(events)} synthetic viewing events -> s3://{buckets.landing}/{key}")
    _, fed = run_now(stack, "audience_feedback")
    default_posters(stack, fed["run_after"])  # the run this feedback started, not an earlier one
    return True


def default_posters(stack: Stack, since: str) -> list[dict]:
    """Wait for the first default_posters run an Asset event started at or after `since` (the audience_feedback
    run's run_after), print the posters it changed and bring them to out/published/. Returns those changes."""
    from mediaflow import feedback, posters

    run = _api(stack).wait_asset_triggered_run(posters.DAG_ID, since)
    changes = [c for c in Ledger(stack.ledger_url).poster_changes() if c["run_id"] == run["dag_run_id"]]
    buckets, s3 = Buckets.from_env(), stack.s3_client()
    for c in changes:
        p = f", {feedback.p_text(c['p_value'])}" if c["p_value"] is not None else ""
        print(f"[run] default poster of {c['asset_id']} is now candidate {c['variant']} (poster A/B winner{p}) "
              f"on {', '.join(c['channels'])}")  # fmt: skip
        for channel in c["channels"]:
            key = f"{channel}/{c['asset_id']}/poster.jpg"
            if (stack.out_dir / "published" / key).parent.is_dir():
                s3.download_file(buckets.distribution, key, str(stack.out_dir / "published" / key))
    if run["state"] != "success":
        raise ApiError(f"{posters.DAG_ID} {run['dag_run_id']} failed; see its logs in the Airflow UI")
    return changes


def export_feedback(stack: Stack) -> Path:
    """feedback/latest/ of the reports bucket to out/reports/feedback/ (after write_report, which empties out/reports/)."""
    from mediaflow import feedback

    buckets, s3 = Buckets.from_env(), stack.s3_client()
    dest, latest = stack.out_dir / "reports" / "feedback", f"{feedback.FEEDBACK}/latest/"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    download_folder(s3, buckets.reports, latest, dest, strip=latest)
    return dest / "index.html"


def write_report(stack: Stack) -> Path:
    """Run value_stream_metrics now and export its report (value-streams/latest/ in the reports bucket) to
    out/reports/. Returns the report's index.html."""
    run_now(stack, analytics.DIGEST_DAG)
    buckets, s3, dest = Buckets.from_env(), stack.s3_client(), stack.out_dir / "reports"
    shutil.rmtree(dest, ignore_errors=True)
    download_folder(s3, buckets.reports, f"{analytics.LATEST}/", dest, strip=f"{analytics.LATEST}/")
    return dest / "index.html"


def submit(stack: Stack, deliveries_dir: Path) -> list[tuple]:
    """Upload every delivery folder, run the content batch, and return what became of each delivery:
    [(delivery_id, dag_id, run_id, spec)]: the value-stream run that took it (this batch's or an earlier one's), or,
    with spec None, the batch run that refused its manifest."""
    specs = load_specs()
    api = _api(stack)
    api.wait_for_dags([BATCH_DAG_ID, *(s.dag_id for s in specs.values())])
    delivery_ids = upload(stack, deliveries_dir)
    batch_run_id, _ = run_content_batch(stack)
    buckets, s3 = Buckets.from_env(), stack.s3_client()
    by_dag = {s.dag_id: s for s in specs.values()}
    runs = []
    for delivery_id in delivery_ids:
        marker = _marker(s3, buckets, delivery_id)
        if marker is None:
            print(f"[run] {delivery_id}: not processed yet (over the batch's max_runs); the next batch takes it")
        elif marker["status"] == "rejected":
            runs.append((delivery_id, BATCH_DAG_ID, marker.get("batch_run_id") or batch_run_id, None))
            print(f"[run] {delivery_id}: manifest refused by the batch: {'; '.join(marker['reasons'])}")
        else:
            runs.append((delivery_id, marker["dag_id"], marker["run_id"], by_dag[marker["dag_id"]]))
            note = "" if marker.get("batch_run_id") == batch_run_id else f" (taken by batch run {marker.get('batch_run_id')})"
            print(f"[run] {delivery_id}: {marker['dag_id']} {marker['run_id']}{note}")
    return runs


def rerun(stack: Stack, delivery_ids: list[str], streams: list[str]) -> list[tuple]:
    """Start the value stream again for deliveries already processed, as a person does from the trigger form."""
    specs, api = load_specs(), _api(stack)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    runs = []
    for delivery_id, stream in zip(delivery_ids, streams, strict=True):
        run_id = f"manual__{stamp}__{delivery_id}"
        api.trigger(specs[stream].dag_id, run_id, {"delivery": delivery_id, "priority": "normal"})
        runs.append((delivery_id, specs[stream].dag_id, run_id, specs[stream]))
    return runs


def _marker(s3, buckets: Buckets, delivery_id: str) -> dict | None:
    try:
        return json.loads(s3.get_object(Bucket=buckets.reports, Key=processed_key(delivery_id))["Body"].read())
    except s3.exceptions.NoSuchKey:
        return None


def _api(stack: Stack) -> AirflowApi:
    return AirflowApi(stack.api_url, "admin", stack.password() or "")


def wait(stack: Stack, runs: list[tuple], *, timeout_s: float = 1800, settle_on_review: bool = True) -> dict:
    """Until every run has ended, or (settle_on_review) waits only for a person. Returns {run_id: (run, tis)}."""
    api = _api(stack)
    started, shown, done = time.monotonic(), {}, {}
    while any(run_id not in done for _, _, run_id, _ in runs):  # refused deliveries share their batch's run id
        if time.monotonic() - started > timeout_s:
            raise SystemExit(f"[run] gave up after {timeout_s:.0f}s; still running: {[r[0] for r in runs if r[2] not in done]}")
        for delivery_id, dag_id, run_id, spec in runs:
            if run_id in done:
                continue
            if spec is None:  # refused by the batch: its batch run has already ended
                done[run_id] = (api.dag_run(dag_id, run_id), [])
                continue
            run = api.dag_run(dag_id, run_id)
            tis = api.task_instances(dag_id, run_id)
            line = _progress_line(tis)
            if line and shown.get(run_id) != line:
                shown[run_id] = line
                print(f"[{time.monotonic() - started:5.0f}s] {delivery_id:<32} {line}", flush=True)
            states = {t["state"] for t in _work(tis)}
            parked = settle_on_review and AWAITING in states and not states & ACTIVE
            if run and (run["state"] in TERMINAL or parked):
                done[run_id] = (run, tis)
        time.sleep(2)
    return done


def awaiting_entry(stack: Stack, delivery_id: str, dag_id: str, run_id: str, spec, tis: list[dict]) -> dict:
    """summary.json entry of a run parked on a human review, saying how to answer it."""
    ingested = _api(stack).xcom(dag_id, run_id, "ingest.ingest_delivery") or {}
    waiting = sorted(t["task_id"] for t in tis if t["state"] == AWAITING)
    reasons = [
        f"{task.split('.', 1)[1].replace('_approval', '')} review waits for a person: in the Airflow UI "
        f"({stack.api_url}) open Browse > Required Actions (or DAG {dag_id}, run {run_id}, task {task}) "
        f"and choose Approve or Reject"
        for task in waiting
    ]
    return {"asset_id": ingested.get("asset_id"), "delivery_id": delivery_id, "value_stream": spec.name,
            "status": "awaiting_review", "reasons": reasons, "dag_run_id": run_id, "lead_time_s": None,
            "source": ingested.get("source"), "locales": None, "published": []}  # fmt: skip


def refused_entry(s3, buckets: Buckets, delivery_id: str, batch_run_id: str) -> dict:
    """summary.json entry of a delivery whose manifest the batch refused (nothing of it ran)."""
    marker = _marker(s3, buckets, delivery_id) or {}
    try:
        manifest = json.loads(s3.get_object(Bucket=buckets.landing, Key=f"{DELIVERIES}/{delivery_id}/manifest.json")["Body"].read())
    except Exception:  # missing or not JSON: that is why it was refused
        manifest = {}
    manifest = manifest if isinstance(manifest, dict) else {}
    text = lambda v: v if isinstance(v, str) else None  # noqa: E731
    return {"asset_id": text(manifest.get("asset_id")), "delivery_id": delivery_id,
            "value_stream": text(manifest.get("value_stream")), "status": "rejected", "reasons": marker.get("reasons", []),
            "dag_run_id": batch_run_id, "lead_time_s": None, "source": None, "locales": None, "published": [],
            "quarantine_uri": marker.get("quarantine_uri"), "stages": [], "alerts": []}  # fmt: skip


def summarize(stack: Stack, runs: list[tuple], done: dict) -> dict:
    """Read each run's outcome, add stage spans, export what was published, write out/summary.json."""
    buckets = Buckets.from_env()
    s3 = stack.s3_client()
    out_dir = stack.out_dir
    ledger = Ledger(stack.ledger_url)
    shutil.rmtree(out_dir / "published", ignore_errors=True)
    assets = []
    for delivery_id, dag_id, run_id, spec in runs:
        run, tis = done[run_id]
        if spec is None:
            assets.append(refused_entry(s3, buckets, delivery_id, run_id))
            continue
        try:
            entry = json.loads(s3.get_object(Bucket=buckets.reports, Key=outcome_key(dag_id, run_id))["Body"].read())
        except s3.exceptions.NoSuchKey:
            if any(t["state"] == AWAITING for t in tis):
                entry = awaiting_entry(stack, delivery_id, dag_id, run_id, spec, tis)
            else:
                failed = [t["task_id"] for t in tis if t["state"] in ("failed", "upstream_failed")]
                entry = {"asset_id": None, "delivery_id": delivery_id, "value_stream": spec.name, "status": "failed",
                         "reasons": [f"run {run['state']}; no outcome recorded; failed tasks: {failed or 'none'}"],
                         "dag_run_id": run_id, "lead_time_s": None, "source": None, "locales": None, "published": []}  # fmt: skip
        # stages from the stage ledger (every attempt), alerts from its outbox
        _, entry["stages"], _ = spans_of(ledger, dag_id, run_id, spec.stage_slas_s, datetime.now(timezone.utc))
        entry["alerts"] = [{"kind": a["kind"], "stage": a["stage"], "subject": a["subject"], "recipients": a["recipients"],
                            "status": a["status"], "sent_at": iso_z(a["sent_at"])} for a in ledger.alerts(dag_id, run_id)]  # fmt: skip
        export_published(s3, buckets, entry, out_dir)
        assets.append(entry)
    summary = {"generated_at": iso_z(datetime.now(timezone.utc)), "assets": assets}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def run_batch(stack: Stack, deliveries_dir: Path, *, timeout_s: float = 1800) -> dict:
    runs = submit(stack, deliveries_dir)
    return summarize(stack, runs, wait(stack, runs, timeout_s=timeout_s))


def print_table(summary: dict) -> None:
    rows = [("asset", "stream", "status", "rungs/channels", "lead time", "reason")]
    for a in summary["assets"]:
        pub = a.get("published") or []
        master = pub[0]["local_path"] if pub else None
        rungs = ""
        if master and Path(PROJECT / master).exists():
            rungs = str(sum(1 for ln in Path(PROJECT / master).read_text().splitlines() if ln.startswith("#EXT-X-STREAM-INF")))
        rows.append((
            a.get("asset_id") or a.get("delivery_id") or "?",
            a["value_stream"] or "-",
            a["status"],
            f"{rungs} / {','.join(p['channel'] for p in pub)}" if pub else "-",
            f"{a['lead_time_s']:.0f}s" if a.get("lead_time_s") is not None else "-",
            (a.get("reasons") or [""])[0][:90],
        ))  # fmt: skip
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--deliveries", default=os.environ.get("DELIVERIES") or None)
    ap.add_argument("--keep-up", action="store_true", default=os.environ.get("KEEP_UP", "") not in ("", "0"))
    args = ap.parse_args(argv)
    stack = Stack.from_env()
    if args.deliveries:
        deliveries = Path(args.deliveries).resolve()
        if not deliveries.is_dir():
            print(f"[run] DELIVERIES={args.deliveries}: not a folder", file=sys.stderr)
            return 2
    else:
        deliveries = stack.state_dir / "samples"
        print(f"[run] sample deliveries in {deliveries}")
        samples.generate(deliveries)
    was_up = stack.is_up()
    summary = None
    try:
        stack.up()
        summary = run_batch(stack, deliveries)
        watched = feedback_pass(stack, summary)  # before the report: the digest lists its recommendations
        report = write_report(stack)
        feedback_report = export_feedback(stack) if watched else None
    except (StackError, ApiError) as e:
        print(f"[run] system failure: {e}", file=sys.stderr)
        return 1
    finally:
        waiting = [a for a in (summary or {}).get("assets", []) if a["status"] == "awaiting_review"]
        # titles waiting for a person need the stack (the local S3 API keeps objects in memory): leave it up
        if not args.keep_up and not was_up and not waiting:
            stack.down()
    print()
    print_table(summary)
    print(f"\n[run] wrote {stack.out_dir / 'summary.json'} and {stack.out_dir / 'published'}/")
    print(f"[run] value-stream report: {report} (opens offline; data beside it in {report.parent / 'data'}/)")
    if feedback_report:
        print(f"[run] audience feedback (synthetic viewers): {feedback_report} (retention, recommendations, poster A/B)")
    if waiting:
        print(f"[run] {len(waiting)} title(s) wait for review: the stack stays up so you can answer in the UI at "
              f"{stack.api_url} (login admin / {stack.password()}); `make down` when done")
    failed = [a for a in summary["assets"] if a["status"] == "failed"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
