"""One name per idea: no DAG id or task id is spelled as a string literal outside mediaflow.names.

Renaming a task in the factory must not silently stop the ledger, the listener or the runner from finding it, so
every DAG id, task id and the value-stream DAG id prefix is written once, in include/mediaflow/names.py, and
imported everywhere else. This scans the Python source of include/, plugins/, dags/ and tools/ (ast string
constants, f-string pieces included) and names file:line and the literal of each one found elsewhere.
Docstrings and other bare string statements are documentation and exempt; tests are not scanned.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from mediaflow import names

PROJECT = Path(__file__).resolve().parents[2]
ROOTS = ("include", "plugins", "dags", "tools")
NAMES_FILE = PROJECT / "include" / "mediaflow" / "names.py"

# Short task ids that are also ordinary words of the domain (a manifest's `locales`, a check result's `loudness`,
# the spec's `loudness:` settings, a manifest's `metadata`): checked only in their full form (`compliance.loudness`).
WORDS = {names.LOCALES, *names.CHECKS}

# (file, literal) -> why: a literal that equals a name but means something else.
ALLOWED = {
    ("plugins/mediaflow_airflow/dashboard.py", names.POSTERS_DAG): "the feedback API's JSON field of that name",
}


def _short(full_id: str) -> str:
    return full_id.rpartition(names.GROUP_SEPARATOR)[2]


def forbidden() -> set[str]:
    """Every DAG id and task id (full and short), except the ordinary words."""
    tasks = set(names.VALUE_STREAM_TASK_IDS) | {t for ts in names.TASKS_OF.values() for t in ts}
    return set(names.SERVICE_DAGS) | tasks | ({_short(t) for t in tasks} - WORDS)


# `compliance.rights`, `ingest.ingest_`, or an f-string's `review.` piece: a task id spelled by its group
QUALIFIED = re.compile(rf"^(?:{'|'.join(map(re.escape, names.STAGE_ORDER))})\.[a-z0-9_]*$")
# a value-stream DAG id (or its prefix) anywhere in a string; `value_stream__<stream>` in prose is a placeholder
STREAM_DAG = re.compile(rf"{re.escape(names.VALUE_STREAM_DAG_PREFIX)}(?!<)")
# the pieces of f"{branch}_policy" / f"{branch}_approval"
SUFFIXES = {names.POLICY_SUFFIX, names.APPROVAL_SUFFIX}


def _documentation(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings or other bare string statements (no effect at runtime)."""
    return {id(node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)}  # fmt: skip


def literals(source: str, *, filename: str = "<source>") -> list[tuple[int, str]]:
    """(line, literal) of every string constant in `source` that spells a DAG id or task id."""
    tree = ast.parse(source, filename=filename)
    docs, bad, out = _documentation(tree), forbidden(), []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)) or id(node) in docs:
            continue
        text = node.value
        if text in bad or text in SUFFIXES or QUALIFIED.match(text) or STREAM_DAG.search(text):
            out.append((node.lineno, text))
    return sorted(out)


def sources() -> list[Path]:
    return sorted(p for root in ROOTS if (PROJECT / root).is_dir() for p in (PROJECT / root).rglob("*.py")
                  if p != NAMES_FILE and ".venv" not in p.parts)  # fmt: skip


def test_no_dag_or_task_id_is_spelled_outside_names():
    found = []
    for path in sources():
        rel = path.relative_to(PROJECT).as_posix()
        for line, text in literals(path.read_text(encoding="utf-8"), filename=rel):
            if (rel, text) not in ALLOWED:
                found.append(f"{rel}:{line}: {text!r}")
    assert not found, "DAG/task ids spelled as literals; import them from mediaflow.names instead:\n" + "\n".join(found)


def test_the_scan_sees_the_code_that_uses_the_names():
    scanned = {p.relative_to(PROJECT).as_posix() for p in sources()}
    assert "plugins/mediaflow_airflow/value_stream.py" in scanned and "plugins/mediaflow_airflow/listener.py" in scanned
    assert any(p.startswith("dags/") for p in scanned)
    for rel, _ in ALLOWED:  # an allowance for a file that is gone is stale
        assert rel in scanned, rel


def test_the_scan_catches_each_way_of_spelling_an_id():
    source = '''
"""A docstring may say value_stream__series_episode, compliance.rights and outcome."""
def f(ti, branch, stream, c):
    """So may this one: nightly_content_batch."""
    ti.xcom_pull(task_ids="ingest.ingest_delivery")
    ti.xcom_pull(task_ids=f"compliance.{c}")
    ti.xcom_pull(task_ids=f"review.{branch}_approval")
    dag_id = f"value_stream__{stream}"
    url = "/api/v2/dags/value_stream__news_clip/dagRuns"
    if ti.task_id == "outcome" or ti.task_id.startswith("ingest.ingest_"):
        return "nightly_content_batch", "trigger_runs"
    return {"loudness": 1, "locales": [], "note": "runs value_stream__<stream> per delivery"}
'''
    assert literals(source) == sorted([
        (5, "ingest.ingest_delivery"), (6, "compliance."), (7, "review."), (7, "_approval"), (8, "value_stream__"),
        (9, "/api/v2/dags/value_stream__news_clip/dagRuns"), (10, "outcome"), (10, "ingest.ingest_"),
        (11, "nightly_content_batch"), (11, "trigger_runs"),
    ])  # fmt: skip


def test_the_value_stream_dag_id_round_trips():
    assert names.value_stream_dag_id("series_episode") == "value_stream__series_episode"
    assert names.stream_of(names.value_stream_dag_id("news_clip")) == "news_clip"
    assert names.stream_of(names.CONTENT_BATCH_DAG) is None
    assert names.stage_of(names.TRANSCODE_ID) == names.TRANSCODE and names.stage_of(names.OUTCOME) is None
    assert names.branch_of_approval(names.approval_id(names.LEGAL)) == names.LEGAL


def test_names_are_unique_where_they_must_be():
    full = names.VALUE_STREAM_TASK_IDS
    assert len(set(full)) == len(full)
    assert len(set(names.SERVICE_DAGS)) == len(names.SERVICE_DAGS)
    assert set(names.TASKS_OF) == set(names.SERVICE_DAGS)
    assert not any(d.startswith(names.VALUE_STREAM_DAG_PREFIX) for d in names.SERVICE_DAGS)
    assert {names.stage_of(t) for t in full} - {None} == set(names.STAGE_ORDER)
    assert set(names.CHECKS_OF) == set(names.BRANCHES) and sorted(
        c for cs in names.CHECKS_OF.values() for c in cs
    ) == sorted(names.CHECKS)


def test_names_is_stdlib_only():
    tree = ast.parse(NAMES_FILE.read_text(encoding="utf-8"))
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= {"__future__"}, imported
