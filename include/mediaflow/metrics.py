"""Flow metrics over the stage ledger, vectorised with pandas (groundwork for the value-stream analytics).

Definitions (the same as mediaflow.stages, which does one run at a time; these do thousands at once):
- a stage span per (run, stage): start = first attempt start, end = last attempt end (open while any attempt
  runs), active = union of the attempts' run intervals, wait = start minus the previous stage's end (the run's
  queue time for the first stage), attempts = highest try number, cycle = end (or now) minus start;
- per stream and stage over a window: count, median and p90 cycle, median wait and active time, SLA attainment
  (share of finished spans within their SLA, %), rework rate (share with more than one attempt, %);
- flow efficiency of a run = active time of its stages / its lead time;
- WIP now = spans still open; throughput = finished runs per UTC day; the bottleneck of a stream = the stage with
  the largest median wait + cycle; an anomaly = a span today above the p90 of its stream and stage over the
  30 days before.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd

from mediaflow.spec import STAGE_ORDER

KEYS = ["dag_id", "run_id", "stage"]


def _utc(col: pd.Series) -> pd.Series:
    return pd.to_datetime(col, utc=True)


def stage_spans(attempts: pd.DataFrame, runs: pd.DataFrame | None = None, *, now: datetime | None = None) -> pd.DataFrame:
    """One row per (dag_id, run_id, stage) from ledger attempt rows (columns as Ledger.attempts returns them).
    Rows without a stage (outcome, sla_watch) or without a start are left out."""
    now = pd.Timestamp(now or datetime.now(timezone.utc))
    cols = KEYS + ["stream", "started_at", "ended_at", "active_s", "wait_s", "attempts", "cycle_s", "open"]
    a = attempts[attempts["stage"].notna() & attempts["started_at"].notna()].copy()
    if a.empty:
        return pd.DataFrame(columns=cols)
    a["start"], a["end"] = _utc(a["started_at"]), _utc(a["ended_at"])
    a["open"] = a["end"].isna()
    a["end_or_now"] = a["end"].fillna(now)

    # union of intervals per span: sort by start; an attempt opens a new block when it starts after every earlier
    # attempt of the span has ended
    a = a.sort_values(KEYS + ["start"]).reset_index(drop=True)
    reach = a.groupby(KEYS, sort=False)["end_or_now"].cummax()
    prev_reach = reach.groupby([a[k] for k in KEYS], sort=False).shift()
    a["block"] = (prev_reach.isna() | (a["start"] > prev_reach)).cumsum()
    blocks = a.groupby(KEYS + ["block"], sort=False).agg(b_start=("start", "min"), b_end=("end_or_now", "max")).reset_index()
    blocks["len_s"] = (blocks["b_end"] - blocks["b_start"]).dt.total_seconds()
    active = blocks.groupby(KEYS, sort=False)["len_s"].sum().rename("active_s")

    spans = a.groupby(KEYS, sort=False).agg(
        stream=("stream", "first"), started_at=("start", "min"), last_end=("end", "max"), open=("open", "any"),
        attempts=("try_number", "max"), reach=("end_or_now", "max"),
    ).join(active).reset_index()  # fmt: skip
    spans["ended_at"] = spans["last_end"].where(~spans["open"])
    spans["cycle_s"] = (spans["reach"] - spans["started_at"]).dt.total_seconds()

    # hand-off wait: from the previous stage's end in the run (stage order), or from the run's queue time
    order = {s: i for i, s in enumerate(STAGE_ORDER)}
    spans["rank"] = spans["stage"].map(order).fillna(len(order))
    spans = spans.sort_values(["dag_id", "run_id", "rank", "started_at"]).reset_index(drop=True)
    prev_end = spans.groupby(["dag_id", "run_id"], sort=False)["ended_at"].shift()
    first = spans.groupby(["dag_id", "run_id"], sort=False).cumcount() == 0
    if runs is not None and not runs.empty:
        queued = runs.assign(queued=_utc(runs["queued_at"]))[["dag_id", "run_id", "queued"]]
        spans = spans.merge(queued, on=["dag_id", "run_id"], how="left")
        prev_end = prev_end.where(~first, spans["queued"])
    spans["wait_s"] = (spans["started_at"] - prev_end).dt.total_seconds().clip(lower=0)
    return spans[cols]


def stage_summary(spans: pd.DataFrame, slas_s: dict[str, dict[str, float]]) -> pd.DataFrame:
    """Per stream and stage: count, cycle (median, p90), wait and active (median), SLA attainment % and
    rework rate %. `slas_s`: {stream: {stage: seconds}} from the specs."""
    if spans.empty:
        return pd.DataFrame(columns=["stream", "stage", "count", "cycle_median_s", "cycle_p90_s", "wait_median_s",
                                     "active_median_s", "sla_attainment_pct", "rework_pct"])  # fmt: skip
    s = spans.copy()
    s["sla_s"] = pd.Series([slas_s.get(st, {}).get(sg) for st, sg in zip(s["stream"], s["stage"], strict=True)],
                           index=s.index, dtype="float64")  # fmt: skip
    finished = s["ended_at"].notna() & s["sla_s"].notna()
    s["within"] = (s["cycle_s"] <= s["sla_s"]).where(finished)
    s["rework"] = s["attempts"] > 1
    g = s.groupby(["stream", "stage"], sort=False)
    out = g.agg(count=("run_id", "size"), cycle_median_s=("cycle_s", "median"),
                cycle_p90_s=("cycle_s", lambda c: c.quantile(0.9)), wait_median_s=("wait_s", "median"),
                active_median_s=("active_s", "median"), sla_attainment_pct=("within", "mean"),
                rework_pct=("rework", "mean")).reset_index()  # fmt: skip
    out["sla_attainment_pct"] = (out["sla_attainment_pct"].astype(float) * 100).round(1)
    out["rework_pct"] = (out["rework_pct"].astype(float) * 100).round(1)
    order = {st: i for i, st in enumerate(STAGE_ORDER)}
    return out.sort_values(["stream", "stage"], key=lambda c: c.map(order).fillna(len(order)) if c.name == "stage" else c).reset_index(drop=True)


def flow_efficiency(spans: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Per finished run: lead time (delivery arrival, else queue time, to the last stage's end), active time (sum of
    its stages' active time) and flow efficiency = active / lead time."""
    done = spans.groupby(["dag_id", "run_id"]).agg(active_s=("active_s", "sum"), end=("ended_at", "max"),
                                                   open=("ended_at", lambda e: e.isna().any())).reset_index()  # fmt: skip
    r = runs.assign(arrived=_utc(runs["delivered_at"]).fillna(_utc(runs["queued_at"])))[["dag_id", "run_id", "stream", "arrived"]]
    df = done[~done["open"]].merge(r, on=["dag_id", "run_id"], how="inner")
    df["lead_time_s"] = (df["end"] - df["arrived"]).dt.total_seconds()
    df["flow_efficiency"] = (df["active_s"] / df["lead_time_s"]).where(df["lead_time_s"] > 0)
    return df[["dag_id", "run_id", "stream", "lead_time_s", "active_s", "flow_efficiency"]]


