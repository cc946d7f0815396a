"""The embedded stack's process control: clear messages instead of hangs, and `down` stops only its own."""

from __future__ import annotations

import socket
import subprocess

import pytest

from mediaflow.devstack import Stack, StackError


def _stack(tmp_path, **ports) -> Stack:
    base = {"airflow_port": 1, "s3_port": 1, "smtp_port": 1}
    base.update(ports)
    return Stack(state_dir=tmp_path / "state", out_dir=tmp_path / "out", **base)


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
    """moto keeps objects in memory: after `make down`, the next `up` starts with empty buckets, so the Airflow
    runs and ledger of the earlier stack (whose objects are gone) are moved aside, kept, not reused. Reusing them
    made a second `make run` on the same day adopt the old runs and report its titles failed."""
    stack = _stack(tmp_path)
    stack.airflow_home.mkdir(parents=True)
    for path in (stack.airflow_home / "airflow.db", stack.state_dir / "ledger.db", stack.state_dir / "ledger.db-wal"):
        path.write_text("old")
    stack._retire_stale_runs()
    (moved,) = (stack.state_dir / "previous").iterdir()
    assert sorted(p.name for p in moved.iterdir()) == ["airflow.db", "ledger.db", "ledger.db-wal"]
    assert not (stack.airflow_home / "airflow.db").exists() and not (stack.state_dir / "ledger.db").exists()
    assert "moved to" in capsys.readouterr().out
    stack._retire_stale_runs()  # nothing left to move: nothing happens
    assert len(list((stack.state_dir / "previous").iterdir())) == 1
