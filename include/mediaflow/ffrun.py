"""The one runner of every ffmpeg and ffprobe the project starts: argv only (no shell), its own process group, a
timeout, media priority, and a way for whoever started it to end it.

    proc = ffrun.run(argv, purpose="decode test", timeout=ffrun.budget_s(duration_s))
    proc.returncode, proc.stdout, proc.stderr         # as subprocess.CompletedProcess, text

- Process group: ffmpeg starts a session of its own (setsid), so ending it ends everything it started, and a signal
  meant for the task (Ctrl-C, the scheduler's SIGTERM) reaches it only through `Runner.kill`.
- Timeout: past `timeout` seconds the whole group gets SIGTERM, then SIGKILL after KILL_GRACE_S, and FFmpegTimeout
  names the command's purpose and its input file. Hung decoders and inputs that never end are what it is for; the
  budgets are generous (budget_s), never a guess at how long an encode takes.
- Priority: the child drops to media priority before it execs (mediaflow.capacity.media_priority).
- Kill: a `Runner` runs one command at a time; `kill()` from another thread (an operator's on_kill) ends the
  group of the command running now, and the run raises FFmpegKilled.
- Progress: with `progress` (a progress.FFmpegProgress, not yet entered) the argv gets `-progress <file>` and the
  progress is read while ffmpeg runs.
- Output: stdout and stderr captured as text; with `on_line`, each stderr line is handed on as it comes (a task's
  log). check=True raises FFmpegError (its message: the purpose, the input and ffmpeg's last error lines).

Airflow-free: the plugins' FFmpegHook is a Runner with the task's logger.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from mediaflow.capacity import media_priority

KILL_GRACE_S = 5.0  # SIGTERM, then this long before SIGKILL
PROBE_TIMEOUT_S = 300.0  # an ffprobe reads headers and a few packets: minutes mean it hangs
DEFAULT_TIMEOUT_S = float(os.environ.get("MEDIAFLOW_FFMPEG_TIMEOUT_S", 6 * 3600))  # a decode/encode, length unknown
MIN_TIMEOUT_S = 900.0  # a decode/encode of a known length gets at least this long ...
PER_SOURCE_S = 10.0  # ... or this many seconds per second of the source, whichever is longer


class FFmpegError(RuntimeError):
    """ffmpeg/ffprobe failed (non-zero exit with check=True, a timeout, a kill); the message says which command
    (purpose, input file) and quotes its error lines."""

    def __init__(self, message: str, *, argv: list[str], returncode: int | None = None, stderr: str = "") -> None:
        super().__init__(message)
        self.argv, self.returncode, self.stderr = argv, returncode, stderr


class FFmpegTimeout(FFmpegError):
    """It ran past its timeout: its process group was killed."""


class FFmpegKilled(FFmpegError):
    """Runner.kill ended it (the task was stopped)."""


def budget_s(duration_s: float | None) -> float:
    """The timeout of a decode or encode of a source `duration_s` long (DEFAULT_TIMEOUT_S when unknown)."""
    if not duration_s or duration_s <= 0:
        return DEFAULT_TIMEOUT_S
    return max(MIN_TIMEOUT_S, duration_s * PER_SOURCE_S)


def input_of(argv: list[str]) -> str:
    """The file a command reads, for messages: the first -i (ffmpeg), else the last argument (ffprobe)."""
    if "-i" in argv[:-1]:
        return Path(argv[argv.index("-i") + 1]).name
    return Path(argv[-1]).name if len(argv) > 1 else ""


def error_lines(stderr: str, *, keep: int = 8) -> str:
    """ffmpeg's last error lines, joined: no banner, no '[demuxer @ 0x..]' prefixes, no repeats."""
    lines: list[str] = []
    for line in stderr.splitlines():
        line = re.sub(r"^(\[[^\]]*\]\s*)+", "", line).strip()
        if line and not line.startswith(("Last message repeated", "ffmpeg version", "ffprobe version")) \
                and line not in lines:  # fmt: skip
            lines.append(line)
    return " | ".join(lines[-keep:])


def describe(argv: list[str], purpose: str | None) -> str:
    """'decode test (ffmpeg on src.mov)', or 'ffmpeg on src.mov' without a purpose."""
    program, name = Path(argv[0]).name, input_of(argv)
    command = f"{program} on {name}" if name else program
    return f"{purpose} ({command})" if purpose else command


