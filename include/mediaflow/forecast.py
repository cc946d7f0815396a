"""Forecasts and what-if simulation from the stage ledger (issue 21): when will this title be live, when will the
batch be done, what if the machine had more slots or the reviewers answered sooner, and how good those answers were.

Everything is sampled from the ledger's own cycle-time distributions (metrics.stage_spans), per stream and stage,
by empirical resampling (bootstrap) with a seeded numpy Generator, so the same ledger and seed give the same answer:

- **ETA** (eta): for one title, its remaining stages' hand-off waits and cycle times summed, sample by sample; the
  stage running now is sampled among the spans that ran longer than it has so far. Transcode is scaled by source
  duration (seconds per source second) when the runs record it, else matched on resolution; review is matched on
  whether a person answered (the review policy's outcome) when that is known.
- **Batch** (batch_forecast): a Monte Carlo of the queued and running titles through a small event-driven queue
  model (heapq) of the machine: the ffmpeg-heavy stages (ingest, transcode, localize, compliance) each take a slot
  of the `media` pool, a title further along goes first (the DAG's priority rule), review and publish are delays.
  Gives p50/p85 of when the last title publishes and a burn-down with its p15..p85 band.
- **What-if** (simulate, whatif): the same model over a scenario (slots per pool, reviewers' answer time, arrival
  mix): lead time, throughput, utilization and the bottleneck.
- **Backtest** (backtest): replays the ledger batch by batch, forecasting each at its start from what had finished
  before it, and reports calibration (share of titles done before their p85; goal 80-90 %) and the batch error.

Too little history (fewer than MIN_RUNS finished runs of a stream) is said, never guessed. In the queue model the
measured hand-off waits of pool stages, and the idle part of their cycle (cycle - active: tasks waiting for a slot
inside the stage), are cut at their 25th percentile: the rest was queueing for a slot on the night it was measured,
which the model adds itself from this batch's contention.
Plain pandas/numpy/stdlib: no Airflow.
"""

from __future__ import annotations

import heapq
import json
import os
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from mediaflow import metrics, names
from mediaflow.spec import STAGE_ORDER

MIN_RUNS = 5  # fewer finished runs of a stream: "too little history"
MEDIA_POOL = names.MEDIA_POOL
# the stages whose tasks take a slot of a pool (value_stream.py: ingest, transcode, localize and the ffmpeg checks
# run in the media pool); the others are delays: review waits for people, publish runs in default_pool
STAGE_POOL = {names.INGEST: MEDIA_POOL, names.TRANSCODE: MEDIA_POOL, names.LOCALIZE: MEDIA_POOL,
              names.COMPLIANCE: MEDIA_POOL}  # fmt: skip
POOL_HANDOFF_Q = 0.25  # pool stages' hand-off waits are cut here in the queue model (the rest was queueing)
BATCH_GAP_S = 600.0  # backtest: runs queued within this of the previous one belong to one batch
TERMINAL_RUN = ("success", "failed")
FEATURES = ("duration_s", "height")  # per-run features read from the runs frame when it has them


def _ts(v) -> pd.Timestamp:
    t = pd.Timestamp(v)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def _iso(t) -> str | None:
    return None if t is None else _ts(t).floor("s").strftime("%Y-%m-%dT%H:%M:%SZ")


def _r1(v: float | None) -> float | None:
    return None if v is None else round(float(v), 1)


# ---------------------------------------------------------------- history


@dataclass(frozen=True)
class History:
    """Cycle-time samples per (stream, stage): metrics.stage_spans plus per-run features and the run's times."""

    spans: pd.DataFrame  # + duration_s, height, review_person, run_queued_at, run_finished_at, finished
    now: datetime | None = None
    _memo: dict = field(default_factory=dict, compare=False, repr=False)  # derived tables, computed once

    def memo(self, key, make):
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    def runs_of(self, stream: str) -> int:
        """How many finished runs of the stream the history holds."""
        counts = self.memo("runs_of", lambda: self.spans[self.spans["finished"]].drop_duplicates(["dag_id", "run_id"])
                           .groupby("stream").size().to_dict())  # fmt: skip
        return int(counts.get(stream, 0))

    def finished_before(self, t) -> History:
        """Only the runs that had finished before `t` (what a forecast made at `t` could know)."""
        s, t = self.spans, _ts(t)
        child = History(s[s["finished"] & (s["run_finished_at"] < t)], now=t)
        for key, rows in list(self._memo.items()):  # the per-stage tables already made, cut instead of remade
            if key[0] == "rows":
                child._memo[key] = rows[rows["run_finished_at"] < t].reset_index(drop=True)
        for key in [k for k in self._memo if k[0] == "stages"]:
            have = [st for st in self._memo[key] if child.memo(("rows", key[1], st), lambda: None)["has"].any()]
            child._memo[key] = have
        return child

    def streams(self) -> list[str]:
        return sorted(self.spans.loc[self.spans["finished"], "stream"].dropna().unique())


def _max_height(renditions) -> float:
    if not isinstance(renditions, str) or not renditions:
        return float("nan")
    try:
        heights = [float(r.get("height")) for r in json.loads(renditions) if r.get("height")]
    except (ValueError, TypeError, AttributeError):
        return float("nan")
    return max(heights) if heights else float("nan")


