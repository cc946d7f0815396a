"""Links between a batch run and the value-stream runs it started, as DagRun notes (markdown, shown on a run's page
in Airflow's UI). Links are relative to the UI's base URL: Airflow's UI sets `<base href>` to it, so they work
under a subpath (AIRFLOW__API__BASE_URL with a path) with nothing configured here. Plain Python, no Airflow imports."""

from __future__ import annotations

import re
from urllib.parse import quote, urlencode

NOTE_MAX = 1000  # characters: Airflow's limit on a DagRun note (the API refuses a longer one)
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+!|<>~])")


def _md(text: str) -> str:
    """Text shown as is inside markdown (run ids are full of `__`, which would turn bold)."""
    return _MARKDOWN.sub(r"\\\1", text)


def run_path(dag_id: str, run_id: str) -> str:
    """A run's page in Airflow's UI, relative to the UI's base URL."""
    return f"dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def runs_list_path(run_id_pattern: str) -> str:
    """The UI's list of DAG runs (every DAG) whose run id contains `run_id_pattern`."""
    return "dag_runs?" + urlencode({"run_id_pattern": run_id_pattern})


def started_by_note(batch_dag_id: str, batch_run_id: str) -> str:
    """The note of a run a batch started: a link back to that batch run."""
    return f"Started by batch [{_md(batch_run_id)}]({run_path(batch_dag_id, batch_run_id)})"


def batch_note(results: list[dict], *, run_id_prefix: str | None = None, limit: int = NOTE_MAX) -> str:
    """The batch run's note. Its first line (all the run page shows until the note is opened) links to the UI's run
    list filtered on the batch's run-id prefix, then to each run the batch started (`trigger_all`'s entries; runs that
    existed already say so), as many as fit in Airflow's note limit, then "and N more"; a second paragraph names the
    deliveries left pending."""
    started = [r for r in results if r.get("status") != "pending"]
    pending = [r for r in results if r.get("status") == "pending"]
    head = f"**Started {len(started)} value-stream run{'s' if len(started) != 1 else ''}**"
    every = (
        f" ([all runs named {_md(run_id_prefix)}…]({runs_list_path(run_id_prefix)}))"
        if run_id_prefix and started
        else ""
    )
    tail = ""
    if pending:
        ids = ", ".join(_md(p["delivery_id"]) for p in pending[:5]) + (", …" if len(pending) > 5 else "")
        tail = f"\n\n**{len(pending)} left pending** (not started; the batch's mail says why): {ids}"
    links = [
        f"[{_md(r['delivery_id'])}]({run_path(r['dag_id'], r['run_id'])})"
        + ("" if r.get("created", True) else " (started before)")
        for r in started
    ]
    shown: list[str] = []
    for i, link in enumerate(links):
        rest = len(links) - i - 1
        more = f", and {rest} more" if rest else ""
        if len(head) + 2 + len(", ".join([*shown, link])) + len(more) + len(every) + len(tail) > limit:
            break
        shown.append(link)
    line = head + every + (": " + ", ".join(shown) if shown else "")
    if len(shown) < len(links):
        line += f"{',' if shown else ''} and {len(links) - len(shown)} more"
    note = line + tail
    return note if len(note) <= limit else note[: limit - 1] + "…"
