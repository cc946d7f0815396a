"""Flow metrics over the stage ledger, vectorised with pandas: the one source of the report, the digest, the
dashboard and its JSON (docs/analytics.md defines every number).

Spans follow the same contract as mediaflow.stages.stage_spans (one run at a time, for summary.json); here
thousands of runs at once. compute() is the entry point: a window of the ledger in, named tables out.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from mediaflow import names
from mediaflow.spec import STAGE_ORDER
from mediaflow.stages import iso_z

KEYS = ["dag_id", "run_id", "stage"]


def _utc(col: pd.Series) -> pd.Series:
    return pd.to_datetime(col, utc=True)


def stage_spans(
    attempts: pd.DataFrame, runs: pd.DataFrame | None = None, *, now: datetime | None = None
) -> pd.DataFrame:
    """One row per (dag_id, run_id, stage) from ledger attempt rows (columns as Ledger.attempts returns them).
    Rows without a stage (outcome, sla_watch) or without a start are left out."""
    now = pd.Timestamp(now or datetime.now(UTC))
    cols = KEYS + ["stream", "started_at", "ended_at", "active_s", "wait_s", "attempts", "cycle_s", "open"]
    a = attempts.loc[
        attempts["stage"].notna() & attempts["started_at"].notna(),
        KEYS + ["stream", "try_number", "started_at", "ended_at"],
    ]
    if a.empty:
        return pd.DataFrame(columns=cols)
    start, end = _utc(a["started_at"]), _utc(a["ended_at"])
    # an attempt still running counts until now; one that started after `now` (read from a live ledger) counts 0
    a = a[KEYS + ["stream", "try_number"]].assign(
        start=start, end=end, open=end.isna(), end_or_now=end.fillna(now).clip(lower=start)
    )

    # one integer id per span (sorting once beats grouping on three string columns every time)
    a = a.sort_values(KEYS + ["start"], ignore_index=True)
    new_span = pd.Series(False, index=a.index)
    for k in KEYS:
        new_span |= a[k].ne(a[k].shift())
    a["sid"] = new_span.cumsum()

    active = union_seconds(a, "sid").rename("active_s")

    g = a.groupby("sid", sort=False)
    spans = g.agg(**{k: (k, "first") for k in KEYS}, stream=("stream", "first"), started_at=("start", "min"),
                  last_end=("end", "max"), open=("open", "any"), attempts=("try_number", "max"),
                  reach=("end_or_now", "max")).join(active).reset_index(drop=True)  # fmt: skip
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


def union_seconds(a: pd.DataFrame, group: str) -> pd.Series:
    """Seconds covered by the union of [start, end_or_now) intervals per `group`; `a` sorted by group, then start.
    An interval opens a new block when it starts after every earlier interval of its group has ended."""
    first = a[group].ne(a[group].shift())
    reach = a.groupby(group, sort=False)["end_or_now"].cummax()
    prev_reach = reach.shift().where(~first)
    block = (prev_reach.isna() | (a["start"] > prev_reach)).cumsum()
    blocks = a.groupby(block, sort=False).agg(g=(group, "first"), b_start=("start", "min"), b_end=("end_or_now", "max"))
    length = (blocks["b_end"] - blocks["b_start"]).dt.total_seconds()
    return length.groupby(blocks["g"], sort=False).sum()


def run_active_seconds(attempts: pd.DataFrame, *, now: datetime | None = None) -> pd.DataFrame:
    """Per run, the union of all its stage attempts' intervals: time in which any work was going on. Stages that
    overlap (localize beside compliance) count once, so active time never exceeds lead time."""
    now = pd.Timestamp(now or datetime.now(UTC))
    a = attempts.loc[
        attempts["stage"].notna() & attempts["started_at"].notna(), ["dag_id", "run_id", "started_at", "ended_at"]
    ]
    if a.empty:
        return pd.DataFrame(columns=["dag_id", "run_id", "active_s"])
    start = _utc(a["started_at"])
    a = a.assign(start=start, end_or_now=_utc(a["ended_at"]).fillna(now).clip(lower=start))
    a = a.sort_values(["dag_id", "run_id", "start"], ignore_index=True)
    a["rid"] = (a["dag_id"].ne(a["dag_id"].shift()) | a["run_id"].ne(a["run_id"].shift())).cumsum()
    keys = a.groupby("rid", sort=False)[["dag_id", "run_id"]].first()
    return keys.join(union_seconds(a, "rid").rename("active_s")).reset_index(drop=True)


def stage_summary(spans: pd.DataFrame, slas_s: dict[str, dict[str, float]]) -> pd.DataFrame:
    """Per stream and stage: count, cycle (median, p90), wait and active (median), SLA attainment % and
    rework rate %. `slas_s`: {stream: {stage: seconds}} from the specs."""
    if spans.empty:
        return pd.DataFrame(columns=["stream", "stage", "count", "cycle_median_s", "cycle_p90_s", "wait_median_s",
                                     "active_median_s", "sla_attainment_pct", "rework_pct"])  # fmt: skip
    s = spans.copy() if "sla_s" in spans else _with_sla(spans, slas_s)
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
    return out.sort_values(["stream", "stage"], key=_stage_order_key).reset_index(drop=True)


def _stage_order_key(col: pd.Series) -> pd.Series:
    order = {st: i for i, st in enumerate(STAGE_ORDER)}
    return col.map(order).fillna(len(order)) if col.name == "stage" else col


def flow_efficiency(spans: pd.DataFrame, runs: pd.DataFrame, active: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per finished run: lead time (delivery arrival, else queue time, to the last stage's end), active time and
    flow efficiency = active / lead time. Active time is `active` (run_active_seconds: the union over the run) when
    given, else the sum of its stages' active time (the same when no two stages overlap)."""
    done = spans.assign(open=spans["ended_at"].isna()).groupby(["dag_id", "run_id"]).agg(
        active_s=("active_s", "sum"), end=("ended_at", "max"), open=("open", "any")).reset_index()  # fmt: skip
    if active is not None:
        done = done.drop(columns=["active_s"]).merge(active, on=["dag_id", "run_id"], how="left")
    r = runs.assign(arrived=_utc(runs["delivered_at"]).fillna(_utc(runs["queued_at"])))[
        ["dag_id", "run_id", "stream", "arrived"]
    ]
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
    out = df.groupby(["stream", df["end"].dt.floor("D").rename("day")]).size().rename("finished").reset_index()
    out["day"] = out["day"].dt.strftime("%Y-%m-%d")  # one string per day, not per run
    return out