class Runner:
    """Runs ffmpeg/ffprobe, each in its own process group; kill() from any thread ends every one running now
    (one, or the ladder's groups run at once from several threads: run_together)."""

    def __init__(self, *, on_line: Callable[[str], None] | None = None) -> None:
        self.on_line = on_line
        self._lock = threading.RLock()  # kill() may run in a signal handler on the thread inside run()
        self._procs: dict[int, subprocess.Popen] = {}  # running now, by pid: one, or the ladder's groups at once
        self._killed: set[int] = set()

    @property
    def pid(self) -> int | None:
        """The running command's pid (= its process group id; the first started when several run), None between
        commands."""
        running = [p for p in list(self._procs.values()) if p.poll() is None]
        return running[0].pid if running else None

    def kill(self, sig: int = signal.SIGTERM) -> bool:
        """End every running command's whole process group (SIGTERM; SIGKILL after KILL_GRACE_S if it stays).
        False when nothing runs."""
        with self._lock:
            running = [p for p in self._procs.values() if p.poll() is None]
            self._killed.update(p.pid for p in running)
        for proc in running[1:]:  # all signalled first, so the grace periods overlap
            _signal_group(proc, sig)
        for proc in running:
            _end_group(proc, sig)
        return bool(running)

    def run(self, argv: list[str], *, purpose: str | None = None, timeout: float | None = None, check: bool = False,
            progress=None, cwd: str | Path | None = None) -> subprocess.CompletedProcess:  # fmt: skip
        if not argv or not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
            raise TypeError(f"an argv is a list of str, got {argv!r}")
        if progress is not None:
            from mediaflow.progress import with_progress

            with progress:
                return self.run(with_progress(argv, progress.path), purpose=purpose, timeout=timeout, check=check,
                                cwd=cwd)  # fmt: skip
        timeout = DEFAULT_TIMEOUT_S if timeout is None else timeout
        what = describe(argv, purpose)
        with self._lock:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd,
                start_new_session=True, preexec_fn=media_priority(),
            )  # fmt: skip
            self._procs[proc.pid] = proc
        out: list[bytes] = []
        err: list[str] = []
        readers = [threading.Thread(target=lambda: out.append(proc.stdout.read()), daemon=True),
                   threading.Thread(target=self._lines, args=(proc.stderr, err), daemon=True)]  # fmt: skip
        for t in readers:
            t.start()
        try:
            try:
                proc.wait(timeout=timeout)
                timed_out = False
            except subprocess.TimeoutExpired:
                timed_out = True
                _end_group(proc, signal.SIGTERM)
            for t in readers:
                t.join()
        except BaseException:  # KeyboardInterrupt, SystemExit in the caller: ffmpeg never outlives it
            _end_group(proc, signal.SIGTERM)
            raise
        finally:
            with self._lock:
                self._procs.pop(proc.pid, None)
                killed = proc.pid in self._killed
                self._killed.discard(proc.pid)
        stdout = b"".join(out).decode("utf-8", errors="backslashreplace")
        stderr = "".join(err)
        if timed_out:
            raise FFmpegTimeout(f"{what}: still running after {timeout:g} s: its process group was killed",
                                argv=argv, returncode=proc.returncode, stderr=stderr)  # fmt: skip
        if killed:
            raise FFmpegKilled(f"{what}: killed (the task was stopped)", argv=argv, returncode=proc.returncode,
                               stderr=stderr)  # fmt: skip
        if check and proc.returncode != 0:
            raise FFmpegError(f"{what}: exited with {proc.returncode}: {error_lines(stderr) or 'no detail'}",
                              argv=argv, returncode=proc.returncode, stderr=stderr)  # fmt: skip
        return subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)

    def _lines(self, stream, sink: list[str]) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="backslashreplace")
            sink.append(line)
            if self.on_line is not None:
                try:
                    self.on_line(line.rstrip("\r\n"))
                except Exception:  # noqa: BLE001 - a log that fails must not stop reading (ffmpeg would block)
                    pass


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def run_together(calls: list[Callable[[], object]], *, kill: Callable[[], object] | None = None) -> None:
    """Several commands at once: each call (one command through a Runner's run, a hook's) in a thread of its own.
    The first to fail ends the others (`kill`: ends every command running, e.g. Runner.kill) and its error is
    raised, not theirs (FFmpegKilled). Without `kill` the others run to their end first. One call runs inline."""
    if len(calls) == 1:
        calls[0]()
        return
    errors: list[BaseException] = []
    lock = threading.Lock()

    def one(call: Callable[[], object]) -> None:
        try:
            call()
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread below
            with lock:
                errors.append(e)

    threads = [threading.Thread(target=one, args=(c,), name=f"ffmpeg-{i}", daemon=True) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(timeout=0.2)
            if kill is not None and any(not isinstance(e, FFmpegKilled) for e in errors):
                kill()  # again while any is left: a command that started after the failure is ended too
    if errors:
        raise next((e for e in errors if not isinstance(e, FFmpegKilled)), errors[0])


def _end_group(proc: subprocess.Popen, sig: int) -> None:
    """Signal the process group `proc` leads; SIGKILL what is left of it once the leader has ended or KILL_GRACE_S
    has passed (a child that ignored the signal never outlives the command)."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + KILL_GRACE_S
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def run(argv: list[str], *, purpose: str | None = None, timeout: float | None = None, check: bool = False,
        progress=None, on_line: Callable[[str], None] | None = None) -> subprocess.CompletedProcess:  # fmt: skip
    """Run one command (a Runner of its own): see the module docstring."""
    return Runner(on_line=on_line).run(argv, purpose=purpose, timeout=timeout, check=check, progress=progress)
