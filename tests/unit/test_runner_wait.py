"""runner.wait against a fake of the REST API's list endpoints: one poll costs a few requests whatever the number
of runs, every run is waited for without a fixed limit, a stall (nothing changes, nothing runs) stops the wait
with StillRunning, and the output stays bounded with hundreds of titles; a transcode's progress is shown when it
moves; Ctrl-C or SIGTERM during the wait still writes summary.json. The real API is exercised by the integration
tests (tests/integration/test_pending_trigger.py, test_long_title_progress.py)."""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from mediaflow.spec import load_specs
from mediaflow.stages import iso_z
from mediaflow.store import Buckets, outcome_key
from mediaflow_dev import runner

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

    def xcom(self, dag_id, run_id, task_id, key="return_value", map_index=-1):
        self.calls["xcom"] += 1
        return None


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


def test_a_few_titles_with_no_progress_kept_cost_one_read_per_transcode_and_publish(fake):
    api = fake(2)
    runner.wait(FakeStack(), _runs(2), poll_s=0)
    assert api.calls["xcom"] == 2 * 2, "each title's transcode and publish, once as it ends"


# ---------------------------------------------------------------- progress inside a stage

HOURS_2 = 7200.0


class TranscodingApi(FakeApi):
    """One run whose transcode runs on; its XCom `progress` moves 0 % -> 50 % -> (stays) -> 100 %, the last
    figure reported long ago (a stuck encoder)."""

    def __init__(self):
        super().__init__(1, frozen=True)
        self.runs["r0"]["state"] = "running"
        self.tis["r0"] = [self._ti("r0", "ingest.ingest_delivery", "success"), self._ti("r0", STAGES[1], "running")]
        now = datetime.now(UTC)
        fresh, old = iso_z(now), iso_z(now - timedelta(minutes=10))
        self.reports = [(0.0, fresh), (0.0, fresh), (3600.0, fresh), (3600.0, fresh), (3600.0, fresh), (HOURS_2, old)]

    def xcom(self, dag_id, run_id, task_id, key="return_value", map_index=-1):
        self.calls["xcom"] += 1
        assert (task_id, key, map_index) == (STAGES[1], "progress", -1)
        done, at = self.reports[min(self.calls["xcom"], len(self.reports)) - 1]
        return {"stage": "transcode", "phase": None, "done": done, "total": HOURS_2, "unit": "s", "updated_at": at}


def test_a_running_transcode_shows_its_percent_when_it_moves(monkeypatch, capsys):
    api = TranscodingApi()
    monkeypatch.setattr(runner, "_api", lambda stack: api)
    monkeypatch.setenv("MEDIAFLOW_PROGRESS_EVERY_S", "0")  # every poll is a tally
    with pytest.raises(runner.StillRunning):
        runner.wait(FakeStack(), _runs(1), poll_s=0.01, stall_s=0.05, timeout_s=0.3)
    lines = [ln.split("] ", 1)[1] for ln in capsys.readouterr().out.splitlines() if "transcode " in ln]
    assert [ln.split(None, 1)[1] for ln in lines] == [
        "transcode 0 % (0:00 of 2:00:00)",
        "transcode 50 % (1:00:00 of 2:00:00)",  # shown once, however often it is read unchanged
        "transcode 100 % (2:00:00 of 2:00:00) (no progress for 10:00)",
    ]  # fmt: skip
    assert all(ln.startswith("d0 ") for ln in lines)


def test_progress_words_say_how_long_it_has_not_moved():
    now = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)
    report = {"stage": "publish", "phase": None, "done": 1200, "total": 4100, "unit": "objects"}
    assert (
        runner.progress_text({**report, "updated_at": "2026-12-04T02:59:50Z"}, now=now) == "publish 1200/4100 objects"
    )
    assert runner.progress_text({**report, "updated_at": "2026-12-04T02:52:30Z"}, now=now) == \
        "publish 1200/4100 objects (no progress for 7:30)"  # fmt: skip
    assert runner.progress_text(report, now=now) == "publish 1200/4100 objects"


