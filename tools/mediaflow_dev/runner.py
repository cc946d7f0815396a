"""`make run`: deliveries through the value streams on the embedded stack, then out/summary.json.

Usage: python -m mediaflow_dev.runner [--deliveries DIR] [--keep-up]

Starts the stack when it is not up (and stops it again at the end unless --keep-up / KEEP_UP=1, a title waits for a
review, or runs are still alive), uploads each delivery folder to the landing bucket, runs the nightly_content_batch
DAG (which validates the manifests and starts one value-stream run per delivery), waits for every title's outcome
(a batch tally every MEDIAFLOW_PROGRESS_EVERY_S seconds, a line per title when it changes stage or ends), exports
what was published to out/published/, writes out/summary.json and prints a table. Deliveries the batch left
pending (their run could not be started) are listed with the reason.

A title's stage line also says when it should be done, from the stage ledger's history of its stream
(mediaflow.forecast): "publish  eta p50 21:04 / p85 21:09 UTC", or "eta: too little history: 2 runs of news_clip
(need 5)" instead of a guess.

While a title's transcode or publish runs, a line at the tally interval says how far it is when that has changed
("transcode 43 % (51:36 of 2:00:00)", "publish 1200/4100 objects"), read from the task's XCom `progress`.

However it stops, out/summary.json is written with what had ended and the rest under `running` (and why it stopped
under `stopped`), and the table printed. Exit 0 when the batch completed (rejected deliveries are a correct outcome);
1 ("system failure") when a run ended failed, the content batch run failed, or the stack or its API failed; 3 when it
stopped waiting while runs were still alive (no run or task changed state for MEDIAFLOW_RUN_STALL_S seconds and
nothing was running): the stack is left up; 130 on Ctrl-C, 143 on SIGTERM (the stack is left up while runs are alive).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mediaflow import analytics, batch, decisions, flow, forecast, names, outlook, progress, rights
from mediaflow.alerts import WATCH_TASK, spans_of
from mediaflow.batch import processed_key
from mediaflow.ledger import Ledger
from mediaflow.results import SummaryEntry, with_ledger
from mediaflow.spec import STAGE_ORDER, load_specs
from mediaflow.stages import iso_z
from mediaflow.store import DELIVERIES, Buckets, each, outcome_key, parse_s3_uri, transfer_config
from mediaflow_airflow.api_client import AirflowApi, ApiError
from mediaflow_dev import samples
from mediaflow_dev.devstack import PROJECT, Stack, StackError

TERMINAL = {"success", "failed"}
BATCH_DAG_ID = names.CONTENT_BATCH_DAG
STALL_S = 1800.0  # MEDIAFLOW_RUN_STALL_S: no run or task changed state this long, and nothing runs: stop waiting
PROGRESS_EVERY_S = 30.0  # MEDIAFLOW_PROGRESS_EVERY_S: a one-line batch tally this often
TITLE_LINES_UP_TO = 40  # MEDIAFLOW_PROGRESS_TITLES: up to this many titles, a line per stage change; above, per outcome
EXIT_STILL_RUNNING = 3
EXIT_FAILURE = 1
PROGRESS_STAGES = (names.TRANSCODE, names.PUBLISH)  # stages whose tasks report progress inside them (XCom `progress`)
PROGRESS_READS = 20  # at most this many progress reads per tally
STALE_S = 120.0  # a progress that has not moved this long is shown again, saying since when


class StillRunning(RuntimeError):
    """Stopped waiting while runs are alive (a stall, or the caller's time limit): nothing says they failed, and
    the stack must stay up for them."""

    def __init__(self, message: str, alive: list[str], done: dict | None = None):
        super().__init__(message)
        self.alive = alive
        self.done = done or {}  # wait(): the runs that had ended, {run_id: (run, tis)}
        self.summary: dict | None = None  # run_batch(): the summary written of those


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the runner is, as Ctrl-C is: it stops waiting, writes the summary and leaves."""

    exit_code = 128 + signal.SIGTERM


class Stopped(RuntimeError):
    """The wait ended before every run had (Ctrl-C, SIGTERM, the stack or its API failing): `summary` is the one
    written of what had ended, the rest under `running`; `exit_code` is what `make run` exits with."""

    def __init__(self, message: str, *, alive: list[str], summary: dict, exit_code: int):
        super().__init__(message)
        self.alive, self.summary, self.exit_code = alive, summary, exit_code


def exit_code_of(exc: BaseException) -> int:
    """130 for Ctrl-C, 143 for SIGTERM, 1 for anything else that stopped the run (a system failure)."""
    if isinstance(exc, KeyboardInterrupt):
        return getattr(exc, "exit_code", 128 + signal.SIGINT)
    return EXIT_FAILURE


def why_stopped(exc: BaseException) -> str:
    if isinstance(exc, Terminated):
        return "stopped by SIGTERM"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C)"
    return f"system failure: {type(exc).__name__}: {exc}"


class Submitted(list):
    """What submit() returns: [(delivery_id, dag_id, run_id, spec)] as always, plus `pending` (the deliveries the
    batch started no run for, with the reason: batch.pending_status) and `batch_run_id`."""

    def __init__(self, runs=(), *, pending=(), batch_run_id: str | None = None):
        super().__init__(runs)
        self.pending = list(pending)
        self.batch_run_id = batch_run_id


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


