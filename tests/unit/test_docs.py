"""The docs a newcomer reads: a README short enough for five minutes, every link and path in them real.

Checks: README.md is at most 150 lines; docs/architecture.md and docs/contracts.md exist; every relative link in
README.md and docs/*.md resolves to a file (and, for a Markdown file, its #anchor to a heading); every
include/, plugins/ and dags/ path named in docs/architecture.md exists, and so does every module file (`hooks.py`),
class (`IngestOperator`) and domain function (`flow.ingest`) it names; every `make <target>` in README.md is a
Makefile target.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
MARKDOWN = [README, *DOCS]

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
CODE_SPAN = re.compile(r"`[^`\n]*`")


def _prose(text: str) -> str:
    """The text without fenced code blocks (a link-looking thing inside a code block is not a link)."""
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (but - and _), spaces to hyphens."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in _prose(path.read_text(encoding="utf-8")).splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(path: Path) -> list[str]:
    return LINK.findall(_prose(path.read_text(encoding="utf-8")))


def test_readme_is_a_five_minute_read():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines; move detail into docs/ (at most 150)"


@pytest.mark.parametrize("name", ["architecture.md", "contracts.md"])
def test_core_docs_exist(name):
    assert (ROOT / "docs" / name).is_file(), f"docs/{name} is missing"


def test_readme_links_every_doc():
    targets = {Path(t.split("#", 1)[0]).name for t in links(README) if t.startswith("docs/")}
    missing = [d.name for d in DOCS if d.name not in targets]
    assert not missing, f"README.md's 'where to go next' does not link {missing}"


@pytest.mark.parametrize("doc", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc):
    broken = []
    for target in links(doc):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:, s3:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (doc.parent / file_part).resolve() if file_part else doc
        if not dest.exists():
            broken.append(f"{target}: no file {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.relative_to(ROOT)}")
    assert not broken, f"{doc.relative_to(ROOT)}: broken links:\n" + "\n".join(broken)


def architecture_paths() -> list[str]:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    found = set()
    for m in re.finditer(r"(?<![\w./-])((?:include|plugins|dags|tools)/[\w./<>*-]*)", text):
        path = m.group(1).rstrip(".")
        if any(c in path for c in "<>*"):  # a pattern such as include/streams/<name>.yaml
            continue
        found.add(path.rstrip("/"))
    return sorted(found)


def test_architecture_names_paths_that_exist():
    paths = architecture_paths()
    assert any(p.startswith("include/mediaflow/") for p in paths) and any(p.startswith("dags/") for p in paths)
    missing = [path for path in paths if not (ROOT / path).exists()]
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"


def _code_dirs() -> list[Path]:
    return [
        ROOT / "include" / "mediaflow",
        ROOT / "plugins" / "mediaflow_airflow",
        ROOT / "plugins",
        ROOT / "dags",
        ROOT / "tools" / "mediaflow_dev",
    ]


def _defines(source: str, name: str) -> bool:
    return (
        re.search(rf"^\s*(?:async\s+def|def|class)\s+{re.escape(name)}\b|^{re.escape(name)}\s*[:=]", source, re.M)
        is not None
    )


def test_architecture_names_modules_classes_and_functions_that_exist():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    sources = {p: p.read_text(encoding="utf-8") for d in _code_dirs() if d.is_dir() for p in d.glob("*.py")}
    missing = []
    # module files named bare, e.g. `hooks.py`
    for name in sorted(set(re.findall(r"`(\w+\.py)`", text))):
        if not any(p.name == name for p in sources):
            missing.append(name)
    # classes, e.g. `IngestOperator`, `StageSlaTrigger`
    for name in sorted(set(re.findall(r"`([A-Z][a-z]+[A-Z]\w*)`", text))):
        if not any(re.search(rf"^class {name}\b", s, re.M) for s in sources.values()):
            missing.append(name)
    # the domain functions of the "where each stage lives" table (last column), e.g. `flow.ingest`, `ledger.Ledger.record_attempt`
    domain = ROOT / "include" / "mediaflow"
    for row in re.findall(r"^\|(.*)\|\s*$", text, re.M):
        cells = row.split("|")
        for ref in re.findall(r"`(\w+(?:\.\w+)+)`", cells[-1]):
            module, *_, name = ref.split(".")
            path = domain / f"{module}.py"
            if path.is_file() and not _defines(sources.get(path) or path.read_text(encoding="utf-8"), name):
                missing.append(ref)
    assert not missing, f"docs/architecture.md names what the code does not have: {missing}"


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return {t for line in re.findall(r"^([\w.-][\w .-]*):(?!=)", text, re.M) for t in line.split()}


def test_readme_make_targets_exist():
    text = README.read_text(encoding="utf-8")
    named = set(re.findall(r"\bmake\s+(?:[A-Z_][A-Z0-9_]*=\S+\s+)*([a-z][\w-]*)", text))
    assert {"run", "test"} <= named, "README.md must show `make run` and `make test`"
    missing = sorted(named - make_targets())
    assert not missing, f"README.md names make targets the Makefile does not have: {missing}"