def bottleneck(summary: pd.DataFrame) -> pd.DataFrame:
    """Per stream, the stage with the largest median wait + cycle time, with wait and active shown apart and its
    share of the stream's total."""
    s = summary.assign(time_s=summary["wait_median_s"].fillna(0) + summary["cycle_median_s"].fillna(0))
    total = s.groupby("stream")["time_s"].transform("sum")
    s["share_pct"] = (100 * s["time_s"] / total.where(total > 0)).round(1)
    top = s.loc[s.groupby("stream")["time_s"].idxmax()]
    return top[["stream", "stage", "time_s", "wait_median_s", "active_median_s", "share_pct"]].reset_index(drop=True)


def anomalies(spans: pd.DataFrame, *, day: str, history_days: int = 30, quantile: float = 0.9) -> pd.DataFrame:
    """Spans started on `day` (UTC, YYYY-MM-DD) whose cycle or wait time is above the `quantile` of the same
    stream and stage over the `history_days` before. Stages without history are not judged."""
    d0 = pd.Timestamp(day, tz="UTC")
    first = spans["started_at"]
    past = spans[(first >= d0 - pd.Timedelta(days=history_days)) & (first < d0)]
    limits = past.groupby(["stream", "stage"]).agg(cycle_limit_s=("cycle_s", lambda c: c.quantile(quantile)),
                                                   wait_limit_s=("wait_s", lambda w: w.quantile(quantile))).reset_index()  # fmt: skip
    today = spans[(first >= d0) & (first < d0 + pd.Timedelta(days=1))].merge(
        limits, on=["stream", "stage"], how="inner"
    )
    today["slow_cycle"] = today["cycle_s"] > today["cycle_limit_s"]
    today["slow_wait"] = today["wait_s"] > today["wait_limit_s"]
    flagged = today[today["slow_cycle"] | today["slow_wait"]]
    return flagged[["dag_id", "run_id", "stream", "stage", "cycle_s", "cycle_limit_s", "wait_s", "wait_limit_s",
                    "slow_cycle", "slow_wait"]].reset_index(drop=True)  # fmt: skip