def run_features(attempts: pd.DataFrame, runs: pd.DataFrame, *, now=None) -> pd.DataFrame:
    """Per run: stream, queue time, finish time (NaT while it runs), and the features the sampling conditions on:
    source duration_s and height when the runs frame has them (height else the tallest rendition), review_person
    (True: a person answered a review, False: every review was decided by policy, NaN: not reviewed yet)."""
    r = runs.reset_index(drop=True)  # a filtered frame keeps its index; every column below is built on 0..n-1
    for c in ("stream", "queued_at", "started_at", "ended_at", "state", "status", "renditions", *FEATURES):
        if c not in r:
            r[c] = None
    r["stream"] = r["stream"].fillna(r["dag_id"].map(names.stream_of))
    queued = pd.to_datetime(r["queued_at"], utc=True).fillna(pd.to_datetime(r["started_at"], utc=True))
    a = attempts[attempts["stage"].notna() & attempts["started_at"].notna()]
    ends = pd.to_datetime(a["ended_at"], utc=True)
    last = a.assign(e=ends, o=ends.isna()).groupby(["dag_id", "run_id"]).agg(last_end=("e", "max"), open_=("o", "any"))
    r = r.merge(last.reset_index(), on=["dag_id", "run_id"], how="left")
    over = r["state"].isin(TERMINAL_RUN) | r["status"].notna() | pd.to_datetime(r["ended_at"], utc=True).notna()
    r["last_end"] = pd.to_datetime(r["last_end"], utc=True).astype("datetime64[ns, UTC]")
    finished_at = pd.to_datetime(r["ended_at"], utc=True).astype("datetime64[ns, UTC]").fillna(r["last_end"])
    # a run ended when Airflow says so; the finish that counts is its last stage's end (the outcome task is after it)
    finished_at = r["last_end"].where(r["last_end"].notna(), finished_at)
    finished = over & (r["open_"] != True) & finished_at.notna()  # noqa: E712 (NaN: no stage ran)
    # a person answered: an approval task ran (the listener records a skipped one too, with its skip time)
    appr = a[a["task_id"].astype(str).str.endswith(names.APPROVAL_SUFFIX) & (a["state"] != "skipped")]
    person = set(zip(appr["dag_id"], appr["run_id"], strict=True))
    reviewed = a[a["stage"] == names.REVIEW][["dag_id", "run_id"]].drop_duplicates()
    reviewed = set(zip(reviewed["dag_id"], reviewed["run_id"], strict=True))
    keys = list(zip(r["dag_id"], r["run_id"], strict=True))
    review_person = [(k in person) if k in reviewed else np.nan for k in keys]
    height = pd.to_numeric(r["height"], errors="coerce").fillna(r["renditions"].map(_max_height))
    return pd.DataFrame({"dag_id": r["dag_id"], "run_id": r["run_id"], "stream": r["stream"], "run_queued_at": queued,
                         "run_finished_at": finished_at.where(finished), "finished": finished.astype(bool),
                         "duration_s": pd.to_numeric(r["duration_s"], errors="coerce"), "height": height,
                         "review_person": pd.array(review_person, dtype="object")})  # fmt: skip


def history(attempts: pd.DataFrame, runs: pd.DataFrame, *, now: datetime | None = None) -> History:
    """The ledger's spans (attempts/runs as Ledger.frames returns them) with each run's features and times."""
    now = now or datetime.now(UTC)
    cols = list(metrics.stage_spans(attempts.iloc[0:0], now=now).columns)
    if attempts.empty or runs.empty:
        feats = run_features(attempts, runs, now=now) if not runs.empty else pd.DataFrame(
            columns=["dag_id", "run_id", "run_queued_at", "run_finished_at", "finished", *FEATURES, "review_person"])  # fmt: skip
        spans = pd.DataFrame(columns=cols).merge(feats.drop(columns=["stream"], errors="ignore"), how="left",
                                                 on=["dag_id", "run_id"])  # fmt: skip
        spans["finished"] = spans["finished"].astype(bool)
        return History(spans, now=now)
    spans = metrics.stage_spans(attempts, runs, now=now)
    feats = run_features(attempts, runs, now=now)
    spans = spans.merge(feats.drop(columns=["stream"]), on=["dag_id", "run_id"], how="left")
    spans["finished"] = spans["finished"].fillna(False).astype(bool)
    return History(spans, now=now)


# ---------------------------------------------------------------- titles now


@dataclass(frozen=True)
class TitleState:
    """One title now: queued (stage None, nothing done) or running."""

    dag_id: str
    run_id: str
    stream: str
    stage: str | None
    stage_started_at: datetime | None
    done: tuple[str, ...]
    features: dict = field(default_factory=dict)


def titles_now(attempts: pd.DataFrame, runs: pd.DataFrame, *, now: datetime) -> list[TitleState]:
    """Every run not finished at `now`, with the stage it is in (the latest one started and still open)."""
    feats = run_features(attempts, runs, now=now)
    live = feats[~feats["finished"]]
    spans = metrics.stage_spans(attempts, runs, now=now) if not attempts.empty else None
    out = []
    for row in live.itertuples(index=False):
        stage, started, done = None, None, ()
        if spans is not None:
            s = spans[(spans["dag_id"] == row.dag_id) & (spans["run_id"] == row.run_id)]
            done = tuple(s.loc[s["ended_at"].notna(), "stage"])
            open_ = s[s["ended_at"].isna()]
            if not open_.empty:
                stage, started = open_.iloc[-1]["stage"], open_.iloc[-1]["started_at"].to_pydatetime()
        features = {k: float(getattr(row, k)) for k in FEATURES if pd.notna(getattr(row, k))}
        if isinstance(row.review_person, bool):
            features["review_person"] = row.review_person
        out.append(TitleState(row.dag_id, row.run_id, row.stream, stage, started, done, features))
    return out


# ---------------------------------------------------------------- sampling


def stages_of(hist: History, stream: str) -> list[str]:
    """The stages a finished run of the stream goes through, in order."""
    return hist.memo(("stages", stream), lambda: _make_stages_of(hist, stream))


def _make_stages_of(hist: History, stream: str) -> list[str]:
    s = hist.spans[(hist.spans["stream"] == stream) & hist.spans["finished"]]
    order = {st: i for i, st in enumerate(STAGE_ORDER)}
    return sorted(s["stage"].dropna().unique(), key=lambda st: (order.get(st, len(order)), st))


