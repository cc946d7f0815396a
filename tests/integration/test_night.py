"""A night at the scale users run it, on the real stack (the session's `night` fixture, tests/conftest.py): 64
generated deliveries dropped at once (mixed codecs and containers from 360p to 1080p, captions, extra audio, broken
uploads, titles for a person; samples.generate_night) and run as `make run DELIVERIES=DIR` runs them: one nightly batch, one value-stream run per valid delivery. Every
delivery ends with the status and reason it should have, none `failed`; the batch run succeeded; no DAG was
deactivated and no DAG file parse was killed meanwhile. No timing assertions: the time and CPU it took are printed
(`-s`) for docs/performance.md. The titles are 2-4 s, mostly small, a few 1080p, to keep `make test` cheap;
`make bench BENCH=night` runs the long ones."""

from __future__ import annotations

import pytest

from mediaflow_dev import bench, runner

pytestmark = pytest.mark.integration


def test_every_delivery_ends_with_its_status_and_reason(night):
    by_id = {a["delivery_id"]: a for a in night["summary"]["assets"]}
    failed = {d: a["reasons"] for d, a in by_id.items() if a["status"] == "failed"}
    assert not failed, f"the system failed these deliveries: {failed}"
    wrong = []
    for d in night["expected"]:
        a = by_id.get(d.delivery_id)
        if a is None:
            wrong.append((d.delivery_id, d.kind, "no outcome at all"))
        elif a["status"] != d.status or (d.reason and not any(d.reason in r for r in a["reasons"])):
            wrong.append(
                (d.delivery_id, d.kind, f"expected {d.status} ({d.reason}), got {a['status']}: {a['reasons']}")
            )
    assert not wrong, wrong
    statuses = {d.status for d in night["expected"]}
    assert statuses == {"published", "awaiting_review", "rejected"}  # the night held every kind of outcome
    for d in night["expected"]:
        if d.status == "published":
            assert by_id[d.delivery_id]["published"], d  # and something is live for each published title


def test_the_batch_run_succeeded_and_took_every_delivery(night, api):
    run = api.dag_run(runner.BATCH_DAG_ID, night["batch_run_id"])
    assert run["state"] == "success"
    assert len(night["runs"]) == len(
        night["expected"]
    )  # every delivery: a value-stream run, or refused by the batch with its reason
    for _, _dag_id, run_id, spec in night["runs"]:
        if spec is not None:
            state = night["done"][run_id][0]["state"]
            assert state in ("success", "running"), (run_id, state)  # running: parked on a person's review


def test_no_dag_was_deactivated_and_no_parse_killed(night, api):
    assert bench.deactivated_dags(api) == []
    assert night["kills"] == 0, "the DAG processor killed a parse that ran past its timeout during the night"