# ---------------------------------------------------------------- the whole picture for a window

QUALITY = ["status", "reviews_total", "reviews_rejected", "qc_findings", "locales_total", "locales_rejected"]
PICTURE = ["lowest_rung_vmaf"]  # the lowest mean VMAF of a title's rungs (mediaflow.quality); None before scoring


def first_time_right(spans: pd.DataFrame) -> pd.DataFrame:
    """Per stream and stage: attempts per title (mean of the highest try) and % complete and accurate (share of
    finished spans done in one attempt): the value stream map's quality figure per process box."""
    done = spans[spans["ended_at"].notna()]
    g = done.assign(once=done["attempts"] <= 1).groupby(["stream", "stage"], sort=False)
    out = g.agg(attempts_per_title=("attempts", "mean"), complete_accurate_pct=("once", "mean")).reset_index()
    out["attempts_per_title"] = out["attempts_per_title"].astype(float).round(2)
    out["complete_accurate_pct"] = (out["complete_accurate_pct"].astype(float) * 100).round(1)
    return out


def lead_time_distribution(flow: pd.DataFrame) -> pd.DataFrame:
    """Per stream: lead-time quantiles (p10, p50, p85, p95, max) of the finished runs, in seconds."""
    qs = {"p10_s": 0.1, "p50_s": 0.5, "p85_s": 0.85, "p95_s": 0.95, "max_s": 1.0}
    g = flow.groupby("stream")["lead_time_s"]
    out = pd.DataFrame({name: g.quantile(q) for name, q in qs.items()})
    out.insert(0, "finished", g.size())
    return out.reset_index()


def scorecard(runs: pd.DataFrame) -> pd.DataFrame:
    """Per stream, quality next to flow (from the outcome each run recorded): review rejection rate (% of human or
    automatic review answers that were Reject), QC findings per title, locale rejection rate (% of delivered
    locales rejected), and the share of titles published / rejected / failed."""
    r = runs[runs["status"].notna()] if "status" in runs else runs.iloc[0:0]
    if r.empty:
        return pd.DataFrame(columns=["stream", "titles", "published_pct", "rejected_pct", "failed_pct",
                                     "review_rejection_pct", "qc_findings_per_title", "locale_rejection_pct",
                                     "lowest_rung_vmaf_median"])  # fmt: skip
    num = r[QUALITY[1:]].apply(pd.to_numeric, errors="coerce").fillna(0)
    vmaf = (
        pd.to_numeric(r["lowest_rung_vmaf"], errors="coerce")
        if "lowest_rung_vmaf" in r
        else pd.Series(float("nan"), index=r.index)
    )
    r = r.assign(**{c: num[c] for c in num}, lowest_rung_vmaf=vmaf, published=r["status"] == "published", rejected=r["status"] == "rejected",
                 failed=r["status"] == "failed")  # fmt: skip
    g = r.groupby("stream")
    out = g.agg(titles=("run_id", "size"), published=("published", "mean"), rejected=("rejected", "mean"),
                failed=("failed", "mean"), reviews_total=("reviews_total", "sum"),
                reviews_rejected=("reviews_rejected", "sum"), qc_findings_per_title=("qc_findings", "mean"),
                locales_total=("locales_total", "sum"), locales_rejected=("locales_rejected", "sum"),
                lowest_rung_vmaf_median=("lowest_rung_vmaf", "median")).reset_index()  # fmt: skip
    for c in ("published", "rejected", "failed"):
        out[f"{c}_pct"] = (out.pop(c).astype(float) * 100).round(1)
    out["review_rejection_pct"] = (
        100 * out["reviews_rejected"] / out["reviews_total"].where(out["reviews_total"] > 0)
    ).round(1)
    out["locale_rejection_pct"] = (
        100 * out["locales_rejected"] / out["locales_total"].where(out["locales_total"] > 0)
    ).round(1)
    out["qc_findings_per_title"] = out["qc_findings_per_title"].astype(float).round(2)
    out["lowest_rung_vmaf_median"] = out["lowest_rung_vmaf_median"].astype(float).round(1)
    return out[["stream", "titles", "published_pct", "rejected_pct", "failed_pct", "review_rejection_pct",
                "qc_findings_per_title", "locale_rejection_pct", "lowest_rung_vmaf_median"]]  # fmt: skip


