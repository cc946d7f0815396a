"""make run's per-title progress lines say when the title should be done: 'eta p50 21:04 / p85 21:09 UTC' (with
the date when that is not today), or the forecast's reason when its stream has too little history; nothing when
there is no ledger to learn from. The stage line itself, with its ETA, from a real ledger of known answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mediaflow import forecast
from mediaflow.ledger import Ledger
from mediaflow_dev import runner

NOW = datetime(2026, 12, 4, 20, 55, 10, tzinfo=UTC)


def eta(p50_s: float | None, p85_s: float | None, basis: str = "14 finished runs of series_episode"):
    at = lambda s: None if s is None else NOW + timedelta(seconds=s)  # noqa: E731
    return forecast.Eta(at(p50_s), at(p85_s), p50_s, p85_s, ("publish",), basis)


@pytest.mark.parametrize("p50_s, p85_s, words", [
    (9 * 60, 14 * 60, "eta p50 21:04 / p85 21:09 UTC"),
    (20, 50, "eta p50 20:55 / p85 20:56 UTC"),
    (3 * 3600, 6 * 3600 + 300, "eta p50 23:55 / p85 Dec 05 03:00 UTC"),  # past midnight: the date says so
])  # fmt: skip
def test_an_eta_is_two_wall_clock_times(p50_s, p85_s, words):
    assert runner.eta_words(eta(p50_s, p85_s), now=NOW) == words


def test_too_little_history_is_said_instead_of_a_time():
    words = runner.eta_words(eta(None, None, "too little history: 2 runs of news_clip (need 5)"), now=NOW)
    assert words == "eta: too little history: 2 runs of news_clip (need 5)"


def test_no_eta_no_words():
    assert runner.eta_words(None, now=NOW) == ""
    assert runner._Etas(None).suffix(("value_stream__news_clip", "r1")) == ""


def test_the_stage_line_of_a_running_title_ends_with_its_eta(tmp_path):
    """Six news_clip titles published (ingest 10 s, transcode 60 s, publish 10 s each), a seventh in transcode:
    its line gets a p50/p85 after now; a title the ledger does not know gets none."""
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    now = datetime.now(UTC)
    stages = (("ingest", "ingest.ingest_delivery", 10), ("transcode", "transcode.transcode_ladder", 60),
              ("publish", "publish.publish_channels", 10))  # fmt: skip
    for i in range(7):
        run_id, t = f"r{i}", now - timedelta(hours=2) + timedelta(minutes=10 * i)
        ledger.record_run(dag_id="value_stream__news_clip", run_id=run_id, asset_id=run_id, queued_at=t,
                          started_at=t, state="running")  # fmt: skip
        for stage, task, seconds in stages if i < 6 else stages[:2]:
            start, end = t + timedelta(seconds=1), t + timedelta(seconds=1 + seconds)
            running = i == 6 and stage == "transcode"  # the seventh title: in its transcode now
            ledger.record_attempt(dag_id="value_stream__news_clip", run_id=run_id, task_id=task, map_index=-1,
                                  try_number=1, state="running" if running else "success", started_at=start,
                                  ended_at=None if running else end)  # fmt: skip
            t = end
        if i < 6:
            ledger.record_run(dag_id="value_stream__news_clip", run_id=run_id, state="success", ended_at=t)
    etas = runner._Etas(f"sqlite:///{tmp_path / 'ledger.db'}")
    etas.poll()
    suffix = etas.suffix(("value_stream__news_clip", "r6"))
    assert suffix.startswith("  eta p50 ") and " / p85 " in suffix and suffix.endswith(" UTC"), suffix
    assert etas.suffix(("value_stream__news_clip", "unknown")) == ""


def test_a_title_that_ended_is_learnt_from_soon_after(tmp_path, monkeypatch):
    """The history is read again once a title has ended (after AFTER_AN_END_S), not only every HISTORY_EVERY_S."""
    reads, history = [], forecast.history
    monkeypatch.setattr(forecast, "history", lambda a, r, now: reads.append(now) or history(a, r, now=now))
    etas = runner._Etas(f"sqlite:///{tmp_path / 'ledger.db'}")
    etas.suffix(("d", "r"))
    etas.suffix(("d", "r"))
    assert len(reads) == 1
    etas.ended()
    etas.hist_at -= runner._Etas.AFTER_AN_END_S + 1
    etas.suffix(("d", "r"))
    assert len(reads) == 2