def remaining_stages(hist: History, title: TitleState) -> tuple[str, ...]:
    """The title's stage now, then the stream's stages that come after it. A stage earlier in the flow that the title
    did not run (a clip without captions skips localize) is behind it, not still to run."""
    order = {st: i for i, st in enumerate(STAGE_ORDER)}
    reached = [order[s] for s in (*title.done, title.stage) if s in order]
    past = max(reached, default=-1)
    rest = [
        s for s in stages_of(hist, title.stream)
        if s not in title.done and s != title.stage and order.get(s, len(order)) > past
    ]  # fmt: skip
    return ((title.stage,) if title.stage else ()) + tuple(rest)


def _stage_rows(hist: History, stream: str, stage: str) -> pd.DataFrame:
    """One row per finished run of the stream: that stage's wait/cycle/active seconds (0 when the run skipped it)."""
    return hist.memo(("rows", stream, stage), lambda: _make_stage_rows(hist, stream, stage))


def _make_stage_rows(hist: History, stream: str, stage: str) -> pd.DataFrame:
    s = hist.spans[(hist.spans["stream"] == stream) & hist.spans["finished"]]
    runs = s.drop_duplicates(["dag_id", "run_id"])[
        ["dag_id", "run_id", "run_finished_at", "duration_s", "height", "review_person"]
    ]
    st = s[s["stage"] == stage][["dag_id", "run_id", "wait_s", "cycle_s", "active_s"]].assign(has=True)
    rows = runs.merge(st, on=["dag_id", "run_id"], how="left")
    rows["has"] = rows["has"].fillna(False).astype(bool)
    for c in ("wait_s", "cycle_s", "active_s"):
        rows[c] = pd.to_numeric(rows[c], errors="coerce").fillna(0.0)
    return rows.reset_index(drop=True)


def _condition(rows: pd.DataFrame, stage: str, features: dict) -> tuple[pd.DataFrame, float | None]:
    """The rows matching the title on what matters for the stage, and a duration scale (transcode)."""
    if stage == names.TRANSCODE and features.get("duration_s"):
        known = rows[rows["duration_s"].notna() & (rows["duration_s"] > 0)]
        if len(known) >= MIN_RUNS:
            return known, float(features["duration_s"])
    if stage == names.TRANSCODE and features.get("height"):
        same = rows[rows["height"] == features["height"]]
        if len(same) >= MIN_RUNS:
            return same, None
    if stage == names.REVIEW and isinstance(features.get("review_person"), bool):
        same = rows[rows["review_person"] == features["review_person"]]
        if len(same) >= MIN_RUNS:
            return same, None
    return rows, None


def sample_stage(hist: History, stream: str, stage: str, features: dict, rng: np.random.Generator, n: int, *,
                 elapsed_s: float | None = None, cut_wait: bool = False) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """n samples of (hand-off wait, cycle) seconds of one stage for a title. `elapsed_s`: the stage runs already
    for that long: its remaining cycle, among the spans that ran longer (no wait). `cut_wait` (the queue model):
    for pool stages, the hand-off wait and the cycle's idle part (cycle - active: its tasks waiting for slots) are
    cut at their POOL_HANDOFF_Q quantile; the model adds the queueing of the contention it simulates."""
    rows, per_source_s = _condition(_stage_rows(hist, stream, stage), stage, features)
    if rows.empty:
        return np.zeros(n), np.zeros(n)
    wait, cycle, active = (rows[c].to_numpy(float) for c in ("wait_s", "cycle_s", "active_s"))
    if per_source_s is not None:
        scale = per_source_s / rows["duration_s"].to_numpy(float)
        cycle, active = cycle * scale, active * scale
    if elapsed_s is not None:
        longer = cycle[cycle > elapsed_s]
        if longer.size == 0:
            return np.zeros(n), np.zeros(n)
        return np.zeros(n), longer[rng.integers(0, longer.size, n)] - elapsed_s
    if cut_wait and stage in STAGE_POOL and rows["has"].any():
        # what waited for a slot, before the stage or between its tasks, is cut: the queue model adds its own
        ran = rows["has"].to_numpy(bool)
        gap = np.clip(cycle - active, 0.0, None)
        wait = np.minimum(wait, np.quantile(wait[ran], POOL_HANDOFF_Q))
        cycle = active + np.minimum(gap, np.quantile(gap[ran], POOL_HANDOFF_Q))
    idx = rng.integers(0, len(rows), n)
    return wait[idx], cycle[idx]


def _too_little(hist: History, streams) -> str | None:
    short = [(s, hist.runs_of(s)) for s in sorted(set(streams))]
    short = [f"{k} runs of {s}" for s, k in short if k < MIN_RUNS]
    return f"too little history: {', '.join(short)} (need {MIN_RUNS})" if short else None


# ---------------------------------------------------------------- ETA per title


@dataclass(frozen=True)
class Eta:
    p50_at: datetime | None
    p85_at: datetime | None
    p50_s: float | None
    p85_s: float | None
    remaining: tuple[str, ...]
    basis: str

    def to_json(self) -> dict:
        return {"p50_at": _iso(self.p50_at), "p85_at": _iso(self.p85_at), "p50_s": _r1(self.p50_s),
                "p85_s": _r1(self.p85_s), "remaining": list(self.remaining), "basis": self.basis}  # fmt: skip


def eta_samples(hist: History, title: TitleState, *, now: datetime, n: int, rng: np.random.Generator) -> np.ndarray:
    """n samples of the seconds from `now` until the title's last stage ends (no contention)."""
    total = np.zeros(n)
    for stage in remaining_stages(hist, title):
        if stage == title.stage and title.stage_started_at is not None:
            elapsed = max((_ts(now) - _ts(title.stage_started_at)).total_seconds(), 0.0)
            wait, cycle = sample_stage(hist, title.stream, stage, title.features, rng, n, elapsed_s=elapsed)
        else:
            wait, cycle = sample_stage(hist, title.stream, stage, title.features, rng, n)
        total += wait + cycle
    return total