_BUCKETS = [("1min", 60), ("5min", 300), ("15min", 900), ("1h", 3600), ("6h", 21600), ("1D", 86400)]


def bucket_for(seconds: float, points: int = 60) -> str:
    """The smallest of 1 min .. 1 day that splits `seconds` into at most `points` buckets."""
    return next((name for name, size in _BUCKETS if seconds / size <= points), "1D")


def cumulative_flow(spans: pd.DataFrame, runs: pd.DataFrame, *, until: datetime) -> pd.DataFrame:
    """The cumulative flow diagram's data, per stream: at each time bucket, how many titles had arrived (queued)
    and how many had finished each stage, cumulatively. The gap between two lines is the WIP between them."""
    cols = ["stream", "at", "step", "count"]
    if spans.empty or runs.empty:
        return pd.DataFrame(columns=cols)
    arrived = runs.assign(t=_utc(runs["queued_at"]), step="arrived")[["stream", "t", "step"]]
    done = spans[spans["ended_at"].notna()].assign(t=lambda d: d["ended_at"], step=lambda d: d["stage"])[
        ["stream", "t", "step"]
    ]
    ev = pd.concat([arrived, done], ignore_index=True).dropna(subset=["t"])
    if ev.empty:
        return pd.DataFrame(columns=cols)
    freq = bucket_for((pd.Timestamp(until) - ev["t"].min()).total_seconds())
    ev["at"] = ev["t"].dt.ceil(freq)
    counts = ev.groupby(["stream", "step", "at"]).size().rename("n").reset_index()
    frames = []
    for (stream, step), grp in counts.groupby(["stream", "step"], sort=False):
        idx = pd.date_range(ev.loc[ev["stream"] == stream, "at"].min(), pd.Timestamp(until).ceil(freq), freq=freq)
        c = grp.set_index("at")["n"].reindex(idx, fill_value=0).cumsum()
        frames.append(pd.DataFrame({"stream": stream, "at": idx, "step": step, "count": c.to_numpy()}))
    return pd.concat(frames, ignore_index=True)[cols]


def _with_sla(spans: pd.DataFrame, slas_s: dict[str, dict[str, float]]) -> pd.DataFrame:
    table = pd.DataFrame([(st, sg, float(v)) for st, stages in slas_s.items() for sg, v in stages.items()],
                         columns=["stream", "stage", "sla_s"])  # fmt: skip
    out = spans.drop(columns=["sla_s", "sla_missed"], errors="ignore").merge(table, on=["stream", "stage"], how="left")
    out["sla_s"] = out["sla_s"].astype("float64")
    out["sla_missed"] = (out["cycle_s"] > out["sla_s"]) & out["sla_s"].notna()
    return out


STREAM_COLUMNS = ["stream", "titles", "finished", "in_progress", "lead_time_median_s", "lead_time_p90_s",
                  "flow_efficiency_median", "throughput_per_day", "wip", "bottleneck", "bottleneck_wait_s",
                  "bottleneck_active_s", "bottleneck_share_pct", "published_pct", "rejected_pct", "failed_pct",
                  "review_rejection_pct", "qc_findings_per_title", "locale_rejection_pct"]  # fmt: skip


