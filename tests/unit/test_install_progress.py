"""What a first `make run` / `make test` prints while it installs and boots (issue 22, "A first run you can watch"):
mediaflow_dev.install's reading of pip's and uv's output, its progress and timing lines from a real install, and the
stack's boot line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

from mediaflow_dev import install
from mediaflow_dev.devstack import Stack, boot_line
from mediaflow_dev.install import InstallProgress, elapsed

PROJECT = Path(__file__).resolve().parents[2]


def test_elapsed_is_whole_seconds_then_minutes():
    assert [elapsed(s) for s in (0, 0.4, 7.6, 99.4, 100, 125, 3600)] == [
        "0s", "0s", "8s", "99s", "1m40s", "2m05s", "60m00s",
    ]  # fmt: skip


def test_pip_output_becomes_packages_collected_downloaded_and_installed():
    p = InstallProgress(expected=241)
    for line in (
        "Collecting apache-airflow==3.3.2 (from -r requirements.txt (line 4))",
        "  Downloading apache_airflow-3.3.2-py3-none-any.whl (12.5 MB)",
        "WARNING: Location 'file:///opt/pypi/simple/moto/' is ignored: it is neither a file nor a directory.",
        "Collecting pyarrow==26.0.1",
        "  Downloading pyarrow-26.0.1-cp311-cp311-manylinux_2_28_x86_64.whl (42.3 MB)",
        "Collecting six==1.17.0",
        "  Using cached six-1.17.0-py2.py3-none-any.whl (11 kB)",
    ):
        p.feed(line)
    assert p.status() == "collecting: 3 of ~241 packages, 55 MB downloaded"
    p.feed("Installing collected packages: six, pyarrow, apache-airflow, moto\n")
    assert p.phase == "installing" and p.collected == 4
    p.feed("Successfully installed apache-airflow-3.3.2 moto-5.2.5 pyarrow-26.0.1 six-1.17.0")
    assert (p.phase, p.installed, p.said) == ("done", 4, [])


def test_uv_output_passes_its_phase_lines_on():
    p = InstallProgress(expected=241)
    for line in (
        "Using Python 3.11.7 environment at: .venv",
        "Resolved 238 packages in 3.21s",
        "Downloading pyarrow (40.1MiB)",
        "Downloading apache-airflow-core (5.2MiB)",
        " Downloaded apache-airflow-core",
        "Prepared 238 packages in 48.10s",
        "Installed 238 packages in 2.05s",
        " + aiohttp==3.13.2",
    ):
        p.feed(line)
    assert p.said == ["Resolved 238 packages in 3.21s", "Prepared 238 packages in 48.10s",
                      "Installed 238 packages in 2.05s"]  # fmt: skip
    assert (p.phase, p.installed, round(p.downloaded_mb, 1)) == ("compiling .pyc files", 238, 45.3)
    p.feed("Bytecode compiled 17456 files in 61.20s")
    assert p.phase == "done" and p.said[-1] == "Bytecode compiled 17456 files in 61.20s"


def test_the_pinned_count_is_what_the_constraints_pin():
    pins = [ln for ln in (PROJECT / "constraints.txt").read_text().splitlines() if "==" in ln and ln[0] != "#"]
    args = ["-r", "requirements-dev.txt", "-c", "constraints.txt"]
    assert install.pinned_count(args, PROJECT) == len(pins) > 200
    assert install.pinned_count(["-r", "requirements-ffmpeg.txt"], PROJECT) == 0


def _wheel(folder: Path, name: str = "mf_tiny", version: str = "1.0") -> Path:
    """A real (pure-Python) wheel, made here so the install needs no index."""
    path = folder / f"{name}-{version}-py3-none-any.whl"
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": "VALUE = 42\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{f},,\n" for f in files) + f"{dist}/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as z:
        for f, text in {**files, f"{dist}/RECORD": record}.items():
            z.writestr(f, text)
    return path


def test_an_install_says_what_it_installs_and_how_long_it_took(tmp_path, capsys):
    """A real install with the venv's pip (no index: a wheel made here) into a folder, as make deps installs the
    scorer's ffmpeg: the start, the installer, the package count and the elapsed seconds are printed."""
    wheel = _wheel(tmp_path)
    venv = Path(sys.prefix)
    target = tmp_path / "target"
    rc = install.main(["--venv", str(venv), "--installer", "pip", "--what", "a tiny wheel", "--",
                       "--no-index", "--no-deps", "--target", str(target), str(wheel)])  # fmt: skip
    out = capsys.readouterr().out.splitlines()
    assert rc == 0 and (target / "mf_tiny" / "__init__.py").read_text() == "VALUE = 42\n"
    assert out[0] == "[deps] installing a tiny wheel with pip ...", out
    assert out[-1].startswith("[deps] installing a tiny wheel with pip: 1 packages, ") and out[-1].endswith("s"), out