def eta(hist: History, title: TitleState, *, now: datetime, n: int = 2000, seed: int = 0) -> Eta:
    """p50/p85 of when the title's last stage ends, from its stream's history; None with the reason when too little."""
    remaining = remaining_stages(hist, title)
    short = _too_little(hist, [title.stream])
    if short:
        return Eta(None, None, None, None, remaining, short)
    total = eta_samples(hist, title, now=now, n=n, rng=np.random.default_rng(seed))
    p50, p85 = (float(q) for q in np.quantile(total, [0.5, 0.85]))
    at = _ts(now).to_pydatetime()
    basis = f"{hist.runs_of(title.stream)} finished runs of {title.stream}"
    return Eta(at + timedelta(seconds=p50), at + timedelta(seconds=p85), p50, p85, remaining, basis)


# ---------------------------------------------------------------- the queue model


@dataclass
class _Job:
    arrive_s: float
    steps: list  # [(stage, handoff_s, service_s)]
    held: bool = False  # the first step is in service already (a running title holds its slot)
    rank0: int = 0  # stages done before the first step (priority: further along goes first)
    tiebreak: float = 0.0  # equal priority and ready time: lower first (titles queued together: order unknown)


def run_queue(jobs: list[_Job], slots: dict[str, int]) -> dict:
    """One pass of the event-driven model: pools are servers with `slots` each (a pool not in `slots`: unlimited),
    queued work goes further-along title first, then first come. Returns each job's finish, per-stage queue waits
    and per-pool busy seconds."""
    events, seq, busy = [], 0, {p: 0 for p in slots}
    queues: dict[str, list] = {p: [] for p in slots}
    finish = np.zeros(len(jobs))
    qwait: dict[str, list] = {}
    busy_s: dict[str, float] = {p: 0.0 for p in slots}
    stage_busy_s: dict[str, float] = {}
    trace: list[tuple[int, str, float, float]] = []  # (job, stage, service start, end)

    def start(t, i, k):
        nonlocal seq
        stage, _, service = jobs[i].steps[k]
        trace.append((i, stage, t, t + service))
        pool = STAGE_POOL.get(stage)
        if pool in slots:
            busy[pool] += 1
            busy_s[pool] += service
            stage_busy_s[stage] = stage_busy_s.get(stage, 0.0) + service
        seq += 1
        heapq.heappush(events, (t + service, seq, "done", i, k))

    for i in sorted(range(len(jobs)), key=lambda i: (jobs[i].arrive_s, jobs[i].tiebreak)):  # ties: tiebreak order
        job = jobs[i]
        if not job.steps:
            finish[i] = job.arrive_s
            continue
        seq += 1
        if job.held:
            start(job.arrive_s, i, 0)
            qwait.setdefault(job.steps[0][0], []).append(0.0)
        else:
            heapq.heappush(events, (job.arrive_s + job.steps[0][1], seq, "ready", i, 0))
    while events:
        t, _, kind, i, k = heapq.heappop(events)
        stage = jobs[i].steps[k][0]
        pool = STAGE_POOL.get(stage)
        if kind == "ready":
            if pool in slots and busy[pool] >= slots[pool]:
                heapq.heappush(queues[pool], (-(jobs[i].rank0 + k), t, jobs[i].tiebreak, i, k))
                continue
            qwait.setdefault(stage, []).append(0.0)
            start(t, i, k)
            continue
        if pool in slots:
            busy[pool] -= 1
            while queues[pool] and busy[pool] < slots[pool]:
                _, t_ready, _, j, kj = heapq.heappop(queues[pool])
                qwait.setdefault(jobs[j].steps[kj][0], []).append(t - t_ready)
                start(t, j, kj)
        if k + 1 < len(jobs[i].steps):
            seq += 1
            heapq.heappush(events, (t + jobs[i].steps[k + 1][1], seq, "ready", i, k + 1))
        else:
            finish[i] = t
    return {"finish": finish, "qwait": qwait, "busy_s": busy_s, "stage_busy_s": stage_busy_s, "trace": trace}


def _jobs_for(hist: History, titles: list[TitleState], *, now, rng: np.random.Generator, n: int,
              arrive_s=None) -> list[list[_Job]]:  # fmt: skip
    """n replications of the titles' jobs, every stage sampled once per replication; titles that reach a queue
    at the same moment with the same priority go in a random order (Airflow's is not known in advance)."""
    arrive_s = np.zeros(len(titles)) if arrive_s is None else np.asarray(arrive_s, float)
    ties = rng.random((n, len(titles)))
    per_title = []
    for title in titles:
        stages = remaining_stages(hist, title)
        draws = []
        for stage in stages:
            if stage == title.stage and title.stage_started_at is not None:
                elapsed = max((_ts(now) - _ts(title.stage_started_at)).total_seconds(), 0.0)
                draws.append(sample_stage(hist, title.stream, stage, title.features, rng, n, elapsed_s=elapsed))
            else:
                draws.append(sample_stage(hist, title.stream, stage, title.features, rng, n, cut_wait=True))
        per_title.append((title, stages, draws))
    reps = []
    for r in range(n):
        jobs = []
        for x, (title, stages, draws) in enumerate(per_title):
            steps = [(st, float(w[r]), float(c[r])) for st, (w, c) in zip(stages, draws, strict=True)]
            held = bool(title.stage and title.stage_started_at is not None and title.stage in STAGE_POOL)
            jobs.append(_Job(float(arrive_s[x]), steps, held=held, rank0=len(title.done), tiebreak=float(ties[r, x])))
        reps.append(jobs)
    return reps


def batch_samples(hist: History, titles: list[TitleState], *, slots: dict[str, int], now, n: int = 500,
                  seed: int = 0, arrive_s=None) -> np.ndarray:  # fmt: skip
    """(n, titles) seconds from `now` until each title's last stage ends, through the queue model; `arrive_s`:
    seconds after `now` each title is queued (default: all now)."""
    rng = np.random.default_rng(seed)
    reps = _jobs_for(hist, titles, now=now, rng=rng, n=n, arrive_s=arrive_s)
    return np.array([run_queue(jobs, slots)["finish"] for jobs in reps]).reshape(n, len(titles))


