"""The embedded stack's process control: clear messages instead of hangs, `down` stops only its own (its PostgreSQL
included), and a fresh S3 API retires the earlier runs' databases."""

from __future__ import annotations

import socket
import subprocess

import psutil
import pytest

from mediaflow.ledger import Ledger
from mediaflow_dev.devstack import Stack, StackError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stack(tmp_path, **ports) -> Stack:
    base = {"airflow_port": 1, "s3_port": 1, "smtp_port": 1, "pg_port": _free_port()}
    base.update(ports)
    return Stack(state_dir=tmp_path / "state", out_dir=tmp_path / "out", **base)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_port_in_use_is_named_with_the_variable_to_change(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        stack = _stack(tmp_path, s3_port=port)
        with pytest.raises(StackError) as err:
            stack.up()
    assert f"127.0.0.1:{port} is already in use" in str(err.value)
    assert "MEDIAFLOW_S3_PORT" in str(err.value)
    assert not (tmp_path / "state" / "pids").exists(), "nothing may be started when a port is taken"


def test_stale_pid_file_is_reported_and_removed(tmp_path, capsys):
    stack = _stack(tmp_path)
    gone = subprocess.Popen(["true"])
    gone.wait()
    stack.pid_file("smtp").parent.mkdir(parents=True)
    stack.pid_file("smtp").write_text(str(gone.pid))
    assert stack.status()["smtp"] is None
    assert "stale pid file" in capsys.readouterr().out
    assert not stack.pid_file("smtp").exists()


def test_down_stops_exactly_what_up_started(tmp_path):
    stack = _stack(tmp_path)
    ours = stack._spawn("smtp", ["sleep", "60"])
    other = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        assert stack.status()["smtp"] == ours
        stack.down()
        assert stack.status()["smtp"] is None
        assert not stack.pid_file("smtp").exists()
        assert other.poll() is None, "a process that make up did not start must survive make down"
    finally:
        other.kill()


def test_a_fresh_s3_retires_the_runs_and_ledger_of_an_earlier_up(tmp_path, capsys):
    """The S3 API's objects do not outlive it (moto's index is in memory): after `make down`, the next `up` starts
    with empty buckets, so the Airflow runs and ledger of the earlier stack (whose objects are gone) are set aside,
    kept, not reused. Reusing them made a second `make run` on the same day adopt the old runs and report its
    titles failed. On PostgreSQL the databases are renamed; `down` leaves neither a server process nor its port
    behind."""
    stack = _stack(tmp_path)
    stack._start_postgres()
    try:
        stack.postgres.create_databases()
        Ledger(stack.ledger_url).record_run(dag_id="value_stream__news_clip", run_id="manual__old", asset_id="old")
        assert stack.postgres.sql("CREATE TABLE dag_run (run_id text)", db="airflow") == "ok"

        stack._retire_stale_runs()  # what `up` does when the S3 API starts empty, then before Airflow starts:
        stack._create_databases()

        retired = stack.previous_runs()
        assert sorted(db.split("_prev_")[0] for db in retired) == ["airflow", "ledger"], retired
        assert "are kept as databases" in capsys.readouterr().out
        old_ledger = next(db for db in retired if db.startswith("ledger_"))
        assert Ledger(stack.pg_url(old_ledger)).run("value_stream__news_clip", "manual__old")["asset_id"] == "old"
        assert stack.postgres.sql("SELECT to_regclass('stage_runs')", db="ledger") == "None", "a fresh ledger"
        assert stack.postgres.sql("SELECT to_regclass('dag_run')", db="airflow") == "None", "a fresh Airflow DB"
        assert stack.postgres.sql("SELECT to_regclass('dag_run')", db=retired[0]) == "dag_run"

        stack._retire_stale_runs()  # the fresh ones go too the next time: each earlier stack is kept apart
        assert len(stack.previous_runs()) == 4
        stack._retire_stale_runs()  # nothing left to retire: nothing happens
        assert len(stack.previous_runs()) == 4
        server = psutil.Process(stack.status()["postgres"])
        processes = [server, *server.children(recursive=True)]  # the postmaster, its backends and workers
        stack.down()
        assert stack.status()["postgres"] is None
        assert not [p.pid for p in processes if p.is_running()], "a process of the stack's PostgreSQL outlived down"
        assert _port_free(stack.pg_port)
    finally:
        stack.down()
        stack.postgres.remove()


def test_a_dag_whose_file_exists_outlives_killed_parses(tmp_path):
    """Airflow 3.3 deactivates a DAG when its file's latest parse ended more than stale_dag_threshold after the DAG
    was last written, and a parse killed at dag_file_processor_timeout counts as one that ended: with the defaults
    (50 s, 50 s) one killed parse on a busy machine deactivated every value-stream DAG and the batch's triggers got
    404. The stack's settings kill a parse only after minutes, and outlast three killed parses in a row."""
    env = _stack(tmp_path).env()
    timeout = int(env["AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT"])
    interval = int(env["AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL"])
    assert timeout >= 120
    assert int(env["AIRFLOW__DAG_PROCESSOR__STALE_DAG_THRESHOLD"]) > 3 * (timeout + interval)


def test_the_databases_outlive_down_and_up(tmp_path):
    """`make down` then `make up` (S3 still running is not needed for this): the server comes back on the same data."""
    stack = _stack(tmp_path)
    try:
        stack._start_postgres()
        stack.postgres.create_databases()
        Ledger(stack.ledger_url).record_run(dag_id="value_stream__news_clip", run_id="manual__1", asset_id="kept")
        stack.down()
        assert _port_free(stack.pg_port)
        stack._start_postgres()
        assert Ledger(stack.ledger_url).run("value_stream__news_clip", "manual__1")["asset_id"] == "kept"
    finally:
        stack.down()
        stack.postgres.remove()


def test_a_base_path_puts_airflow_under_it(tmp_path, monkeypatch):
    """MEDIAFLOW_BASE_PATH=/airflow: Airflow's base URL carries the path, and everything that reaches Airflow (the
    task supervisors' execution API, the UI links in mails, the tests) goes through it; unset, the host's root."""
    monkeypatch.setenv("MEDIAFLOW_AIRFLOW_PORT", "18080")
    for given in ("/airflow", "airflow/", " /airflow "):
        monkeypatch.setenv("MEDIAFLOW_BASE_PATH", given)
        st = Stack.from_env()
        assert st.api_url == "http://127.0.0.1:18080/airflow"
        env = st.env()
        assert env["AIRFLOW__API__BASE_URL"] == "http://127.0.0.1:18080/airflow/"
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:18080/airflow/execution/"
        assert env["MEDIAFLOW_UI_URL"] == "http://127.0.0.1:18080/airflow"
    monkeypatch.delenv("MEDIAFLOW_BASE_PATH")
    st = Stack.from_env()
    assert st.api_url == "http://127.0.0.1:18080"
    assert "AIRFLOW__API__BASE_URL" not in st.env()


def test_under_a_base_path_the_batch_triggers_through_it(monkeypatch):
    """The content batch's connection to Airflow's API carries the base path (extra base_path), so a batch under
    /airflow starts its runs there, not at the host's root (a 404 that left every delivery pending)."""
    import json

    from mediaflow_airflow.hooks import AirflowApiHook

    conn = {"conn_type": "http", "host": "127.0.0.1", "port": 18080, "schema": "http", "login": "svc", "password": "pw"}
    monkeypatch.setenv("AIRFLOW_CONN_MEDIAFLOW_AIRFLOW_API", json.dumps({**conn, "extra": {"base_path": "/airflow/"}}))
    assert AirflowApiHook().get_conn().base_url == "http://127.0.0.1:18080/airflow"
    monkeypatch.setenv("AIRFLOW_CONN_MEDIAFLOW_AIRFLOW_API", json.dumps(conn))
    assert AirflowApiHook().get_conn().base_url == "http://127.0.0.1:18080"