def test_a_failed_install_shows_the_installers_own_words(tmp_path, capsys):
    rc = install.main(["--venv", sys.prefix, "--installer", "pip", "--", "--no-index", "--target", str(tmp_path),
                       str(tmp_path / "missing-1.0-py3-none-any.whl")])  # fmt: skip
    err = capsys.readouterr().err
    assert rc != 0 and "pip failed" in err and "missing-1.0-py3-none-any.whl" in err, err


def test_make_deps_installs_through_the_script_with_a_pinned_uv():
    makefile = (PROJECT / "Makefile").read_text()
    pin = next(ln for ln in makefile.splitlines() if ln.startswith("UV_PIN"))
    assert pin.split(":=")[1].split()[0].startswith("uv=="), pin
    assert "$(PYTHON) -m mediaflow_dev.install --venv $(VENV) --installer $(UV_PIN)" in makefile
    # the script runs before any package of the project exists: the standard library only
    source = (PROJECT / "tools" / "mediaflow_dev" / "install.py").read_text()
    imports = {ln.split()[1].split(".")[0] for ln in source.splitlines() if ln.startswith(("import ", "from "))}
    assert imports <= set(sys.stdlib_module_names) | {"__future__"}, imports


def test_the_boot_line_names_the_seconds_and_what_runs():
    assert boot_line(31.2, ["scheduler", "dag-processor"]) == (
        "[stack] airflow: booting, 31s so far (scheduler, dag-processor running; waiting for its API to answer)"
    )
    assert "no component running yet" in boot_line(10, [])


def test_the_boot_line_finds_the_components_among_the_stacks_airflow_processes(tmp_path):
    """Real processes under a stand-in for `airflow standalone` (argv as Airflow's; the API server retitles itself
    `airflow api_server -- host:...`): the stack names the ones running, in its order."""
    code = (
        "import subprocess, sys, time\n"
        "kids = [subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', 'airflow', c])\n"
        "        for c in ('api_server', 'scheduler')]\n"
        "print('up', flush=True); time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert parent.stdout.readline() == "up\n"
        stack = Stack(state_dir=tmp_path / "state", out_dir=tmp_path / "out", airflow_port=1, s3_port=1, smtp_port=1)
        stack.pid_file("airflow").parent.mkdir(parents=True, exist_ok=True)
        stack.pid_file("airflow").write_text(str(parent.pid))
        assert stack._airflow_components() == ["scheduler", "api-server"]
    finally:
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()


def test_without_uv_the_install_falls_back_to_pip_and_says_so(tmp_path, monkeypatch, capsys):
    """A fresh venv whose pip cannot get the pinned uv (no index here): the install goes on with pip, and says so."""
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.delenv("MEDIAFLOW_INSTALLER", raising=False)
    wheel = _wheel(tmp_path)
    target = tmp_path / "target"
    rc = install.main(["--venv", str(tmp_path / "venv"), "--installer", "uv==0.13.8", "--what", "a tiny wheel", "--",
                       "--no-index", "--no-deps", "--target", str(target), str(wheel)])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0 and (target / "mf_tiny" / "__init__.py").exists(), out
    assert "installing the installer, uv==0.13.8, with pip: failed" in out and "going on with pip instead" in out, out
    assert "[deps] installing a tiny wheel with pip ..." in out and not (tmp_path / "venv" / "bin" / "uv").exists()
    assert f"[deps] {tmp_path / 'venv'} ready in " in out, out  # the steps' times: venv, then the set