# long: the flow metrics in one vectorised pass over the same frames; split, each part would regroup them
def compute(attempts: pd.DataFrame, runs: pd.DataFrame, slas_s: dict[str, dict[str, float]], *,
            since: datetime, until: datetime, now: datetime | None = None) -> dict[str, pd.DataFrame]:  # fmt: skip
    """Every flow metric for the runs queued in [since, until), per stream and stage, as named tables:

    spans (one row per run and stage), stages (per stream and stage: count, cycle median/p90, wait and active
    median, SLA attainment, rework, attempts per title, % complete and accurate, WIP now), runs (per run: asset,
    status, lead time, active time, flow efficiency), streams (per stream: titles, lead time, flow efficiency,
    throughput, WIP, the bottleneck stage, the quality scorecard), throughput (per stream and day), lead_times
    (quantiles), cfd (cumulative flow), anomalies (today's spans above their stage's 30-day p90).

    `attempts`/`runs` may hold rows from before `since`: anomalies judge today against them."""
    now = pd.Timestamp(now or datetime.now(UTC))
    since, until = pd.Timestamp(since), pd.Timestamp(until)
    runs = runs.copy()
    for c in ("stream", "asset_id", "delivered_at", "queued_at", "ended_at", "state", *QUALITY, *PICTURE):
        if c not in runs:
            runs[c] = None
    runs["queued_at"] = _utc(
        runs["queued_at"]
    )  # as the ledger's window: the run's start when its queue time is unknown
    if "started_at" in runs:
        runs["queued_at"] = runs["queued_at"].fillna(_utc(runs["started_at"]))
    all_spans = _with_sla(stage_spans(attempts, runs, now=now), slas_s)

    in_window = runs[(runs["queued_at"] >= since) & (runs["queued_at"] < until)]
    keys = in_window[["dag_id", "run_id"]]
    spans = all_spans.merge(keys, on=["dag_id", "run_id"], how="inner")
    spans = spans.merge(runs[["dag_id", "run_id", "asset_id"]], on=["dag_id", "run_id"], how="left")

    summary = stage_summary(spans, slas_s)
    summary = summary.merge(first_time_right(spans), on=["stream", "stage"], how="left")
    # WIP is now, whatever the window: a stage holding titles queued before it still shows them
    summary = summary.merge(wip_now(all_spans), on=["stream", "stage"], how="outer")
    summary["count"] = summary["count"].fillna(0).astype(int)
    summary["wip"] = summary["wip"].fillna(0).astype(int)
    summary = summary.sort_values(["stream", "stage"], key=_stage_order_key).reset_index(drop=True)

    flow = flow_efficiency(spans, in_window, run_active_seconds(attempts, now=now)) if not spans.empty else pd.DataFrame(
        columns=["dag_id", "run_id", "stream", "lead_time_s", "active_s", "flow_efficiency"])  # fmt: skip
    per_run = in_window[["dag_id", "run_id", "stream", "asset_id", "state", "status", "queued_at", *QUALITY[1:],
                         *PICTURE]].merge(
        flow.drop(columns=["stream"]), on=["dag_id", "run_id"], how="left")  # fmt: skip
    ends = (
        spans.groupby(["dag_id", "run_id"])["ended_at"].max().rename("finished_at").reset_index()
        if not spans.empty
        else None
    )
    per_run = (
        per_run.merge(ends, on=["dag_id", "run_id"], how="left")
        if ends is not None
        else per_run.assign(finished_at=pd.NaT)
    )
    per_run["finished_at"] = per_run["finished_at"].where(per_run["lead_time_s"].notna())
    per_run = per_run.sort_values("queued_at", ascending=False).reset_index(drop=True)

    throughput = (
        throughput_per_day(flow, spans) if not flow.empty else pd.DataFrame(columns=["stream", "day", "finished"])
    )
    days = max((until - since).total_seconds() / 86400, 1e-9)
    stream_names = sorted(set(in_window["stream"].dropna()) | set(summary["stream"]))
    streams = pd.DataFrame({"stream": stream_names})
    if stream_names:
        g = per_run.groupby("stream")
        streams = streams.merge(g.agg(titles=("run_id", "size"), finished=("lead_time_s", "count"),
                                      lead_time_median_s=("lead_time_s", "median"),
                                      lead_time_p90_s=("lead_time_s", lambda c: c.quantile(0.9)),
                                      flow_efficiency_median=("flow_efficiency", "median")).reset_index(),
                                on="stream", how="left")  # fmt: skip
        streams["in_progress"] = streams["titles"].fillna(0) - streams["finished"].fillna(0)
        streams["throughput_per_day"] = (streams["finished"].fillna(0) / days).round(2)
        streams = streams.merge(
            summary.groupby("stream")["wip"].sum().rename("wip").reset_index(), on="stream", how="left"
        )
        measured = summary[summary["count"] > 0]  # WIP-only rows (titles queued before the window) have no medians
        if not measured.empty:
            top = bottleneck(measured).rename(columns={"stage": "bottleneck", "share_pct": "bottleneck_share_pct",
                                                      "wait_median_s": "bottleneck_wait_s", "active_median_s": "bottleneck_active_s"})  # fmt: skip
            streams = streams.merge(top.drop(columns=["time_s"]), on="stream", how="left")
        streams = streams.merge(scorecard(in_window).drop(columns=["titles"]), on="stream", how="left")
    streams = streams.reindex(columns=STREAM_COLUMNS)  # the same columns with or without data

    today = until.strftime("%Y-%m-%d") if until <= now else now.strftime("%Y-%m-%d")
    anomalies_ = anomalies(all_spans, day=today) if not all_spans.empty else pd.DataFrame(
        columns=["dag_id", "run_id", "stream", "stage", "cycle_s", "cycle_limit_s", "wait_s", "wait_limit_s", "slow_cycle", "slow_wait"])  # fmt: skip
    return {
        "spans": spans,
        "stages": summary,
        "runs": per_run,
        "streams": streams,
        "throughput": throughput,
        "lead_times": lead_time_distribution(flow) if not flow.empty else pd.DataFrame(columns=["stream", "finished"]),
        "cfd": cumulative_flow(spans, in_window, until=min(until, now)),
        "anomalies": anomalies_,
    }


