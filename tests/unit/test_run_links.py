"""The links between a batch run and the runs it started (DagRun notes), and how the official client's failures
sort into the batch's retry policy."""

from __future__ import annotations

import socket

import pytest

from mediaflow import batch, run_links

BATCH_DAG = "nightly_content_batch"


def _entries(n: int, *, pending: int = 0) -> list[dict]:
    rows = [
        {"delivery_id": f"clip_{i:03d}", "value_stream": "news_clip", "dag_id": "value_stream__news_clip",
         "run_id": f"nightly__2026-12-04__clip_{i:03d}", "priority": "normal", "created": True, "status": "triggered"}
        for i in range(n)
    ]  # fmt: skip
    for row in rows[n - pending :] if pending else []:
        row.update(status="pending", created=False, reason="HTTP 503")
    return rows


def test_a_started_run_links_back_to_its_batch_run_relative_to_the_ui_base():
    note = run_links.started_by_note(BATCH_DAG, "scheduled__2026-12-04T02:00:00+00:00")
    # relative (no leading slash): Airflow's UI resolves it against its <base href>, subpath included
    assert note == (
        "Started by batch [scheduled\\_\\_2026-12-04T02:00:00\\+00:00]"
        "(dags/nightly_content_batch/runs/scheduled__2026-12-04T02%3A00%3A00%2B00%3A00)"
    )


def test_a_small_batch_note_links_every_run_it_started():
    note = run_links.batch_note(_entries(3), run_id_prefix="nightly__2026-12-04__")
    # one line: the run page shows a note's first line until it is opened
    assert note == (
        "**Started 3 value-stream runs** ([all runs named nightly\\_\\_2026-12-04\\_\\_…]"
        "(dag_runs?run_id_pattern=nightly__2026-12-04__)): "
        + ", ".join(
            f"[clip\\_00{i}](dags/value_stream__news_clip/runs/nightly__2026-12-04__clip_00{i})" for i in range(3)
        )
    )


def test_a_night_of_hundreds_fits_airflows_note_limit_and_says_how_many_more():
    note = run_links.batch_note(_entries(300, pending=4), run_id_prefix="nightly__2026-12-04__")
    assert len(note) <= run_links.NOTE_MAX
    listed = note.count("](dags/")
    assert 3 <= listed < 296
    first, _, rest = note.partition("\n")
    assert first.startswith("**Started 296 value-stream runs** ([all runs named")
    assert "2026-12-04__)): [clip\\_000](" in first and first.endswith(f", and {296 - listed} more")
    assert rest.strip().startswith("**4 left pending**") and "clip\\_299" in rest


def test_a_run_that_existed_already_says_so():
    rows = _entries(2)
    rows[1]["created"] = False
    note = run_links.batch_note(rows)
    assert note.endswith(
        "[clip\\_001](dags/value_stream__news_clip/runs/nightly__2026-12-04__clip_001) (started before)"
    )
    assert "dag_runs?" not in note  # no prefix given: no list link


def test_the_official_clients_failures_sort_into_the_batchs_retry_policy():
    from mediaflow_airflow.runs_api import CallError, RunsApi

    assert batch.trigger_retryable(CallError("POST /x: HTTP 503: busy", 503))
    assert batch.trigger_retryable(CallError("POST /x: HTTP 404: no such DAG", 404))  # the DAG re-parsed
    assert not batch.trigger_retryable(CallError("POST /x: HTTP 400: bad conf", 400))  # a conf the DAG refuses
    with socket.socket() as s:  # a port nobody listens on: no answer at all
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectionError) as err:
        RunsApi(f"http://127.0.0.1:{port}", "u", "p").trigger_once("d", "r", {})
    assert err.value.status is None and batch.trigger_retryable(err.value)


def test_an_error_answer_reads_as_one_line_with_its_status():
    import airflow_client.client as ac

    from mediaflow_airflow.runs_api import CallError, _answered

    with pytest.raises(CallError) as err, _answered("POST", "/api/v2/dags/d/dagRuns"):
        raise ac.ApiException(status=503, reason="Service Unavailable")
    assert str(err.value) == "POST /api/v2/dags/d/dagRuns: HTTP 503: Service Unavailable" and err.value.status == 503
