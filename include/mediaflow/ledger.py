"""The stage ledger: one row per task-instance attempt, one per run, and the alert outbox, in a database of its own.

PostgreSQL (a database of the embedded stack's server, docker-compose's ledger-db) or a SQLite file (unit tests):
the `mediaflow_ledger` connection chooses; never Airflow's metadata DB, which workers must not write. Plain
SQLAlchemy Core, no Airflow imports.

Writes are idempotent upserts keyed by (dag, run, task, map index, try): a replayed event changes nothing, and a
late `running` event never turns a finished attempt back into a running one. `safe()` wraps a write so that a
ledger outage never fails the task that reported it: the write is retried, then spooled to a local JSONL file
and replayed by the next write that succeeds, and counted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from mediaflow import names
from mediaflow.stages import instant

log = logging.getLogger(__name__)

TERMINAL = ("success", "failed", "skipped", "up_for_retry", "upstream_failed", "removed")


class UtcDateTime(sa.types.TypeDecorator):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite (no time zones) as on PostgreSQL."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        value = instant(value)
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the ledger stores UTC instants only")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        return value.replace(tzinfo=UTC) if value is not None else None


metadata = sa.MetaData()
S = sa.String(250)

attempts = sa.Table(
    "stage_attempts",
    metadata,
    sa.Column("dag_id", S, primary_key=True),
    sa.Column("run_id", S, primary_key=True),
    sa.Column("task_id", S, primary_key=True),
    sa.Column("map_index", sa.Integer, primary_key=True),
    sa.Column("try_number", sa.Integer, primary_key=True),
    sa.Column("stream", S),
    sa.Column("stage", S),  # the task's TaskGroup; None for tasks outside the stages (outcome, sla_watch)
    sa.Column("state", sa.String(32)),
    sa.Column("queued_at", UtcDateTime),  # known only when the event comes from the scheduler side
    sa.Column("started_at", UtcDateTime),
    sa.Column("ended_at", UtcDateTime),
    sa.Column("recorded_at", UtcDateTime),
    sa.Column("error", sa.Text),  # why a failed attempt failed (the exception), so the outcome can say it
)

runs = sa.Table(
    "stage_runs",
    metadata,
    sa.Column("dag_id", S, primary_key=True),
    sa.Column("run_id", S, primary_key=True),
    sa.Column("stream", S),
    sa.Column("delivery_id", sa.Text),
    sa.Column("asset_id", S),
    sa.Column("delivered_at", UtcDateTime),
    sa.Column("queued_at", UtcDateTime),
    sa.Column("started_at", UtcDateTime),
    sa.Column("ended_at", UtcDateTime),
    sa.Column("state", sa.String(32)),
    # what the run's outcome recorded: the quality half of the value-stream scorecard
    sa.Column("status", sa.String(32)),  # published | awaiting_review | rejected | failed
    sa.Column("reviews_total", sa.Integer),
    sa.Column("reviews_rejected", sa.Integer),
    sa.Column("qc_findings", sa.Integer),
    sa.Column("locales_total", sa.Integer),
    sa.Column("locales_rejected", sa.Integer),
    sa.Column("warnings", sa.Text),  # JSON list: what did not stop the title (QC within allowances, frames skipped)
    sa.Column(
        "lowest_rung_vmaf", sa.Float
    ),  # the lowest mean VMAF of the title's rungs: the scorecard's picture figure
    sa.Column("renditions", sa.Text),  # JSON list: each rung's height, bitrate, VMAF, PSNR, SSIM
    # the source as ingest probed it: what the forecast conditions a transcode's time on (mediaflow.forecast)
    sa.Column("duration_s", sa.Float),
    sa.Column("height", sa.Integer),
)

# The outbox: every alert is written here first (its key makes it exactly once), then delivered, and
# retried from here until the mail server took it.
alerts = sa.Table(
    "stage_alerts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dag_id", S, nullable=False),
    sa.Column("run_id", S, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),  # stage_sla | lead_time | task_failed
    sa.Column("key", S, nullable=False),  # the stage, "lead_time", or task[map]#try
    sa.Column("stream", S),
    sa.Column("asset_id", S),
    sa.Column("stage", S),
    sa.Column("recipients", sa.Text, nullable=False),  # JSON list
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("html", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending | sent
    sa.Column("tries", sa.Integer, nullable=False, default=0),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("sent_at", UtcDateTime),
    # a sender took it (take_alert) until then: two senders of one pending alert never both mail it
    sa.Column("sending_until", UtcDateTime),
    sa.UniqueConstraint("dag_id", "run_id", "kind", "key", name="uq_stage_alerts_once"),
)


# Leases: one holder at a time for a name (publish:<asset_id>), across every worker; an expired lease (its holder
# died without releasing it) is taken over.
leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", S, primary_key=True),
    sa.Column("holder", S, nullable=False),
    sa.Column("acquired_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
)


# Every change of a title's default poster (the poster A/B winner republished; mediaflow.posters): what, when,
# decided by which feedback run, applied by which run.
poster_changes = sa.Table(
    "poster_changes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("asset_id", S, nullable=False),
    sa.Column("variant", sa.String(32), nullable=False),
    sa.Column("previous", sa.String(32)),  # None: the transcode's default poster
    sa.Column("channels", sa.Text, nullable=False),  # JSON list
    sa.Column("p_value", sa.Float),
    sa.Column("decided_by", S),  # the audience_feedback run whose A/B decision it was
    sa.Column("dag_id", S),
    sa.Column("run_id", S),
    sa.Column("changed_at", UtcDateTime, nullable=False),
)


class LeaseBusy(RuntimeError):
    """Another holder kept the lease for longer than we would wait."""


def _now() -> datetime:
    return datetime.now(UTC)


stream_of = names.stream_of  # the stream of a value-stream DAG id, None for other DAGs
stage_of = (
    names.stage_of
)  # stages are the value-stream DAG's TaskGroups: `transcode.transcode_ladder` is in `transcode`


_ENGINES: dict[str, sa.Engine] = {}
_LOCK = threading.Lock()


def _after_fork_in_child() -> None:
    """A forked process must not use its parent's pooled connections (one socket, two processes: the scheduler's
    listener holds some when LocalExecutor forks a worker, whose tasks then write the ledger). Each engine gets a
    new pool, the parent's connections are left to the parent (SQLAlchemy's recipe for os.fork)."""
    global _LOCK
    _LOCK = threading.Lock()
    for eng in _ENGINES.values():
        eng.dispose(close=False)


os.register_at_fork(after_in_child=_after_fork_in_child)


def engine_for(url: str) -> sa.Engine:
    """One engine per URL and process; the schema is created on first use."""
    with _LOCK:
        if url not in _ENGINES:
            if url.startswith("sqlite"):
                eng = sa.create_engine(url, connect_args={"timeout": 30}, poolclass=sa.pool.NullPool)

                @sa.event.listens_for(eng, "connect")
                def _wal(dbapi_conn, _):  # many task processes write at once: WAL lets readers go on
                    dbapi_conn.execute("PRAGMA journal_mode=WAL")

            else:
                eng = sa.create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=2,
                                       connect_args={"connect_timeout": 5})  # fmt: skip
            with eng.begin() as c:
                if eng.dialect.name == "postgresql":
                    # the first tasks of a fresh ledger start together: one process at a time creates the schema
                    # (DDL is transactional there; the others then find the tables), instead of a duplicate-key error
                    c.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK})
                metadata.create_all(c)
                _add_missing_columns(c)
            _ENGINES[url] = eng
        return _ENGINES[url]


SCHEMA_LOCK = 0x6D6564696166  # the ledger's schema lock on PostgreSQL (an advisory lock key of our own)


def _add_missing_columns(c: sa.Connection) -> None:
    """Columns added after a ledger was created are added to it (all nullable): an older ledger keeps its rows."""
    inspector = sa.inspect(c)
    for table in metadata.sorted_tables:
        have = {col["name"] for col in inspector.get_columns(table.name)}
        for col in table.columns:
            if col.name not in have:
                c.execute(sa.text(f"ALTER TABLE {table.name} ADD COLUMN {col.name} {col.type.compile(c.dialect)}"))


def source_features(source: dict | None) -> dict:
    """What the run row keeps of ingest's probe facts (media.inspect_source): duration_s and the picture's height
    (none for a sound-only or unknown source)."""
    source = source if isinstance(source, dict) else {}
    video = source.get("video") if isinstance(source.get("video"), dict) else {}
    out = {"duration_s": source.get("duration_s"), "height": video.get("height")}
    return {k: v for k, v in out.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0}


class Ledger:
    def __init__(self, url: str):
        self.url = url
        self.engine = engine_for(url)
        self._insert = (postgresql if self.engine.dialect.name == "postgresql" else sqlite).insert

    # ------------------------------------------------------------ writes (idempotent)
    def record_attempt(self, *, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int,
                       state: str, started_at=None, ended_at=None, queued_at=None, error: str | None = None) -> None:  # fmt: skip
        row = {"error": error[:2000] if error else None, "dag_id": dag_id, "run_id": run_id, "task_id": task_id, "map_index": int(map_index),
               "try_number": int(try_number), "stream": stream_of(dag_id), "stage": stage_of(task_id),
               "state": state, "queued_at": queued_at, "started_at": started_at, "ended_at": ended_at,
               "recorded_at": _now()}  # fmt: skip
        stmt = self._insert(attempts).values(**row)
        ex, cur = stmt.excluded, attempts.c
        keep_finished = sa.and_(cur.state.in_(TERMINAL), ex.state == "running")
        stmt = stmt.on_conflict_do_update(
            index_elements=["dag_id", "run_id", "task_id", "map_index", "try_number"],
            set_={
                "state": sa.case((keep_finished, cur.state), else_=ex.state),
                "queued_at": sa.func.coalesce(cur.queued_at, ex.queued_at),
                "started_at": sa.func.coalesce(cur.started_at, ex.started_at),  # a resumed deferral keeps its start
                "ended_at": sa.case((keep_finished, cur.ended_at), else_=sa.func.coalesce(ex.ended_at, cur.ended_at)),
                "recorded_at": ex.recorded_at,
                "error": sa.func.coalesce(ex.error, cur.error),
            },
        )
        with self.engine.begin() as c:
            c.execute(stmt)

    def record_run(self, *, dag_id: str, run_id: str, state: str | None = None, **fields) -> None:
        """Upsert the run row; fields left None keep what is there."""
        allowed = {
            "delivery_id",
            "asset_id",
            "delivered_at",
            "queued_at",
            "started_at",
            "ended_at",
            "status",
            "reviews_total",
            "reviews_rejected",
            "qc_findings",
            "locales_total",
            "locales_rejected",
            "warnings",
            "lowest_rung_vmaf",
            "renditions",
            "duration_s",
            "height",
        }
        unknown = set(fields) - allowed
        if unknown:
            raise TypeError(f"unknown run fields {sorted(unknown)}")
        for column in ("warnings", "renditions"):
            if isinstance(fields.get(column), list):
                fields[column] = json.dumps(fields[column])
        row = {"dag_id": dag_id, "run_id": run_id, "stream": stream_of(dag_id), "state": state, **fields}
        stmt = self._insert(runs).values(**row)
        updates = {k: sa.func.coalesce(stmt.excluded[k], runs.c[k]) for k in ["state", *fields]}
        stmt = stmt.on_conflict_do_update(index_elements=["dag_id", "run_id"], set_=updates)
        with self.engine.begin() as c:
            c.execute(stmt)

    # ------------------------------------------------------------ reads
    def attempts(self, dag_id: str, run_id: str) -> list[dict]:
        q = sa.select(attempts).where(attempts.c.dag_id == dag_id, attempts.c.run_id == run_id)
        with self.engine.connect() as c:
            return [dict(r._mapping) for r in c.execute(q.order_by(attempts.c.started_at, attempts.c.task_id))]

    def task_errors(self, dag_id: str, run_id: str) -> dict[str, str]:
        """task_id -> the error of its latest failed attempt (mapped tasks: the latest over their map indexes)."""
        out: dict[str, str] = {}
        for a in sorted(self.attempts(dag_id, run_id), key=lambda a: a["try_number"]):
            if a["error"]:
                out[a["task_id"]] = a["error"]
        return out

    def run(self, dag_id: str, run_id: str) -> dict | None:
        q = sa.select(runs).where(runs.c.dag_id == dag_id, runs.c.run_id == run_id)
        with self.engine.connect() as c:
            row = c.execute(q).first()
        if not row:
            return None
        out = dict(row._mapping)
        out["warnings"] = json.loads(out["warnings"]) if out.get("warnings") else []
        out["renditions"] = json.loads(out["renditions"]) if out.get("renditions") else []
        return out

    def alerts(self, dag_id: str, run_id: str | None = None) -> list[dict]:
        q = sa.select(alerts).where(alerts.c.dag_id == dag_id)
        if run_id is not None:
            q = q.where(alerts.c.run_id == run_id)
        return self._in_order(q, alerts, json_column="recipients")

    def _in_order(self, q, table: sa.Table, *, json_column: str) -> list[dict]:
        """The rows of `q` in the order they were written (`id`), with their JSON list column decoded."""
        with self.engine.connect() as c:
            out = [dict(r._mapping) for r in c.execute(q.order_by(table.c.id))]
        for row in out:
            row[json_column] = json.loads(row[json_column])
        return out

    @staticmethod
    def _window(since: datetime, until: datetime | None):
        """Runs queued in [since, until) (their start when the queue time is unknown)."""
        start = sa.func.coalesce(runs.c.queued_at, runs.c.started_at)
        cond = start >= since
        return cond if until is None else sa.and_(cond, start < until)

    def frames(self, since: datetime, until: datetime | None = None):
        """(attempts, runs) as DataFrames for the runs queued in [since, until) and every run still going (WIP).
        Columns as the tables'; datetimes aware UTC."""
        import pandas as pd

        which = sa.or_(self._window(since, until), runs.c.ended_at.is_(None))
        on = sa.and_(attempts.c.dag_id == runs.c.dag_id, attempts.c.run_id == runs.c.run_id)
        with self.engine.connect() as c:
            run_df = pd.read_sql(sa.select(runs).where(which), c)
            att_df = pd.read_sql(sa.select(attempts).join(runs, on).where(which), c)
        for df in (run_df, att_df):
            for col in df.columns:
                if col.endswith("_at"):
                    df[col] = pd.to_datetime(df[col], utc=True)
        return att_df, run_df

    def counts(self, since: datetime, until: datetime | None = None) -> dict[str, int]:
        """Runs queued in the window and their (run, stage) spans, counted in SQL: what the metrics tables must
        hold (an independent check of the pandas path)."""
        window = self._window(since, until)
        on = sa.and_(attempts.c.dag_id == runs.c.dag_id, attempts.c.run_id == runs.c.run_id)
        spans = (sa.select(attempts.c.dag_id, attempts.c.run_id, attempts.c.stage).join(runs, on)
                 .where(window, attempts.c.stage.is_not(None), attempts.c.started_at.is_not(None)).distinct().subquery())  # fmt: skip
        with self.engine.connect() as c:
            n_runs = c.execute(sa.select(sa.func.count()).select_from(runs).where(window)).scalar_one()
            n_spans = c.execute(sa.select(sa.func.count()).select_from(spans)).scalar_one()
        return {"runs": int(n_runs), "spans": int(n_spans)}

    # ------------------------------------------------------------ leases
    def acquire_lease(self, name: str, holder: str, *, ttl_s: float) -> str | None:
        """Take the lease, or renew it when `holder` has it already (a retried task is the same holder). Returns
        None when taken, else the current holder."""
        now = _now()
        until = datetime.fromtimestamp(now.timestamp() + ttl_s, UTC)
        with self.engine.begin() as c:
            c.execute(sa.delete(leases).where(leases.c.name == name, leases.c.expires_at < now))
            c.execute(self._insert(leases).values(name=name, holder=holder, acquired_at=now, expires_at=until)
                      .on_conflict_do_nothing(index_elements=["name"]))  # fmt: skip
            current = c.execute(sa.select(leases.c.holder).where(leases.c.name == name)).scalar_one()
            if current == holder:
                c.execute(sa.update(leases).where(leases.c.name == name).values(expires_at=until))
                return None
        return current

    def release_lease(self, name: str, holder: str) -> None:
        with self.engine.begin() as c:
            c.execute(sa.delete(leases).where(leases.c.name == name, leases.c.holder == holder))

    @contextlib.contextmanager
    def lease(self, name: str, holder: str, *, ttl_s: float = 1800, wait_s: float = 1800, poll_s: float = 2.0,
              on_wait=None):  # fmt: skip
        """Hold `name` for the block, waiting (polling) while someone else holds it; LeaseBusy after `wait_s`.
        Yields the seconds waited. `on_wait(holder)` is told whom we wait for, once per holder."""
        began, told = time.monotonic(), None
        while (other := self.acquire_lease(name, holder, ttl_s=ttl_s)) is not None:
            if time.monotonic() - began > wait_s:
                raise LeaseBusy(f"{name} is still held by {other} after {wait_s:.0f} s")
            if on_wait and other != told:
                on_wait(other)
                told = other
            time.sleep(poll_s)
        try:
            yield time.monotonic() - began
        finally:
            self.release_lease(name, holder)

    # ------------------------------------------------------------ default posters
    def record_poster_change(self, *, asset_id: str, variant: str, previous: str | None, channels: list[str],
                             p_value: float | None, decided_by: str | None, dag_id: str, run_id: str) -> None:  # fmt: skip
        with self.engine.begin() as c:
            c.execute(sa.insert(poster_changes).values(
                asset_id=asset_id, variant=variant, previous=previous, channels=json.dumps(channels), p_value=p_value,
                decided_by=decided_by, dag_id=dag_id, run_id=run_id, changed_at=_now()))  # fmt: skip

    def poster_changes(self, asset_id: str | None = None) -> list[dict]:
        q = sa.select(poster_changes)
        if asset_id is not None:
            q = q.where(poster_changes.c.asset_id == asset_id)
        return self._in_order(q, poster_changes, json_column="channels")

    # ------------------------------------------------------------ the alert outbox
    def claim_alert(self, *, dag_id: str, run_id: str, kind: str, key: str, recipients: list[str], subject: str,
                    html: str, stream: str | None = None, asset_id: str | None = None, stage: str | None = None) -> dict | None:  # fmt: skip
        """Put an alert in the outbox. Returns it, or None when this (run, kind, key) was already raised: the
        unique key, not the caller's memory, is what makes an alert go out once across restarts."""
        row = {"dag_id": dag_id, "run_id": run_id, "kind": kind, "key": key, "stream": stream, "asset_id": asset_id,
               "stage": stage, "recipients": json.dumps(list(recipients)), "subject": subject, "html": html,
               "status": "pending", "tries": 0, "created_at": _now()}  # fmt: skip
        stmt = (
            self._insert(alerts)
            .values(**row)
            .on_conflict_do_nothing(index_elements=["dag_id", "run_id", "kind", "key"])
        )
        with self.engine.begin() as c:
            inserted = c.execute(stmt).rowcount
        if not inserted:
            return None
        return next(a for a in self.alerts(dag_id, run_id) if a["kind"] == kind and a["key"] == key)

    def pending_alerts(self, dag_id: str, run_id: str) -> list[dict]:
        return [a for a in self.alerts(dag_id, run_id) if a["status"] == "pending"]

    def stranded_alerts(self, *, older_than: datetime) -> list[dict]:
        """Pending alerts no run watcher will retry any more: those of runs that ended before `older_than` (a
        watcher gives up a while after its run), and digests (no watcher) created before it."""
        on = sa.and_(alerts.c.dag_id == runs.c.dag_id, alerts.c.run_id == runs.c.run_id)
        done = sa.and_(runs.c.ended_at.is_not(None), runs.c.ended_at < older_than)
        digest = sa.and_(alerts.c.kind == "digest", alerts.c.created_at < older_than)
        q = (
            sa.select(alerts)
            .select_from(alerts.outerjoin(runs, on))
            .where(alerts.c.status == "pending", sa.or_(done, digest))
        )
        return self._in_order(q, alerts, json_column="recipients")

    def _in_order(self, q, table: sa.Table, *, json_column: str) -> list[dict]:
        """The rows of `q` in the order they were written (`id`), with their JSON list column decoded."""
        with self.engine.connect() as c:
            out = [dict(r._mapping) for r in c.execute(q.order_by(table.c.id))]
        for row in out:
            row[json_column] = json.loads(row[json_column])
        return out

    def take_alert(self, alert_id: int, *, ttl_s: float = 120) -> bool:
        """Take a pending alert for sending, for `ttl_s` (longer than one SMTP attempt). False: it was sent, or
        another sender has it now (the lead-time callback and the run's SLA watcher both send pending alerts;
        without this they could both mail one). A sender that died holding it loses it after `ttl_s`."""
        now = _now()
        free = sa.or_(alerts.c.sending_until.is_(None), alerts.c.sending_until < now)
        stmt = (sa.update(alerts).where(alerts.c.id == alert_id, alerts.c.status == "pending", free)
                .values(sending_until=datetime.fromtimestamp(now.timestamp() + ttl_s, UTC)))  # fmt: skip
        with self.engine.begin() as c:
            return c.execute(stmt).rowcount == 1

    def mark_sent(self, alert_id: int) -> None:
        with self.engine.begin() as c:
            c.execute(sa.update(alerts).where(alerts.c.id == alert_id)
                      .values(status="sent", sent_at=_now(), tries=alerts.c.tries + 1, last_error=None))  # fmt: skip

    def mark_failed(self, alert_id: int, error: str) -> None:
        with self.engine.begin() as c:
            c.execute(sa.update(alerts).where(alerts.c.id == alert_id)
                      .values(tries=alerts.c.tries + 1, last_error=error[:2000], sending_until=None))  # fmt: skip


