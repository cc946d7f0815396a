"""`make deps`' Python installs, said aloud: the venv, the installer, the pinned set, each with its elapsed seconds.

Usage (the Makefile's deps rules): python -m mediaflow_dev.install --venv .venv [--installer uv==X|pip] [--what TEXT]
        -- <pip-install arguments>

It runs with the Python that makes the venv (before any of the project's packages exist), so it imports the standard
library only. It creates the venv when it has no python yet, then installs the arguments with uv when --installer
names a pinned uv (uv itself is first installed into the venv with the venv's pip: nothing outside the project's files
is assumed) and with pip otherwise, or when uv cannot be installed. uv installs the pinned set 3 to 4 times faster than
pip (docs/performance.md, "The first run"); MEDIAFLOW_INSTALLER=pip picks pip. While it installs it prints what it is
doing every PROGRESS_EVERY seconds (packages resolved, MB downloaded, the venv's size) and at the end how long each
step took. A failed install prints the installer's last lines.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import threading
import time
import venv
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

PROGRESS_EVERY = 15.0  # seconds between progress lines while an installer is quiet
TAG = "[deps]"

# what the installers print that tells progress (pip without --quiet, uv without a terminal)
_PIP_COLLECTING = re.compile(r"^Collecting (\S+)")
_SIZE = re.compile(r"\((\d+(?:\.\d+)?)\s*([kKMG])i?B\)")  # pip "(12.3 MB)", uv "(12.3MiB)"
_PIP_DOWNLOADING = re.compile(r"^\s*Downloading \S+")
_PIP_INSTALLING = re.compile(r"^Installing collected packages: (.*)$")
_PIP_DONE = re.compile(r"^Successfully installed (.*)$")
_UV_DOWNLOADING = re.compile(r"^\s*Downloading (\S+) \(")
_UV_SUMMARY = re.compile(r"^(Resolved|Prepared|Installed|Uninstalled|Audited|Built) (\d+) packages?\b.*$")
_UV_COMPILED = re.compile(r"^Bytecode compiled \d+ files\b.*$")
_UNITS = {"k": 1 / 1024, "K": 1 / 1024, "M": 1.0, "G": 1024.0}


def elapsed(seconds: float) -> str:
    """Elapsed time as make run prints it: whole seconds, with minutes from 100 s on ("45s", "2m05s")."""
    s = max(0, round(seconds))
    return f"{s}s" if s < 100 else f"{s // 60}m{s % 60:02d}s"


def megabytes(mb: float) -> str:
    return f"{mb / 1024:.1f} GB" if mb >= 1024 else f"{mb:.0f} MB"


def dir_mb(path: Path) -> float:
    """The size of the files under `path` in MB (0 when it does not exist); symlinks are not followed."""
    total = 0
    stack = [path]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
        except OSError:
            continue
    return total / 2**20


@dataclass
class InstallProgress:
    """What an installer's output has said so far, read line by line (pip's or uv's), and the line to show for it."""

    expected: int = 0  # packages the constraints pin (an upper bound of what is installed), 0 if unknown
    collected: int = 0
    downloaded_mb: float = 0.0
    phase: str = "resolving"
    installed: int | None = None
    said: list[str] = field(default_factory=list)  # lines worth passing on as they come (uv's phase summaries)

    def feed(self, line: str) -> None:
        line = line.rstrip()
        if m := _PIP_COLLECTING.match(line):
            self.collected += 1
            self.phase = "collecting"
        elif _PIP_DOWNLOADING.match(line) or _UV_DOWNLOADING.match(line):
            if m := _SIZE.search(line):
                self.downloaded_mb += float(m.group(1)) * _UNITS[m.group(2)]
        elif m := _PIP_INSTALLING.match(line):
            self.collected = max(self.collected, len(m.group(1).split(", ")))
            self.phase = "installing"
        elif m := _PIP_DONE.match(line):
            self.installed = len(m.group(1).split())
            self.phase = "done"
        elif m := _UV_SUMMARY.match(line):
            n = int(m.group(2))
            verb = m.group(1)
            if verb == "Resolved":
                self.collected = n
                self.phase = "downloading"
            elif verb == "Prepared":
                self.phase = "installing"
            elif verb in ("Installed", "Audited"):
                self.installed = n
                self.phase = "compiling .pyc files"  # when asked to (UV_COMPILE_BYTECODE), uv does it last
            self.said.append(line)
        elif _UV_COMPILED.match(line):
            self.phase = "done"
            self.said.append(line)

    def status(self) -> str:
        """One line on where the install is: "collecting: 120 of ~241 packages, 310 MB downloaded"."""
        of = f" of ~{self.expected}" if self.expected and self.collected <= self.expected else ""
        parts = [f"{self.phase}: {self.collected}{of} packages"]
        if self.downloaded_mb:
            parts.append(f"{megabytes(self.downloaded_mb)} downloaded")
        return ", ".join(parts)