# ---------------------------------------------------------------- the batch


@dataclass(frozen=True)
class BatchForecast:
    p50_at: datetime | None
    p85_at: datetime | None
    p50_s: float | None
    p85_s: float | None
    titles: int
    burndown: list[dict]  # [{"t_s", "at", "p15", "p50", "p85"}]: titles remaining, from now to the p85 end
    basis: str
    per_title: list[dict] = field(default_factory=list)  # [{"dag_id", "run_id", "p50_s", "p85_s", "p50_at", "p85_at"}]

    def to_json(self) -> dict:
        return {"p50_at": _iso(self.p50_at), "p85_at": _iso(self.p85_at), "p50_s": _r1(self.p50_s),
                "p85_s": _r1(self.p85_s), "titles": self.titles, "burndown": self.burndown, "basis": self.basis,
                "per_title": self.per_title}  # fmt: skip


def slots_of(cap) -> dict[str, int]:
    """mediaflow.capacity.Capacity -> slots per pool the model has (the media pool; default_pool is not a limit)."""
    return {MEDIA_POOL: int(cap.media_slots)}


def burndown(finish: np.ndarray, *, now, until_s: float, points: int = 40) -> list[dict]:
    """Titles remaining over time (band p15..p85 over the replications) from 0 to `until_s` seconds."""
    at = _ts(now)
    out = []
    for t in np.linspace(0.0, max(until_s, 0.0), points + 1):
        left = (finish > t).sum(axis=1)
        p15, p50, p85 = (float(q) for q in np.quantile(left, [0.15, 0.5, 0.85]))
        out.append({"t_s": _r1(t), "at": _iso(at + pd.Timedelta(seconds=float(t))), "p15": p15, "p50": p50, "p85": p85})
    return out


def batch_forecast(hist: History, titles: list[TitleState], *, slots: dict[str, int], now: datetime,
                   n: int = 500, seed: int = 0) -> BatchForecast:  # fmt: skip
    """p50/p85 of when the last of `titles` (queued and running) finishes on a machine with `slots`, the
    burn-down with its band, and each title's p50/p85 in that batch (its ETA with the contention). Titles of a
    stream with too little history are left out of the sampling, and the basis says so (one new stream waiting for
    a person does not take the forecast of every other title away); none left: no forecast, the reason said."""
    if not titles:
        return BatchForecast(None, None, 0.0, 0.0, 0, [], "no titles queued or running")
    short = _too_little(hist, [t.stream for t in titles])
    everyone, titles = titles, [t for t in titles if hist.runs_of(t.stream) >= MIN_RUNS]
    if not titles:
        return BatchForecast(None, None, None, None, len(everyone), [], short)
    finish = batch_samples(hist, titles, slots=slots, now=now, n=n, seed=seed)
    last = finish.max(axis=1)
    p50, p85 = (float(q) for q in np.quantile(last, [0.5, 0.85]))
    at = _ts(now).to_pydatetime()
    streams = sorted({t.stream for t in titles})
    basis = (f"{n} replications over {', '.join(f'{hist.runs_of(s)} finished runs of {s}' for s in streams)}; "
             f"slots {', '.join(f'{p} {k}' for p, k in sorted(slots.items()))}")  # fmt: skip
    if short:
        left_out = len(everyone) - len(titles)
        basis += f"; {left_out} {'title' if left_out == 1 else 'titles'} left out, {short}"
    q50, q85 = np.quantile(finish, [0.5, 0.85], axis=0)
    per_title = [{"dag_id": t.dag_id, "run_id": t.run_id, "p50_s": _r1(a), "p85_s": _r1(b),
                  "p50_at": _iso(at + timedelta(seconds=float(a))), "p85_at": _iso(at + timedelta(seconds=float(b)))}
                 for t, a, b in zip(titles, q50, q85, strict=True)]  # fmt: skip
    return BatchForecast(at + timedelta(seconds=p50), at + timedelta(seconds=p85), p50, p85, len(everyone),
                         burndown(finish, now=now, until_s=p85), basis, per_title)  # fmt: skip


# ---------------------------------------------------------------- what-if


@dataclass(frozen=True)
class Scenario:
    slots: dict[str, int]
    review_answer_s: float | None = None  # reviewers' answer time (median of the person reviews); None: as measured
    arrivals: dict[str, int] | None = None  # titles per stream; None: the measured mix of `titles`
    titles: int = 50
    interarrival_s: float = 0.0  # 0: every title arrives at t=0 (a batch); > 0: a steady stream (exponential gaps)


@dataclass(frozen=True)
class SimResult:
    lead_time_p50_s: float
    lead_time_p85_s: float
    makespan_s: float
    throughput_per_h: float
    bottleneck: str
    utilization: dict[str, float]
    wait_s: dict[str, float]
    lead_time_mean_s: float = 0.0
    wip_mean: float = 0.0  # time-average titles in the system (Little's L)

    def to_json(self) -> dict:
        return {"lead_time_p50_s": _r1(self.lead_time_p50_s), "lead_time_p85_s": _r1(self.lead_time_p85_s),
                "lead_time_mean_s": _r1(self.lead_time_mean_s), "makespan_s": _r1(self.makespan_s),
                "throughput_per_h": round(self.throughput_per_h, 3), "bottleneck": self.bottleneck,
                "utilization": {k: round(v, 3) for k, v in self.utilization.items()},
                "wait_s": {k: _r1(v) for k, v in self.wait_s.items()}, "wip_mean": round(self.wip_mean, 3)}  # fmt: skip


