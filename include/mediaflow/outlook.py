"""What mediaflow.forecast says, shaped for the places people read it: each running title's ETA (make run's
progress lines, the dashboard's run page and JSON API), the batch burn-down (the forecast band from now beside the
actual so far: the dashboard, the report, one line of the daily digest) and the what-if form's two scenarios,
checked field by field. Plain pandas over the ledger's frames; the numbers are all the forecast's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd

from mediaflow import forecast
from mediaflow.stages import iso_z

HISTORY_DAYS = 30  # the ledger a forecast learns from
BURNDOWN_COLUMNS = ["kind", "at", "remaining", "p15", "p50", "p85"]  # kind: actual | forecast
WHATIF_TITLES = 50  # titles arriving at once in a what-if, unless the form says otherwise
MAX_SLOTS, MAX_TITLES, MAX_REVIEW_MIN = 256, 1000, 7 * 24 * 60


def history_since(now: datetime) -> datetime:
    return now - timedelta(days=HISTORY_DAYS)


# ---------------------------------------------------------------- ETAs


def etas(hist: forecast.History, attempts: pd.DataFrame, runs: pd.DataFrame, *, now: datetime) -> dict:
    """{(dag_id, run_id): Eta} of every title not ended in the frames (queued or running)."""
    return {(t.dag_id, t.run_id): forecast.eta(hist, t, now=now)
            for t in forecast.titles_now(attempts, runs, now=now)}  # fmt: skip


def eta_rows(hist: forecast.History, attempts: pd.DataFrame, runs: pd.DataFrame, *, now: datetime,
             titles: list[forecast.TitleState] | None = None) -> list[dict]:  # fmt: skip
    """The ETAs as JSON rows (the dashboard's /api/forecast): title, stream, the stage running now, the Eta.
    `titles`: forecast.titles_now of the frames, when the caller has them already."""
    assets = {(d, r): a for d, r, a in runs.reindex(columns=["dag_id", "run_id", "asset_id"]).itertuples(index=False)}
    rows = []
    for t in forecast.titles_now(attempts, runs, now=now) if titles is None else titles:
        rows.append({"dag_id": t.dag_id, "run_id": t.run_id, "asset_id": assets.get((t.dag_id, t.run_id)),
                     "stream": t.stream, "stage": t.stage, "eta": forecast.eta(hist, t, now=now).to_json()})  # fmt: skip
    return sorted(rows, key=lambda r: (r["eta"].get("p85_s") is None, r["eta"].get("p85_s") or 0, r["run_id"]))


# ---------------------------------------------------------------- the batch burn-down


def _queued(runs: pd.DataFrame) -> pd.Series:
    queued = pd.to_datetime(runs["queued_at"], utc=True) if "queued_at" in runs else pd.Series(pd.NaT, runs.index)
    if "started_at" in runs:
        queued = queued.fillna(pd.to_datetime(runs["started_at"], utc=True))
    return queued


def batch_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs of the batch now: the last group of runs queued within forecast.BATCH_GAP_S of each other (as the
    backtest groups them), plus every run
    still open whenever it was queued. Columns: dag_id, run_id, queued, ended."""
    if runs.empty:
        return pd.DataFrame(columns=["dag_id", "run_id", "queued", "ended"])
    ended = pd.to_datetime(runs["ended_at"], utc=True) if "ended_at" in runs else pd.Series(pd.NaT, runs.index)
    frame = pd.DataFrame({"dag_id": runs["dag_id"], "run_id": runs["run_id"], "queued": _queued(runs),
                          "ended": ended}).dropna(subset=["queued"]).sort_values("queued")  # fmt: skip
    if frame.empty:
        return frame
    gaps = frame["queued"].diff().dt.total_seconds().fillna(0)
    group = (gaps > forecast.BATCH_GAP_S).cumsum()
    last = group == group.iloc[-1]
    return frame[last | frame["ended"].isna()].reset_index(drop=True)


def actual_burndown(batch: pd.DataFrame, *, now: datetime) -> pd.DataFrame:
    """Titles of the batch not yet ended over time, a step at each arrival and end, up to `now`: (at, remaining)."""
    if batch.empty:
        return pd.DataFrame(columns=["at", "remaining"])
    now = pd.Timestamp(now)
    ends = batch["ended"].dropna()
    events = pd.concat([pd.Series(1, index=batch["queued"]), pd.Series(-1, index=ends[ends <= now])])
    steps = events.groupby(level=0).sum().sort_index().cumsum()
    frame = pd.DataFrame({"at": steps.index, "remaining": steps.to_numpy()})
    if frame["at"].iloc[-1] < now:
        frame = pd.concat([frame, pd.DataFrame({"at": [now], "remaining": [frame["remaining"].iloc[-1]]})])
    return frame.reset_index(drop=True)


def burndown(hist: forecast.History, attempts: pd.DataFrame, runs: pd.DataFrame, *, slots: dict[str, int],
             now: datetime, titles: list[forecast.TitleState] | None = None) -> tuple[pd.DataFrame, dict]:  # fmt: skip
    """(burn-down rows, summary) of the batch now. Rows (BURNDOWN_COLUMNS): the actual titles remaining so far
    (kind "actual"), then the forecast from now (kind "forecast": band p15..p85 and p50). Summary: the forecast's
    p50/p85 finish of the last title, its basis, the batch's start and size, and `per_title`: each open title's
    p50/p85 inside the batch (its ETA with the others queueing for the same slots). `titles`: as in eta_rows."""
    titles = forecast.titles_now(attempts, runs, now=now) if titles is None else titles
    batch = batch_runs(runs)
    actual = actual_burndown(batch, now=now).assign(kind="actual")
    summary = {"as_of": iso_z(now), "titles": len(titles), "batch_titles": len(batch),
               "batch_start": iso_z(batch["queued"].min().to_pydatetime()) if len(batch) else None,
               "p50_at": None, "p85_at": None, "p50_s": None, "p85_s": None,
               "basis": "no title queued or running: nothing to forecast", "per_title": []}  # fmt: skip
    band = pd.DataFrame(columns=["at", "p15", "p50", "p85"])
    if titles:
        fc = forecast.batch_forecast(hist, titles, slots=slots, now=now)
        summary.update({k: v for k, v in fc.to_json().items() if k in summary and k != "titles"})
        summary["per_title"] = list(fc.per_title)
        if fc.burndown:
            band = pd.DataFrame(fc.burndown)[["at", "p15", "p50", "p85"]]
            band["at"] = pd.to_datetime(band["at"], utc=True)
    rows = pd.concat([actual, band.assign(kind="forecast")], ignore_index=True)
    return rows.reindex(columns=BURNDOWN_COLUMNS), summary


def summary_line(summary: dict | None) -> str:
    """The batch forecast in one line (the digest, the dashboard): when the last title is done, or why not said."""
    if not summary:
        return "Batch forecast: none computed."
    if not summary.get("titles"):  # none open, or no forecast (the basis says why)
        return f"Batch forecast: {summary.get('basis') or 'nothing to forecast'}."
    n = summary["titles"]
    head = f"Batch forecast: {n} {'title' if n == 1 else 'titles'} still to finish"
    if summary.get("p50_at") is None:
        return f"{head}; {summary.get('basis')}."
    now = summary.get("as_of")
    p50, p85 = clock(summary["p50_at"], now=now), clock(summary["p85_at"], now=now)
    return f"{head}; the last one done by {p50} (p50) / {p85} (p85) UTC ({summary.get('basis')})."


def clock(iso: str | None, *, now: datetime | None = None) -> str:
    """An instant as a UTC wall clock: '21:04' on the day of `now` (default: today), else 'Dec 05 03:10'."""
    if not iso:
        return "–"
    at = pd.Timestamp(iso).tz_convert("UTC")
    today = (pd.Timestamp(now).tz_convert("UTC") if now else pd.Timestamp.now(tz="UTC")).normalize()
    return at.strftime("%H:%M") if at.normalize() == today else at.strftime("%b %d %H:%M")


# ---------------------------------------------------------------- what-if


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class WhatIfInvalid(ValueError):
    """The what-if input is wrong; `errors` names each field and why."""

    def __init__(self, errors: list[FieldError]):
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


def _whole(errors: list, name: str, raw, *, low: int, high: int) -> int | None:
    text = str(raw).strip()
    try:
        value = int(text)
    except ValueError:
        errors.append(FieldError(name, f"{text!r} is not a whole number"))
        return None
    if not low <= value <= high:
        errors.append(FieldError(name, f"{value} is out of range: it must be between {low} and {high}"))
        return None
    return value


def _minutes(errors: list, name: str, raw) -> float | None:
    text = str(raw).strip()
    try:
        value = float(text)
    except ValueError:
        errors.append(FieldError(name, f"{text!r} is not a number of minutes"))
        return None
    if not math.isfinite(value) or not 0 <= value <= MAX_REVIEW_MIN:
        errors.append(FieldError(name, f"{text} is out of range: minutes between 0 and {MAX_REVIEW_MIN} (a week)"))
        return None
    return value


def scenarios(values: Mapping[str, object], *, slots: dict[str, int],
              streams: list[str]) -> tuple[forecast.Scenario, forecast.Scenario]:  # fmt: skip
    """(base, changed) from the what-if fields: `slots.<pool>` (whole, 1..256), `review_answer_min` (the
    reviewers' answer time in minutes, blank: as measured), `titles` (1..1000, blank: 50), `arrivals.<stream>`
    (titles of that stream, blank: the measured mix; when given, `titles` is their sum). Base: the machine's
    slots, everything as measured. Raises WhatIfInvalid naming every bad field and why."""
    errors: list[FieldError] = []
    new_slots, arrivals = dict(slots), {}
    review = titles = None
    for name, raw in values.items():
        blank = raw is None or str(raw).strip() == ""
        kind, _, key = name.partition(".")
        if kind == "slots" and key:
            if key not in slots:
                errors.append(FieldError(name, f"no pool {key!r} (pools: {', '.join(sorted(slots)) or 'none'})"))
            elif not blank:
                new_slots[key] = _whole(errors, name, raw, low=1, high=MAX_SLOTS) or slots[key]
        elif kind == "arrivals" and key:
            if key not in streams:
                known = ", ".join(streams) or "none"
                errors.append(FieldError(name, f"no value stream {key!r} with history you may read ({known})"))
            elif not blank and (n := _whole(errors, name, raw, low=0, high=MAX_TITLES)) is not None:
                arrivals[key] = n
        elif name == "review_answer_min":
            review = None if blank else _minutes(errors, name, raw)
        elif name == "titles":
            titles = None if blank else _whole(errors, name, raw, low=1, high=MAX_TITLES)
        else:
            errors.append(
                FieldError(name, "unknown field (slots.<pool>, review_answer_min, titles, arrivals.<stream>)")
            )
    total = sum(arrivals.values())
    if arrivals and not total:
        errors.append(FieldError("arrivals", "the mix adds up to no title: give at least one title"))
    elif total > MAX_TITLES:
        errors.append(FieldError("arrivals", f"the mix adds up to {total} titles: at most {MAX_TITLES}"))
    elif arrivals and titles is not None and titles != total:
        errors.append(
            FieldError("titles", f"{titles} differs from the mix's sum ({total}): leave it blank or match it")
        )
    if errors:
        raise WhatIfInvalid(errors)
    base = forecast.Scenario(slots=dict(slots), titles=WHATIF_TITLES)
    changed = forecast.Scenario(slots=new_slots, review_answer_s=None if review is None else review * 60.0,
                                arrivals={k: v for k, v in arrivals.items() if v} or None,
                                titles=total or titles or WHATIF_TITLES)  # fmt: skip
    return base, changed


# ---------------------------------------------------------------- the metrics job's tables


def tables(attempts: pd.DataFrame, runs: pd.DataFrame, *, slots: dict[str, int], now: datetime) -> dict:
    """The report's forecast tables: `burndown` (burndown()'s rows) and `batch_forecast` (its summary, one row).
    A forecast that breaks leaves the report whole: the summary's basis then says what broke."""
    try:
        hist = forecast.history(attempts, runs, now=now)
        rows, summary = burndown(hist, attempts, runs, slots=slots, now=now)
    except Exception as e:  # (the metrics, report and digest go on without a forecast, saying why)
        rows = pd.DataFrame(columns=BURNDOWN_COLUMNS)
        summary = {"as_of": iso_z(now), "titles": None, "basis": f"no forecast: {type(e).__name__}: {e}"}
    summary.pop("per_title", None)  # one row per batch: the titles' own ETAs are the dashboard's
    return {"burndown": rows, "batch_forecast": pd.DataFrame([summary])}