# ---------------------------------------------------------------- stopped by a person or the system


class EndingApi(FakeApi):
    """r0 has ended (published), r1 transcodes on; `signum` arrives during the third poll."""

    def __init__(self, signum):
        super().__init__(2, frozen=True)
        self.signum = signum
        self.runs["r0"]["state"] = "success"
        self.tis["r0"] = [self._ti("r0", s, "success") for s in STAGES]
        self.runs["r1"]["state"] = "running"
        self.tis["r1"] = [self._ti("r1", STAGES[0], "success"), self._ti("r1", STAGES[1], "running")]

    def dag_runs_since(self, since=None, *, states=None):
        if self.calls["dag_runs_since"] == 2:
            os.kill(os.getpid(), self.signum)  # as a person's Ctrl-C, or the service manager's SIGTERM, would
        return super().dag_runs_since(since, states=states)


class LocalStack:
    """What main and summarize use of a stack: its S3 API (the unit tests' server), a ledger, an out/ folder."""

    api_url = "http://fake"

    def __init__(self, client, tmp_path):
        self.client, self.out_dir, self.state_dir = client, tmp_path / "out", tmp_path / "state"
        self.ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
        self.downs = 0

    def s3_client(self):
        return self.client

    def is_up(self):
        return False

    def up(self):
        pass

    def down(self):
        self.downs += 1

    def password(self):
        return "pw"


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_during_the_wait_writes_the_summary_of_what_ended(s3, tmp_path, monkeypatch, capsys,
                                                                              request, signum, code):  # fmt: skip
    sigint_before = signal.getsignal(signal.SIGINT)
    store, buckets = s3
    for role in Buckets.roles():
        monkeypatch.setenv(f"MEDIAFLOW_BUCKET_{role.upper()}", getattr(buckets, role))
    dag_id = "value_stream__news_clip"
    store.put_bytes(json.dumps({"asset_id": "a0", "delivery_id": "d0", "value_stream": "news_clip",
                                "status": "published", "reasons": [], "dag_run_id": "r0", "lead_time_s": 12.0,
                                "published": []}).encode(), buckets.reports, outcome_key(dag_id, "r0"))  # fmt: skip
    stack = LocalStack(store.c, tmp_path)
    monkeypatch.setattr(runner.Stack, "from_env", classmethod(lambda cls: stack))
    monkeypatch.setattr(runner, "_api", lambda st: EndingApi(signum))
    monkeypatch.setattr(runner, "submit", lambda st, folder: runner.Submitted(_runs(2)))
    monkeypatch.setenv("MEDIAFLOW_PROGRESS_EVERY_S", "3600")
    (tmp_path / "deliveries").mkdir()
    before = signal.getsignal(signal.SIGTERM)
    # a Ctrl-C raises KeyboardInterrupt, as in a terminal, even when the suite itself runs where SIGINT is ignored
    # (a background job of a non-interactive shell inherits SIG_IGN, and Python then installs no handler of its own)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, sigint_before))

    assert runner.main(["--deliveries", str(tmp_path / "deliveries")]) == code
    summary = json.loads((stack.out_dir / "summary.json").read_text())
    assert [(a["delivery_id"], a["status"]) for a in summary["assets"]] == [("d0", "published")]
    assert [(r["delivery_id"], r["run_id"]) for r in summary["running"]] == [("d1", "r1")]
    assert summary["stopped"] == {signal.SIGINT: "interrupted (Ctrl-C)", signal.SIGTERM: "stopped by SIGTERM"}[signum]
    out = capsys.readouterr()
    assert "RUNNING" in out.out and "d0" in out.out and "summary.json" in out.out
    assert signal.getsignal(signal.SIGTERM) == before, "main leaves the SIGTERM handler as it found it"