def arrival_mix(hist: History, scenario: Scenario) -> dict[str, int]:
    """Titles per stream: the scenario's, else its `titles` split as the finished runs of the streams with enough
    history were (largest remainder)."""
    if scenario.arrivals:
        return {s: int(k) for s, k in scenario.arrivals.items() if k > 0}
    counts = {s: hist.runs_of(s) for s in hist.streams() if hist.runs_of(s) >= MIN_RUNS}  # the forecastable ones
    total = sum(counts.values())
    if not total:
        return {}
    exact = {s: scenario.titles * k / total for s, k in counts.items()}
    mix = {s: int(v) for s, v in exact.items()}
    for s in sorted(exact, key=lambda s: exact[s] - mix[s], reverse=True)[: scenario.titles - sum(mix.values())]:
        mix[s] += 1
    return {s: k for s, k in mix.items() if k > 0}


def _review_scale(hist: History, stream: str, answer_s: float | None) -> float:
    """The factor that moves the median review of a person (else of every review) to `answer_s`."""
    if answer_s is None:
        return 1.0
    rows = _stage_rows(hist, stream, names.REVIEW)
    person = rows[rows["review_person"] == True]  # noqa: E712 (object column)
    median = float((person if len(person) else rows)["cycle_s"].median()) if len(rows) else 0.0
    return answer_s / median if median > 0 else 1.0


def _scenario_jobs(hist: History, scenario: Scenario, rng: np.random.Generator) -> list[_Job]:
    mix = arrival_mix(hist, scenario)
    streams = [s for s, k in sorted(mix.items()) for _ in range(k)]
    streams = [streams[i] for i in rng.permutation(len(streams))]
    gaps = (
        rng.exponential(scenario.interarrival_s, len(streams))
        if scenario.interarrival_s > 0
        else np.zeros(len(streams))
    )
    arrive = np.cumsum(gaps) - (gaps[0] if len(gaps) else 0.0)
    draws = {}
    for s in mix:
        n = streams.count(s)
        scale = _review_scale(hist, s, scenario.review_answer_s)
        per_stage = []
        for stage in stages_of(hist, s):
            w, c = sample_stage(hist, s, stage, {}, rng, n, cut_wait=True)
            if stage == names.REVIEW:
                c = c * scale
            per_stage.append((stage, w, c))
        draws[s] = per_stage
    seen: dict[str, int] = {}
    jobs = []
    for s, t in zip(streams, arrive, strict=True):
        j = seen[s] = seen.get(s, -1) + 1
        jobs.append(_Job(float(t), [(st, float(w[j]), float(c[j])) for st, w, c in draws[s]]))
    return jobs


def _wip_mean(arrive: np.ndarray, finish: np.ndarray) -> float:
    """Time-average number of titles in the system over [first arrival, last finish]."""
    span = float(finish.max() - arrive.min())
    return float((finish - arrive).sum() / span) if span > 0 else 0.0


def simulate(hist: History, scenario: Scenario, *, seed: int = 0, replications: int = 20) -> SimResult:
    """The scenario's titles through the queue model, `replications` times: lead time (arrival to last stage's
    end) p50/p85/mean, makespan, throughput, utilization and mean queue wait per stage, and the bottleneck (the
    stage taking the most slot time in the pool titles queue for; without queueing, the longest stage)."""
    short = _too_little(hist, arrival_mix(hist, scenario) or hist.streams() or ["(no stream)"])
    if short:
        raise ValueError(short)
    rng = np.random.default_rng(seed)
    leads, spans, outs, wips, waits, busy, stage_time, stage_busy = [], [], [], [], {}, {}, {}, {}
    for _ in range(replications):
        jobs = _scenario_jobs(hist, scenario, rng)
        res = run_queue(jobs, scenario.slots)
        arrive = np.array([j.arrive_s for j in jobs])
        lead = res["finish"] - arrive
        leads.append(lead)
        makespan = float(res["finish"].max() - arrive.min())
        spans.append(makespan)
        outs.append(len(jobs) / makespan * 3600 if makespan > 0 else 0.0)
        wips.append(_wip_mean(arrive, res["finish"]))
        for st, w in res["qwait"].items():
            waits.setdefault(st, []).extend(w)
        for st, b in res["stage_busy_s"].items():
            stage_busy[st] = stage_busy.get(st, 0.0) + b
        for p, b in res["busy_s"].items():
            busy.setdefault(p, []).append(b / (scenario.slots[p] * makespan) if makespan > 0 else 0.0)
        for j in jobs:
            for st, w, c in j.steps:
                stage_time.setdefault(st, []).append(w + c)
    lead = np.concatenate(leads)
    wait_s = {st: float(np.mean(w)) for st, w in waits.items()}
    utilization = {p: float(np.mean(b)) for p, b in busy.items()}
    if wait_s and max(wait_s.values()) > 1.0:  # titles queue for a pool: its stage taking the most slot time
        pool = STAGE_POOL.get(max(wait_s, key=wait_s.get))
        in_pool = {st: b for st, b in stage_busy.items() if STAGE_POOL.get(st) == pool}
        neck = max(in_pool, key=in_pool.get) if in_pool else max(wait_s, key=wait_s.get)
    else:
        neck = max(stage_time, key=lambda st: np.mean(stage_time[st])) if stage_time else ""
    return SimResult(float(np.quantile(lead, 0.5)), float(np.quantile(lead, 0.85)), float(np.mean(spans)),
                     float(np.mean(outs)), neck, utilization, wait_s, float(lead.mean()), float(np.mean(wips)))  # fmt: skip


def whatif(hist: History, base: Scenario, changed: Scenario, *, seed: int = 0) -> dict:
    """Both scenarios with the same seed, and what changed: lead time, makespan, throughput, bottleneck."""
    a, b = simulate(hist, base, seed=seed), simulate(hist, changed, seed=seed)

    def pct(x: float, y: float) -> float | None:
        return round(100 * (y - x) / x, 1) if x else None

    delta = {"lead_time_p50_s": _r1(b.lead_time_p50_s - a.lead_time_p50_s),
             "lead_time_p50_pct": pct(a.lead_time_p50_s, b.lead_time_p50_s),
             "lead_time_p85_s": _r1(b.lead_time_p85_s - a.lead_time_p85_s),
             "makespan_s": _r1(b.makespan_s - a.makespan_s), "makespan_pct": pct(a.makespan_s, b.makespan_s),
             "throughput_per_h": round(b.throughput_per_h - a.throughput_per_h, 3),
             "bottleneck": a.bottleneck if a.bottleneck == b.bottleneck else f"{a.bottleneck} -> {b.bottleneck}"}  # fmt: skip
    return {"base": a.to_json(), "changed": b.to_json(), "delta": delta}