# ------------------------------------------------------------ outage handling
def spool_dir() -> Path:
    return Path(os.environ.get("MEDIAFLOW_LEDGER_SPOOL") or Path(tempfile.gettempdir()) / "mediaflow-ledger-spool")


OUTAGES = {"failed_writes": 0, "spooled": 0, "replayed": 0}  # per process; also logged and sent to Airflow's Stats


def safe(url_of, method: str, retries: tuple[float, ...] = (0.2, 1.0), **kwargs) -> bool:
    """Call Ledger(url).<method>(**kwargs) without ever raising: retried, then spooled for a later replay.

    `url_of` is a callable returning the URL, so that resolving the connection is inside the protection too.
    Returns True when written now."""
    for delay in (*retries, None):
        try:
            ledger = Ledger(url_of())
            _replay(ledger)
            getattr(ledger, method)(**kwargs)
            return True
        except Exception as e:  # the ledger must never fail the work it observes
            OUTAGES["failed_writes"] += 1
            if delay is None:
                _spool(method, kwargs)
                log.warning(
                    "ledger unavailable (%s: %s); %s spooled to %s for replay", type(e).__name__, e, method, spool_dir()
                )
                return False
            time.sleep(delay)
    return False


def _spool(method: str, kwargs: dict) -> None:
    d = spool_dir()
    d.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"method": method, "kwargs": kwargs}, default=lambda v: v.isoformat())
    (d / f"{os.getpid()}-{uuid.uuid4().hex}.jsonl").write_text(line + "\n")
    OUTAGES["spooled"] += 1


def _replay(ledger: Ledger) -> None:
    d = spool_dir()
    if not d.is_dir():
        return
    for f in sorted(d.glob("*.jsonl")):
        claimed = f.with_suffix(f".{os.getpid()}.replaying")
        try:
            f.rename(claimed)  # one process replays a file
        except OSError:
            continue
        try:
            for line in claimed.read_text().splitlines():
                entry = json.loads(line)
                getattr(ledger, entry["method"])(**entry["kwargs"])
                OUTAGES["replayed"] += 1
            claimed.unlink()
        except Exception:
            claimed.rename(f)  # still down: keep it for the next attempt
            raise
