"""Admission control sized to the machine: how much work the stack admits at once, and at what priority.

One place for the numbers. The embedded stack (devstack: pools, `[core] parallelism`), docker-compose's
`airflow-init` (`python -m mediaflow.capacity pools`) and the value-stream DAG factory (pool names,
`max_active_runs`) all read them from here. Every value derives from the cores this process may run on
(`os.sched_getaffinity`) and can be overridden by an environment variable:

| variable | default | what |
|---|---|---|
| MEDIAFLOW_CORES | cores available | the core count the defaults below are derived from |
| MEDIAFLOW_MEDIA_SLOTS | cores | slots of the `media` pool: ffmpeg/ffprobe-heavy tasks running at once |
| MEDIAFLOW_TRANSCODE_SLOTS | 1 | `media` slots one transcode takes (at most MEDIAFLOW_MEDIA_SLOTS) |
| MEDIAFLOW_LADDER_GROUPS | cores | ffmpeg processes one transcode splits its ladder over (mediaflow.ladder.plan_groups) |
| MEDIAFLOW_MAX_ACTIVE_RUNS | 8 x cores | active runs per value-stream DAG; the rest wait queued in Airflow |
| MEDIAFLOW_PARALLELISM | 3 x cores | Airflow `[core] parallelism`: task slots of the whole stack |
| MEDIAFLOW_MEDIA_NICE | 10 | niceness of every ffmpeg/ffprobe process (and of a task once it starts one) |
| MEDIAFLOW_TASK_NICE | 5 | niceness of the LocalExecutor's workers, so of every task process |

A bad value (not a whole number, out of range) raises CapacityError naming the variable.

Every ffmpeg-heavy task (ingest's decode test, technical QC, loudness, localize, transcode with its posters) takes
a slot of the one `media` pool: a slot is one ffmpeg process, and the pool has one per core, so the machine runs
as many media processes as it has cores and every other one waits *queued in Airflow*. Light tasks (S3 copies,
checks without ffmpeg, API calls, the outcome) stay in Airflow's `default_pool`: a title's hand-offs never wait
behind another title's transcode. Media processes run niced below the control plane (scheduler, DAG processor,
triggerer, API server at niceness 0), task processes in between. docs/performance.md ("Admission control") has
the reasons and the measurements.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from mediaflow import names

MEDIA_POOL = names.MEDIA_POOL
DEFAULT_POOL = names.DEFAULT_POOL  # Airflow's own: every task that runs no ffmpeg
VARIABLES = ("MEDIAFLOW_CORES", "MEDIAFLOW_MEDIA_SLOTS", "MEDIAFLOW_TRANSCODE_SLOTS", "MEDIAFLOW_MAX_ACTIVE_RUNS",
             "MEDIAFLOW_PARALLELISM", "MEDIAFLOW_MEDIA_NICE", "MEDIAFLOW_TASK_NICE", "MEDIAFLOW_LADDER_GROUPS")  # fmt: skip
# Linux I/O priority: best-effort class, lowest level (the idle class could starve media I/O behind any other I/O)
IOPRIO_CLASS_BE, MEDIA_IO_LEVEL = 2, 7


class CapacityError(ValueError):
    """A capacity setting is invalid; the message names the environment variable."""


@dataclass(frozen=True)
class Pool:
    name: str
    slots: int
    description: str


@dataclass(frozen=True)
class Capacity:
    cores: int
    media_slots: int
    transcode_slots: int
    max_active_runs: int
    parallelism: int
    media_nice: int
    task_nice: int
    ladder_groups: int = 1

    def pools(self) -> list[Pool]:
        """Every pool the DAGs use, as Airflow must have it before the scheduler starts."""
        return [Pool(MEDIA_POOL, self.media_slots,
                     f"ffmpeg/ffprobe-heavy tasks (decode test, QC, loudness, localize, transcode): one per slot, "
                     f"{self.media_slots} for {self.cores} cores (MEDIAFLOW_MEDIA_SLOTS)")]  # fmt: skip

    def airflow_pools(self) -> dict[str, dict]:
        """The pools in the form `airflow pools import FILE` reads."""
        return {
            p.name: {"slots": p.slots, "description": p.description, "include_deferred": False} for p in self.pools()
        }


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity: a container's or a taskset's share, not the host's)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def _int(env: Mapping[str, str], name: str, default: int, *, low: int, high: int | None = None) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise CapacityError(f"{name}={raw!r} is not a whole number") from None
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise CapacityError(f"{name}={value} is out of range: it must be {bound}")
    return value


def capacity(env: Mapping[str, str] | None = None) -> Capacity:
    """The numbers for this machine, from the core count and the MEDIAFLOW_* overrides in `env` (os.environ)."""
    env = os.environ if env is None else env
    cores = _int(env, "MEDIAFLOW_CORES", available_cores(), low=1)
    media = _int(env, "MEDIAFLOW_MEDIA_SLOTS", cores, low=1)
    # a task asking more slots than the pool has would never run
    transcode = _int(env, "MEDIAFLOW_TRANSCODE_SLOTS", 1, low=1, high=media)
    runs = _int(env, "MEDIAFLOW_MAX_ACTIVE_RUNS", 8 * cores, low=1)
    # media tasks plus at least one task slot for the light work beside them (else hand-offs wait for ffmpeg)
    parallelism = _int(env, "MEDIAFLOW_PARALLELISM", max(3 * cores, media + 2), low=media + 1)
    media_nice = _int(env, "MEDIAFLOW_MEDIA_NICE", 10, low=0, high=19)
    task_nice = _int(env, "MEDIAFLOW_TASK_NICE", 5, low=0, high=media_nice)
    # one process per core: ffmpeg 5.1/6.0 run a command's encoders in its one main thread (docs/performance.md)
    groups = _int(env, "MEDIAFLOW_LADDER_GROUPS", cores, low=1)
    return Capacity(cores=cores, media_slots=media, transcode_slots=transcode, max_active_runs=runs,
                    parallelism=parallelism, media_nice=media_nice, task_nice=task_nice,
                    ladder_groups=groups)  # fmt: skip


# ---------------------------------------------------------------- process priority


def lower_priority(pid: int = 0, *, nice: int, io_level: int | None = None) -> None:
    """Raise a process's niceness to `nice` (0 = the calling process), never lower it (an unprivileged process
    cannot take it back); with io_level, also its I/O priority to best-effort `io_level` (0 high .. 7 low)."""
    if os.getpriority(os.PRIO_PROCESS, pid) < nice:
        os.setpriority(os.PRIO_PROCESS, pid, nice)
    if io_level is not None:
        _ioprio_set(pid, IOPRIO_CLASS_BE, io_level)


def media_priority(env: Mapping[str, str] | None = None, *, pid: int = 0):
    """A callable that puts the calling process at media priority (MEDIAFLOW_MEDIA_NICE, lowest best-effort I/O);
    `pid`: that one instead (Linux keeps niceness per thread: os.getpid() is a process's main thread, 0 the caller).

    The one place every ffmpeg/ffprobe gets its priority: the runner (mediaflow.ffrun) passes it as the child's
    preexec_fn; FFmpegHook also calls it in the task process before it starts ffmpeg. The setting is read here,
    in the parent; the callable makes only system calls, so it is safe between fork and exec."""
    nice = capacity(env).media_nice
    _ioprio_syscall()  # resolved here, not in the child
    return functools.partial(lower_priority, pid, nice=nice, io_level=MEDIA_IO_LEVEL)


def _ioprio_set(pid: int, ioclass: int, level: int) -> None:
    """ioprio_set(2) (Linux; Python's os module has no binding). Best effort: where it is missing, CPU niceness
    alone orders the processes (and the kernel derives a best-effort I/O level from the niceness)."""
    libc, number = _ioprio_syscall()
    if libc is not None:
        libc.syscall(number, 1, pid, (ioclass << 13) | level)  # 1 = IOPRIO_WHO_PROCESS


@functools.cache
def _ioprio_syscall():
    """(libc, the ioprio_set syscall number) on Linux, (None, None) elsewhere; resolved once, in the parent."""
    import ctypes
    import platform

    number = {"x86_64": 251, "aarch64": 30, "arm64": 30, "ppc64le": 273, "s390x": 282}.get(platform.machine())
    if not sys.platform.startswith("linux") or number is None:
        return None, None
    try:
        return ctypes.CDLL(None, use_errno=True), number
    except OSError:
        return None, None


def main(argv: list[str]) -> int:
    """`python -m mediaflow.capacity pools`: the pools as JSON for `airflow pools import` (docker-compose's
    airflow-init); `show`: every number and where it came from."""
    import json

    try:
        cap = capacity()
    except CapacityError as e:
        print(f"capacity: {e}", file=sys.stderr)
        return 2
    cmd = argv[0] if argv else "show"
    if cmd == "pools":
        print(json.dumps(cap.airflow_pools(), indent=2))
    elif cmd == "show":
        for name, value in vars(cap).items():
            print(f"{name}: {value}")
    else:
        print(main.__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