# ---------------------------------------------------------------- backtest


@dataclass(frozen=True)
class Calibration:
    titles: int
    batches: int
    share_before_p85: float | None  # share of titles done before their p85 (goal 0.80-0.90)
    batch_error_pct: float | None  # mean |forecast p50 - actual| / actual of the batch finish, in %
    enough: bool
    reason: str
    share_before_p50: float | None = None  # the same for the p50 (about half, when the forecast is calibrated)

    def to_json(self) -> dict:
        return {"titles": self.titles, "batches": self.batches,
                "share_before_p50": None if self.share_before_p50 is None else round(self.share_before_p50, 3),
                "share_before_p85": None if self.share_before_p85 is None else round(self.share_before_p85, 3),
                "batch_error_pct": _r1(self.batch_error_pct), "enough": self.enough, "reason": self.reason}  # fmt: skip


def batches_of(feats: pd.DataFrame, gap_s: float = BATCH_GAP_S) -> list[pd.DataFrame]:
    """The runs in batches: a run queued within `gap_s` of the previous one joins its batch."""
    r = feats[feats["run_queued_at"].notna()].sort_values("run_queued_at")
    if r.empty:
        return []
    gaps = r["run_queued_at"].diff().dt.total_seconds()
    ids = (gaps.isna() | (gaps > gap_s)).cumsum()
    return [b for _, b in r.groupby(ids, sort=True)]


def observed_slots(hist: History) -> dict[str, int]:
    """The most pool-stage spans that ever ran at once, per pool: the capacity the ledger shows (a lower bound)."""
    s = hist.spans[hist.spans["stage"].isin(list(STAGE_POOL)) & hist.spans["ended_at"].notna()]
    if s.empty:
        return {MEDIA_POOL: 1}
    ev = pd.concat([pd.DataFrame({"t": s["started_at"], "d": 1}), pd.DataFrame({"t": s["ended_at"], "d": -1})])
    ev = ev.sort_values(["t", "d"])
    return {MEDIA_POOL: int(max(ev["d"].cumsum().max(), 1))}


def backtest(attempts: pd.DataFrame, runs: pd.DataFrame, *, seed: int = 0, slots: dict[str, int] | None = None,
             n: int = 200, gap_s: float = BATCH_GAP_S) -> Calibration:  # fmt: skip
    """Replay the ledger: at each batch's start, forecast its titles from the runs finished before it (through the
    queue model with `slots`, else the most the ledger ever ran at once), then compare with what happened. A title
    counts when its stream had MIN_RUNS finished runs before the batch and it finished (or is past its p85)."""
    end = max(
        pd.to_datetime(attempts["ended_at"], utc=True).max(), pd.to_datetime(attempts["started_at"], utc=True).max()
    )
    full = history(attempts, runs, now=end.floor("us").to_pydatetime() if pd.notna(end) else None)
    for stream in full.streams():  # made once on the whole ledger, then cut per batch (History.finished_before)
        for stage in stages_of(full, stream):
            _stage_rows(full, stream, stage)
    feats = run_features(attempts, runs)
    slots = slots or observed_slots(full)
    hits, hits50, errors, judged_batches, short = [], [], [], 0, 0
    for i, batch in enumerate(batches_of(feats, gap_s)):
        t0 = batch["run_queued_at"].min()
        hist = full.finished_before(t0)
        ok = batch[[hist.runs_of(s) >= MIN_RUNS for s in batch["stream"]]]
        short += len(batch) - len(ok)
        if ok.empty:
            continue
        titles = [TitleState(r.dag_id, r.run_id, r.stream, None, None, (), {}) for r in ok.itertuples(index=False)]
        delay = (ok["run_queued_at"] - t0).dt.total_seconds().to_numpy()
        finish = batch_samples(hist, titles, slots=slots, now=t0, n=n, seed=seed + i, arrive_s=delay)
        actual = (ok["run_finished_at"] - t0).dt.total_seconds().to_numpy()
        p50, p85 = np.quantile(finish, [0.5, 0.85], axis=0)
        seen = (end - t0).total_seconds()
        for a, q50, q in zip(actual, p50, p85, strict=True):
            if not np.isnan(a):
                hits.append(a <= q)
                hits50.append(a <= q50)
            elif seen > q:  # still running past its p85: late whatever happens next
                hits.append(False)
                hits50.append(False)
        if not np.isnan(actual).any() and actual.max() > 0:
            judged_batches += 1
            errors.append(abs(float(np.quantile(finish.max(axis=1), 0.5)) - actual.max()) / actual.max())
    if not hits:
        reason = (f"too little history: no batch had {MIN_RUNS} finished runs of its streams before it"
                  f" ({short} titles without)")  # fmt: skip
        return Calibration(0, 0, None, None, False, reason)
    share = float(np.mean(hits))
    reason = (f"{len(hits)} titles in {judged_batches} finished batches; {short} titles without history left out; "
              f"slots {', '.join(f'{p} {k}' for p, k in sorted(slots.items()))}")  # fmt: skip
    error = 100 * float(np.mean(errors)) if errors else None
    return Calibration(len(hits), judged_batches, share, error, True, reason, float(np.mean(hits50)))


# ---------------------------------------------------------------- the command


def _slots_arg(text: str | None) -> dict[str, int] | None:
    """`media=4,other=2` -> {"media": 4, "other": 2}; a bare number is the media pool's."""
    if not text:
        return None
    if text.isdigit():
        return {MEDIA_POOL: int(text)}
    return {k.strip(): int(v) for k, v in (part.split("=", 1) for part in text.split(","))}


