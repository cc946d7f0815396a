"""The house's layout holds: include/mediaflow is the Airflow-free domain, tools/mediaflow_dev the dev and ops tooling.

An AST scan of every module under include/mediaflow fails, naming file and line, on any import (at module level or
inside a function) of Airflow, the plugins (`mediaflow_airflow`, `mediaflow_plugin`) or the tooling
(`mediaflow_dev`). Every tooling module imports in a fresh interpreter with PYTHONPATH include:plugins:tools, as the
Makefile sets it; the production image (Dockerfile, docker-compose.yaml) needs none of them.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
DOMAIN = PROJECT / "include" / "mediaflow"
TOOLS = PROJECT / "tools" / "mediaflow_dev"
FORBIDDEN = ("airflow", "mediaflow_airflow", "mediaflow_plugin", "mediaflow_dev")


def _forbidden(module: str | None) -> bool:
    return bool(module) and module.split(".")[0] in FORBIDDEN


def forbidden_imports(text: str, where: str) -> list[str]:
    """`where:line: import X` for each import in `text` of a package the domain must not know."""
    found = []
    for node in ast.walk(ast.parse(text, filename=where)):  # imports inside functions, classes and `if` blocks too
        if isinstance(node, ast.Import):
            found += [(node.lineno, f"import {a.name}") for a in node.names if _forbidden(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and _forbidden(node.module):
            found.append((node.lineno, f"from {node.module} import ..."))
    return [f"{where}:{line}: {what}" for line, what in sorted(found)]


def test_the_domain_imports_neither_airflow_nor_the_plugins_nor_the_tooling():
    sources = sorted(p for p in DOMAIN.rglob("*.py") if "__pycache__" not in p.parts)
    assert len(sources) > 10, sources  # the scan must see the domain, or it proves nothing
    problems = [hit for p in sources
                for hit in forbidden_imports(p.read_text(encoding="utf-8"), str(p.relative_to(PROJECT)))]  # fmt: skip
    assert problems == [], "the domain (include/mediaflow) must stay Airflow-free:\n" + "\n".join(problems)


def test_the_scan_finds_imports_at_module_level_and_inside_functions():
    text = ("import os\nimport airflow.sdk\nfrom mediaflow import ledger\n"
            "def f():\n    from mediaflow_dev.devstack import Stack\n    import mediaflow_plugin\n"
            "class C:\n    from mediaflow_airflow import hooks\n    from airflowish import x\n")  # fmt: skip
    assert forbidden_imports(text, "probe.py") == [
        "probe.py:2: import airflow.sdk", "probe.py:5: from mediaflow_dev.devstack import ...",
        "probe.py:6: import mediaflow_plugin", "probe.py:8: from mediaflow_airflow import ...",
    ]  # fmt: skip


TOOL_MODULES = sorted(p.stem for p in TOOLS.glob("*.py") if p.stem != "__init__")


def test_the_tooling_package_holds_the_moved_modules():
    assert set(TOOL_MODULES) >= {"devstack", "cluster", "runner", "bench", "upload", "samples", "smtp_sink",
                                 "pgserver", "s3local"}  # fmt: skip
    assert not any((DOMAIN / f"{m}.py").exists() for m in TOOL_MODULES), "a tooling module is back in the domain"


@pytest.mark.parametrize("module", TOOL_MODULES)
def test_each_tooling_module_imports_with_the_project_pythonpath(module):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(PROJECT / d) for d in ("include", "plugins", "tools"))}
    proc = subprocess.run([sys.executable, "-c", f"import mediaflow_dev.{module}"], env=env, cwd=PROJECT,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, f"mediaflow_dev.{module}: {proc.stderr[-1500:]}"


def test_the_production_image_needs_no_tooling():
    """The Dockerfile and docker-compose.yaml neither copy nor mount tools/ and run no `mediaflow_dev` module."""
    for name in ("Dockerfile", "docker-compose.yaml"):
        code = [ln.split("#", 1)[0] for ln in (PROJECT / name).read_text().splitlines()]
        used = [f"{name}:{n}: {ln.strip()}" for n, ln in enumerate(code, 1) if "mediaflow_dev" in ln or "tools" in ln]
        assert used == [], used


def test_no_function_over_80_lines_without_a_reason():
    """A function longer than 80 lines says why on the comment line above it (`# long: <reason>`); the rest are
    split. Tests are exempt."""
    unexplained = []
    for folder in ("include", "plugins", "dags", "tools"):
        for path in sorted((PROJECT / folder).rglob("*.py")):
            lines = path.read_text(encoding="utf-8").splitlines()
            for node in ast.walk(ast.parse("\n".join(lines))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno + 1 > 80:
                    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                    if not lines[first - 2].strip().startswith("# long:"):
                        length = node.end_lineno - node.lineno + 1
                        unexplained.append(f"{path.relative_to(PROJECT)}:{node.lineno} {node.name} ({length} lines)")
    assert not unexplained, "functions over 80 lines with no `# long: <reason>` above them: " + ", ".join(unexplained)


def test_every_test_module_has_a_name_of_its_own():
    """pytest imports test modules by their base name (rootdir, no packages): two test files of one name in different
    folders stop the whole suite at collection ("import file mismatch"), which has happened twice."""
    seen: dict[str, list[str]] = {}
    for path in sorted((Path(__file__).resolve().parents[1]).rglob("test_*.py")):
        seen.setdefault(path.name, []).append(str(path.relative_to(Path(__file__).resolve().parents[2])))
    assert not {name: where for name, where in seen.items() if len(where) > 1}