def pinned_count(args: list[str], cwd: Path) -> int:
    """How many packages the -c files among `args` pin (what a full install of the pinned set comes to)."""
    n = 0
    for flag, value in zip(args, args[1:], strict=False):
        if flag in ("-c", "--constraint"):
            text = (cwd / value).read_text()
            n += sum(1 for ln in text.splitlines() if "==" in ln and not ln.lstrip().startswith("#"))
    return n


class Step:
    """A timed step: prints what it starts, and on `done` how long it took; `say` prints with the elapsed time."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.started = time.monotonic()
        print(f"{TAG} {what} ...", flush=True)

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def say(self, text: str) -> None:
        print(f"{TAG} {elapsed(self.seconds):>6}  {text}", flush=True)

    def done(self, result: str = "done") -> float:
        s = self.seconds
        print(f"{TAG} {self.what}: {result} in {elapsed(s)}", flush=True)
        return s


def _run_quiet(argv: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, env=env)


def ensure_venv(path: Path, times: dict[str, float]) -> Path:
    python = path / "bin" / "python"
    if not python.exists():
        step = Step(f"creating {path} (Python {sys.version.split()[0]}, with pip)")
        venv.EnvBuilder(with_pip=True).create(path)
        times["venv"] = step.done()
    return python


def ensure_uv(path: Path, pin: str, times: dict[str, float]) -> Path | None:
    """The venv's uv at the pinned version, installed by the venv's pip when missing; None when that fails."""
    uv = path / "bin" / "uv"
    version = pin.partition("==")[2]
    if uv.exists() and version in _run_quiet([str(uv), "--version"]).stdout:
        return uv
    step = Step(f"installing the installer, {pin}, with pip")
    proc = _run_quiet([str(path / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", pin])
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        step.done(f"failed ({last[0]}); going on with pip instead")
        return None
    times["uv"] = step.done()
    return uv


def install(python: Path, uv: Path | None, args: list[str], what: str, times: dict[str, float]) -> int:
    # where the install lands: the venv, or the --target folder
    venv_dir = Path(args[args.index("--target") + 1]) if "--target" in args else python.parent.parent
    tool = "uv" if uv else "pip"
    if uv:
        argv = [str(uv), "pip", "install", "--python", str(python), *args]
    else:
        argv = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off", *args]
    progress = InstallProgress(expected=pinned_count(args, Path.cwd()))
    step = Step(f"installing {what} with {tool}")
    tail: deque[str] = deque(maxlen=40)
    env = dict(os.environ)
    env.setdefault("UV_NO_PROGRESS", "1")
    # the .pyc files now, as pip writes them: left to the first imports, Airflow's first boot would compile them (in
    # each of its processes at once)
    env.setdefault("UV_COMPILE_BYTECODE", "1")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, env=env)
    lock = threading.Lock()
    finished = threading.Event()
    start_mb = dir_mb(venv_dir)

    def ticker() -> None:
        while not finished.wait(PROGRESS_EVERY):
            grown = dir_mb(venv_dir) - start_mb
            with lock:
                line = progress.status()
            step.say(f"{line}; {venv_dir} +{megabytes(grown)}")

    thread = threading.Thread(target=ticker, daemon=True)
    thread.start()
    assert proc.stdout is not None
    for line in proc.stdout:
        tail.append(line.rstrip())
        with lock:
            progress.feed(line)
            said, progress.said = progress.said, []
        for text in said:
            step.say(f"{tool}: {text}")
    rc = proc.wait()
    finished.set()
    thread.join()
    if rc != 0:
        print(f"{TAG} {tool} failed (exit {rc}); its last lines:", file=sys.stderr)
        print("\n".join(tail), file=sys.stderr, flush=True)
        return rc
    n = progress.installed if progress.installed is not None else progress.collected
    times[what] = step.done(f"{n} packages, {venv_dir} now {megabytes(dir_mb(venv_dir))}")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m mediaflow_dev.install", description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, required=True)
    parser.add_argument("--installer", default="pip", help="uv==X (a pinned uv, installed into the venv) or pip")
    parser.add_argument("--what", default="the pinned set", help="what the arguments install, for the messages")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="-- then pip-install arguments")
    ns = parser.parse_args(argv)
    args = ns.args[1:] if ns.args[:1] == ["--"] else ns.args
    installer = os.environ.get("MEDIAFLOW_INSTALLER") or ns.installer
    started = time.monotonic()
    times: dict[str, float] = {}
    python = ensure_venv(ns.venv, times)
    uv = ensure_uv(ns.venv, installer, times) if installer.startswith("uv==") else None
    if rc := install(python, uv, args, ns.what, times):
        return rc
    if len(times) > 1:
        steps = ", ".join(f"{k} {elapsed(v)}" for k, v in times.items())
        print(f"{TAG} {ns.venv} ready in {elapsed(time.monotonic() - started)} ({steps})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