def _frames(args) -> tuple[pd.DataFrame, pd.DataFrame, datetime]:
    """The ledger window the command reads: `--synthetic ROWS` (metrics.synthetic_ledger) or the ledger at
    `--ledger URL` (default $MEDIAFLOW_LEDGER_URL), the last `--days` and every run still going."""
    now = _ts(args.now).to_pydatetime() if args.now else datetime.now(UTC)
    if args.synthetic:
        a, r = metrics.synthetic_ledger(args.synthetic, days=args.days, until=now, seed=args.seed)
        return a, r, now
    url = args.ledger or os.environ.get("MEDIAFLOW_LEDGER_URL")
    if not url:
        raise SystemExit("forecast: give --ledger URL (or MEDIAFLOW_LEDGER_URL), or --synthetic ROWS")
    from mediaflow.ledger import Ledger

    a, r = Ledger(url).frames(now - timedelta(days=args.days))
    return a, r, now


def _parser():
    import argparse

    p = argparse.ArgumentParser(prog="python -m mediaflow.forecast", description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=["eta", "batch", "whatif", "backtest"])
    p.add_argument("--ledger", help="SQLAlchemy URL of the stage ledger (default $MEDIAFLOW_LEDGER_URL)")
    p.add_argument("--synthetic", type=int, help="use a generated ledger of about this many attempt rows instead")
    p.add_argument("--days", type=float, default=30, help="history to read (days before now)")
    p.add_argument("--now", help="ISO time to forecast from (default: now)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--slots", help="pool slots, e.g. media=2 (default: this machine's, mediaflow.capacity)")
    p.add_argument("--changed-slots", help="whatif: the changed scenario's pool slots")
    p.add_argument("--review-answer-s", type=float, help="whatif: reviewers' answer time in the changed scenario")
    p.add_argument(
        "--arrivals", help="whatif: titles per stream in the changed scenario, e.g. news_clip=30,feature_film=5"
    )
    p.add_argument("--titles", type=int, default=50, help="whatif: titles per scenario (measured mix)")
    return p


def main(argv: list[str]) -> int:
    """`python -m mediaflow.forecast eta|batch|whatif|backtest [...]`: the answer as JSON on stdout."""
    args = _parser().parse_args(argv)
    attempts, runs, now = _frames(args)
    if args.slots:
        slots = _slots_arg(args.slots)
    else:
        from mediaflow.capacity import capacity

        slots = slots_of(capacity())
    if args.command == "backtest":
        out = backtest(attempts, runs, seed=args.seed, slots=_slots_arg(args.slots)).to_json()
    else:
        hist = history(attempts, runs, now=now)
        titles = titles_now(attempts, runs, now=now)
        if args.command == "eta":
            out = [{"dag_id": t.dag_id, "run_id": t.run_id, "stream": t.stream, "stage": t.stage,
                    **eta(hist, t, now=now, seed=args.seed).to_json()} for t in titles]  # fmt: skip
        elif args.command == "batch":
            out = batch_forecast(hist, titles, slots=slots, now=now, seed=args.seed).to_json()
        else:
            base = Scenario(slots=slots, titles=args.titles)
            arrivals = _slots_arg(args.arrivals) if args.arrivals else None
            changed = Scenario(slots=_slots_arg(args.changed_slots) or slots, review_answer_s=args.review_answer_s,
                               arrivals=arrivals, titles=args.titles)  # fmt: skip
            try:
                out = whatif(hist, base, changed, seed=args.seed)
            except ValueError as e:
                print(f"forecast: {e}", file=sys.stderr)
                return 2
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


# ---------------------------------------------------------------- a contended ledger (benchmarks, tests)

_CONTENDED_SHAPE = [(names.INGEST, names.INGEST_ID, 20, 3), (names.TRANSCODE, names.TRANSCODE_ID, 300, 3),
                    (names.COMPLIANCE, names.check_id(names.LOUDNESS), 60, 3),
                    (names.REVIEW, names.policy_id(names.LEGAL), 600, 20), (names.PUBLISH, names.PUBLISH_ID, 30, 3)]  # fmt: skip


def contended_ledger(batches: int = 30, titles: int = 6, *, slots: int = 2, stream: str = "series_episode",
                     seed: int = 7, gap_s: float = 6 * 3600) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """Attempts and runs of `batches` nightly batches of `titles` titles each, all queued at once and run through
    the queue model on `slots` media slots (lognormal stage times, exponential hand-offs): a ledger whose waits
    hold real queueing, as a machine's does, unlike metrics.synthetic_ledger's. Deterministic for a seed."""
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp("2026-10-01", tz="UTC")
    dag = names.value_stream_dag_id(stream)
    att, runs = [], []
    for b in range(batches):
        jobs = [_Job(0.0, [(st, float(rng.exponential(h)), float(rng.lognormal(np.log(m), 0.4)))
                           for st, _, m, h in _CONTENDED_SHAPE], tiebreak=float(rng.random())) for _ in range(titles)]  # fmt: skip
        res = run_queue(jobs, {MEDIA_POOL: slots})
        start = t0 + pd.Timedelta(seconds=b * gap_s)
        task = {st: tid for st, tid, _, _ in _CONTENDED_SHAPE}
        for i, stage, s0, s1 in res["trace"]:
            att.append({"dag_id": dag, "run_id": f"b{b}-t{i}", "task_id": task[stage], "map_index": -1,
                        "try_number": 1, "stream": stream, "stage": stage, "state": "success",
                        "started_at": start + pd.Timedelta(seconds=s0), "ended_at": start + pd.Timedelta(seconds=s1)})  # fmt: skip
        for i in range(titles):
            runs.append({"dag_id": dag, "run_id": f"b{b}-t{i}", "stream": stream, "queued_at": start,
                         "started_at": start, "ended_at": start + pd.Timedelta(seconds=float(res["finish"][i])),
                         "state": "success", "status": "published"})  # fmt: skip
    return pd.DataFrame(att), pd.DataFrame(runs)