def value_stream_map(stages: pd.DataFrame, stream: str) -> list[dict]:
    """The value stream map of one stream, in stage order: per process box the median cycle, active and wait
    (hand-off) time, attempts per title, % complete and accurate and WIP now. The timeline ladder under it is the
    wait and active columns; their sums are the map's lead time and value-added time."""
    rows = stages[stages["stream"] == stream]
    keep = ["stage", "count", "cycle_median_s", "active_median_s", "wait_median_s", "attempts_per_title",
            "complete_accurate_pct", "wip", "sla_attainment_pct"]  # fmt: skip
    return records(rows[keep])


def _plain(v):
    if v is None or (isinstance(v, float) and v != v) or v is pd.NaT or v is pd.NA:
        return None
    if isinstance(v, pd.Timestamp):
        return iso_z(v.floor("us").to_pydatetime())  # microseconds, as datetime and the ledger keep them
    if hasattr(v, "item"):  # numpy scalars
        return _plain(v.item())
    return v


def records(frame: pd.DataFrame) -> list[dict]:
    """A table as JSON-ready rows: NaN/NaT -> None, timestamps -> ISO 8601 UTC."""
    return [{k: _plain(v) for k, v in r.items()} for r in frame.to_dict("records")]


def to_json(tables: dict[str, pd.DataFrame]) -> dict[str, list[dict]]:
    return {name: records(frame) for name, frame in tables.items()}


# ---------------------------------------------------------------- a generated ledger (benchmarks, demos, tests)

# (stage, tasks run in parallel in it, median active seconds) of a typical series episode
# (a mapped task's indexes as `<task id>#<index>`, review: editorial and qc approved by policy, legal by a person)
_SHAPE = [(names.INGEST, [names.INGEST_ID], 20), (names.TRANSCODE, [names.TRANSCODE_ID], 600),
          (names.LOCALIZE, [f"{names.LOCALIZE_ID}#0", f"{names.LOCALIZE_ID}#1"], 60),
          (names.COMPLIANCE, list(names.CHECK_IDS), 90),
          (names.REVIEW, [names.policy_id(names.EDITORIAL), names.approval_id(names.LEGAL), names.policy_id(names.QC)], 1800),
          (names.PUBLISH, [names.PUBLISH_ID], 45)]  # fmt: skip


