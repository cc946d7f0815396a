"""Admission control: the numbers come from the machine and the documented MEDIAFLOW_* knobs, a bad knob is named,
and every ffmpeg/ffprobe the domain starts runs below the control plane."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mediaflow import capacity, ffrun
from mediaflow.capacity import MEDIA_POOL, CapacityError

PROJECT = Path(__file__).resolve().parents[2]


def test_defaults_follow_the_core_count():
    cap = capacity.capacity({"MEDIAFLOW_CORES": "2"})
    assert (cap.media_slots, cap.transcode_slots, cap.parallelism, cap.max_active_runs) == (2, 1, 6, 16)
    assert cap.task_nice < cap.media_nice  # tasks yield to the control plane, ffmpeg yields to tasks
    big = capacity.capacity({"MEDIAFLOW_CORES": "32"})
    assert (big.media_slots, big.parallelism, big.max_active_runs) == (32, 96, 256)
    # without an override: the cores this process may run on (its affinity), not the host's
    assert capacity.capacity({}).cores == len(os.sched_getaffinity(0))


def test_the_ladder_is_split_over_one_process_per_core_unless_told():
    """ffmpeg 5.1/6.0 run a command's encoders in one thread: a transcode's ladder goes over one process per core."""
    assert capacity.capacity({"MEDIAFLOW_CORES": "2"}).ladder_groups == 2
    assert capacity.capacity({"MEDIAFLOW_CORES": "8"}).ladder_groups == 8
    assert capacity.capacity({"MEDIAFLOW_CORES": "8", "MEDIAFLOW_LADDER_GROUPS": "1"}).ladder_groups == 1


def test_every_number_can_be_overridden():
    cap = capacity.capacity({"MEDIAFLOW_CORES": "2", "MEDIAFLOW_MEDIA_SLOTS": "3", "MEDIAFLOW_TRANSCODE_SLOTS": "2",
                             "MEDIAFLOW_MAX_ACTIVE_RUNS": "5", "MEDIAFLOW_PARALLELISM": "9",
                             "MEDIAFLOW_MEDIA_NICE": "15", "MEDIAFLOW_TASK_NICE": "1"})  # fmt: skip
    assert (cap.media_slots, cap.transcode_slots, cap.max_active_runs, cap.parallelism) == (3, 2, 5, 9)
    assert (cap.media_nice, cap.task_nice) == (15, 1)
    assert capacity.capacity({"MEDIAFLOW_CORES": "2", "MEDIAFLOW_MEDIA_SLOTS": " "}).media_slots == 2  # empty: default


@pytest.mark.parametrize(
    "env, named, why",
    [
        ({"MEDIAFLOW_MEDIA_SLOTS": "two"}, "MEDIAFLOW_MEDIA_SLOTS", "not a whole number"),
        ({"MEDIAFLOW_MEDIA_SLOTS": "0"}, "MEDIAFLOW_MEDIA_SLOTS", "at least 1"),
        ({"MEDIAFLOW_CORES": "-1"}, "MEDIAFLOW_CORES", "at least 1"),
        # a transcode asking more slots than the pool has would never run
        (
            {"MEDIAFLOW_MEDIA_SLOTS": "2", "MEDIAFLOW_TRANSCODE_SLOTS": "3"},
            "MEDIAFLOW_TRANSCODE_SLOTS",
            "between 1 and 2",
        ),
        # the media tasks would take every task slot: hand-offs would wait behind ffmpeg
        ({"MEDIAFLOW_MEDIA_SLOTS": "4", "MEDIAFLOW_PARALLELISM": "4"}, "MEDIAFLOW_PARALLELISM", "at least 5"),
        ({"MEDIAFLOW_MAX_ACTIVE_RUNS": "1.5"}, "MEDIAFLOW_MAX_ACTIVE_RUNS", "not a whole number"),
        ({"MEDIAFLOW_MEDIA_NICE": "20"}, "MEDIAFLOW_MEDIA_NICE", "between 0 and 19"),
        ({"MEDIAFLOW_TASK_NICE": "12"}, "MEDIAFLOW_TASK_NICE", "between 0 and 10"),  # never below ffmpeg
        ({"MEDIAFLOW_LADDER_GROUPS": "0"}, "MEDIAFLOW_LADDER_GROUPS", "at least 1"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(env, named, why):
    with pytest.raises(CapacityError) as err:
        capacity.capacity({"MEDIAFLOW_CORES": "2", **env})
    assert named in str(err.value) and why in str(err.value)


def test_the_pools_are_what_airflow_imports():
    cap = capacity.capacity({"MEDIAFLOW_CORES": "4"})
    assert [p.name for p in cap.pools()] == [MEDIA_POOL]
    assert cap.airflow_pools() == {MEDIA_POOL: {"slots": 4, "description": cap.pools()[0].description,
                                                "include_deferred": False}}  # fmt: skip
    # docker-compose's airflow-init: python -m mediaflow.capacity pools > FILE; airflow pools import FILE
    env = {**os.environ, "PYTHONPATH": str(PROJECT / "include"), "MEDIAFLOW_CORES": "4", "MEDIAFLOW_MEDIA_SLOTS": "6"}
    out = subprocess.run([sys.executable, "-m", "mediaflow.capacity", "pools"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert '"slots": 6' in out.stdout and f'"{MEDIA_POOL}"' in out.stdout
    env["MEDIAFLOW_MEDIA_SLOTS"] = "lots"
    bad = subprocess.run([sys.executable, "-m", "mediaflow.capacity", "pools"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "MEDIAFLOW_MEDIA_SLOTS='lots' is not a whole number" in bad.stderr


def _niceness_of_child(run, argv_name: str, parent=os.getpid) -> tuple[int, int]:
    """Run `run()` (which starts a real ffmpeg, a child of `parent()`) and read that ffmpeg's niceness from /proc
    while it runs: (niceness, its I/O priority as `ionice -p` prints it)."""
    seen: list[tuple[int, int]] = []

    def watch():
        deadline = time.monotonic() + 60
        while not seen and time.monotonic() < deadline:
            for stat in Path("/proc").glob("[0-9]*/stat"):
                try:
                    fields = stat.read_text().rsplit(")", 1)[1].split()
                    comm = stat.read_text().split("(", 1)[1].rsplit(")", 1)[0]
                except OSError:
                    continue
                if comm == argv_name and int(fields[1]) == parent():  # ppid: started by the process under test
                    io = subprocess.run(["ionice", "-p", stat.parent.name], capture_output=True, text=True).stdout
                    seen.append((int(fields[16]), io.strip()))  # field 19 of stat: nice
                    break
            time.sleep(0.005)

    t = threading.Thread(target=watch)
    t.start()
    run()
    t.join()
    assert seen, f"no {argv_name} child seen"
    return seen[0]


def test_domain_ffmpeg_runs_niced_below_its_caller(tmp_path, monkeypatch):
    """ffrun.run (every ffmpeg/ffprobe of the domain: decode test, QC, loudness, probes) starts the child at
    MEDIAFLOW_MEDIA_NICE; the calling process (standing in for the control plane) keeps its priority."""
    monkeypatch.setenv("MEDIAFLOW_MEDIA_NICE", "12")
    before = os.getpriority(os.PRIO_PROCESS, 0)
    argv = ["ffmpeg", "-nostdin", "-hide_banner", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25:duration=8",
            "-f", "null", "-"]  # fmt: skip
    nice, io = _niceness_of_child(lambda: ffrun.run(argv, check=True), "ffmpeg")
    assert nice == 12 and io == "best-effort: prio 7"
    assert os.getpriority(os.PRIO_PROCESS, 0) == before, "the caller's own priority must not change"


def test_lower_priority_never_raises_a_process_back(tmp_path):
    start = max(15, os.getpriority(os.PRIO_PROCESS, 0))  # the suite may itself run niced
    proc = subprocess.Popen(["sleep", "30"], preexec_fn=lambda: os.setpriority(os.PRIO_PROCESS, 0, start))
    try:
        capacity.lower_priority(proc.pid, nice=5)  # already lower: left alone (only root could raise it)
        assert os.getpriority(os.PRIO_PROCESS, proc.pid) == start
        capacity.lower_priority(proc.pid, nice=18, io_level=7)
        assert os.getpriority(os.PRIO_PROCESS, proc.pid) == max(18, start)
        ionice = subprocess.run(["ionice", "-p", str(proc.pid)], capture_output=True, text=True)
        if ionice.returncode == 0:  # util-linux present: the I/O priority is best-effort, lowest level
            assert ionice.stdout.strip() == "best-effort: prio 7"
    finally:
        proc.kill()
        proc.wait()


def test_ffmpeg_hook_runs_ffmpeg_niced(tmp_path):
    """FFmpegHook (transcode, localize) in a process of its own, as a task process is: its ffmpeg runs at
    MEDIAFLOW_MEDIA_NICE and the I/O priority is the lowest best-effort level."""
    code = (
        "from mediaflow_airflow.hooks import FFmpegHook\n"
        "FFmpegHook().run(['ffmpeg', '-nostdin', '-hide_banner', '-f', 'lavfi', '-i',\n"
        "                  'testsrc2=size=1280x720:rate=25:duration=8', '-f', 'null', '-'])\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(PROJECT / "include"), str(PROJECT / "plugins"), str(PROJECT / "tools")]),
        "MEDIAFLOW_MEDIA_NICE": "11",
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
    }
    procs: list[subprocess.Popen] = []

    def run():
        procs.append(subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))  # fmt: skip
        out, _ = procs[0].communicate(timeout=300)
        assert procs[0].returncode == 0, out[-2000:]

    nice, io = _niceness_of_child(run, "ffmpeg", parent=lambda: procs[0].pid if procs else -1)
    assert nice == 11 and io == "best-effort: prio 7"


def test_ffmpeg_hook_called_from_a_thread_lowers_the_task_process_itself(tmp_path):
    """The ladder's groups call FFmpegHook.run from threads of their own; Linux keeps niceness per thread, so the hook
    lowers the task's main thread (what uploads the files afterwards), not only the thread that called it."""
    code = (
        "import os, threading\n"
        "from mediaflow_airflow.hooks import FFmpegHook\n"
        "t = threading.Thread(target=lambda: FFmpegHook().run(['ffmpeg', '-nostdin', '-hide_banner', '-f', 'lavfi',\n"
        "                     '-i', 'testsrc2=size=64x64:rate=25:duration=1', '-f', 'null', '-']))\n"
        "t.start(); t.join()\n"
        "print('main thread nice', os.getpriority(os.PRIO_PROCESS, 0))\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(PROJECT / "include"), str(PROJECT / "plugins"), str(PROJECT / "tools")]),
        "MEDIAFLOW_MEDIA_NICE": "11",
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
    }
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "main thread nice 11" in out.stdout