def upload_delivery(s3, buckets: Buckets, folder: Path) -> str:
    """Every file of the folder, several at once, big ones in parts (store.transfer_config); manifest.json goes last,
    after the others are all in: its arrival is what makes a delivery complete for the batch."""
    delivery_id = folder.name
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    config = transfer_config()

    def up(path: Path) -> None:
        key = f"{DELIVERIES}/{delivery_id}/{path.relative_to(folder).as_posix()}"
        s3.upload_file(str(path), buckets.landing, key, Config=config)

    each(up, [p for p in files if p.name != "manifest.json"])
    each(up, [p for p in files if p.name == "manifest.json"])
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
    """Every object under `prefix` to dest/<its key without `strip`>, sub-folders made as needed; several at once
    (a published title is thousands of segments: store.transfer_workers), big ones in parts (store.transfer_config)."""
    keys = [obj["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for obj in page.get("Contents", [])]  # fmt: skip
    for folder in {(dest / key[len(strip) :]).parent for key in keys}:
        folder.mkdir(parents=True, exist_ok=True)
    config = transfer_config()
    each(lambda key: s3.download_file(bucket, key, str(dest / key[len(strip) :]), Config=config), keys)


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


def run_now(
    stack: Stack, dag_id: str, *, timeout_s: float | None = None, stall_s: float | None = None
) -> tuple[str, dict]:
    """Trigger `dag_id` now (run id `make_run__<stamp>`) and wait for it. (run id, its run). ApiError when the run
    ended failed; StillRunning (the run may still end well) when it changed nothing for `stall_s`
    (MEDIAFLOW_RUN_STALL_S) or outlived `timeout_s`."""
    api = _api(stack)
    stall_s = _env_float("MEDIAFLOW_RUN_STALL_S", STALL_S) if stall_s is None else stall_s
    run_id = f"make_run__{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}"
    api.trigger(dag_id, run_id, {})
    print(f"[run] triggered {dag_id} {run_id}")
    started = last_change = time.monotonic()
    seen = None
    while True:
        try:
            run = api.dag_run(dag_id, run_id)
            tis = api.task_instances(dag_id, run_id) if run and run["state"] not in TERMINAL else []
        except ApiError as e:  # the API server busy for longer than the client's retries: keep waiting
            print(f"[run] {dag_id} {run_id}: the API did not answer ({e}); still waiting", flush=True)
            run, tis = None, None
        if run and run["state"] in TERMINAL:
            break
        now = time.monotonic()
        if tis is not None:
            state = (run and run["state"], sorted((t["task_id"], t["map_index"], t["state"] or "") for t in tis))
            if state != seen:
                seen, last_change = state, now
        if timeout_s is not None and now - started > timeout_s:
            raise StillRunning(f"{dag_id} {run_id} still {run and run['state']} after {timeout_s:.0f}s", [run_id])
        if now - last_change > stall_s:
            raise StillRunning(f"{dag_id} {run_id}: nothing changed for {stall_s:.0f}s", [run_id])
        time.sleep(2)
    if run["state"] != "success":
        failed = [
            t["task_id"] for t in api.task_instances(dag_id, run_id) if t["state"] in ("failed", "upstream_failed")
        ]
        raise ApiError(f"{dag_id} {run_id} failed (tasks: {', '.join(failed)}); see its logs in the Airflow UI")
    print(f"[run] {dag_id} done in {time.monotonic() - started:.0f}s")
    return run_id, run


def run_content_batch(stack: Stack, *, timeout_s: float | None = None) -> tuple[str, dict]:
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
    key = f"{feedback.DROPS}/make-run-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.csv"
    s3.put_object(Bucket=buckets.landing, Key=key, Body=events.to_csv(index=False).encode())
    print(f"[run] {len(events)} synthetic viewing events -> s3://{buckets.landing}/{key}")
    _, fed = run_now(stack, names.FEEDBACK_DAG)
    default_posters(stack, fed["run_after"])  # the run this feedback started, not an earlier one
    return True


def default_posters(stack: Stack, since: str) -> list[dict]:
    """Wait for the first default_posters run an Asset event started at or after `since` (the audience_feedback
    run's run_after), print the posters it changed and bring them to out/published/. Returns those changes."""
    from mediaflow import feedback

    run = _api(stack).wait_asset_triggered_run(names.POSTERS_DAG, since)
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
        raise ApiError(f"{names.POSTERS_DAG} {run['dag_run_id']} failed; see its logs in the Airflow UI")
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
    run_now(stack, names.METRICS_DAG)
    buckets, s3, dest = Buckets.from_env(), stack.s3_client(), stack.out_dir / "reports"
    shutil.rmtree(dest, ignore_errors=True)
    download_folder(s3, buckets.reports, f"{analytics.LATEST}/", dest, strip=f"{analytics.LATEST}/")
    return dest / "index.html"


def submit(stack: Stack, deliveries_dir: Path) -> Submitted:
    """Upload every delivery folder, run the content batch, and return what became of each delivery:
    [(delivery_id, dag_id, run_id, spec)]: the value-stream run that took it (this batch's or an earlier one's), or,
    with spec None, the batch run that refused its manifest. Deliveries with no run (the batch left them pending,
    or did not take them) are in the result's `pending`, each with its reason."""
    specs = load_specs()
    api = _api(stack)
    api.wait_for_dags([BATCH_DAG_ID, *(s.dag_id for s in specs.values())])
    delivery_ids = upload(stack, deliveries_dir)
    batch_run_id, _ = run_content_batch(stack)
    buckets, s3 = Buckets.from_env(), stack.s3_client()
    by_dag = {s.dag_id: s for s in specs.values()}
    runs = Submitted(batch_run_id=batch_run_id)
    for delivery_id in delivery_ids:
        marker = _marker(s3, buckets, delivery_id)
        if marker is None:
            pending = batch.pending_status(delivery_id, None, _read(s3, buckets.reports, batch.claim_key(delivery_id)))
            runs.pending.append(pending)
            print(f"[run] {delivery_id}: PENDING, no run started: {pending['reason']}")
        elif marker["status"] == "rejected":
            runs.append((delivery_id, BATCH_DAG_ID, marker.get("batch_run_id") or batch_run_id, None))
            print(f"[run] {delivery_id}: manifest refused by the batch: {'; '.join(marker['reasons'])}")
        else:
            runs.append((delivery_id, marker["dag_id"], marker["run_id"], by_dag[marker["dag_id"]]))
            note = (
                ""
                if marker.get("batch_run_id") == batch_run_id
                else f" (taken by batch run {marker.get('batch_run_id')})"
            )
            if len(delivery_ids) <= TITLE_LINES_UP_TO:
                print(f"[run] {delivery_id}: {marker['dag_id']} {marker['run_id']}{note}")
    started = sum(1 for r in runs if r[3] is not None)
    print(
        f"[run] {len(delivery_ids)} deliveries: {started} runs, {len(runs) - started} refused, {len(runs.pending)} pending"
    )
    return runs


def rerun(stack: Stack, delivery_ids: list[str], streams: list[str]) -> list[tuple]:
    """Start the value stream again for deliveries already processed, as a person does from the trigger form."""
    specs, api = load_specs(), _api(stack)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    runs = []
    for delivery_id, stream in zip(delivery_ids, streams, strict=True):
        run_id = f"manual__{stamp}__{delivery_id}"
        api.trigger(specs[stream].dag_id, run_id, {"delivery": delivery_id, "priority": "normal"})
        runs.append((delivery_id, specs[stream].dag_id, run_id, specs[stream]))
    return runs


def _read(s3, bucket: str, key: str) -> dict | None:
    try:
        return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except s3.exceptions.NoSuchKey:
        return None


def _marker(s3, buckets: Buckets, delivery_id: str) -> dict | None:
    return _read(s3, buckets.reports, processed_key(delivery_id))


def _api(stack: Stack) -> AirflowApi:
    return AirflowApi(stack.api_url, "admin", stack.password() or "")


def _stage_of(tis: dict) -> str | None:
    """The furthest stage a run has reached (a work task of it queued, running or ended), None before any."""
    reached = {t["task_id"].split(".", 1)[0] for t in tis.values()
               if t["task_id"] != WATCH_TASK and (t["state"] or "scheduled") not in ("scheduled", "none")}  # fmt: skip
    ordered = [s for s in STAGE_ORDER if s in reached] + sorted(s for s in reached if s not in STAGE_ORDER)
    return ordered[-1] if ordered else None


def progress_text(report: dict, *, now: datetime) -> str:
    """A running task's progress (its XCom `progress`) in words, and, once it has not moved for STALE_S, for how
    long: 'transcode 43 % (51:36 of 2:00:00)', 'publish 1200/4100 objects (no progress for 7:30)'."""
    text = progress.describe(report)
    if report.get("updated_at"):
        still = (now - datetime.fromisoformat(report["updated_at"].replace("Z", "+00:00"))).total_seconds()
        if still >= STALE_S:
            text += f" (no progress for {progress.clock(still)})"
    return text


def eta_words(eta: forecast.Eta | None, *, now: datetime) -> str:
    """A title's ETA on its progress line: 'eta p50 21:04 / p85 21:09 UTC' (the date too when not the day of
    `now`), or 'eta: too little history: 2 runs of news_clip (need 5)'; '' without one."""
    if eta is None:
        return ""
    if eta.p50_at is None or eta.p85_at is None:
        return f"eta: {eta.basis}"
    p50, p85 = (outlook.clock(iso_z(at), now=now) for at in (eta.p50_at, eta.p85_at))
    return f"eta p50 {p50} / p85 {p85} UTC"


class _Etas:
    """Each running title's ETA for its stage line: the forecast's history read from the ledger again every
    HISTORY_EVERY_S, or AFTER_AN_END_S after a title ended (what it took is history now); the open titles' state
    at most once a poll (the ledger's runs still going, a small read). A courtesy: without a ledger, or when it
    does not answer, the lines say nothing of an ETA."""

    HISTORY_EVERY_S = 300.0
    AFTER_AN_END_S = 20.0

    def __init__(self, ledger_url: str | None):
        self.ledger = Ledger(ledger_url) if ledger_url else None
        self.hist: forecast.History | None = None
        self.hist_at = float("-inf")
        self.titles: dict[tuple, forecast.TitleState] | None = None
        self.ended_since = False

    def poll(self) -> None:
        self.titles = None  # read again when the next line needs it

    def ended(self) -> None:
        self.ended_since = True

    def suffix(self, key: tuple) -> str:
        if self.ledger is None:
            return ""
        now = datetime.now(UTC)
        try:
            age = time.monotonic() - self.hist_at
            if age > self.HISTORY_EVERY_S or (self.ended_since and age > self.AFTER_AN_END_S):
                self.hist = forecast.history(*self.ledger.frames(outlook.history_since(now), now), now=now)
                self.hist_at, self.ended_since = time.monotonic(), False
            if self.titles is None:
                open_now = forecast.titles_now(*self.ledger.frames(now, now), now=now)  # an empty window: open runs
                self.titles = {(t.dag_id, t.run_id): t for t in open_now}
            title = self.titles.get(key)
            words = eta_words(forecast.eta(self.hist, title, now=now), now=now) if title else ""
        except Exception as e:  # (an ETA is a courtesy: whatever breaks it, the wait goes on)
            print(f"[run] no ETAs from here on: {type(e).__name__}: {e}", flush=True)
            self.ledger = None
            return ""
        return f"  {words}" if words else ""


def _tally(counts: dict) -> str:
    order = ("queued", "running", "published", "rejected", "awaiting_review", "failed", "pending")
    return ", ".join(f"{counts.get(k, 0)} {k.replace('_', ' ')}" for k in order if counts.get(k) or k != "pending")


class _Watch:
    """What wait() knows of the runs it waits for, kept current by a few list calls per poll: the runs and the
    task instances of every DAG updated since the previous poll (Airflow's `~` lists, keyset-paginated), and the
    tasks waiting for a person. A run's whole task list is read once, when it ends (or parks on a review)."""

    OVERLAP_S = 10.0  # each poll re-reads this much before the previous one began: rows committed late are not missed

    def __init__(self, stack: Stack, runs: list[tuple]):
        self.stack, self.api = stack, _api(stack)
        self.wanted = {(dag_id, run_id): delivery_id for delivery_id, dag_id, run_id, spec in runs if spec is not None}
        self.runs: dict[tuple, dict] = {}
        self.tis: dict[tuple, dict] = {k: {} for k in self.wanted}
        self.since: str | None = None
        self.missing: set[tuple] = set()
        self.last_change = time.monotonic()

    def _changed(self) -> None:
        self.last_change = time.monotonic()

    def _take_runs(self, rows: list[dict]) -> None:
        for r in rows:
            key = (r["dag_id"], r["dag_run_id"])
            if key in self.wanted:
                if (self.runs.get(key) or {}).get("state") != r["state"]:
                    self._changed()
                self.runs[key] = r
                self.missing.discard(key)

    def _take_tis(self, rows: list[dict]) -> None:
        for t in rows:
            key = (t["dag_id"], t["dag_run_id"])
            if key in self.wanted:
                ti_key = (t["task_id"], t.get("map_index", -1))
                if (self.tis[key].get(ti_key) or {}).get("state") != t["state"]:
                    self._changed()
                self.tis[key][ti_key] = t

    def poll(self, *, parked_too: bool) -> set[tuple]:
        """Bring runs and task states up to date. Returns the runs with a task waiting for a person."""
        began = datetime.now(UTC)
        if self.since is None:  # first poll: every live run, then the ones not live (ended, or missing) one by one
            self._take_runs(self.api.dag_runs_since(states=["queued", "running"]))
            for key in [k for k in self.wanted if k not in self.runs]:
                run = self.api.dag_run(*key)
                self._take_runs([run] if run else [])
                if run is None:
                    self.missing.add(key)
            first = min((r.get("queued_at") or r.get("run_after") or "" for r in self.runs.values()
                         if r["state"] not in TERMINAL), default="")  # fmt: skip
            ti_since = iso_z(min(datetime.fromisoformat(first.replace("Z", "+00:00")), began)) if first else None
            self._take_tis(self.api.task_instances_since(ti_since))
        else:
            self._take_runs(self.api.dag_runs_since(self.since))
            self._take_tis(self.api.task_instances_since(self.since))
        awaiting = set()
        if parked_too:
            rows = self.api.task_instances_since(states=[AWAITING])
            self._take_tis(rows)
            awaiting = {(t["dag_id"], t["dag_run_id"]) for t in rows}
        self.since = iso_z(began - timedelta(seconds=self.OVERLAP_S))
        return awaiting & set(self.wanted)

    def running(self) -> bool:
        """A work task of one of the runs is running (a long transcode is progress, even if no state changes)."""
        return any(t["state"] in ("running", "deferred") and t["task_id"] != WATCH_TASK
                   for tis in self.tis.values() for t in tis.values())  # fmt: skip

    def whole(self, key: tuple) -> list[dict]:
        tis = self.api.task_instances(*key)
        self._take_tis(tis)
        return tis


def _outcome_status(s3, buckets: Buckets, dag_id: str, run_id: str, run: dict | None) -> str:
    if not run or run["state"] != "success":
        return "failed"
    outcome = _read(s3, buckets.reports, outcome_key(dag_id, run_id))
    return (outcome or {}).get("status") or "failed"


# long: make run's wait loop: polling, progress lines, stall and signal handling share its state
def wait(stack: Stack, runs: list[tuple], *, timeout_s: float | None = None, settle_on_review: bool = True,
         stall_s: float | None = None, poll_s: float = 2.0, done: dict | None = None) -> dict:  # fmt: skip
    """Until every run has ended, or (settle_on_review) waits only for a person. Returns {run_id: (run, tis)}; a
    caller's `done` dict is filled as runs end, so it holds what had ended however the wait stops.

    One poll is a few list requests whatever the number of runs (_Watch). No fixed time limit while the runs make
    progress: StillRunning when no run or task changed state for `stall_s` (MEDIAFLOW_RUN_STALL_S, default 1800 s)
    while nothing runs, or, if the caller gives `timeout_s`, after that. Progress: a one-line tally every
    MEDIAFLOW_PROGRESS_EVERY_S seconds; a line per title when it ends, and (up to MEDIAFLOW_PROGRESS_TITLES titles)
    when it reaches a new stage. Inside a transcode or publish, the task's progress at the tally interval when it
    has changed (or has not moved for STALE_S: then saying for how long), and its last figure when it ends."""
    stall_s = _env_float("MEDIAFLOW_RUN_STALL_S", STALL_S) if stall_s is None else stall_s
    every_s = _env_float("MEDIAFLOW_PROGRESS_EVERY_S", PROGRESS_EVERY_S)
    per_stage = len(runs) <= int(_env_float("MEDIAFLOW_PROGRESS_TITLES", TITLE_LINES_UP_TO))
    watch, buckets, s3 = _Watch(stack, runs), Buckets.from_env(), stack.s3_client()
    etas = _Etas(getattr(stack, "ledger_url", None) if per_stage else None)
    started = last_tally = time.monotonic()
    done = {} if done is None else done
    status: dict[tuple, str] = {}
    shown: dict[tuple, str | None] = {}
    shown_progress: dict[tuple, tuple[str, float]] = {}  # (run, task, map index) -> (progress in words, printed at)
    ended_progress: set[tuple] = set()
    for _, dag_id, run_id, spec in runs:
        if spec is None:  # refused by the batch: its batch run has already ended
            done[run_id] = (watch.api.dag_run(dag_id, run_id), [])
    api_trouble = False

    def say(text: str) -> None:
        print(f"[{time.monotonic() - started:5.0f}s] {text}", flush=True)

    def tally() -> str:
        counts: dict[str, int] = {"pending": len(getattr(runs, "pending", []))}
        for key in watch.wanted:
            if key in status:
                word = status[key]
            else:
                run = watch.runs.get(key) or {}
                word = "running" if run.get("state") == "running" and _stage_of(watch.tis[key]) else "queued"
            counts[word] = counts.get(word, 0) + 1
        return _tally(counts)

    def show_progress(key: tuple, ti: dict, *, ended: bool) -> None:
        """Read a transcode's or publish's progress; a line when it changed, or has not moved for STALE_S."""
        ident = (key, ti["task_id"], ti.get("map_index", -1))
        try:
            report = watch.api.xcom(*key, ti["task_id"], names.PROGRESS_KEY, ti.get("map_index", -1))
        except ApiError:  # the API busy: progress is a courtesy, the next tally tries again
            return
        if not isinstance(report, dict) or "done" not in report:
            return
        words, now = progress.describe(report), time.monotonic()
        last = shown_progress.get(ident)
        if last and last[0] == words and (ended or now - last[1] < STALE_S):
            return
        shown_progress[ident] = (words, now)
        say(f"{watch.wanted[key]:<32} {progress_text(report, now=datetime.now(UTC))}")

    def progress_tally() -> None:
        reads = 0
        for key in watch.wanted:
            if key[1] in done:
                continue
            for ti in list(watch.tis[key].values()):
                if (
                    ti["state"] == "running"
                    and names.stage_of(ti["task_id"]) in PROGRESS_STAGES
                    and reads < PROGRESS_READS
                ):
                    reads += 1
                    show_progress(key, ti, ended=False)

    def progress_ended(key: tuple) -> None:
        """A transcode or publish that has just ended: its last figure (the objects published), once."""
        for ti in list(watch.tis[key].values()):
            ident = (key, ti["task_id"], ti.get("map_index", -1))
            if (
                ti["state"] == "success"
                and names.stage_of(ti["task_id"]) in PROGRESS_STAGES
                and ident not in ended_progress
            ):
                ended_progress.add(ident)
                if per_stage or ident in shown_progress:
                    show_progress(key, ti, ended=True)

    def finish(key: tuple, run: dict | None, tis: list[dict], word: str) -> None:
        done[key[1]] = (run, tis)
        status[key] = word
        etas.ended()
        reason = ""
        if word == "failed":
            failed = sorted(t["task_id"] for t in tis if t["state"] in ("failed", "upstream_failed"))
            reason = f" (run {(run or {}).get('state', 'not found')}; failed tasks: {', '.join(failed) or 'none'})"
        say(f"{watch.wanted[key]:<32} {word.replace('_', ' ')}{reason}")

    while True:
        try:
            parked = watch.poll(parked_too=settle_on_review)
            api_trouble = False
        except ApiError as e:  # the API server busy past the client's retries: keep waiting, count it as no change
            if not api_trouble:
                say(f"the Airflow API did not answer ({e}); still waiting")
            api_trouble, parked = True, set()
        etas.poll()
        for key, delivery_id in watch.wanted.items():
            if key[1] in done:
                continue
            progress_ended(key)
            run = watch.runs.get(key)
            if run and run["state"] in TERMINAL:
                finish(key, run, watch.whole(key), _outcome_status(s3, buckets, *key, run))
                continue
            work = {t["state"] for t in watch.tis[key].values() if t["task_id"] != WATCH_TASK}
            if key in parked and not work & ACTIVE:
                tis = watch.whole(key)  # confirm with the whole list: nothing else of the run still to do
                if not {t["state"] for t in _work(tis)} & ACTIVE:
                    finish(key, run, tis, "awaiting_review")
                    continue
            stage = _stage_of(watch.tis[key])
            if per_stage and stage and shown.get(key) != stage:
                shown[key] = stage
                retry = " (retrying)" if any(t["state"] == "up_for_retry" for t in watch.tis[key].values()) else ""
                say(f"{delivery_id:<32} {stage}{retry}{etas.suffix(key)}")
        alive = [watch.wanted[k] for k in watch.wanted if k[1] not in done]
        if not alive:
            if watch.wanted:
                say(f"{len(watch.wanted)} titles: {tally()}")
            break
        if watch.missing and len(alive) == len(watch.missing):  # only runs that do not exist are left
            for key in list(watch.missing):
                run = watch.api.dag_run(*key)
                if run is None:
                    finish(key, None, [], "failed")
                else:
                    watch._take_runs([run])
            continue
        now = time.monotonic()
        if now - last_tally >= every_s:
            last_tally = now
            say(f"{len(watch.wanted)} titles: {tally()}")
            progress_tally()
        if timeout_s is not None and now - started > timeout_s:
            raise StillRunning(f"stopped waiting after {timeout_s:.0f}s (the caller's limit)", alive, done)
        if now - watch.last_change > stall_s and not watch.running():
            raise StillRunning(f"no run or task changed state for {stall_s:.0f}s and nothing is running", alive, done)
        time.sleep(poll_s)
    return done


def awaiting_entry(stack: Stack, delivery_id: str, dag_id: str, run_id: str, spec, tis: list[dict]) -> dict:
    """summary.json entry of a run parked on a human review: why a person is asked (each failed check's finding,
    naming the check, the figure and the limit), then how to answer it."""
    from mediaflow.compliance import CHECKS_OF  # the review branch -> the checks that feed it

    api = _api(stack)
    ingested = api.xcom(dag_id, run_id, names.INGEST_ID) or {}
    waiting = sorted(t["task_id"] for t in tis if t["state"] == AWAITING)
    checks = {
        c: api.xcom(dag_id, run_id, names.check_id(c)) or {} for c in {c for cs in CHECKS_OF.values() for c in cs}
    }
    warnings = list(ingested.get("warnings") or []) + list(checks[names.TECHNICAL_QC].get("warnings") or [])
    return SummaryEntry(asset_id=ingested.get("asset_id"), delivery_id=delivery_id, value_stream=spec.name,
                        status="awaiting_review", dag_run_id=run_id, source=ingested.get("source"), warnings=warnings,
                        renditions=flow.rendition_scores(checks),
                        reasons=decisions.awaiting_reasons(waiting, checks, ui_url=stack.api_url, dag_id=dag_id,
                                                           run_id=run_id)).to_dict()  # fmt: skip


def refused_entry(s3, buckets: Buckets, delivery_id: str, batch_run_id: str) -> dict:
    """summary.json entry of a delivery whose manifest the batch refused (nothing of it ran)."""
    marker = _marker(s3, buckets, delivery_id) or {}
    try:
        manifest = json.loads(
            s3.get_object(Bucket=buckets.landing, Key=f"{DELIVERIES}/{delivery_id}/manifest.json")["Body"].read()
        )
    except Exception:  # missing or not JSON: that is why it was refused
        manifest = {}
    manifest = manifest if isinstance(manifest, dict) else {}
    text = lambda v: v if isinstance(v, str) else None  # noqa: E731
    entry = SummaryEntry(asset_id=text(manifest.get("asset_id")), delivery_id=delivery_id,
                         value_stream=text(manifest.get("value_stream")), status="rejected",
                         reasons=marker.get("reasons", []), dag_run_id=batch_run_id,
                         quarantine_uri=marker.get("quarantine_uri"))  # fmt: skip
    return with_ledger(entry.to_dict(), stages=[], alerts=[])  # nothing of it ran: no stages, no alerts


def summarize(stack: Stack, runs: list[tuple], done: dict, *, stopped: str | None = None) -> dict:
    """Read each run's outcome, add stage spans, export what was published, write out/summary.json. `stopped`: why
    the wait ended before every run had (the runs not in `done` are listed under `running`)."""
    buckets = Buckets.from_env()
    s3 = stack.s3_client()
    out_dir = stack.out_dir
    ledger = Ledger(stack.ledger_url)
    shutil.rmtree(out_dir / "published", ignore_errors=True)
    assets, unfinished = [], []
    for delivery_id, dag_id, run_id, spec in runs:
        if run_id not in done:  # still running when the wait stopped (see wait's StillRunning)
            unfinished.append({"delivery_id": delivery_id, "value_stream": spec.name if spec else None,
                               "dag_id": dag_id, "run_id": run_id})  # fmt: skip
            continue
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
                state = run["state"] if run else "not found"
                entry = SummaryEntry(asset_id=None, delivery_id=delivery_id, value_stream=spec.name, status="failed",
                                     reasons=[f"run {state}; no outcome recorded; failed tasks: {failed or 'none'}"],
                                     dag_run_id=run_id).to_dict()  # fmt: skip
        # stages from the stage ledger (every attempt), alerts from its outbox
        _, stages, _ = spans_of(ledger, dag_id, run_id, spec.stage_slas_s, datetime.now(UTC))
        with_ledger(entry, stages=stages, alerts=[
            {"kind": a["kind"], "stage": a["stage"], "subject": a["subject"], "recipients": a["recipients"],
             "status": a["status"], "sent_at": iso_z(a["sent_at"])} for a in ledger.alerts(dag_id, run_id)])  # fmt: skip
        export_published(s3, buckets, entry, out_dir)
        assets.append(entry)
    # deliveries with no run (the batch left them pending): beside the assets, never an asset status
    summary = {"generated_at": iso_z(datetime.now(UTC)), "assets": assets,
               "pending": [dict(p) for p in getattr(runs, "pending", [])]}  # fmt: skip
    if unfinished:
        summary["running"] = unfinished
    if stopped:
        summary["stopped"] = stopped
    write_summary(out_dir, summary)
    return summary


SUMMARY_VERSION = "1.1"  # 1.1: an optional `renditions` list per asset (docs/contracts.md)


def write_summary(out_dir: Path, summary: dict) -> None:
    """out/summary.json, replaced whole (never half written, whatever stops the runner)."""
    summary = {"generated_at": summary.get("generated_at"), "version": SUMMARY_VERSION, **summary}
    out_dir.mkdir(parents=True, exist_ok=True)
    part = out_dir / "summary.json.part"
    part.write_text(json.dumps(summary, indent=2) + "\n")
    part.replace(out_dir / "summary.json")


def stopped_summary(stack: Stack, runs: list[tuple], done: dict, *, stopped: str) -> dict:
    """The summary when the runner stops early: what had ended, read as always; when that cannot be read (the stack
    or its storage is what failed), the runs alone: the ended ones with their run state, the rest as running."""
    try:
        return summarize(stack, runs, done, stopped=stopped)
    except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001 - a second failure must not lose the summary
        summary = {"generated_at": iso_z(datetime.now(UTC)), "assets": [],
                   "pending": [dict(p) for p in getattr(runs, "pending", [])],
                   "stopped": f"{stopped}; outcomes not read ({type(e).__name__}: {e})",
                   "ended": [{"delivery_id": d, "dag_id": dag_id, "run_id": run_id,
                              "run_state": ((done[run_id][0] or {}).get("state"))}
                             for d, dag_id, run_id, _ in runs if run_id in done],
                   "running": [{"delivery_id": d, "value_stream": spec.name if spec else None, "dag_id": dag_id,
                                "run_id": run_id} for d, dag_id, run_id, spec in runs if run_id not in done]}  # fmt: skip
        write_summary(stack.out_dir, summary)
        return summary


def run_batch(stack: Stack, deliveries_dir: Path, *, timeout_s: float | None = None) -> dict:
    """Submit, wait, summarize. However the wait ends, out/summary.json is written: StillRunning (a stall) and
    Stopped (Ctrl-C, SIGTERM, the stack or its API failing) carry the summary of what had ended."""
    runs = submit(stack, deliveries_dir)
    done: dict = {}
    try:
        wait(stack, runs, timeout_s=timeout_s, done=done)
        return summarize(stack, runs, done)
    except StillRunning as e:  # what has ended is summarized all the same; the rest is listed as running
        e.summary = summarize(stack, runs, e.done, stopped=f"stopped waiting: {e}")
        raise
    except (Exception, KeyboardInterrupt) as e:
        why = why_stopped(e)
        summary = stopped_summary(stack, runs, done, stopped=why)
        alive = [d for d, _, run_id, spec in runs if spec is not None and run_id not in done]
        raise Stopped(why, alive=alive, summary=summary, exit_code=exit_code_of(e)) from e


def print_table(summary: dict) -> None:
    rows = [("asset", "stream", "status", "rungs/channels", "lead time", "reason")]
    for a in summary["assets"]:
        pub = a.get("published") or []
        master = pub[0]["local_path"] if pub else None
        rungs = ""
        if master and Path(PROJECT / master).exists():
            rungs = str(
                sum(1 for ln in Path(PROJECT / master).read_text().splitlines() if ln.startswith("#EXT-X-STREAM-INF"))
            )
        rows.append((
            a.get("asset_id") or a.get("delivery_id") or "?",
            a["value_stream"] or "-",
            a["status"],
            f"{rungs} / {','.join(p['channel'] for p in pub)}" if pub else "-",
            f"{a['lead_time_s']:.0f}s" if a.get("lead_time_s") is not None else "-",
            (a.get("reasons") or [""])[0][:90],
        ))  # fmt: skip
    for p in summary.get("pending", []):
        rows.append((p["delivery_id"], p.get("value_stream") or "-", "PENDING", "-", "-", p["reason"][:90]))
    for r in summary.get("running", []):
        rows.append(
            (r["delivery_id"], r.get("value_stream") or "-", "RUNNING", "-", "-", f"{r['dag_id']} {r['run_id']}")
        )
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=False)).rstrip())


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
    summary, alive = None, []
    previous_term = signal.signal(signal.SIGTERM, _terminate)  # SIGTERM stops the run as Ctrl-C does
    try:
        stack.up()
        summary = run_batch(stack, deliveries)
        watched = feedback_pass(stack, summary)  # before the report: the digest lists its recommendations
        report = write_report(stack)
        feedback_report = export_feedback(stack) if watched else None
    except (StillRunning, Stopped) as e:
        summary = e.summary or summary  # titles it found waiting for a person keep the stack up (below)
        if e.summary:
            print()
            print_table(e.summary)
            print(f"\n[run] wrote {stack.out_dir / 'summary.json'} (the titles still running are under `running`)")
        what = "stopped waiting" if isinstance(e, StillRunning) else "stopped"
        print(f"[run] {what}: {e}; {len(e.alive)} still alive: {', '.join(e.alive[:10])}"
              f"{' ...' if len(e.alive) > 10 else ''}", file=sys.stderr)  # fmt: skip
        return EXIT_STILL_RUNNING if isinstance(e, StillRunning) else e.exit_code
    except (StackError, ApiError, KeyboardInterrupt) as e:  # before the wait (starting, submitting) or after it
        why = why_stopped(e)
        if summary is None:  # nothing had been waited for: say so, rather than leave an older run's summary
            write_summary(stack.out_dir, {"generated_at": iso_z(datetime.now(UTC)), "assets": [],
                                          "pending": [], "stopped": f"{why} before the batch's runs were known"})  # fmt: skip
        else:
            print()
            print_table(summary)
        print(f"[run] wrote {stack.out_dir / 'summary.json'}", file=sys.stderr)
        print(f"[run] {why}" if isinstance(e, KeyboardInterrupt) else f"[run] system failure: {e}", file=sys.stderr)
        return exit_code_of(e)
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        waiting = [a for a in (summary or {}).get("assets", []) if a["status"] == "awaiting_review"]
        alive = _alive_runs(stack)
        # titles waiting for a person need the stack (the local S3 API keeps objects in memory), and so do runs
        # still alive: never stop it under them
        if not args.keep_up and not was_up and not waiting and not alive:
            stack.down()
        elif alive and not args.keep_up and not was_up:
            print(f"[run] {len(alive)} run(s) still queued or running ({', '.join(alive[:5])}{' ...' if len(alive) > 5 else ''}): "
                  f"the stack stays up for them (UI {stack.api_url}, login admin / {stack.password()}); `make down` when done")  # fmt: skip
    print()
    print_table(summary)
    print(f"\n[run] wrote {stack.out_dir / 'summary.json'} and {stack.out_dir / 'published'}/")
    print(f"[run] value-stream report: {report} (opens offline; data beside it in {report.parent / 'data'}/)")
    if feedback_report:
        print(
            f"[run] audience feedback (synthetic viewers): {feedback_report} (retention, recommendations, poster A/B)"
        )
    if waiting:
        print(
            f"[run] {len(waiting)} title(s) wait for review: the stack stays up so you can answer in the UI at "
            f"{stack.api_url} (login admin / {stack.password()}); `make down` when done"
        )
    if summary.get("pending"):
        print(f"[run] {len(summary['pending'])} deliver{'ies' if len(summary['pending']) != 1 else 'y'} left pending "
              "(no run started; the next batch takes them): see `pending` in summary.json")  # fmt: skip
    failed = [a for a in summary["assets"] if a["status"] == "failed"]
    if failed:
        print(f"[run] system failure: {len(failed)} run(s) ended failed: "
              f"{', '.join(a.get('asset_id') or a['delivery_id'] for a in failed)}", file=sys.stderr)  # fmt: skip
    return 1 if failed else 0


def _terminate(signum, frame) -> None:
    raise Terminated()


def _alive_runs(stack: Stack) -> list[str]:
    """Run ids of the value-stream and content-batch runs still queued or running on the stack ([] when its API
    does not answer). Periodic housekeeping DAGs (the alert outbox) do not count."""
    try:
        if not stack.is_up():
            return []
        ours = {BATCH_DAG_ID, *(s.dag_id for s in load_specs().values())}
        return [
            r["dag_run_id"] for r in _api(stack).dag_runs_since(states=["queued", "running"]) if r["dag_id"] in ours
        ]
    except (ApiError, OSError):
        return []


if __name__ == "__main__":
    sys.exit(main())