def wip_now(spans: pd.DataFrame) -> pd.DataFrame:
    """Titles in each stage right now (spans still open), per stream and stage."""
    open_ = spans[spans["ended_at"].isna()]
    return open_.groupby(["stream", "stage"]).size().rename("wip").reset_index()


def throughput_per_day(flow: pd.DataFrame, spans: pd.DataFrame) -> pd.DataFrame:
    """Finished runs per stream and UTC day (the day their last stage ended); `flow` from flow_efficiency."""
    ends = spans.groupby(["dag_id", "run_id"])["ended_at"].max().rename("end").reset_index()
    df = flow.merge(ends, on=["dag_id", "run_id"])
    df["day"] = df["end"].dt.strftime("%Y-%m-%d")
    return df.groupby(["stream", "day"]).size().rename("finished").reset_index()


def bottleneck(summary: pd.DataFrame) -> pd.DataFrame:
    """Per stream, the stage with the largest median wait + cycle time, with wait and active shown apart and its
    share of the stream's total."""
    s = summary.assign(time_s=summary["wait_median_s"].fillna(0) + summary["cycle_median_s"].fillna(0))
    s["share_pct"] = (100 * s["time_s"] / s.groupby("stream")["time_s"].transform("sum")).round(1)
    top = s.loc[s.groupby("stream")["time_s"].idxmax()]
    return top[["stream", "stage", "time_s", "wait_median_s", "active_median_s", "share_pct"]].reset_index(drop=True)


def anomalies(spans: pd.DataFrame, *, day: str, history_days: int = 30, quantile: float = 0.9) -> pd.DataFrame:
    """Spans started on `day` (UTC, YYYY-MM-DD) whose cycle or wait time is above the `quantile` of the same
    stream and stage over the `history_days` before. Stages without history are not judged."""
    s = spans.assign(day=spans["started_at"].dt.strftime("%Y-%m-%d"))
    start = (pd.Timestamp(day) - pd.Timedelta(days=history_days)).strftime("%Y-%m-%d")
    past = s[(s["day"] >= start) & (s["day"] < day)]
    limits = past.groupby(["stream", "stage"]).agg(cycle_limit_s=("cycle_s", lambda c: c.quantile(quantile)),
                                                   wait_limit_s=("wait_s", lambda w: w.quantile(quantile))).reset_index()  # fmt: skip
    today = s[s["day"] == day].merge(limits, on=["stream", "stage"], how="inner")
    today["slow_cycle"] = today["cycle_s"] > today["cycle_limit_s"]
    today["slow_wait"] = today["wait_s"] > today["wait_limit_s"]
    flagged = today[today["slow_cycle"] | today["slow_wait"]]
    return flagged[["dag_id", "run_id", "stream", "stage", "cycle_s", "cycle_limit_s", "wait_s", "wait_limit_s",
                    "slow_cycle", "slow_wait"]].reset_index(drop=True)  # fmt: skip