def synthetic_ledger(n_attempts: int, *, days: int = 30, streams: tuple[str, ...] = ("series_episode", "news_clip", "feature_film"),
                     seed: int = 7, until: datetime | None = None, rework_rate: float = 0.08) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """About `n_attempts` attempt rows (and their run rows) shaped like real runs spread over `days`: every stage,
    parallel tasks, retries, hand-off waits, and the newest runs still in progress. Deterministic for a seed."""
    import numpy as np

    rng = np.random.default_rng(seed)
    until = pd.Timestamp(until or datetime.now(UTC)).floor("s")
    per_run = sum(len(t) for _, t, _ in _SHAPE) * (1 + rework_rate)
    n_runs = max(1, int(n_attempts / per_run))
    queued = until - pd.to_timedelta(np.sort(rng.uniform(0, days * 86400, n_runs))[::-1], unit="s")
    stream = np.array(streams)[rng.integers(0, len(streams), n_runs)]
    run_ids = np.char.add("scheduled__", np.arange(n_runs).astype(str))
    dag_ids = np.char.add(names.VALUE_STREAM_DAG_PREFIX, stream)
    cursor = queued.tz_convert(None).to_numpy().astype("datetime64[ms]")
    cols: dict[str, list] = {k: [] for k in ("dag_id", "run_id", "task_id", "map_index", "try_number", "stream",
                                                "stage", "state", "started_at", "ended_at")}  # fmt: skip
    until64 = np.datetime64(until.tz_convert(None).to_datetime64(), "ms")
    for stage, tasks, median in _SHAPE:
        wait = rng.exponential(median / 4 + 5, n_runs)
        start = cursor + (wait * 1000).astype("timedelta64[ms]")
        stage_end = start.copy()
        for t in tasks:
            task_id, _, idx = t.partition("#")
            dur = rng.lognormal(np.log(median), 0.5, n_runs)
            redo = rng.random(n_runs) < rework_rate
            for try_no, mask in ((1, np.ones(n_runs, bool)), (2, redo)):
                s = start if try_no == 1 else stage_end
                e = s + (dur * 1000).astype("timedelta64[ms]")
                keep = mask & (s < until64)
                open_ = e >= until64
                n = int(keep.sum())
                cols["dag_id"].append(dag_ids[keep]), cols["run_id"].append(run_ids[keep])
                (
                    cols["task_id"].append(np.full(n, task_id)),
                    cols["map_index"].append(np.full(n, int(idx) if idx else -1)),
                )
                cols["try_number"].append(np.full(n, try_no)), cols["stream"].append(stream[keep])
                cols["stage"].append(np.full(n, stage))
                cols["state"].append(
                    np.where(open_[keep], "running", np.where(redo[keep] & (try_no == 1), "failed", "success"))
                )
                (
                    cols["started_at"].append(s[keep]),
                    cols["ended_at"].append(np.where(open_, np.datetime64("NaT"), e)[keep]),
                )
                stage_end = np.where(keep & (e > stage_end), e, stage_end)
        cursor = stage_end
    attempts = pd.DataFrame({k: np.concatenate(v) for k, v in cols.items()})
    for c in ("started_at", "ended_at"):
        attempts[c] = pd.to_datetime(attempts[c]).dt.tz_localize("UTC")
    finished = cursor < until64
    status = np.where(finished, rng.choice(["published", "published", "published", "rejected"], n_runs), None)
    runs = pd.DataFrame({
        "dag_id": dag_ids, "run_id": run_ids, "stream": stream, "asset_id": np.char.add("title-", np.arange(n_runs).astype(str)),
        "delivered_at": queued - pd.to_timedelta(rng.exponential(600, n_runs), unit="s"), "queued_at": queued,
        "state": np.where(finished, "success", "running"), "status": status,
        "reviews_total": np.where(finished, 3, None), "reviews_rejected": np.where(finished, (rng.random(n_runs) < 0.05).astype(int), None),
        "qc_findings": np.where(finished, rng.poisson(0.3, n_runs), None), "locales_total": np.where(finished, 2, None),
        "locales_rejected": np.where(finished, (rng.random(n_runs) < 0.04).astype(int), None),
    })  # fmt: skip
    return attempts, runs


def slas_of(specs: dict) -> dict[str, dict[str, float]]:
    """{stream: {stage: SLA seconds}} from the loaded stream specs."""
    return {name: dict(spec.stage_slas_s) for name, spec in specs.items()}


def history_start(since: datetime, until: datetime, history_days: int = 30) -> datetime:
    """Where to start reading the ledger for a window: its start, or earlier when the anomaly rule needs the
    `history_days` before the day of `until`."""
    return min(pd.Timestamp(since), pd.Timestamp(until).floor("D") - pd.Timedelta(days=history_days)).to_pydatetime()


def from_ledger(ledger, slas_s: dict[str, dict[str, float]], *, since: datetime, until: datetime | None = None,
                now: datetime | None = None) -> dict[str, pd.DataFrame]:  # fmt: skip
    """compute() over a Ledger: loads the window plus the history the anomaly rule needs."""
    now = now or datetime.now(UTC)
    until = until or now
    attempts, runs = ledger.frames(history_start(since, until), until)
    return compute(attempts, runs, slas_s, since=since, until=until, now=now)
