"""The one ffmpeg/ffprobe runner (mediaflow.ffrun): output captured, errors that name the command, a timeout that ends
the whole process group, a kill from another thread (an operator's on_kill), progress read while it runs."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

from mediaflow import ffrun, progress

FOREVER = ["ffmpeg", "-nostdin", "-hide_banner", "-re", "-f", "lavfi", "-i", "anullsrc=r=8000", "-f", "null", "-"]


def _gone(pgid: int, wait_s: float = 3.0) -> bool:
    """No live process (zombies waiting for their reaper aside) in the group, within wait_s."""
    deadline = time.monotonic() + wait_s
    while True:
        alive = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                alive.append(stat.parent.name)
        if not alive or time.monotonic() > deadline:
            return not alive
        time.sleep(0.1)


def test_output_is_captured_as_text():
    proc = ffrun.run(["ffprobe", "-v", "error", "-f", "lavfi", "-show_entries", "stream=codec_type", "-of", "csv=p=0",
                      "testsrc2=size=64x48:rate=5:duration=0.2"], purpose="probe")  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.strip() == "video"


def test_a_failure_with_check_names_the_purpose_the_input_and_the_error(tmp_path):
    with pytest.raises(ffrun.FFmpegError) as e:
        ffrun.run(["ffmpeg", "-nostdin", "-i", str(tmp_path / "missing.mov"), "-f", "null", "-"], purpose="decode test",
                  check=True)  # fmt: skip
    message = str(e.value)
    assert message.startswith("decode test (ffmpeg on missing.mov): exited with 1")
    assert "No such file or directory" in message and "ffmpeg version" not in message
    assert e.value.returncode == 1 and "No such file" in e.value.stderr
    unchecked = ffrun.run(["ffmpeg", "-nostdin", "-i", str(tmp_path / "missing.mov"), "-f", "null", "-"])
    assert unchecked.returncode == 1, "without check the caller reads the return code"


def test_a_timeout_kills_the_process_group_and_says_what_ran(tmp_path):
    started = time.monotonic()
    with pytest.raises(
        ffrun.FFmpegTimeout,
        match=r"^loudness measurement \(ffmpeg on anullsrc=r=8000\): still "
        r"running after 1 s: its process group was killed$",
    ):
        ffrun.run(FOREVER, purpose="loudness measurement", timeout=1)
    assert time.monotonic() - started < ffrun.KILL_GRACE_S + 5


def test_a_timeout_ends_what_the_command_started_too():
    """A grandchild (here a sleep) is in the group: it ends with the command."""
    code = (
        "import subprocess, sys, time; p = subprocess.Popen(['sleep', '60']); print(p.pid, flush=True); time.sleep(60)"
    )
    runner = ffrun.Runner()
    seen = {}

    def watch():
        while not seen.get("pid"):
            seen["pid"] = runner.pid
            time.sleep(0.05)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    with pytest.raises(ffrun.FFmpegTimeout):
        runner.run([sys.executable, "-c", code], purpose="test", timeout=1.5)
    t.join(5)
    assert seen["pid"] and _gone(seen["pid"]), "the command's process group is gone, its sleep with it"
    assert runner.pid is None


def test_kill_from_another_thread_ends_the_running_command():
    runner = ffrun.Runner()
    assert runner.kill() is False, "nothing runs yet"
    result = {}

    def work():
        try:
            runner.run(FOREVER, purpose="transcode")
        except ffrun.FFmpegError as e:
            result["error"] = e

    t = threading.Thread(target=work)
    t.start()
    deadline = time.monotonic() + 10
    while runner.pid is None and time.monotonic() < deadline:
        time.sleep(0.05)
    pgid = runner.pid
    assert pgid is not None
    assert runner.kill() is True
    t.join(ffrun.KILL_GRACE_S + 5)
    assert isinstance(result.get("error"), ffrun.FFmpegKilled), result
    assert "transcode (ffmpeg on anullsrc=r=8000): killed" in str(result["error"])
    assert _gone(pgid)


def test_stderr_lines_are_handed_on_as_they_come():
    lines = []
    ffrun.run(["ffmpeg", "-nostdin", "-hide_banner", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=5:duration=0.4",
               "-f", "null", "-"], on_line=lines.append)  # fmt: skip
    assert any("Input #0, lavfi" in line for line in lines), lines[:5]


def test_progress_is_read_while_it_runs(tmp_path):
    reports = []
    watched = progress.FFmpegProgress(tmp_path / "progress.txt", total_s=2.0, report=reports.append, stage="transcode",
                                      poll_s=0.1)  # fmt: skip
    ffrun.run(["ffmpeg", "-nostdin", "-hide_banner", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25:duration=2",
               "-f", "null", "-"], progress=watched, check=True)  # fmt: skip
    assert watched.ended and reports[-1]["done"] == 2.0


def test_only_an_argv_list_runs():
    with pytest.raises(TypeError):
        ffrun.run("ffmpeg -version")  # type: ignore[arg-type]


def test_budgets():
    assert ffrun.budget_s(None) == ffrun.DEFAULT_TIMEOUT_S
    assert ffrun.budget_s(30.0) == ffrun.MIN_TIMEOUT_S
    assert ffrun.budget_s(7200.0) == 7200.0 * ffrun.PER_SOURCE_S


def test_kill_from_a_signal_handler_on_the_running_thread():
    """Airflow calls on_kill from its SIGTERM handler, on the thread that is inside run(): no deadlock, it ends."""
    import signal

    runner = ffrun.Runner()
    previous = signal.signal(signal.SIGUSR1, lambda *_: runner.kill())
    try:

        def send():
            deadline = time.monotonic() + 10
            while runner.pid is None and time.monotonic() < deadline:
                time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGUSR1)

        threading.Thread(target=send, daemon=True).start()
        with pytest.raises(ffrun.FFmpegKilled):
            runner.run(FOREVER, purpose="transcode", timeout=60)
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_commands_run_together_and_the_first_failure_ends_the_others(tmp_path):
    """The ladder's groups: two commands at once through one Runner; the one that fails ends the other (killed, its
    whole group) and its own error is what the caller gets, naming its input."""
    runner = ffrun.Runner()
    endless = ["ffmpeg", "-nostdin", "-re", "-f", "lavfi", "-i", "testsrc=size=64x64:rate=10", "-f", "null", "-"]
    broken = ["ffmpeg", "-nostdin", "-i", str(tmp_path / "missing.mov"), "-f", "null", "-"]
    outcome = {}

    def first():
        try:
            runner.run(endless, check=True)
        except ffrun.FFmpegError as e:
            outcome["endless"] = e
            raise

    def second():
        while runner.pid is None:  # the endless one is running before this one fails
            time.sleep(0.05)
        runner.run(broken, check=True)

    with pytest.raises(ffrun.FFmpegError, match="missing.mov") as raised:
        ffrun.run_together([first, second], kill=runner.kill)
    assert not isinstance(raised.value, ffrun.FFmpegKilled)
    assert isinstance(outcome["endless"], ffrun.FFmpegKilled), "the endless command was ended, not waited for"
    assert runner.pid is None and not runner.kill(), "nothing left running"
