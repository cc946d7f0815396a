"""runner.wait against a fake of the REST API's list endpoints: one poll costs a few requests whatever the number
of runs, every run is waited for without a fixed limit, a stall (nothing changes, nothing runs) stops the wait
with StillRunning, and the output stays bounded with hundreds of titles. The real API is exercised by the
integration tests (tests/integration/test_pending_trigger.py)."""

from __future__ import annotations

from collections import Counter

import pytest

from mediaflow import runner
from mediaflow.spec import load_specs

STAGES = ("ingest.ingest_delivery", "transcode.transcode_ladder", "publish.publish_channels")


class FakeApi:
    """Runs advance one task per poll (`dag_runs_since` is the first call of a poll); rows carry a logical clock as
    `updated_at` so `since` filters like the server's."""

    def __init__(self, n: int, *, frozen: bool = False, running: bool = False):
        self.calls: Counter = Counter()
        self.tick = 0
        self.frozen, self.running = frozen, running
        self.runs = {f"r{i}": {"dag_id": "value_stream__news_clip", "dag_run_id": f"r{i}", "state": "queued",
                               "queued_at": "2026-12-03T00:00:00Z", "updated": 0} for i in range(n)}  # fmt: skip
        self.tis = {r: [] for r in self.runs}
        self.started = 0

    def _advance(self) -> None:
        if self.frozen:
            if self.running and self.tick == 1:
                for r in self.runs:
                    self.tis[r] = [self._ti(r, STAGES[0], "running")]
            return
        for i, r in enumerate(self.runs):
            if i >= self.started + 50:  # 50 more runs start each poll, like pool slots freeing up
                break
            run, tis = self.runs[r], self.tis[r]
            if run["state"] == "queued":
                run.update(state="running", updated=self.tick)
            elif len(tis) < len(STAGES):
                if tis:
                    tis[-1].update(state="success", updated=self.tick)
                tis.append(self._ti(r, STAGES[len(tis)], "running"))
            elif run["state"] == "running":
                tis[-1].update(state="success", updated=self.tick)
                run.update(state="success", updated=self.tick)
        self.started += 50

    def _ti(self, run_id: str, task_id: str, state: str) -> dict:
        return {"dag_id": "value_stream__news_clip", "dag_run_id": run_id, "task_id": task_id, "map_index": -1,
                "state": state, "updated": self.tick}  # fmt: skip

    # the calls runner.wait makes
    def dag_runs_since(self, since=None, *, states=None):
        self.calls["dag_runs_since"] += 1
        self.tick += 1
        self._advance()
        rows = [r for r in self.runs.values() if (states is None or r["state"] in states)]
        return [r for r in rows if since is None or r["updated"] >= self.tick - 1]

    def task_instances_since(self, since=None, *, states=None):
        self.calls["task_instances_since"] += 1
        rows = [t for tis in self.tis.values() for t in tis if states is None or t["state"] in states]
        return [t for t in rows if since is None or states is not None or t["updated"] >= self.tick - 1]

    def dag_run(self, dag_id, run_id):
        self.calls["dag_run"] += 1
        return self.runs.get(run_id)

    def task_instances(self, dag_id, run_id):
        self.calls["task_instances"] += 1
        return list(self.tis[run_id])


class FakeStack:
    api_url = "http://fake"

    def s3_client(self):
        return None


@pytest.fixture
def fake(monkeypatch):
    def make(n: int, **kw) -> FakeApi:
        api = FakeApi(n, **kw)
        monkeypatch.setattr(runner, "_api", lambda stack: api)
        monkeypatch.setattr(runner, "_outcome_status", lambda s3, buckets, dag_id, run_id, run: "published")
        return api

    return make


def _runs(n: int) -> list[tuple]:
    spec = load_specs()["news_clip"]
    return [(f"d{i}", "value_stream__news_clip", f"r{i}", spec) for i in range(n)]


def test_three_hundred_runs_cost_a_few_requests_per_poll_and_every_one_is_waited_for(fake, capsys, monkeypatch):
    monkeypatch.setenv("MEDIAFLOW_PROGRESS_EVERY_S", "0")  # a tally line every poll
    api = fake(300)
    done = runner.wait(FakeStack(), _runs(300), poll_s=0)
    assert sorted(done) == sorted(f"r{i}" for i in range(300))
    assert all(run["state"] == "success" and len(tis) == 3 for run, tis in done.values())
    polls = api.calls["dag_runs_since"]
    # per poll: runs changed, tasks changed, tasks waiting for a person; plus each run's whole task list once, at its end
    assert api.calls["task_instances_since"] == 2 * polls
    assert api.calls["task_instances"] == 300 and api.calls["dag_run"] == 0
    lines = capsys.readouterr().out.splitlines()
    assert sum("published" in ln and "titles:" not in ln for ln in lines) == 300  # a line per title's outcome ...
    assert not any("transcode" in ln for ln in lines)  # ... but no per-stage lines for 300 titles
    assert "300 titles: 0 queued, 0 running, 300 published, 0 rejected, 0 awaiting review, 0 failed" in lines[-1]


def test_a_few_titles_get_a_line_per_stage(fake, capsys):
    fake(2)
    runner.wait(FakeStack(), _runs(2), poll_s=0)
    out = capsys.readouterr().out
    assert out.count("d0 ") >= 3 and "transcode" in out and "publish" in out


def test_nothing_changing_and_nothing_running_is_a_stall_not_a_failure(fake):
    fake(3, frozen=True)
    with pytest.raises(runner.StillRunning) as e:
        runner.wait(FakeStack(), _runs(3), poll_s=0.01, stall_s=0.2)
    assert "no run or task changed state" in str(e.value) and e.value.alive == ["d0", "d1", "d2"]


def test_a_long_running_task_is_progress_however_long_it_takes(fake):
    fake(1, frozen=True, running=True)  # a transcode that runs on and on
    with pytest.raises(runner.StillRunning) as e:
        runner.wait(FakeStack(), _runs(1), poll_s=0.01, stall_s=0.05, timeout_s=0.5)
    assert "the caller's limit" in str(e.value)  # the stall detector never fired: something was running
