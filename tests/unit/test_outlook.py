"""mediaflow.outlook over a hand-made ledger with known answers: the batch is the last group of runs queued close
together plus every open one, its actual burn-down steps at each arrival and end, the forecast band starts at the
titles open now and runs down to none, the ETA rows name each open title, the digest's one line says when the
last title is done (or that there is too little history), and the what-if form's bad fields are named with why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from mediaflow import forecast, outlook

NOW = datetime(2026, 12, 4, 20, 0, tzinfo=UTC)
STAGES = (("ingest", "ingest.ingest_delivery", 10.0), ("transcode", "transcode.transcode_ladder", 60.0),
          ("publish", "publish.publish_channels", 10.0))  # fmt: skip
DAG = "value_stream__news_clip"


def title(run_id: str, queued: datetime, *, stages: int = 3, last_open: bool = False) -> tuple[list, dict]:
    """One news_clip run queued at `queued`: its first `stages` stages back to back, each 2 s after the previous
    (the last one still running when `last_open`). (attempt rows, run row)"""
    rows, t = [], queued
    for i, (stage, task, seconds) in enumerate(STAGES[:stages]):
        start = t + timedelta(seconds=2)
        running = last_open and i == stages - 1
        end = None if running else start + timedelta(seconds=seconds)
        rows.append({"dag_id": DAG, "run_id": run_id, "task_id": task, "map_index": -1, "try_number": 1,
                     "stream": "news_clip", "stage": stage, "state": "running" if running else "success",
                     "queued_at": t, "started_at": start, "ended_at": end})  # fmt: skip
        t = end or start
    ended = t if stages == len(STAGES) and not last_open else None
    run = {"dag_id": DAG, "run_id": run_id, "stream": "news_clip", "asset_id": run_id, "delivered_at": queued,
           "queued_at": queued, "started_at": queued if stages else None, "ended_at": ended,
           "state": "success" if ended else ("running" if stages else "queued"),
           "status": "published" if ended else None}  # fmt: skip
    return rows, run


def frames(*titles) -> tuple[pd.DataFrame, pd.DataFrame]:
    attempts = pd.DataFrame([a for rows, _ in titles for a in rows])
    runs = pd.DataFrame([run for _, run in titles])
    for df in (attempts, runs):
        for col in [c for c in df.columns if c.endswith("_at")]:
            df[col] = pd.to_datetime(df[col], utc=True)
    return attempts, runs


@pytest.fixture(scope="module")
def ledger():
    """Yesterday: 6 titles published. Tonight, from 19:50: 2 published, 1 in transcode, 1 queued."""
    day_before = NOW - timedelta(days=1)
    old = [title(f"old-{i}", day_before + timedelta(minutes=i)) for i in range(6)]
    tonight = NOW - timedelta(minutes=10)
    new = [title(f"new-{i}", tonight + timedelta(minutes=i)) for i in range(2)]
    running = title("new-running", tonight + timedelta(minutes=8), stages=2, last_open=True)
    queued = title("new-queued", tonight + timedelta(minutes=9), stages=0)
    return frames(*old, *new, running, queued)


def test_the_batch_is_tonights_group_and_its_actual_steps_down_at_each_end(ledger):
    _, runs = ledger
    batch = outlook.batch_runs(runs)
    assert sorted(batch["run_id"]) == ["new-0", "new-1", "new-queued", "new-running"]
    actual = outlook.actual_burndown(batch, now=NOW)
    assert actual["remaining"].max() <= 4 and actual["remaining"].iloc[-1] == 2  # 2 of the 4 still open now
    assert actual["at"].iloc[-1] == pd.Timestamp(NOW)
    assert list(actual["at"]) == sorted(actual["at"])


def test_the_burndown_runs_from_the_open_titles_to_none_with_a_band(ledger):
    attempts, runs = ledger
    hist = forecast.history(attempts, runs, now=NOW)
    rows, summary = outlook.burndown(hist, attempts, runs, slots={"media": 2}, now=NOW)
    assert list(rows.columns) == outlook.BURNDOWN_COLUMNS
    band = rows[rows["kind"] == "forecast"]
    assert not band.empty and band["at"].min() >= pd.Timestamp(NOW)
    assert band["p50"].iloc[0] == 2 and band["p50"].iloc[-1] <= band["p50"].iloc[0]
    assert (band["p15"] <= band["p50"]).all() and (band["p50"] <= band["p85"]).all()
    assert summary["titles"] == 2 and summary["batch_titles"] == 4
    assert {(t["dag_id"], t["run_id"]) for t in summary["per_title"]} == {(DAG, "new-running"), (DAG, "new-queued")}
    assert pd.Timestamp(summary["p50_at"]) <= pd.Timestamp(summary["p85_at"])
    line = outlook.summary_line(summary)
    assert line.startswith("Batch forecast: 2 titles still to finish; the last one done by ")
    assert "(p50)" in line and "(p85) UTC" in line


def test_too_little_history_is_said_not_guessed(ledger):
    attempts, runs = ledger
    young = runs["run_id"].str.startswith("new-")
    attempts = attempts[attempts["run_id"].str.startswith("new-")].reset_index(drop=True)
    runs = runs[young].reset_index(drop=True)
    hist = forecast.history(attempts, runs, now=NOW)
    rows, summary = outlook.burndown(hist, attempts, runs, slots={"media": 2}, now=NOW)
    assert summary["p50_at"] is None and "too little history" in summary["basis"]
    assert (rows["kind"] == "actual").any()  # the actual is known all the same
    assert "too little history" in outlook.summary_line(summary)
    eta = outlook.etas(hist, attempts, runs, now=NOW)[(DAG, "new-running")]
    assert eta.p50_at is None and "too little history" in eta.basis


def test_eta_rows_name_each_open_title_with_its_stage(ledger):
    attempts, runs = ledger
    hist = forecast.history(attempts, runs, now=NOW)
    rows = {r["run_id"]: r for r in outlook.eta_rows(hist, attempts, runs, now=NOW)}
    assert set(rows) == {"new-running", "new-queued"}
    running = rows["new-running"]
    assert running["stage"] == "transcode" and running["asset_id"] == "new-running"
    assert running["eta"]["remaining"][0] == "transcode" and running["eta"]["p50_s"] > 0


def test_nothing_open_says_there_is_nothing_to_forecast(ledger):
    attempts, runs = ledger
    runs = runs[runs["ended_at"].notna()].reset_index(drop=True)
    attempts = attempts[attempts["run_id"].isin(runs["run_id"])].reset_index(drop=True)
    hist = forecast.history(attempts, runs, now=NOW)
    rows, summary = outlook.burndown(hist, attempts, runs, slots={"media": 2}, now=NOW)
    assert summary["titles"] == 0 and (rows["kind"] == "forecast").sum() == 0
    assert outlook.summary_line(summary) == "Batch forecast: no title queued or running: nothing to forecast."


def test_the_tables_for_the_report_hold_one_summary_row(ledger):
    attempts, runs = ledger
    t = outlook.tables(attempts, runs, slots={"media": 2}, now=NOW)
    assert len(t["batch_forecast"]) == 1 and t["batch_forecast"]["titles"].iloc[0] == 2
    assert "per_title" not in t["batch_forecast"]  # the titles' own ETAs are the dashboard's, not the report's
    assert set(t["burndown"]["kind"]) == {"actual", "forecast"}


def test_clock_shows_the_date_only_when_not_today():
    assert outlook.clock("2026-12-04T21:04:31Z", now=NOW) == "21:04"
    assert outlook.clock("2026-12-05T03:10:00Z", now=NOW) == "Dec 05 03:10"
    assert outlook.clock(None) == "–"


# ---------------------------------------------------------------- the what-if form

SLOTS, STREAMS = {"media": 2}, ["news_clip", "series_episode"]


def test_the_base_is_the_machine_as_it_is_and_the_change_is_what_was_asked():
    base, changed = outlook.scenarios({"slots.media": "6", "review_answer_min": "30", "titles": ""},
                                      slots=SLOTS, streams=STREAMS)  # fmt: skip
    assert base == forecast.Scenario(slots={"media": 2}, titles=50)
    assert changed.slots == {"media": 6} and changed.review_answer_s == 1800.0 and changed.titles == 50
    _, mix = outlook.scenarios({"arrivals.news_clip": "30", "arrivals.series_episode": "10"}, slots=SLOTS,
                               streams=STREAMS)  # fmt: skip
    assert mix.arrivals == {"news_clip": 30, "series_episode": 10} and mix.titles == 40 and mix.slots == SLOTS


@pytest.mark.parametrize("values, field, words", [
    ({"slots.media": "many"}, "slots.media", "'many' is not a whole number"),
    ({"slots.media": "0"}, "slots.media", "between 1 and 256"),
    ({"slots.gpu": "3"}, "slots.gpu", "no pool 'gpu' (pools: media)"),
    ({"review_answer_min": "-5"}, "review_answer_min", "minutes between 0 and"),
    ({"review_answer_min": "soon"}, "review_answer_min", "is not a number of minutes"),
    ({"review_answer_min": "nan"}, "review_answer_min", "out of range"),
    ({"titles": "5000"}, "titles", "between 1 and 1000"),
    ({"arrivals.feature_film": "3"}, "arrivals.feature_film", "no value stream 'feature_film'"),
    ({"arrivals.news_clip": "0"}, "arrivals", "adds up to no title"),
    ({"arrivals.news_clip": "10", "titles": "20"}, "titles", "differs from the mix's sum (10)"),
    ({"colour": "blue"}, "colour", "unknown field"),
])  # fmt: skip
def test_each_bad_field_is_named_with_why(values, field, words):
    with pytest.raises(outlook.WhatIfInvalid) as err:
        outlook.scenarios(values, slots=SLOTS, streams=STREAMS)
    messages = {e.field: e.message for e in err.value.errors}
    assert field in messages and words in messages[field], messages


def test_every_bad_field_is_named_at_once():
    with pytest.raises(outlook.WhatIfInvalid) as err:
        outlook.scenarios({"slots.media": "x", "titles": "0"}, slots=SLOTS, streams=STREAMS)
    assert [e.field for e in err.value.errors] == ["slots.media", "titles"]
    assert str(err.value).startswith("slots.media: 'x' is not a whole number; titles: 0 is out of range")
